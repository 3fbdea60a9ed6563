"""Batch mode: pending requests out as Batch API JSONL, results back into the response cache.

Guarantees:

- ``BatchWriter`` collects each distinct request once; ``write`` emits one line per request,
  ``{"custom_id": <cache key>, "method": "POST", "url": "/v1/chat/completions", "body": ...}``,
  the input format of the OpenAI Batch API and of ``vllm run-batch``. The file is written to a
  temporary name and renamed, so a half-written batch file never exists.
- ``ingest_results`` reads a results JSONL (``{"custom_id", "response": {"status_code",
  "body"}, "error"}``) and stores every successful chat completion in the cache under its
  ``custom_id``; the next build then answers those requests from the cache with 0 calls.
  Failed lines, unknown ids and truncated answers are counted and skipped, never cached.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorcot.agents.cache import ResponseCache, request_key
from tumorcot.store.atomic import atomic_open

CHAT_URL = "/v1/chat/completions"
_KEY = re.compile(r"^[0-9a-f]{64}$")


class BatchWriter:
    """Collects requests that missed the cache (``LLMClient(batch=...)`` feeds it)."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}

    def add(self, key: str, body: dict[str, Any]) -> None:
        self.requests.setdefault(key, body)

    def __len__(self) -> int:
        return len(self.requests)

    def lines(self) -> list[dict[str, Any]]:
        return [{"custom_id": key, "method": "POST", "url": CHAT_URL, "body": body}
                for key, body in sorted(self.requests.items())]

    def write(self, path: str | os.PathLike[str]) -> int:
        """Write the batch input JSONL; returns the number of requests."""
        with atomic_open(Path(path)) as fh:
            for line in self.lines():
                fh.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        return len(self.requests)


@dataclass
class IngestReport:
    stored: int = 0
    failed: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)


def read_requests(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``custom_id -> body`` of a batch input file."""
    with open(path) as fh:
        return {line["custom_id"]: line["body"] for line in map(json.loads, filter(str.strip, fh))}


def ingest_results(results: str | os.PathLike[str], cache: ResponseCache, *,
                   requests: str | os.PathLike[str] | None = None) -> IngestReport:
    """Store the successful answers of a Batch API / ``vllm run-batch`` output file in ``cache``.

    With ``requests`` (the input file), each id is checked against its request body's key.
    """
    bodies = read_requests(requests) if requests else {}
    report = IngestReport()
    with open(results) as fh:
        for number, text in enumerate(fh, 1):
            if not text.strip():
                continue
            line = json.loads(text)
            key = str(line.get("custom_id", ""))
            response = line.get("response") or {}
            body = response.get("body")
            problem = None
            if not _KEY.match(key):
                problem = "custom_id is not a tumorcot request key"
            elif bodies and (key not in bodies or request_key(bodies[key]) != key):
                problem = "custom_id matches no request of the input file"
            elif line.get("error") or response.get("status_code") != 200 or not isinstance(body, dict):
                problem = f"request failed: {line.get('error') or response.get('status_code')}"
            elif (body.get("choices") or [{}])[0].get("finish_reason") != "stop":
                problem = "answer did not finish (finish_reason != stop)"
            if problem:
                report.failed += 1
                report.reasons.append(f"line {number}: {problem}")
                continue
            if key in cache:
                report.skipped += 1
                continue
            cache.put(key, bodies.get(key), body, source="batch")
            report.stored += 1
    cache.flush()   # one batch, one fsync: on disk before the report says "stored"
    return report
