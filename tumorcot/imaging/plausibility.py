"""Plausibility gates: refuse volumes that decode but cannot be a real CT with real masks.

A truncated file that an image library zero-fills, a spacing of 0 or 100 mm, an MR or a label map
given as CT, an organ mask shifted off its organ, a lesion mask over the whole volume: each decodes
without error and would be measured as if real. These gates catch them and raise
``ImplausibleInputError`` naming the case, the check and the measured value.

The bounds are input-validation limits, deliberately several times wider than normal adult
anatomy, not clinical thresholds (no record states them):

| check | rule |
|---|---|
| ``spacing`` | every voxel spacing within ``SPACING_MM`` |
| ``ct_intensity`` | at least ``MIN_AIR_SHARE`` of voxels <= ``AIR_HU`` (air around or inside the body: CT in HU has it, an MR or a label map has none) and at least ``MIN_SOFT_TISSUE_SHARE`` within ``SOFT_TISSUE_HU`` |
| ``organ_hu`` | an organ's mean HU within ``ORGAN_HU`` of its family (solid organs, large vessels); hollow organs (gas), bone (cortex) and lung lobes (a lobe cut by the field of view at the diaphragm is mostly partial volume: -28 HU in the TotalSegmentator example) are not gated |
| ``organ_volume`` | an organ's volume at most ``ORGAN_MAX_ML`` of its family (``DEFAULT_MAX_ML`` otherwise) |
| ``lesion_extent`` | a lesion at most ``MAX_LESION_FOV_SHARE`` of the field of view and no larger than the body (voxels > ``AIR_HU``) |

``TUMORCOT_SKIP_CHECKS=ct_intensity,organ_hu`` (comma-separated check names) turns gates off,
e.g. for a tight crop of a CT that holds no air.
"""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from tumorcot.errors import ImplausibleInputError
from tumorcot.vocabulary import organ_family

SKIP_ENV = "TUMORCOT_SKIP_CHECKS"
CHECKS = ("spacing", "ct_intensity", "organ_hu", "organ_volume", "lesion_extent")

SPACING_MM = (0.1, 20.0)
AIR_HU = -500.0
MIN_AIR_SHARE = 0.001
SOFT_TISSUE_HU = (-200.0, 300.0)
MIN_SOFT_TISSUE_SHARE = 0.01
SOLID = (-150.0, 400.0)   # unenhanced fatty liver ~ -50 .. excreting kidney ~ 300 HU
ORGAN_HU = {
    "liver": SOLID, "spleen": SOLID, "kidney": SOLID, "pancreas": SOLID, "adrenal_gland": SOLID,
    "aorta": (-50.0, 800.0), "inferior_vena_cava": (-50.0, 800.0), "portal_vein_and_splenic_vein": (-50.0, 800.0),
}
ORGAN_MAX_ML = {"liver": 8000.0, "spleen": 5000.0, "kidney": 2000.0, "pancreas": 800.0, "adrenal_gland": 500.0,
                "gallbladder": 1000.0, "lung": 6000.0}
DEFAULT_MAX_ML = 20000.0
MAX_LESION_FOV_SHARE = 0.5


def skipped() -> set[str]:
    names = {n.strip() for n in os.environ.get(SKIP_ENV, "").split(",") if n.strip()}
    unknown = names - set(CHECKS)
    if unknown:
        raise ImplausibleInputError(f"{SKIP_ENV} names unknown check(s) {sorted(unknown)}; known: {list(CHECKS)}")
    return names


def _fail(check: str, message: str, case: str):
    raise ImplausibleInputError(f"implausible input ({check}): {message}; set {SKIP_ENV}={check} "
                                "if the input is right", case=case)


def check_spacing(spacing_mm, *, case: str, what: str = "CT") -> None:
    low, high = SPACING_MM
    if "spacing" not in skipped() and not all(low <= s <= high for s in spacing_mm):
        _fail("spacing", f"{what} voxel spacing {tuple(round(s, 4) for s in spacing_mm)} mm is outside "
                         f"{low}-{high} mm", case)


def check_ct_intensity(ct: sitk.Image, *, case: str) -> None:
    """Air and soft tissue present, in HU (sampled every few voxels: a distribution check)."""
    if "ct_intensity" in skipped():
        return
    view = sitk.GetArrayViewFromImage(ct)
    sample = view.ravel()[:: max(1, view.size // 2_000_000)]
    air = float(np.mean(sample <= AIR_HU))
    tissue = float(np.mean((sample >= SOFT_TISSUE_HU[0]) & (sample <= SOFT_TISSUE_HU[1])))
    if air < MIN_AIR_SHARE:
        _fail("ct_intensity", f"only {air:.2%} of voxels are at or below {AIR_HU:g} HU (no air; range "
                              f"{float(sample.min()):g}..{float(sample.max()):g}): not a CT in Hounsfield units "
                              "(MR, a label map, or missing rescale)", case)
    if tissue < MIN_SOFT_TISSUE_SHARE:
        _fail("ct_intensity", f"only {tissue:.2%} of voxels are soft tissue ({SOFT_TISSUE_HU[0]:g}.."
                              f"{SOFT_TISSUE_HU[1]:g} HU): not a CT in Hounsfield units", case)


def check_organs(organs, *, case: str) -> None:
    """Mean HU and volume of every measured organ within its family's bounds."""
    skip = skipped()
    for organ in organs:
        family = organ_family(organ.name)
        bounds = ORGAN_HU.get(family) or ORGAN_HU.get(organ.name)
        if "organ_hu" not in skip and bounds and not bounds[0] <= organ.mean_hu <= bounds[1]:
            _fail("organ_hu", f"{organ.name} mean {organ.mean_hu:.0f} HU is outside {bounds[0]:g}..{bounds[1]:g} HU "
                              "(organ mask shifted, flipped or from another scan?)", case)
        limit = ORGAN_MAX_ML.get(family, DEFAULT_MAX_ML)
        if "organ_volume" not in skip and organ.volume_ml > limit:
            _fail("organ_volume", f"{organ.name} volume {organ.volume_ml:,.0f} mL exceeds {limit:,.0f} mL "
                                  "(wrong spacing or mask?)", case)


def check_lesions(lesions, ct: sitk.Image, *, case: str) -> None:
    """No lesion over most of the field of view or larger than the body."""
    if "lesion_extent" in skipped() or not lesions:
        return
    view = sitk.GetArrayViewFromImage(ct)
    total = view.size
    body = int(np.count_nonzero(view > AIR_HU))
    for lesion in lesions:
        if lesion.voxel_count > MAX_LESION_FOV_SHARE * total or lesion.voxel_count > body:
            _fail("lesion_extent", f"lesion {lesion.id} covers {lesion.voxel_count / total:.0%} of the field of "
                                   f"view ({lesion.voxel_count:,} voxels; body {body:,}): not a lesion mask", case)
