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
from tumorcot.imaging.thresholds import CALCIUM_HU
from tumorcot.imaging.vessels import vessel_contact
from tumorcot.labels import LUNG_LOBES
from tumorcot.schemas.facts import OrganFacts

ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII"]


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
    upper = w >= 0.5
    if u > 0.75:
        return "left lobe, lateral segment " + ("II" if upper else "III")
    if 0.45 < u <= 0.65 and v > 0.75:
        return "caudate lobe, segment I"
    if u > 0.55:
        return "left lobe, medial segment " + ("IVa" if upper else "IVb")
    if v < 0.5:
        return "right lobe, anterior segment " + ("VIII" if upper else "V")
    return "right lobe, posterior segment " + ("VII" if upper else "VI")


def sub_location(host: OrganFacts | None, centroid_norm, segments_crop: np.ndarray | None,
                 comp: np.ndarray) -> tuple[str | None, str | None]:
    """``(sub_location, method)`` of a lesion in its host organ, or ``(None, None)``."""
    if host is None:
        return None, None
    if host.name in LUNG_LOBES:
        side, lobe = host.name.split("_")[3], host.name.split("_")[1]
        return f"{side} {lobe} lobe", "segmentation"
    u, v, w = _within(host.bbox, centroid_norm)
    if host.name == "liver":
        if segments_crop is not None:
            counts = np.bincount(segments_crop[comp].ravel(), minlength=9)[1:9]
            if counts.any():
                return f"segment {ROMAN[int(np.argmax(counts))]}", "liver_segments"
        return _liver_geometric(u, v, w), "geometric-approximation"
    if host.name == "pancreas":
        return ("head" if u < 1 / 3 else "body" if u < 2 / 3 else "tail"), "geometric-position"
    if host.name.startswith("kidney_") and host.label_id in (2, 3):
        pole = "upper pole" if w > 2 / 3 else "lower pole" if w < 1 / 3 else "interpolar"
        return pole, "geometric-position"
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
    calcium_hu: float = CALCIUM_HU,
) -> dict:
    """The descriptive LesionFacts fields of one lesion (sub-location, shape, content, margin,
    vessel contact and the statistics behind them)."""
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
