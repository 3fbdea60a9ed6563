"""Locks in the dataset's private state folder (advisory ``flock``s).

- ``dataset_lock``: one writer per dataset (``STATE/lock``, exclusive, held for a whole build).
- ``publishing`` / ``reading``: readers see the old dataset or the new one, never a mix
  (``STATE/publish.lock``). A writer holds it exclusively while it replaces shards and the
  manifest (seconds, at the end of a build); a reader (``validate``, ``stats``, exports, the
  torch Dataset) holds it shared while it reads the manifest and the files it lists. A reader
  without access to the state folder (another user; a downloaded copy, which has no writer)
  reads without it.
"""

from __future__ import annotations

import fcntl
import os
import time
import functools
from contextlib import contextmanager
from pathlib import Path

from tumorcot.errors import DatasetLockedError
from tumorcot.store.private import state_dir


@contextmanager
def dataset_lock(dataset_dir: Path, *, wait_s: float = 0.0):
    """Hold the dataset's write lock; wait up to ``wait_s`` seconds, then DatasetLockedError."""
    path = state_dir(dataset_dir) / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DatasetLockedError(
                        f"{dataset_dir} is being written by another tumorcot process; retry when it finishes"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def _publish_lock(dataset_dir: Path, *, create: bool) -> int | None:
    folder = state_dir(dataset_dir, create=create)
    try:
        return os.open(folder / "publish.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:   # no state folder (a copy without writer) or not ours to open
        return None


@contextmanager
def _holding(fd: int | None, mode: int):
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, mode)   # blocks until the other side lets go
        yield
    finally:
        os.close(fd)


@contextmanager
def publishing(dataset_dir: Path):
    """Exclusive: the writer's replacement of shards, manifest and summaries."""
    with _holding(_publish_lock(dataset_dir, create=True), fcntl.LOCK_EX):
        yield


@contextmanager
def reading(dataset_dir: Path):
    """Shared: a reader's whole pass over the manifest and the files it lists."""
    try:
        fd = _publish_lock(dataset_dir, create=False)
    except Exception:   # e.g. StateDirError for a folder that is not a dataset: nothing to lock
        fd = None
    with _holding(fd, fcntl.LOCK_SH):
        yield


def reads_dataset(function):
    """Run ``function(dataset_dir, ...)`` under ``reading(dataset_dir)``."""
    @functools.wraps(function)
    def wrapper(dataset_dir, *args, **kwargs):
        with reading(Path(dataset_dir)):
            return function(dataset_dir, *args, **kwargs)
    return wrapper
