"""Organ measurements: volume, spleen size, liver-vs-spleen attenuation, kidney comparison.

Task ``organ_measure``. Every record rests on derived facts (``schemas.derived``) and exists only
where they do: no record about a truncated organ (its volume is of the visible part), the
liver-spleen attenuation record only on a non-contrast scan (contrast raises the spleen and
liver differently in each phase, so the unenhanced criterion does not apply).

============== ================================================ ===================================
subtask        chain                                            needs
============== ================================================ ===================================
organ_volume   volume                                           a complete liver/pancreas/kidney
spleen_size    volume -> upper normal 314.5 mL -> label         a complete spleen
liver_fat      liver and spleen HU -> difference -> cut-off ->  complete liver and spleen,
               label                                            non-contrast phase
kidney_compare left and right volumes -> gap -> larger side     both kidneys complete
============== ================================================ ===================================
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt
from tumorcot.agents.families.chain import Link, chain_record
from tumorcot.schemas import CoTRecord
from tumorcot.schemas.derived import complete, parenchyma_hu
from tumorcot.vocabulary import display_name

TASK = "organ_measure"
VOLUME_ORGANS = ("liver", "pancreas", "kidney_left", "kidney_right")


def organ_measure_records(make: RecordFactory) -> list[CoTRecord]:
    out = [r for name in VOLUME_ORGANS if (r := _volume(make, name))]
    for build in (_spleen_size, _liver_fat, _kidney_compare):
        record = build(make)
        if record is not None:
            out.append(record)
    return out


def _volume(make: RecordFactory, name: str) -> CoTRecord | None:
    organ = complete(make.facts, name)
    if organ is None:
        return None
    spoken, v = display_name(name), fmt(organ.volume_ml)
    links = [Link(make.step("organ_volume", "volume", name, organ=spoken, volume=v), [f"organ:{name}.volume_ml"])]
    return chain_record(make, task=TASK, subtask="organ_volume", subject=name, organ=name, links=links,
                        question={"organ": spoken}, answer={"organ": spoken, "volume": v}, roi=organ.bbox.normalized)


def _spleen_size(make: RecordFactory) -> CoTRecord | None:
    spleen = complete(make.facts, "spleen")
    if spleen is None:
        return None
    t = make.table
    volume, limit = fmt(spleen.volume_ml), f"{t['case.threshold_spleen_volume_ml'].value:g}"   # 314.5 as the source states it
    finding = t["organ:spleen.size_finding"].value
    over = t["organ:spleen.volume_ml_over_normal"].value
    links = [Link(make.step("spleen_size", "volume", "spleen", volume=volume), ["organ:spleen.volume_ml"]),
             Link(f"The upper end of the normal range on CT is {limit} mL (Prassopoulos et al.).",
                  ["case.threshold_spleen_volume_ml"])]
    if finding == "splenomegaly":
        links.append(Link(f"{volume} mL exceeds that limit by {fmt(over)} mL: splenomegaly.",
                          ["organ:spleen.volume_ml_over_normal", "organ:spleen.size_finding"]))
    else:
        links.append(Link(f"{volume} mL is within the normal range: no splenomegaly.", ["organ:spleen.size_finding"]))
    label = "splenomegaly" if finding == "splenomegaly" else "no splenomegaly"
    return chain_record(make, task=TASK, subtask="spleen_size", subject="spleen", organ="spleen", links=links,
                        question={"organ": "spleen"}, roi=spleen.bbox.normalized,
                        answer={"label": label, "enlarged": finding == "splenomegaly", "volume": volume, "limit": limit})


def _liver_fat(make: RecordFactory) -> CoTRecord | None:
    t = make.table
    if "organ:liver.fat_finding" not in t:
        return None   # needs both organs complete and a non-contrast scan (schemas.derived)
    liver, spleen = make.facts.organ("liver"), make.facts.organ("spleen")
    (l_hu, l_name), (s_hu, s_name) = parenchyma_hu(liver), parenchyma_hu(spleen)
    diff = t["organ:liver.hu_difference_spleen"].value
    cut = fmt(t["case.threshold_steatosis_liver_spleen_hu"].value)
    finding = t["organ:liver.fat_finding"].value
    signed = f"{'+' if diff >= 0 else ''}{fmt(diff)}"
    relation = f"{fmt(abs(diff))} HU {'lower' if diff < 0 else 'higher'} than the spleen"
    verdict = (f"{signed} HU is under the {cut} HU cut-off: hepatic steatosis." if finding == "hepatic steatosis"
               else f"{signed} HU is at or over the {cut} HU cut-off: no hepatic steatosis.")
    links = [Link(f"On this non-contrast scan the liver parenchyma measures {fmt(l_hu)} HU and the spleen "
                  f"{fmt(s_hu)} HU.", [f"organ:liver.{l_name}", f"organ:spleen.{s_name}", "case.contrast_phase"]),
             Link(f"The liver is {relation}.", ["organ:liver.hu_difference_spleen"]),
             Link(f"The cut-off for fat in the liver on non-contrast CT is a liver-minus-spleen value of {cut} HU "
                  f"(Park et al., lower end of the range in livers without fat at biopsy).",
                  ["case.threshold_steatosis_liver_spleen_hu"]),
             Link(verdict, ["organ:liver.fat_finding"])]
    return chain_record(make, task=TASK, subtask="liver_fat", subject="liver", organ="liver", links=links,
                        question={"organ": "liver"}, roi=liver.bbox.normalized,
                        answer={"label": finding, "fatty": finding == "hepatic steatosis", "relation": relation})


def _kidney_compare(make: RecordFactory) -> CoTRecord | None:
    t = make.table
    if "organ:kidney_left.volume_ml_gap_right" not in t:
        return None
    left, right = make.facts.organ("kidney_left"), make.facts.organ("kidney_right")
    larger, smaller = (left, right) if left.volume_ml >= right.volume_ml else (right, left)
    gap, pct = fmt(t["organ:kidney_left.volume_ml_gap_right"].value), fmt(t["organ:kidney_left.volume_gap_right_pct"].value)
    big, small = display_name(larger.name), display_name(smaller.name)
    ids = ["organ:kidney_left.volume_ml", "organ:kidney_right.volume_ml"]
    links = [Link(f"The left kidney encloses {fmt(left.volume_ml)} mL and the right kidney {fmt(right.volume_ml)} mL.", ids),
             Link(f"The {big} exceeds the {small} by {gap} mL, {pct} % of the smaller one.",
                  ["organ:kidney_left.volume_ml_gap_right", "organ:kidney_left.volume_gap_right_pct", *ids])]
    return chain_record(make, task=TASK, subtask="kidney_compare", subject="kidney", organ=larger.name, links=links,
                        question={}, answer={"larger": big, "smaller": small, "big": fmt(larger.volume_ml),
                                             "small": fmt(smaller.volume_ml), "gap": gap, "pct": pct})
