"""Atomic file writes: write a temporary file in the same folder, fsync, rename over the target.

A reader (or a rerun after a crash) sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


_UMASK = os.umask(0)
os.umask(_UMASK)
PRIVATE = ".tumorcot"   # files under a dataset's private folder keep mkstemp's owner-only mode


def _replace(tmp: str, path: Path) -> None:
    """Rename ``tmp`` over ``path``; published files get the usual mode (0644 under umask 022)."""
    if PRIVATE not in path.parts:
        os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def atomic_write_table(path: Path, table: pa.Table) -> None:
    """zstd Parquet, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        _replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> int:
    """Delete ``.*.tmp`` files a killed writer left behind; returns how many."""
    count = 0
    if folder.exists():
        for tmp in folder.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            count += 1
    return count
