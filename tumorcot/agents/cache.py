"""On-disk LLM response cache: one JSON file per request key, written atomically.

Guarantees:

- The key is the sha256 of the canonical JSON of the request body as sent to
  ``/v1/chat/completions`` minus transport-only fields: model, messages, generation parameters
  (temperature, seed, max_tokens) and ``response_format`` (which carries the response schema).
  Parsing and post-processing code is not part of the key, so changing it costs no calls.
- A file is written to a temporary name in its shard folder, fsynced and renamed over the
  target: readers and reruns after a crash see a whole entry or none.
- Entries live in ``<root>/<key[:2]>/<key>.json`` so no folder grows beyond a few thousand files.
- An unreadable or corrupt entry is a miss (and is left for the next ``put`` to overwrite).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tumorcot.store.atomic import atomic_open

KEY_FIELDS = ("model", "messages", "temperature", "seed", "max_tokens", "response_format")


def request_key(body: dict[str, Any]) -> str:
    """sha256 over the fields of ``body`` that decide the answer (``KEY_FIELDS``)."""
    keyed = {k: body.get(k) for k in KEY_FIELDS}
    canonical = json.dumps(keyed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    """Maps a request key to the chat-completion JSON that answered it (and was accepted)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry ``{"key", "request", "response", ...}`` or None on a miss."""
        try:
            entry = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "response" not in entry:
            return None
        return entry

    def put(self, key: str, request: dict[str, Any], response: dict[str, Any], **extra: Any) -> None:
        """Store ``response`` (a chat-completion dict) for ``key``, atomically."""
        entry = {"key": key, "request": request, "response": response, **extra}
        with atomic_open(self.path(key), sync_dir=False) as fh:
            json.dump(entry, fh, ensure_ascii=False, sort_keys=True)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.exists() else 0
