"""The family mix: which of a case's records are kept so the dataset follows target shares.

With a target mix (``GenerationOptions.family_mix``; none by default), per case, after the
negative share: organ boxes are capped (``organ_box_cap``, by hash), then
every family group the case has (``schemas.options.MIX_GROUPS``) keeps records in proportion to
its target share (``family_mix``), scaled to the group that is scarcest relative to its target;
a group the case does not have (no TNM without labels) does not shrink the others. Within a
group, records are taken round-robin over subtasks in hash order, so every subtask keeps its
turn. Deterministic: the same records always give the same selection.
"""

from __future__ import annotations

from tumorcot.agents.base import unit_hash
from tumorcot.schemas import CoTRecord, GenerationOptions
from tumorcot.schemas.options import mix_group


def apply_mix(records: list[CoTRecord], options: GenerationOptions) -> list[CoTRecord]:
    if not options.family_mix:
        return records
    boxes = sorted((r for r in records if r.subtask == "organ_box"), key=_order)
    dropped = {r.record_id for r in boxes[options.organ_box_cap:]}
    records = [r for r in records if r.record_id not in dropped]
    mix = options.family_mix
    groups: dict[str, list[CoTRecord]] = {}
    for r in records:
        groups.setdefault(mix_group(r.task) or "", []).append(r)
    weighted = {g: rs for g, rs in groups.items() if mix.get(g, 0) > 0}
    if not weighted:
        return records
    scale = min(len(rs) / mix[g] for g, rs in weighted.items())
    keep: set[str] = set()
    for g, rs in groups.items():
        if g == "":
            keep |= {r.record_id for r in rs}   # a task outside the mix: kept as is
        elif g in weighted:
            quota = min(len(rs), max(1, round(scale * mix[g])))
            keep |= {r.record_id for r in _round_robin(rs)[:quota]}
    return [r for r in records if r.record_id in keep]


def _order(record: CoTRecord) -> float:
    return unit_hash("mix", record.record_id)


def _round_robin(records: list[CoTRecord]) -> list[CoTRecord]:
    by_subtask: dict[str, list[CoTRecord]] = {}
    for r in sorted(records, key=_order):
        by_subtask.setdefault(r.subtask, []).append(r)
    queues = sorted(by_subtask.values(), key=lambda q: _order(q[0]))
    out = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out
