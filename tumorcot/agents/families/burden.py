"""Tumour burden: share of an organ occupied by lesions, the largest lesion, counts per sub-region.

Task ``tumor_burden``. Only with a lesion mask, never on a truncated organ (its volume is of the
visible part) and never naming a truncated lesion as largest (its size is a lower bound).

============== =================================================== ================================
subtask        chain                                               needs
============== =================================================== ================================
lesion_burden  lesion mL, organ mL -> % of the organ               lesions in a complete organ
largest_lesion every lesion's diameter -> the largest              2-6 complete lesions, no tie
location_count lesions per sub-location -> counts                  every lesion of the organ placed
============== =================================================== ================================
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt, lesion_name, mm, name_fact_ids
from tumorcot.agents.families.chain import Link, chain_record
from tumorcot.schemas import CoTRecord
from tumorcot.schemas.derived import sub_location_counts
from tumorcot.vocabulary import display_name

TASK = "tumor_burden"
MAX_LISTED = 6


def tumor_burden_records(make: RecordFactory) -> list[CoTRecord]:
    if not make.facts.has_lesion_mask:
        return []
    out = []
    for organ in make.facts.organs:
        if f"organ:{organ.name}.lesion_burden_pct" in make.table:
            out.append(_burden(make, organ))
        if sub_location_counts(make.facts, organ.name) and not organ.truncated:
            out.append(_location_count(make, organ))
    largest = _largest(make)
    return out + ([largest] if largest else [])


def _burden(make: RecordFactory, organ) -> CoTRecord:
    t, s = make.table, f"organ:{organ.name}"
    spoken = display_name(organ.name)
    lesions, whole, pct = fmt(t[f"{s}.volume_ml_lesions"].value), fmt(organ.volume_ml), fmt(t[f"{s}.lesion_burden_pct"].value)
    ids = [f"{s}.volume_ml_lesions", f"{s}.volume_ml"]
    links = [Link(f"Lesion volume inside the {spoken}: {lesions} mL; {spoken} volume: {whole} mL.", ids),
             Link(f"{lesions} mL of {whole} mL is {pct} % of the {spoken}.", [f"{s}.lesion_burden_pct", *ids])]
    return chain_record(make, task=TASK, subtask="lesion_burden", subject=organ.name, organ=organ.name, links=links,
                        question={"organ": spoken}, answer={"organ": spoken, "pct": pct, "lesions": lesions, "whole": whole},
                        roi=organ.bbox.normalized)


def _location_count(make: RecordFactory, organ) -> CoTRecord:
    facts, s = make.facts, f"organ:{organ.name}"
    spoken = display_name(organ.name)
    counts = sub_location_counts(facts, organ.name)
    lesions = facts.lesions_in(organ.name)
    place_ids = [f"lesion:{l.id}.sub_location" for l in lesions]
    parts = [f"{n} lesion{'s' if n > 1 else ''} in {_place(p)}" for p, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    count_ids = [f"{s}.lesion_count_{p.replace(' ', '_')}" for p in counts]
    placed = "; ".join(lesion_name(l, facts)[4:] for l in lesions)
    name_ids = [i for l in lesions for i in name_fact_ids(l, facts)]
    links = [Link(f"Lesions of the {spoken} by place: {placed}.", name_ids),
             Link(f"By sub-location: {'; '.join(parts)}.", [*count_ids, *place_ids])]
    return chain_record(make, task=TASK, subtask="location_count", subject=organ.name, organ=organ.name, links=links,
                        question={"organ": spoken}, answer={"organ": spoken, "parts": "; ".join(parts)},
                        roi=organ.bbox.normalized)


def _place(sub_location: str) -> str:
    return sub_location if sub_location.startswith("segment") else f"the {sub_location}"


def _largest(make: RecordFactory) -> CoTRecord | None:
    lesions = sorted(make.facts.lesions, key=lambda l: -l.long_axis_mm)
    if not 2 <= len(lesions) <= MAX_LISTED or any(l.truncated for l in lesions):
        return None
    if mm(lesions[0].long_axis_mm) == mm(lesions[1].long_axis_mm):
        return None   # a tie at the stated precision: no single largest
    top = lesions[0]
    listing = "; ".join(f"{lesion_name(l, make.facts)[4:]}" for l in lesions)   # drop "the "
    ids = [i for l in lesions for i in name_fact_ids(l, make.facts)]
    name = lesion_name(top, make.facts)
    links = [Link(f"Longest axial diameters of the lesions: {listing}.", ids),
             Link(f"The largest is {name}; the next measures {mm(lesions[1].long_axis_mm)} mm.",
                  [*name_fact_ids(top, make.facts), *name_fact_ids(lesions[1], make.facts)])]
    return chain_record(make, task=TASK, subtask="largest_lesion", subject="case", organ=top.organ, links=links,
                        question={}, answer={"name": name, "size": mm(top.long_axis_mm), "organ": display_name(top.organ)},
                        roi=top.bbox.normalized, lesion_id=top.id)
