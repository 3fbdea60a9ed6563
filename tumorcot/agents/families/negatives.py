"""Negative share: how many records about organs without lesions a case keeps.

Per subtask of a case (presence, count, organ report), with P positive and N negative records
and target share s: a case with lesions keeps min(N, round(s / (1 - s) * P)) negatives; a case
without lesions keeps each negative with probability s. Which ones is decided by a hash of the
record id, so the selection is stable across rebuilds and independent of other cases (builds
are incremental per case). ``stats.json`` reports the share achieved.
"""

from __future__ import annotations

from tumorcot.agents.base import unit_hash
from tumorcot.schemas import CoTRecord

NEGATIVE_SUBTASKS = ("presence", "count", "organ_report")


def select_negatives(records: list[CoTRecord], share: float) -> list[CoTRecord]:
    drop: set[str] = set()
    for subtask in NEGATIVE_SUBTASKS:
        group = [r for r in records if r.subtask == subtask]
        negatives = sorted((r for r in group if r.negative), key=lambda r: unit_hash("negative", r.record_id))
        positives = len(group) - len(negatives)
        if positives:
            keep = min(len(negatives), round(share / (1 - share) * positives))
        else:
            keep = sum(unit_hash("negative", r.record_id) < share for r in negatives)
        drop.update(r.record_id for r in negatives[keep:])
    return [r for r in records if r.record_id not in drop]
