"""Which allocator Arrow uses for the buffers of a build.

A build allocates many short-lived Arrow buffers (per-case tables, row groups) from several
threads. With pyarrow's default mimalloc pool the peak RSS of a 1,000-case build was 472 MB
against 440 MB for 100 cases (x1.07); with the C library's allocator 435 against 417 MB (x1.04)
and about 10 MB less overall (``benchmarks/bench_ops.py``). ``ARROW_DEFAULT_MEMORY_POOL``, when
set, keeps the last word.
"""

from __future__ import annotations

import os

import pyarrow as pa


def use_system_allocator() -> None:
    """Make the C library's allocator Arrow's default pool, unless the environment chose one."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL") and pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())
