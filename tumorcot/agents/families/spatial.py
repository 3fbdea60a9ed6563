"""Spatial relations between organs (left/right, above/below, anterior/posterior) and a lesion's
contact with segmented vessels (``vessel_contact``).

Task ``spatial``. The relation is read from the organs' centres (LPS millimetres): the offset
along one axis -> at least ``relation_min_mm`` -> the relation. Only complete organs (a
truncated organ's centre is of its visible part), only where the centres are far enough apart
along the axis asked about. A few pairs per case (``PAIRS_PER_CASE``, chosen by hash), so the
family does not swamp the others.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt, lesion_phrase, name_fact_ids, unit_hash
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


def vessel_contact_records(make: RecordFactory) -> list[CoTRecord]:
    """Per lesion whose contact with segmented vessels was measured: the vessels around it -> the
    contact angle with each -> which it touches. No record where no vessel was segmented (no
    measurement, no claim); resectability is the ``resectability`` subtask (``families/resectability.py``)."""
    out = []
    for lesion in make.facts.lesions:
        measured = sorted(v for v in lesion.vessel_contact_deg if make.facts.organ(v) is not None)
        if not measured:
            continue
        noun, where = lesion_phrase(lesion, make.facts)
        name_ids = name_fact_ids(lesion, make.facts)
        angle_ids = [f"lesion:{lesion.id}.contact_{v}_deg" for v in measured]
        vessel_ids = [f"organ:{v}.mean_hu" for v in measured]   # names the vessel (a volume could be cut by the FOV)
        touching = [(v, lesion.vessel_contact_deg[v]) for v in measured if lesion.vessel_contact_deg[v] > 0]
        vessels = ", ".join(f"the {display_name(v)}" for v in measured)
        angles = "; ".join(f"{display_name(v)}: contact over {fmt(lesion.vessel_contact_deg[v])} degrees" for v in measured)
        if touching:
            verdict = "So it touches " + " and ".join(f"the {display_name(v)}" for v, _ in touching) + "."
            said = " and ".join(f"the {display_name(v)} ({fmt(d)} degrees)" for v, d in touching)
        else:
            verdict, said = "So it touches none of the segmented vessels.", ""
        links = [Link(f"Segmented vessels measured around the {noun} {where}: {vessels}.", [*name_ids, *vessel_ids]),
                 Link(f"Circumferential contact per vessel: {angles}.", angle_ids),
                 Link(verdict, angle_ids)]
        out.append(chain_record(make, task=TASK, subtask="vessel_contact", subject=lesion.id, organ=lesion.organ,
                                links=links, question={"lesion": noun, "where": where}, lesion_id=lesion.id,
                                answer={"touching": bool(touching), "said": said, "vessels": vessels},
                                roi=lesion.bbox.normalized))
    return out
