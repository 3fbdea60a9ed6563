"""Measurement and claim checks in worker processes, feeding the LLM scheduler of a threads build.

Why: with the threads runner, measurement (CT decode, masks, features), drafting, claim checks
and the LLM client share one interpreter lock, so a build of small cases uses about one core and
the LLM stage cannot keep the endpoint busy. Measuring in other processes frees the build
process for the agents. Records do not depend on where a case was measured.

- ``measurement_processes(workers, segmentation, cases)``: how many processes (0 = measure in
  the calling thread): ``$TUMORCOT_MEASURE_PROCESSES`` when set, else ``min(workers, CPUs)``;
  always 0 for a build of fewer than ``POOLED_CASES`` cases, in a daemonic process (a Dask worker
  may not start children), on a single CPU, and when TotalSegmentator runs (its Prefect task
  belongs to the flow's process).
- ``prepared(cases, prepare, processes)``: ``prepare(case)`` for every case, in completion
  order, as ``(case, result or exception)``; at most ``2 * processes`` cases measured ahead, which
  bounds the facts held in memory.
- ``warm(processes)``: start that pool's processes now (the CLI does, while Prefect starts).
- ``worker_pool(processes)``: that pool (one per process and size; ``spawn``: safe beside running
  threads; started on first use, closed at exit); the LLM generator runs its last gate there.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import multiprocessing
import os
import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, TypeVar

from tumorcot.errors import WorkerProcessError

ENV = "TUMORCOT_MEASURE_PROCESSES"
T = TypeVar("T")

_POOLS: dict[int, concurrent.futures.ProcessPoolExecutor] = {}
_LOCK = threading.Lock()


POOLED_CASES = 8   # a build of fewer cases is measured in its own threads: a worker process takes ~2 s to start


def measurement_processes(workers: int, segmentation: Any = None, cases: int = POOLED_CASES) -> int:
    """The measurement processes a threads build of ``cases`` cases with ``workers`` case workers
    uses (see the module docstring); ``ValueError`` for a ``$TUMORCOT_MEASURE_PROCESSES`` that is
    no whole number."""
    backend = segmentation.get("backend") if isinstance(segmentation, dict) else getattr(segmentation, "backend", None)
    if multiprocessing.current_process().daemon or backend == "totalsegmentator":
        return 0
    setting = os.environ.get(ENV, "").strip()
    if setting and not setting.isdigit():
        raise ValueError(f"${ENV} must be a whole number of processes (0: measure in the build's own "
                         f"threads), not {setting!r}")
    if cases < POOLED_CASES:
        return 0
    if setting:
        return int(setting)
    cpus = os.cpu_count() or 1
    return 0 if cpus < 2 else max(1, min(workers, cpus))


def worker_pool(processes: int) -> concurrent.futures.ProcessPoolExecutor:
    with _LOCK:
        pool = _POOLS.get(processes)
        if pool is None:
            pool = _POOLS[processes] = concurrent.futures.ProcessPoolExecutor(
                processes, mp_context=multiprocessing.get_context("spawn"))
        return pool


def _ready() -> bool:
    import tumorcot.agents.llm  # noqa: F401  (what a measurement or a last gate needs, imported once)
    import tumorcot.flows.cases  # noqa: F401
    from tumorcot.knowledge_graph import load_kg

    load_kg()
    return True


def warm(processes: int) -> None:
    """Start the pool's processes and their imports in the background (returns at once)."""
    pool = worker_pool(processes)
    for _ in range(processes):
        pool.submit(_ready)


def close_pools() -> None:
    with _LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(close_pools)


def _discard(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Forget a broken pool (the next ``worker_pool`` call starts a new one)."""
    with _LOCK:
        for size, current in list(_POOLS.items()):
            if current is pool:
                del _POOLS[size]
    pool.shutdown(wait=False, cancel_futures=True)


def prepared(cases: Iterable[T], prepare: Callable[[T], Any], processes: int) -> Iterator[tuple[T, Any]]:
    """``(case, prepare(case))`` in completion order; the exception instead of the result when
    it could not be had. ``processes == 0``: in this thread.

    A worker that dies (killed when out of memory, a crash in native code) breaks the pool and
    every case in it: a new pool takes those cases again, one at a time, so the case that kills
    a worker again is the one reported (``WorkerProcessError``) and the others are measured."""
    if processes <= 0:
        for case in cases:
            try:
                yield case, prepare(case)
            except Exception as exc:  # prepare reports bad cases itself; this is a last resort
                yield case, exc
        return
    source, pending, retry, retried = iter(cases), {}, collections.deque(), set()
    end = object()

    def submit(case: T) -> None:
        pool = worker_pool(processes)
        pending[pool.submit(prepare, case)] = (case, pool)

    def fill() -> None:
        if retry:   # after a worker died: the cases it took down, one at a time
            if not pending:
                submit(retry.popleft())
            return
        while len(pending) < 2 * processes:
            case = next(source, end)
            if case is end:
                return
            submit(case)

    fill()
    while pending:
        done, _ = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
        for future in done:
            case, pool = pending.pop(future)
            exc = future.exception()
            if isinstance(exc, BrokenProcessPool):
                _discard(pool)
                if id(case) not in retried:
                    retried.add(id(case))
                    retry.append(case)
                    continue
                exc = WorkerProcessError("the measuring process died while it held this case, twice (killed when "
                                         "out of memory? a crash in native code?); the other cases went on")
            yield case, exc if exc is not None else future.result()
        fill()
