"""Measurement v2: a lesion's sub-location, shape, margin, content and vessel contact.

Every rule works on the lesion's own crop (``comp``: boolean ``[k, j, i]`` array whose corner is
``vmin`` on the CT grid) and is deterministic:

- sub-location (``sub_location_method`` says which rule):
  * liver with a ``liver_segments`` mask (TotalSegmentator labels 1-8 = Couinaud I-VIII): the
    segment covering most lesion voxels ("liver_segments");
  * liver without it ("geometric-approximation"): position of the lesion centroid in the liver's
    box, u = right->left, v = anterior->posterior, w = inferior->superior (0-1): u > 0.75 left
    lateral (II if w >= 0.5 else III); 0.45 < u <= 0.65 with v > 0.75 caudate (I); u > 0.55
    medial left (IVa / IVb); otherwise right lobe, anterior (v < 0.5: VIII / V) or posterior
    (VII / VI), superior when w >= 0.5;
  * pancreas ("geometric-position"): u < 1/3 head, < 2/3 body, else tail (head on the right);
  * kidney ("geometric-position"): w > 2/3 upper pole, < 1/3 lower pole, else interpolar;
  * lung lobe host: the lobe ("segmentation").
- shape: ITK roundness (sphericity, 1.0 for a ball) and elongation (sqrt of the ratio of the two
  largest principal moments), rule and numbers in ``tumorcot.vocabulary`` (``attribute_rules``).
- margin: mean gradient magnitude (Gaussian derivative, sigma = the largest in-plane spacing) of
  the CT over the lesion's boundary voxels; >= ``WELL_DEFINED_HU_PER_MM`` is well-defined.
- content, first match: mean HU < -30 fatty; share of voxels > 130 HU >= 0.5 calcified;
  0 <= mean HU <= 20 and std <= 15 HU cystic; else solid.
- vessel contact: for each vessel in ``VESSELS`` present in the organ mask, per axial slice, the
  vessel's cross-sections that the lesion touches; contact = share of the vessel's one-voxel outer
  ring (8-connected dilation) covered by lesion voxels, times 360 degrees; the maximum over the
  lesion's slices (0.0 when the lesion never touches it).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from tumorcot.imaging.geometry import bbox_slices, lps_axes
from tumorcot.vocabulary import (COUINAUD_SEGMENTS, KIDNEYS, KIDNEY_POLES, LIVER_REGIONS, LUNG_LOBES, PANCREAS_PARTS,
                                 VESSELS, label_id, lung_lobe_name, threshold)
from tumorcot.schemas.facts import OrganFacts

WELL_DEFINED_HU_PER_MM = threshold("well_defined_hu_per_mm")
FATTY_HU, CALCIFIED_HU, CALCIFIED_SHARE = threshold("fatty_hu"), threshold("calcified_hu"), threshold("calcified_share")
CYSTIC_HU, CYSTIC_STD_HU = (threshold("cystic_hu_low"), threshold("cystic_hu_high")), threshold("cystic_std_hu")
VESSEL_LABELS = {label_id(name): name for name in VESSELS}   # total label id -> vessel name


def normalized_point(image: sitk.Image, ijk) -> tuple[float, float, float]:
    """Continuous voxel index -> LPS-normalised (0-1) position in the field of view."""
    size = image.GetSize()
    out = []
    for voxel_axis, sign in lps_axes(image):
        f = (ijk[voxel_axis] + 0.5) / size[voxel_axis]
        out.append(f if sign > 0 else 1.0 - f)
    return tuple(out)


def _within(box, point) -> tuple[float, float, float]:
    x0, y0, z0, x1, y1, z1 = box.normalized
    return tuple((p - lo) / max(hi - lo, 1e-9) for p, lo, hi in zip(point, (x0, y0, z0), (x1, y1, z1)))


def _liver_geometric(u: float, v: float, w: float) -> str:
    if u > 0.75:
        region = "lateral"
    elif 0.45 < u <= 0.65 and v > 0.75:
        region = "caudate"
    elif u > 0.55:
        region = "medial"
    else:
        region = "anterior" if v < 0.5 else "posterior"
    return LIVER_REGIONS[region, w >= 0.5]


def sub_location(host: OrganFacts | None, centroid_norm, segments_crop: np.ndarray | None,
                 comp: np.ndarray) -> tuple[str | None, str | None]:
    """``(sub_location, method)`` of a lesion in its host organ, or ``(None, None)``."""
    if host is None:
        return None, None
    if host.name in LUNG_LOBES:
        return lung_lobe_name(host.name), "segmentation"
    u, v, w = _within(host.bbox, centroid_norm)
    if host.name == "liver":
        if segments_crop is not None:
            counts = np.bincount(segments_crop[comp].ravel(), minlength=9)[1:9]
            if counts.any():
                return COUINAUD_SEGMENTS[int(np.argmax(counts))], "liver_segments"
        return _liver_geometric(u, v, w), "geometric-approximation"
    if host.name == "pancreas":
        return PANCREAS_PARTS[0 if u < 1 / 3 else 1 if u < 2 / 3 else 2], "geometric-position"
    if host.name in KIDNEYS:
        return KIDNEY_POLES[0 if w > 2 / 3 else 2 if w < 1 / 3 else 1], "geometric-position"
    return None, None


def shape_of(comp: np.ndarray, spacing_mm) -> tuple[str, float, float]:
    """``(shape, sphericity, elongation)``."""
    image = sitk.GetImageFromArray(comp.astype(np.uint8))
    image.SetSpacing(spacing_mm)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.ComputePerimeterOn()
    stats.Execute(image)
    sphericity, elongation = float(stats.GetRoundness(1)), float(stats.GetElongation(1))
    if not np.isfinite(elongation):
        elongation = 1.0
    t = threshold
    if sphericity >= t("round_sphericity"):
        shape = "round" if elongation <= t("round_elongation") else "oval"
    elif sphericity >= t("oval_sphericity"):
        shape = "oval" if elongation > t("oval_elongation") else "lobulated"
    else:
        shape = "lobulated" if sphericity >= t("lobulated_sphericity") else "irregular"
    return shape, round(sphericity, 3), round(elongation, 3)


def margin_of(ct: sitk.Image, comp: np.ndarray, vmin, vmax) -> tuple[str, float]:
    """``(margin, mean boundary gradient in HU/mm)`` from a 3-voxel-padded crop of the CT."""
    size = ct.GetSize()
    lo = [int(max(v - 3, 0)) for v in vmin]
    hi = [int(min(v + 3, n - 1)) for v, n in zip(vmax, size)]
    crop = sitk.RegionOfInterest(ct, [h - l + 1 for l, h in zip(lo, hi)], lo)
    sigma = max(ct.GetSpacing()[:2])
    gradient = sitk.GradientMagnitudeRecursiveGaussian(sitk.Cast(crop, sitk.sitkFloat32), sigma)
    grad = sitk.GetArrayViewFromImage(gradient)
    padded = np.zeros(grad.shape, dtype=bool)
    padded[tuple(slice(vmin[a] - lo[a], vmin[a] - lo[a] + comp.shape[2 - a]) for a in (2, 1, 0))] = comp
    boundary = padded & ~ndimage.binary_erosion(padded)
    value = float(grad[boundary].mean())
    return ("well-defined" if value >= WELL_DEFINED_HU_PER_MM else "ill-defined"), round(value, 2)


def content_of(hu: np.ndarray) -> str:
    mean, std = float(hu.mean()), float(hu.std())
    if mean < FATTY_HU:
        return "fatty"
    if float((hu > CALCIFIED_HU).mean()) >= CALCIFIED_SHARE:
        return "calcified"
    if CYSTIC_HU[0] <= mean <= CYSTIC_HU[1] and std <= CYSTIC_STD_HU:
        return "cystic"
    return "solid"


def vessel_contact(organ_view: np.ndarray, comp: np.ndarray, vmin, vmax,
                   present: set[int]) -> dict[str, float]:
    """Degrees of each present vessel's circumference the lesion touches (max over slices)."""
    out = {}
    nk, nj, ni = organ_view.shape
    lo = (max(vmin[0] - 1, 0), max(vmin[1] - 1, 0), vmin[2])
    hi = (min(vmax[0] + 1, ni - 1), min(vmax[1] + 1, nj - 1), vmax[2])
    near = organ_view[bbox_slices(lo, hi)]
    ring8 = np.ones((3, 3), dtype=bool)
    for label, name in VESSEL_LABELS.items():
        if label not in present:
            continue
        best = 0.0
        if np.any(near == label):
            for dk in range(comp.shape[0]):
                k = vmin[2] + dk
                if not comp[dk].any():
                    continue
                lesion2d = np.zeros((nj, ni), dtype=bool)
                lesion2d[vmin[1]:vmax[1] + 1, vmin[0]:vmax[0] + 1] = comp[dk]
                best = max(best, _slice_contact(organ_view[k] == label, lesion2d, ring8))
        out[name] = round(best, 1)
    return out


