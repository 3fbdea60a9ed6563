"""Facts derived from measured facts: organ-level findings, comparisons, burdens, relations.

The organ-level task families (``agents/families/organs.py``, ``burden.py``, ``spatial.py``)
state numbers and labels no single measurement holds: a difference between two organs, the share
of an organ occupied by lesions, an organ's position relative to another, a label decided by a
sourced threshold. They are computed here, once, so a record can cite them like any other fact
and the claim gate can check them. Only where their data exist: never from a truncated organ,
the liver-spleen attenuation label only on a non-contrast scan.

Fact names (all in ``CaseFacts.fact_table``):

* ``case.threshold_<name>``: a threshold a record states, from ``vocabulary.THRESHOLDS``
* ``organ:spleen.size_finding``: "splenomegaly" / "normal size" (volume vs ``spleen_volume_ml``)
* ``organ:liver.hu_difference_spleen``: liver minus spleen HU (parenchymal reference where measured)
* ``organ:liver.fat_finding``: "hepatic steatosis" / "no hepatic steatosis" (non-contrast only)
* ``organ:<o>.lesion_burden_pct``: lesion volume inside the organ, % of the organ's volume
* ``organ:spleen.volume_ml_over_normal``: spleen volume minus ``spleen_volume_ml``
* ``organ:<o>.volume_ml_lesions``: lesion volume inside the organ (mL);
  ``organ:<o>.lesion_count_<sub-location>``: lesions per sub-location (all lesions placed)
* ``organ:kidney_left.length_cm_gap_right``: |left - right| kidney length (cm, from the lengths
  as stated, ``organ:<kidney>.length_cm``); ``length_finding``: "size discrepancy" when the gap
  exceeds ``kidney_length_gap_cm`` (1.5 cm), else "similar length"; ``length_vs_right``:
  "longer" / "shorter" / "equal". Only with both kidneys complete: a truncated kidney's length
  is a lower bound
* ``organ:<a>.lateral_vs_<b>`` / ``vertical_vs_<b>`` / ``depth_vs_<b>``: "left"/"right",
  "above"/"below", "anterior"/"posterior" (centres further apart than ``relation_min_mm``),
  with the offsets ``offset_x_vs_<b>_mm`` etc. (absolute, mm)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tumorcot.vocabulary import THRESHOLDS, threshold

if TYPE_CHECKING:
    from tumorcot.schemas.facts import CaseFacts, OrganFacts

STATED_THRESHOLDS = ("spleen_volume_ml", "steatosis_liver_spleen_hu", "kidney_length_gap_cm", "relation_min_mm",
                     "isodense_hu",
                     "vessel_encasement_deg",
                     # the lesion attribute rules a rationale walks through (agents/families/attribute_links.py)
                     "fatty_hu", "calcified_hu", "calcified_share", "fluid_hu_low", "fluid_hu_high",
                     "fluid_max_iqr_hu", "well_defined_sharpness", "round_sphericity", "round_axis_ratio",
                     "lobulated_index", "irregular_index", "small_mm", "large_mm")
# Organs compared with one another by position (when both are present and complete).
SPATIAL_ORGANS = ("liver", "spleen", "kidney_left", "kidney_right", "pancreas", "stomach", "gallbladder",
                  "aorta", "inferior_vena_cava", "urinary_bladder")
# LPS axis: (fact word, word when a's centre is at larger coordinate, word when smaller)
AXES = ((0, "lateral", "left", "right"), (1, "depth", "posterior", "anterior"), (2, "vertical", "above", "below"))
AXIS_LETTER = {"lateral": "x", "depth": "y", "vertical": "z"}


def complete(facts: "CaseFacts", name: str) -> "OrganFacts | None":
    """The organ, when segmented and not cut by the field of view."""
    organ = facts.organ(name)
    return organ if organ is not None and not organ.truncated and organ.volume_ml > 0 else None


def parenchyma_hu(organ: "OrganFacts") -> tuple[float, str]:
    """(HU, fact name): the lesion-free reference where measured, else the organ mean."""
    return (organ.reference_hu, "reference_hu") if organ.reference_hu is not None else (organ.mean_hu, "mean_hu")


def spleen_finding(volume_ml: float) -> str:
    return "splenomegaly" if volume_ml > threshold("spleen_volume_ml") else "normal size"


def fat_finding(liver_minus_spleen_hu: float) -> str:
    return "hepatic steatosis" if liver_minus_spleen_hu < threshold("steatosis_liver_spleen_hu") else "no hepatic steatosis"


def kidney_length_finding(gap_cm: float) -> str:
    return "size discrepancy" if gap_cm > threshold("kidney_length_gap_cm") else "similar length"


def kidney_lengths_cm(facts: "CaseFacts") -> tuple[float, float] | None:
    """(left, right) kidney length in cm as records state it, when both kidneys are complete."""
    left, right = complete(facts, "kidney_left"), complete(facts, "kidney_right")
    if left is None or right is None or left.length_mm is None or right.length_mm is None:
        return None
    return round(left.length_mm / 10, 1), round(right.length_mm / 10, 1)


def lesion_burden_pct(facts: "CaseFacts", organ: "OrganFacts") -> float | None:
    inside = sum(l.volume_ml * l.organ_overlap_fraction for l in facts.lesions_in(organ.name))
    return round(100.0 * inside / organ.volume_ml, 1) if inside > 0 else None


def sub_location_counts(facts: "CaseFacts", organ: str) -> dict[str, int]:
    """Lesions per sub-location of ``organ``, when every lesion of it has one (else {})."""
    lesions = facts.lesions_in(organ)
    if not lesions or any(not l.sub_location for l in lesions):
        return {}
    counts: dict[str, int] = {}
    for lesion in lesions:
        counts[lesion.sub_location] = counts.get(lesion.sub_location, 0) + 1
    return counts


def relation(a: "OrganFacts", b: "OrganFacts", axis: int) -> tuple[str | None, float]:
    """(word or None when within ``relation_min_mm``, |offset| mm) of a's centre relative to b's."""
    delta = a.centroid_mm[axis] - b.centroid_mm[axis]
    word = next(((hi if delta > 0 else lo) for i, _, hi, lo in AXES if i == axis), None)
    return (word if abs(delta) >= threshold("relation_min_mm") else None), round(abs(delta), 1)


def derived_facts(facts: "CaseFacts") -> list[tuple[str, str, float | str, str | None]]:
    """(subject, name, value, unit) of every derived fact of ``facts``."""
    out: list[tuple[str, str, float | str, str | None]] = []
    for name in STATED_THRESHOLDS:
        value, unit, _ = THRESHOLDS[name]
        out.append(("case", f"threshold_{name}", value, unit or None))
    spleen, liver = complete(facts, "spleen"), complete(facts, "liver")
    if spleen is not None:
        out.append(("organ:spleen", "size_finding", spleen_finding(spleen.volume_ml), None))
        out.append(("organ:spleen", "volume_ml_over_normal", round(spleen.volume_ml - threshold("spleen_volume_ml"), 1), "mL"))
    if spleen is not None and liver is not None:
        diff = round(parenchyma_hu(liver)[0] - parenchyma_hu(spleen)[0], 1)
        out.append(("organ:liver", "hu_difference_spleen", diff, "HU"))
        if facts.contrast_phase == "non_contrast":
            out.append(("organ:liver", "fat_finding", fat_finding(diff), None))
    if (lengths := kidney_lengths_cm(facts)) is not None:
        left_cm, right_cm = lengths
        gap = round(abs(left_cm - right_cm), 1)
        out.append(("organ:kidney_left", "length_cm_gap_right", gap, "cm"))
        out.append(("organ:kidney_left", "length_finding", kidney_length_finding(gap), None))
        out.append(("organ:kidney_left", "length_vs_right",
                    "longer" if left_cm > right_cm else "shorter" if left_cm < right_cm else "equal", None))
    for organ in facts.organs:
        if not organ.truncated and organ.volume_ml > 0 and (pct := lesion_burden_pct(facts, organ)) is not None:
            out.append((f"organ:{organ.name}", "lesion_burden_pct", pct, "%"))
            inside = sum(l.volume_ml * l.organ_overlap_fraction for l in facts.lesions_in(organ.name))
            out.append((f"organ:{organ.name}", "volume_ml_lesions", round(inside, 1), "mL"))
        for place, n in sub_location_counts(facts, organ.name).items():
            out.append((f"organ:{organ.name}", f"lesion_count_{place.replace(' ', '_')}", n, None))
    present = [o for o in (complete(facts, n) for n in SPATIAL_ORGANS) if o is not None]
    for a in present:
        for b in present:
            if a is b:
                continue
            for axis, word, _, _ in AXES:
                rel, offset = relation(a, b, axis)
                if rel is not None:
                    out.append((f"organ:{a.name}", f"{word}_vs_{b.name}", rel, None))
                    out.append((f"organ:{a.name}", f"offset_{AXIS_LETTER[word]}_vs_{b.name}_mm", offset, "mm"))
    return out


def derived_names(facts: "CaseFacts") -> set[str]:
    """Fact ids of the derived facts of ``facts``."""
    return {f"{subject}.{name}" for subject, name, _, _ in derived_facts(facts)}
