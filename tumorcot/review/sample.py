"""Stratified sampling of records for review.

Records are grouped by the ``stratify`` columns (e.g. task and organ); the strata are visited
round robin in a seeded random order, each giving its next seeded-random record, until the
sample is full. Rare strata (TNM staging, a rarely affected organ) are therefore as present as
common ones, as far as they have records; the same seed gives the same sample.
"""

from __future__ import annotations

import random
from collections import defaultdict

from tumorcot.errors import ReviewError

STRATIFY_COLUMNS = ("task", "subtask", "organ", "split", "form", "negative", "generator", "source", "synthetic")


def parse_stratify(text: str) -> tuple[str, ...]:
    columns = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in columns if c not in STRATIFY_COLUMNS]
    if unknown:
        raise ReviewError(f"cannot stratify by {', '.join(unknown)}: choose among {', '.join(STRATIFY_COLUMNS)}")
    return columns


def stratified_sample(rows: list[dict], n: int, stratify: tuple[str, ...], seed: int) -> list[dict]:
    """Up to ``n`` of ``rows`` (dicts holding ``record_id`` and the ``stratify`` columns)."""
    if not rows:
        raise ReviewError("the dataset holds no record to sample")
    rng = random.Random(seed)
    strata: dict[tuple, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["record_id"]):
        strata[tuple(str(row[c]) for c in stratify)].append(row)
    queues = []
    for key in sorted(strata):
        members = strata[key][:]
        rng.shuffle(members)
        queues.append(members)
    rng.shuffle(queues)
    sample: list[dict] = []
    while len(sample) < n and any(queues):
        for queue in queues:
            if queue and len(sample) < n:
                sample.append(queue.pop())
    return sample