def _slice_contact(vessel: np.ndarray, lesion: np.ndarray, ring8: np.ndarray) -> float:
    touching = ndimage.binary_dilation(lesion, ring8) & vessel
    if not touching.any():
        return 0.0
    parts, _ = ndimage.label(vessel, ring8)
    best = 0.0
    for part in np.unique(parts[touching]):
        section = parts == part
        ring = ndimage.binary_dilation(section, ring8) & ~section
        best = max(best, 360.0 * float((ring & lesion).sum()) / float(ring.sum()))
    return best


def describe_lesion(
    ct: sitk.Image,
    comp: np.ndarray,
    vmin,
    vmax,
    hu: np.ndarray,
    centroid_ijk,
    host: OrganFacts | None,
    organ_view: np.ndarray | None,
    segments_view: np.ndarray | None,
    present_labels: set[int],
) -> dict:
    """The optional LesionFacts fields (measurement v2) of one lesion."""
    region = bbox_slices(vmin, vmax)
    segments_crop = segments_view[region] if segments_view is not None else None
    where, method = sub_location(host, normalized_point(ct, centroid_ijk), segments_crop, comp)
    shape, sphericity, elongation = shape_of(comp, ct.GetSpacing())
    margin, gradient = margin_of(ct, comp, vmin, vmax)
    contact = (
        vessel_contact(organ_view, comp, vmin, vmax, present_labels)
        if organ_view is not None else {}
    )
    return {
        "sub_location": where,
        "sub_location_method": method,
        "shape": shape,
        "sphericity": sphericity,
        "elongation": elongation,
        "margin": margin,
        "boundary_gradient_hu_per_mm": gradient,
        "content": content_of(hu),
        "vessel_contact_deg": contact,
    }
