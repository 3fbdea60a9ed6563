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
- shape: ``tumorcot.imaging.shape`` (IBSI sphericity, axis ratio, lobulation index);
- content and margin: ``tumorcot.imaging.texture`` (eroded core, edge sharpness normalised by
  contrast and noise);
- vessel contact: ``tumorcot.imaging.vessels`` (in a crop around the lesion).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from tumorcot.imaging.geometry import bbox_slices, lps_axes
from tumorcot.imaging.shape import shape_of
from tumorcot.imaging.texture import LesionCrop, content_of, margin_of
from tumorcot.imaging.vessels import VESSEL_LABELS, vessel_contact  # noqa: F401 (VESSEL_LABELS re-exported)
from tumorcot.vocabulary import (COUINAUD_SEGMENTS, KIDNEYS, KIDNEY_POLES, LIVER_REGIONS, LUNG_LOBES, PANCREAS_PARTS,
                                 lung_lobe_name)
from tumorcot.schemas.facts import OrganFacts


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


def describe_lesion(
    ct: sitk.Image,
    ct_view: np.ndarray,
    comp: np.ndarray,
    vmin,
    vmax,
    centroid_ijk,
    host: OrganFacts | None,
    organ_view: np.ndarray | None,
    segments_view: np.ndarray | None,
    present_labels: set[int],
    calcium_hu: float | None = None,
) -> dict:
    """The descriptive LesionFacts fields of one lesion (sub-location, shape, content, margin,
    vessel contact and the statistics behind them); ``calcium_hu`` defaults to the
    non-contrast calcium cut-off."""
    region = bbox_slices(vmin, vmax)
    segments_crop = segments_view[region] if segments_view is not None else None
    where, method = sub_location(host, normalized_point(ct, centroid_ijk), segments_crop, comp)
    crop = LesionCrop(ct, ct_view, organ_view, comp, vmin, vmax)
    contact = (
        vessel_contact(organ_view, comp, vmin, vmax, present_labels, ct.GetSpacing())
        if organ_view is not None else {}
    )
    return {
        "sub_location": where,
        "sub_location_method": method,
        **shape_of(comp, ct.GetSpacing()),
        **content_of(crop.core_hu, calcium_hu),
        **margin_of(crop, host.label_id if host is not None else None),
        "vessel_contact_deg": contact,
    }
