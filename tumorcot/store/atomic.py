"""Atomic file writes: write a temporary file in the same folder, fsync, rename over the target.

A reader (or a rerun after a crash) sees either the old file or the new one, never half of one.
``sync_dir=False`` leaves the folder's fsync to the caller, who writes several files into one
folder and then calls ``fsync_dir`` once (the per-case store does this before its ``done.json``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from tumorcot.store.private import is_private

# Private per-case tables (Arrow IPC): lz4 buffers, about Parquet's size at a quarter of its cost.
IPC_OPTIONS = ipc.IpcWriteOptions(compression="lz4")


def fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_UMASK = os.umask(0)
os.umask(_UMASK)


def publish_mode(tmp: str | Path, path: Path) -> None:
    """Give a temporary file (mkstemp: 0600) the mode of an ordinary file (0644 under umask 022)
    before it is renamed to ``path``, unless ``path`` is in a private state folder (stays 0600)."""
    if not is_private(path):
        os.chmod(tmp, 0o666 & ~_UMASK)


def _replace(tmp: str, path: Path, sync_dir: bool = True) -> None:
    """Rename ``tmp`` over ``path`` with ``publish_mode``."""
    publish_mode(tmp, path)
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


def temporary_path(path: Path) -> str:
    """A fresh ``.<name>.<random>.tmp`` next to ``path`` (``remove_stale_temporaries`` finds it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return tmp


def fsync_file(path: str | Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def atomic_write_bytes(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _replace(tmp, path, sync_dir)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj, *, sync_dir: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode(), sync_dir=sync_dir)


def atomic_write_table(path: Path, table: pa.Table) -> None:
    """zstd Parquet, atomically."""
    tmp = temporary_path(path)
    try:
        pq.write_table(table, tmp, compression="zstd")
        fsync_file(tmp)
        _replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_arrow(path: Path, table: pa.Table, *, sync_dir: bool = True) -> None:
    """An Arrow IPC file (lz4), atomically: the private per-case format, cheap to write and read."""
    tmp = temporary_path(path)
    try:
        with pa.OSFile(tmp, "wb") as sink, ipc.new_file(sink, table.schema, options=IPC_OPTIONS) as writer:
            writer.write_table(table)
        fsync_file(tmp)
        _replace(tmp, path, sync_dir)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_arrow(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).read_all()


def remove_stale_temporaries(folder: Path) -> int:
    """Delete ``.*.tmp`` files a killed writer left behind; returns how many."""
    count = 0
    if folder.exists():
        for tmp in folder.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            count += 1
    return count
