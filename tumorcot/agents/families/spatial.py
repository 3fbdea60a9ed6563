"""Spatial relations between organs: left/right, above/below, anterior/posterior.

Task ``spatial``. The relation is read from the organs' centres (LPS millimetres): the offset
along one axis -> at least ``relation_min_mm`` -> the relation. Only complete organs (a
truncated organ's centre is of its visible part), only where the centres are far enough apart
along the axis asked about. A few pairs per case (``PAIRS_PER_CASE``, chosen by hash), so the
family does not swamp the others.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt, unit_hash
from tumorcot.agents.families.chain import Link, chain_record
from tumorcot.schemas import CoTRecord
from tumorcot.schemas.derived import AXES, AXIS_LETTER
from tumorcot.vocabulary import display_name, side_of

TASK = "spatial"
PAIRS_PER_CASE = 3
AXIS_WORDS = {"lateral": "the side-to-side axis", "vertical": "the head-to-foot axis",
              "depth": "the front-to-back axis"}
PHRASE = {"left": "to the patient's left of", "right": "to the patient's right of", "above": "above",
          "below": "below", "anterior": "anterior to", "posterior": "posterior to"}


def spatial_records(make: RecordFactory) -> list[CoTRecord]:
    candidates = []
    for fid, fact in make.table.items():
        subject, _, name = fid.partition(".")
        axis, sep, other = name.partition("_vs_")
        if not subject.startswith("organ:") or not sep or axis not in AXIS_WORDS:
            continue
        a = subject.split(":", 1)[1]
        if a > other:
            continue   # one record per unordered pair and axis
        if axis == "lateral" and (side_of(a) or side_of(other)):
            continue   # "left kidney ... to the left": the question would name its answer
        candidates.append((unit_hash("spatial", make.facts.case_id, a, other, axis), a, other, axis, str(fact.value)))
    chosen, pairs = [], set()
    for _, a, b, axis, word in sorted(candidates):
        if (a, b) in pairs or len(chosen) >= PAIRS_PER_CASE:
            continue
        pairs.add((a, b))
        chosen.append(_relation(make, a, b, axis, word))
    return chosen


def _relation(make: RecordFactory, a: str, b: str, axis: str, word: str) -> CoTRecord:
    first, second = display_name(a), display_name(b)
    offset = fmt(make.table[f"organ:{a}.offset_{AXIS_LETTER[axis]}_vs_{b}_mm"].value)
    ids = [f"organ:{a}.offset_{AXIS_LETTER[axis]}_vs_{b}_mm", f"organ:{a}.{axis}_vs_{b}", f"organ:{b}.volume_ml"]
    links = [Link(f"Along {AXIS_WORDS[axis]}, the centre of the {first} lies {offset} mm from the centre of the "
                  f"{second}.", ids[:1] + ids[2:]),
             Link(f"That offset is at least the {fmt(make.table['case.threshold_relation_min_mm'].value)} mm needed to "
                  f"state a relation, so the {first} lies {PHRASE[word]} the {second}.",
                  [ids[1], "case.threshold_relation_min_mm"])]
    roi = _union(make.facts.organ(a).bbox.normalized, make.facts.organ(b).bbox.normalized)
    return chain_record(make, task=TASK, subtask="relative_position", subject=f"{a}|{b}|{axis}", organ=a, links=links,
                        question={"first": first, "second": second, "axis": AXIS_WORDS[axis], "kind": axis},
                        answer={"first": first, "second": second, "relation": PHRASE[word], "offset": offset}, roi=roi)


def _union(p, q) -> list[float]:
    return [min(p[i], q[i]) for i in range(3)] + [max(p[i], q[i]) for i in range(3, 6)]
