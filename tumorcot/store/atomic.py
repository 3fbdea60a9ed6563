"""Atomic file writes: write a temporary file in the same folder, fsync, rename over the target.

The one helper every writer of the package uses (``atomic_path``, and ``atomic_open`` /
``atomic_write_*`` built on it). It imports nothing from tumorcot, so any layer may use it.

A reader (or a rerun after a crash) sees either the old file or the new one, never half of one.
``sync_dir=False`` leaves the folder's fsync to the caller, who writes several files into one
folder and then calls ``fsync_dir`` once (the per-case store does this before its ``done.json``).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

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


def commit(tmp: str | Path, path: Path, sync_dir: bool = True) -> None:
    """Rename the finished temporary ``tmp`` over ``path``, with ``publish_mode``."""
    publish_mode(tmp, path)
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


TEMP_MARK = ".tmp-"


def temporary_path(path: Path, suffix: str = ".tmp") -> str:
    """A fresh ``.<name>.tmp-<random><suffix>`` next to ``path``: the ``.tmp-`` mark lets
    ``remove_stale_temporaries`` find every one a killed writer left, whatever its suffix (a tool
    that picks its format from the name gets ``suffix``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=suffix, dir=path.parent)
    os.close(fd)
    return tmp


def fsync_file(path: str | Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextmanager
def atomic_path(path: Path, *, sync_dir: bool = True, suffix: str = ".tmp", fsync: bool = True) -> Iterator[str]:
    """The one atomic writer: yields a temporary path next to ``path`` for the caller (or a
    subprocess) to write; on success it is fsynced and renamed over ``path``, on any error
    removed. Every other writer here is a use of it. ``fsync=False`` (with ``sync_dir=False``)
    only renames: for files that can be re-made and whose writer checks them later (export media)."""
    tmp = temporary_path(path, suffix)
    try:
        yield tmp
        if fsync:
            fsync_file(tmp)
        commit(tmp, path, sync_dir)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: Path, mode: str = "w", *, sync_dir: bool = True, **kwargs) -> Iterator[IO]:
    """``open`` for writing, atomically: the file appears whole at ``path`` when the block ends."""
    with atomic_path(path, sync_dir=sync_dir) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def atomic_write_bytes(path: Path, data: bytes, *, sync_dir: bool = True, fsync: bool = True) -> None:
    with atomic_path(path, sync_dir=sync_dir, fsync=fsync) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: Path, obj, *, sync_dir: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode(), sync_dir=sync_dir)


def atomic_write_table(path: Path, table: pa.Table) -> None:
    """zstd Parquet, atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def atomic_write_arrow(path: Path, table: pa.Table, *, sync_dir: bool = True) -> None:
    """An Arrow IPC file (lz4), atomically: the private per-case format, cheap to write and read."""
    with atomic_path(path, sync_dir=sync_dir) as tmp:
        with pa.OSFile(tmp, "wb") as sink, ipc.new_file(sink, table.schema, options=IPC_OPTIONS) as writer:
            writer.write_table(table)


def atomic_symlink(link: Path, target: Path) -> None:
    """Make ``link`` point at ``target``, replacing any previous link in one rename."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.parent / f".{link.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.symlink(target, tmp, target_is_directory=target.is_dir())
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_arrow(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).read_all()


def is_temporary(path: Path) -> bool:
    """A file ``temporary_path`` made (or an older writer's ``.<name>.<random>.tmp``)."""
    return path.name.startswith(".") and (TEMP_MARK in path.name or path.name.endswith(".tmp"))


def remove_stale_temporaries(folder: Path) -> int:
    """Delete, below ``folder``, the temporary files killed writers left behind; how many. Only
    the dataset's one writer (holding its lock) may call this: a live writer's file would go too."""
    count = 0
    if folder.exists():
        for tmp in folder.rglob(".*"):
            if tmp.is_file() and is_temporary(tmp):
                tmp.unlink(missing_ok=True)
                count += 1
    return count
