"""Contrast phase of a case from measured HU of the aorta, portal vein, kidneys and bladder.

Evidence (``CaseFacts.phase_evidence``, HU, rounded to 0.1): ``aorta``, ``portal_vein`` (the
TotalSegmentator label ``portal_vein_and_splenic_vein``), ``kidney_cortex`` and
``kidney_medulla`` (both kidneys pooled: cortex = the voxels a ``KIDNEY_CORTEX_MM`` box erosion
removes, i.e. within about that distance of the surface; medulla = what a ``KIDNEY_MEDULLA_MM``
box erosion keeps), ``urinary_bladder``; each the median of
the structure eroded as an organ reference (``tumorcot.imaging.regions``), lesion voxels
excluded; a structure absent from the organ mask (or too small) gives no entry.

Rule, first match (thresholds and sources in ``tumorcot.vocabulary.THRESHOLDS``):

1. no aorta and no portal vein measured -> ``indeterminate``;
2. every measured blood pool <= ``UNENHANCED_BLOOD_MAX_HU`` -> ``non_contrast``;
3. bladder > ``EXCRETED_CONTRAST_HU`` -> ``delayed`` (excreted contrast);
4. aorta and portal vein both measured:
   aorta enhancement >= ``ARTERIAL_AORTA_PORTAL_RATIO`` x portal enhancement (enhancement = HU -
   ``BLOOD_BASELINE_HU``) -> ``arterial``; else aorta <= ``DELAYED_AORTA_MAX_HU`` and
   |aorta - portal| <= ``DELAYED_AORTA_PORTAL_HU`` -> ``delayed``; else portal enhancement >=
   ``PORTAL_MIN_ENHANCEMENT_HU`` -> ``portal_venous``;
5. only one of them measured: aorta enhanced with corticomedullary differentiation (cortex -
   medulla >= ``CORTICOMEDULLARY_HU``) -> ``arterial``; otherwise ``indeterminate`` (contrast
   present, phase not decidable from one vessel);
6. anything else -> ``indeterminate``.
"""

from __future__ import annotations

import math

import numpy as np

from tumorcot.imaging.geometry import bbox_slices
from tumorcot.imaging.regions import MIN_REGION_VOXELS, erode, organ_reference, robust
from tumorcot.schemas.facts import OrganFacts
from tumorcot.vocabulary import KIDNEYS, threshold

t = threshold
UNENHANCED_BLOOD_MAX_HU, BLOOD_BASELINE_HU = t("unenhanced_blood_max_hu"), t("blood_baseline_hu")
ARTERIAL_AORTA_PORTAL_RATIO, PORTAL_MIN_ENHANCEMENT_HU = t("arterial_aorta_portal_ratio"), t("portal_min_enhancement_hu")
DELAYED_AORTA_MAX_HU, DELAYED_AORTA_PORTAL_HU = t("delayed_aorta_max_hu"), t("delayed_aorta_portal_hu")
EXCRETED_CONTRAST_HU, CORTICOMEDULLARY_HU = t("excreted_contrast_hu"), t("corticomedullary_hu")
KIDNEY_CORTEX_MM, KIDNEY_MEDULLA_MM = t("kidney_cortex_mm"), t("kidney_medulla_mm")
CALCIUM_HU = t("calcified_hu")

BLOOD_POOLS = {"aorta": "aorta", "portal_vein": "portal_vein_and_splenic_vein"}


def _box(mm: float, spacing) -> tuple[int, int, int]:
    """Per numpy axis ``(k, j, i)``: voxels covering ``mm`` (at least one)."""
    return tuple(max(1, math.ceil(mm / float(s) - 1e-6)) for s in spacing[::-1])


def _kidney_layers(kidneys: list[OrganFacts], ct_view, organ_view, lesion_view, spacing):
    cortex, medulla = [], []
    for kidney in kidneys:
        region = bbox_slices(kidney.bbox.voxel_min, kidney.bbox.voxel_max)
        inside = organ_view[region] == kidney.label_id
        if lesion_view is not None:
            inside &= lesion_view[region] == 0
        hu = ct_view[region]
        cortex.append(hu[inside & ~erode(inside, _box(KIDNEY_CORTEX_MM, spacing))])
        medulla.append(hu[erode(inside, _box(KIDNEY_MEDULLA_MM, spacing))])
    out = {}
    for name, parts in (("kidney_cortex", cortex), ("kidney_medulla", medulla)):
        values = np.concatenate(parts) if parts else np.empty(0)
        if values.size >= MIN_REGION_VOXELS:
            out[name] = round(robust(values).median, 1)
    return out


