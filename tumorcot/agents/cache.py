"""On-disk LLM response cache: append-only segment files, written in batches by one thread.

Guarantees:

- The key is the sha256 of the canonical JSON of the request body as sent to
  ``/v1/chat/completions`` minus transport-only fields: model, messages, generation parameters
  (temperature, seed, max_tokens) and ``response_format`` (which carries the response schema).
  Parsing and post-processing code is not part of the key, so changing it costs no calls. Live
  requests and Batch API lines (``custom_id``) use this same key.
- ``put`` never does I/O: it hands the entry to the cache's writer thread and returns, so an
  event loop calling it is never blocked on the disk. The writer takes everything queued
  (waiting up to ``linger_s`` for more), appends it to this cache object's own segment file and
  fsyncs once per batch. ``flush`` waits until every entry put before it is on disk.
- One segment per writer (``<root>/segments/<time>-<pid>-<random>.seg``, created on the first
  write), so processes sharing a cache never write to the same file. A line is
  ``<key> <crc32 of the JSON> <JSON entry>\\n``; on reading, a line that is cut short (a crash
  in the middle of a write), fails its checksum or does not parse is ignored, never fatal: the
  request is simply a miss and is asked again.
- Reading builds an index (key -> segment, offset, length) from every segment once, the first
  time it is needed (``load``); entries another process writes afterwards are seen by the next
  cache object opened on the folder. The last entry of a key wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from tumorcot.store.atomic import fsync_dir

KEY_FIELDS = ("model", "messages", "temperature", "seed", "max_tokens", "response_format")
SEGMENT_SUFFIX = ".seg"


def request_key(body: dict[str, Any]) -> str:
    """sha256 over the fields of ``body`` that decide the answer (``KEY_FIELDS``)."""
    keyed = {k: body.get(k) for k in KEY_FIELDS}
    canonical = json.dumps(keyed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode_line(key: str, entry: dict[str, Any]) -> bytes:
    payload = json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    return b"%s %08x %s\n" % (key.encode(), zlib.crc32(payload), payload)


def decode_line(line: bytes) -> tuple[str, bytes] | None:
    """(key, JSON payload) of a whole, intact line (without its newline), else None."""
    parts = line.split(b" ", 2)
    if len(parts) != 3 or len(parts[0]) != 64 or len(parts[1]) != 8:
        return None
    try:
        if int(parts[1], 16) != zlib.crc32(parts[2]):
            return None
    except ValueError:
        return None
    return parts[0].decode("ascii", "replace"), parts[2]


class ResponseCache:
    """Maps a request key to the chat-completion JSON that answered it (and was accepted)."""

    def __init__(self, root: str | os.PathLike[str], *, linger_s: float = 0.02, max_batch: int = 1024):
        self.root = Path(root)
        self.linger_s, self.max_batch = linger_s, max_batch
        self.fsyncs = 0       # batches written (one fsync each)
        self.written = 0      # entries written
        self._lock = threading.Condition()
        self._index: dict[str, tuple[Path, int, int]] | None = None
        self._queued: dict[str, dict[str, Any]] = {}   # put, not yet on disk (answers ``get``)
        self._order: list[tuple[str, dict[str, Any]]] = []
        self._put_seq = self._done_seq = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        self._segment: Path | None = None
        self._error: BaseException | None = None

    # -- reading ------------------------------------------------------------------------------

    def load(self) -> int:
        """Index every segment (once); returns the number of keys. Call it off the event loop."""
        with self._lock:
            if self._index is None:
                self._index = {}
                folder = self.root / "segments"
                for segment in sorted(folder.glob(f"*{SEGMENT_SUFFIX}")) if folder.exists() else []:
                    self._index_segment(segment)
            return len(self._index) + sum(k not in self._index for k in self._queued)

    def _index_segment(self, segment: Path) -> None:
        try:
            data = segment.read_bytes()
        except OSError:
            return
        offset = 0
        while (end := data.find(b"\n", offset)) >= 0:   # a last line without newline: cut short
            decoded = decode_line(data[offset:end])
            if decoded is not None:
                key, payload = decoded
                self._index[key] = (segment, end - len(payload), len(payload))
            offset = end + 1

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry ``{"key", "request", "response", ...}`` or None on a miss."""
        if self._index is None:
            self.load()
        with self._lock:
            if (queued := self._queued.get(key)) is not None:
                return queued
            where = self._index.get(key)
        if where is None:
            return None
        path, offset, length = where
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                entry = json.loads(fh.read(length))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "response" not in entry:
            return None
        return entry

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return self.load()

    # -- writing ------------------------------------------------------------------------------

    def put(self, key: str, request: dict[str, Any] | None, response: dict[str, Any], **extra: Any) -> None:
        """Queue ``response`` (a chat-completion dict) for ``key``; no I/O on the caller's thread."""
        entry = {"key": key, "request": request, "response": response, **extra}
        with self._lock:
            if self._error is not None:
                raise OSError(f"LLM cache writer failed: {self._error}") from self._error
            self._queued[key] = entry
            self._order.append((key, entry))
            self._put_seq += 1
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._write_loop, name="llm-cache-writer", daemon=True)
                self._thread.start()
            self._lock.notify_all()

    def flush(self) -> None:
        """Block until every entry put so far is on disk (fsynced)."""
        with self._lock:
            target = self._put_seq
            while self._done_seq < target and self._error is None:
                self._lock.wait(0.5)
            if self._error is not None:
                raise OSError(f"LLM cache writer failed: {self._error}") from self._error

    def close(self) -> None:
        """Flush and stop the writer thread (a later ``put`` starts it again)."""
        self.flush()
        with self._lock:
            self._closing = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._order and not self._closing:
                    self._lock.wait()
                if not self._order:
                    return
                first = time.monotonic()
                while len(self._order) < self.max_batch and not self._closing:   # let a batch gather
                    left = self.linger_s - (time.monotonic() - first)
                    if left <= 0:
                        break
                    self._lock.wait(left)
                batch, self._order = self._order, []
            try:
                placed = self._append(batch)
            except BaseException as exc:  # reported by the next put/flush
                with self._lock:
                    self._error = exc
                    self._lock.notify_all()
                return
            with self._lock:
                if self._index is not None:
                    self._index.update(placed)
                for key, entry in batch:
                    if self._queued.get(key) is entry:
                        del self._queued[key]
                self._done_seq += len(batch)
                self._lock.notify_all()

    def _append(self, batch: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[Path, int, int]]:
        """Append one batch to this writer's segment with a single fsync; their index entries."""
        new = self._segment is None
        if new:
            folder = self.root / "segments"
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self._segment = folder / f"{stamp}-{os.getpid()}-{secrets.token_hex(4)}{SEGMENT_SUFFIX}"
        lines = [encode_line(key, entry) for key, entry in batch]
        fd = os.open(self._segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            start = os.fstat(fd).st_size
            data = memoryview(b"".join(lines))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:   # the new file's directory entry must survive a crash too
            fsync_dir(self._segment.parent)
        self.fsyncs += 1
        self.written += len(batch)
        placed, offset = {}, start
        for (key, _), line in zip(batch, lines):
            payload_start = offset + 64 + 1 + 8 + 1
            placed[key] = (self._segment, payload_start, len(line) - (payload_start - offset) - 1)
            offset += len(line)
        return placed

