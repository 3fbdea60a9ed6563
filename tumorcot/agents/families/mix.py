"""The family mix: which records a dataset publishes so each split follows target shares.

With a target mix (``GenerationOptions.family_mix``; TumorCoT's published mix by default), the
shards hold, per split (``store/mixing.py`` applies it when shards are written, like the split
ratios; every case's records stay in the private store):

1. at most ``organ_box_cap`` organ boxes per case (by hash), so boxes do not dominate;
2. every family group (``schemas.options.MIX_GROUPS``) in proportion to its target share, scaled
   to the group that is scarcest relative to its target (that group keeps all its records); a
   group the split does not have (no TNM without labels), or has too little of to follow
   (``SCARCE``: it would halve what the other groups allow), keeps what it has and does not
   shrink the others; a task outside the groups is kept as is;
3. within a group, records taken round-robin over subtasks in hash order, so every subtask keeps
   its turn; within a subtask, each stratum (negative or not, open or multiple choice with k
   options) keeps its share of the subtask, and its records come in ``_varied`` order: a question
   form (then an answer form) seen fewer times first, so a sample keeps as many of the banks'
   wordings as its size allows;
4. then the letters are balanced after sampling: each multiple-choice stratum keeps as many
   records, re-chosen so that every pick takes the split's least-used answer position the
   stratum has (options are placed per case, before the mix drops records; this restores the
   balance without touching a record).

Deterministic: the same candidates always give the same selection (hashes of record ids only).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest

from tumorcot.agents.base import unit_hash
from tumorcot.schemas.options import mix_group


SCARCE = 0.5   # a group that would cut its split below this share of what the others allow keeps all it has


@dataclass(frozen=True)
class Candidate:
    """What the mix needs of a record (a few columns of its row)."""

    record_id: str
    case_id: str
    task: str
    subtask: str
    split: str
    negative: bool = False
    choices: int = 0              # options of a multiple-choice record, else 0
    answer_index: int | None = None
    question_form: str = ""       # the bank line its question was drawn from ("questions/size.j2#3")
    answer_form: str = ""         # and its answer ("answers/size.j2#1")


def select(candidates: list[Candidate], mix: dict[str, float] | None, organ_box_cap: int) -> set[str]:
    """Record ids the dataset keeps: every one without a mix, else the mix of each split."""
    if not mix:
        return {c.record_id for c in candidates}
    by_split: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_split.setdefault(c.split, []).append(c)
    keep: set[str] = set()
    for rows in by_split.values():
        keep |= _select_split(_cap_boxes(rows, organ_box_cap), mix)
    return keep


def _cap_boxes(rows: list[Candidate], cap: int) -> list[Candidate]:
    by_case: dict[str, list[Candidate]] = {}
    for r in rows:
        if r.subtask == "organ_box":
            by_case.setdefault(r.case_id, []).append(r)
    dropped = {r.record_id for boxes in by_case.values() for r in sorted(boxes, key=_order)[cap:]}
    return [r for r in rows if r.record_id not in dropped]


def _select_split(rows: list[Candidate], mix: dict[str, float]) -> set[str]:
    groups: dict[str, list[Candidate]] = {}
    for r in rows:
        groups.setdefault(mix_group(r.task) or "", []).append(r)
    weighted = {g: rs for g, rs in groups.items() if mix.get(g, 0) > 0}
    keep = {r.record_id for r in groups.get("", [])}   # a task outside the mix: kept as is
    if not weighted:
        return keep
    scale = _scale({g: len(rs) for g, rs in weighted.items()}, mix)
    chosen: list[Candidate] = []
    for g, rs in weighted.items():
        quota = min(len(rs), max(1, round(scale * mix[g])))
        chosen += _round_robin(rs)[:quota]
    return keep | {r.record_id for r in _balance_positions(chosen, rows)}


def _scale(supply: dict[str, int], mix: dict[str, float]) -> float:
    """Records of the split per unit of target share: the scarcest group's supply over its
    target, unless that group is too scarce to follow (it would cut the split to less than
    ``SCARCE`` of what the next scarcest allows: a few labelled cases would otherwise shrink a
    whole dataset to ten times their TNM records); such a group keeps all its records, short of
    its target, and the others follow their targets among themselves."""
    scales = sorted(n / mix[g] for g, n in supply.items())
    while len(scales) > 1 and scales[0] < SCARCE * scales[1]:
        scales.pop(0)
    return scales[0]


def _balance_positions(chosen: list[Candidate], pool: list[Candidate]) -> list[Candidate]:
    """``chosen`` with its multiple-choice records re-chosen within their strata (subtask,
    negative or not, k options; as many from each) so that the answer letters of the split are
    balanced: each pick takes the least-used letter the stratum still has (ties in hash order)."""
    taken: dict[tuple, int] = {}
    for r in chosen:
        if r.choices:
            taken[_stratum(r)] = taken.get(_stratum(r), 0) + 1
    supply: dict[tuple, dict[int, list[Candidate]]] = {}
    for r in _varied(pool):
        if r.choices and _stratum(r) in taken:
            supply.setdefault(_stratum(r), {}).setdefault(r.answer_index, []).append(r)
    counts: dict[int, dict[int, int]] = {}
    out = [r for r in chosen if not r.choices]
    for key in sorted(taken, key=lambda key: unit_hash("position", *map(str, key))):
        used, queues = counts.setdefault(key[2], {}), supply[key]
        for _ in range(taken[key]):
            p = min((p for p in queues if queues[p]),
                    key=lambda p: (used.get(p, 0), unit_hash("position", *map(str, key), str(p))))
            out.append(queues[p].pop(0))
            used[p] = used.get(p, 0) + 1
    return out


def _stratum(r: Candidate) -> tuple:
    return r.subtask, r.negative, r.choices


def _order(record: Candidate) -> float:
    return unit_hash("mix", record.record_id)


def _round_robin(records: list[Candidate]) -> list[Candidate]:
    """Subtasks in turn (hash order), each subtask's records in ``_stratified`` order."""
    by_subtask: dict[str, list[Candidate]] = {}
    for r in records:
        by_subtask.setdefault(r.subtask, []).append(r)
    queues = sorted((_stratified(q) for q in by_subtask.values()), key=lambda q: unit_hash("mix", q[0].subtask))
    return [r for turn in zip_longest(*queues) for r in turn if r is not None]


def _stratified(records: list[Candidate]) -> list[Candidate]:
    """One subtask's records so that every prefix holds each stratum (negative or not, number of
    options) in proportion to its size; within a stratum by hash."""
    strata: dict[tuple, list[Candidate]] = {}
    for r in _varied(records):
        strata.setdefault(_stratum(r), []).append(r)
    keyed = [((i + 0.5) / len(stratum), _order(r), r) for stratum in strata.values() for i, r in enumerate(stratum)]
    return [r for _, _, r in sorted(keyed, key=lambda k: k[:2])]


def _varied(records: list[Candidate]) -> list[Candidate]:
    """``records`` so that every prefix of each stratum holds as many question forms, then answer
    forms, as it can: by how many records of the stratum drew the same form before it (hash
    order), then by hash. Deterministic, like every order here."""
    seen: dict[tuple, int] = {}
    keyed = []
    for r in sorted(records, key=_order):
        question = seen[(_stratum(r), "q", r.question_form)] = seen.get((_stratum(r), "q", r.question_form), -1) + 1
        answer = seen[(_stratum(r), "a", r.answer_form)] = seen.get((_stratum(r), "a", r.answer_form), -1) + 1
        keyed.append((question, answer, _order(r), r))
    return [r for *_, r in sorted(keyed, key=lambda k: k[:3])]