def phase_evidence(ct_view: np.ndarray, organ_view: np.ndarray, lesion_view: np.ndarray | None,
                   organs: list[OrganFacts], spacing) -> dict[str, float]:
    """Median HU of the phase structures present (see module docstring); sets their organs'
    ``reference_hu`` where it was not set."""
    by_name = {o.name: o for o in organs}
    evidence: dict[str, float] = {}
    for key, name in (*BLOOD_POOLS.items(), ("urinary_bladder", "urinary_bladder")):
        organ = by_name.get(name)
        if organ is None:
            continue
        if key == "urinary_bladder":  # hollow: no organ reference, but its content tells excretion
            box = bbox_slices(organ.bbox.voxel_min, organ.bbox.voxel_max)
            values = ct_view[box][organ_view[box] == organ.label_id]
            if values.size >= MIN_REGION_VOXELS:
                evidence[key] = round(robust(values).median, 1)
            continue
        ref = organ_reference(name, organ.label_id, organ.bbox.voxel_min, organ.bbox.voxel_max,
                              ct_view, organ_view, lesion_view, spacing)
        if ref is not None:
            evidence[key] = round(ref.median, 1)
            organ.reference_hu, organ.reference_iqr_hu = round(ref.median, 2), round(ref.iqr, 2)
    kidneys = [by_name[k] for k in KIDNEYS if k in by_name]
    if kidneys:
        evidence.update(_kidney_layers(kidneys, ct_view, organ_view, lesion_view, spacing))
    return evidence


def classify_phase(evidence: dict[str, float]) -> str:
    """The phase from the evidence (rule in the module docstring)."""
    aorta, portal = evidence.get("aorta"), evidence.get("portal_vein")
    if aorta is None and portal is None:
        return "indeterminate"
    pools = [v for v in (aorta, portal) if v is not None]
    if all(v <= UNENHANCED_BLOOD_MAX_HU for v in pools):
        return "non_contrast"
    if evidence.get("urinary_bladder", -1000.0) > EXCRETED_CONTRAST_HU:
        return "delayed"
    if aorta is not None and portal is not None:
        aorta_gain, portal_gain = aorta - BLOOD_BASELINE_HU, portal - BLOOD_BASELINE_HU
        if aorta_gain >= ARTERIAL_AORTA_PORTAL_RATIO * max(portal_gain, 0.0):
            return "arterial"
        if aorta <= DELAYED_AORTA_MAX_HU and abs(aorta - portal) <= DELAYED_AORTA_PORTAL_HU:
            return "delayed"
        if portal_gain >= PORTAL_MIN_ENHANCEMENT_HU:
            return "portal_venous"
        return "indeterminate"
    cortex, medulla = evidence.get("kidney_cortex"), evidence.get("kidney_medulla")
    if (aorta is not None and aorta > UNENHANCED_BLOOD_MAX_HU and cortex is not None
            and medulla is not None and cortex - medulla >= CORTICOMEDULLARY_HU):
        return "arterial"
    return "indeterminate"


def estimate_phase(ct_view: np.ndarray, organ_view: np.ndarray | None,
                   lesion_view: np.ndarray | None, organs: list[OrganFacts],
                   spacing) -> tuple[str, dict[str, float]]:
    """``(contrast_phase, phase_evidence)``; without an organ mask ``("indeterminate", {})``."""
    if organ_view is None:
        return "indeterminate", {}
    evidence = phase_evidence(ct_view, organ_view, lesion_view, organs, spacing)
    return classify_phase(evidence), evidence


def calcium_cutoff(phase: str, evidence: dict[str, float]) -> float:
    """``CALCIUM_HU``, raised to the aortic median when the scan is contrast-enhanced (enhancing
    tissue does not exceed the blood pool)."""
    if phase in ("non_contrast", "indeterminate") and evidence.get("aorta", 0.0) <= UNENHANCED_BLOOD_MAX_HU:
        return CALCIUM_HU
    return max(CALCIUM_HU, evidence.get("aorta", CALCIUM_HU))
