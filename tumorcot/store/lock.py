"""One writer per dataset: an advisory ``flock`` on ``STATE/lock`` (the dataset's private state folder)."""

from __future__ import annotations

import fcntl
import os
import time
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
