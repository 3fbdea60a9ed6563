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
kidney_compare left and right lengths -> gap -> cut-off 1.5 cm  both kidneys complete
               -> similar length or the larger side
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
    """Kidney size as guidelines compare it: the length gap against 1.5 cm (a gap of a few mL or
    mm is measurement noise, not asymmetry); the volumes stated as supporting values."""
    t = make.table
    if "organ:kidney_left.length_finding" not in t:
        return None   # both kidneys complete: a truncated kidney's length is a lower bound (schemas.derived)
    left, right = make.facts.organ("kidney_left"), make.facts.organ("kidney_right")
    cm = {o.name: t[f"organ:{o.name}.length_cm"].value for o in (left, right)}
    longer, shorter = (left, right) if cm["kidney_left"] >= cm["kidney_right"] else (right, left)
    gap, cut = fmt(t["organ:kidney_left.length_cm_gap_right"].value), f"{t['case.threshold_kidney_length_gap_cm'].value:g}"
    discrepancy = t["organ:kidney_left.length_finding"].value == "size discrepancy"
    big, small = display_name(longer.name), display_name(shorter.name)
    lengths = ["organ:kidney_left.length_cm", "organ:kidney_right.length_cm"]
    volumes = ["organ:kidney_left.volume_ml", "organ:kidney_right.volume_ml"]
    compared = ["organ:kidney_left.length_cm_gap_right", "organ:kidney_left.length_vs_right", *lengths]
    if discrepancy:
        verdict = f"{gap} cm exceeds the {cut} cm cut-off: a size discrepancy, the {small} smaller than the {big}."
    else:
        verdict = f"{gap} cm is within the {cut} cm cut-off: the kidneys are similar in length, no size discrepancy."
    links = [Link(make.step("kidney_compare", "length", "kidney", left=fmt(cm["kidney_left"]),
                            right=fmt(cm["kidney_right"])), lengths),
             Link(f"As supporting values, the left kidney encloses {fmt(left.volume_ml)} mL and the right kidney "
                  f"{fmt(right.volume_ml)} mL.", volumes),
             Link(f"The lengths differ by {gap} cm." if gap != "0.0" else "The two lengths are equal.", compared),
             Link(f"A discrepancy in size between the two kidneys counts when it is greater than {cut} cm "
                  f"(Hirsch et al., cardiology practice guideline).", ["case.threshold_kidney_length_gap_cm"]),
             Link(verdict, ["organ:kidney_left.length_finding", *compared, "case.threshold_kidney_length_gap_cm"])]
    return chain_record(make, task=TASK, subtask="kidney_compare", subject="kidney", organ=longer.name, links=links,
                        question={}, answer={"discrepancy": discrepancy, "longer": big, "shorter": small,
                                             "long": fmt(cm[longer.name]), "short": fmt(cm[shorter.name]),
                                             "left": fmt(cm["kidney_left"]), "right": fmt(cm["kidney_right"]),
                                             "gap": gap, "cut": cut, "vlong": fmt(longer.volume_ml),
                                             "vshort": fmt(shorter.volume_ml), "vleft": fmt(left.volume_ml),
                                             "vright": fmt(right.volume_ml)})
