"""ROI crops: a normalised canonical box (``BOX_CONVENTION``) -> a region of the CT's own grid.

A box edge is a fraction of the field of view along an LPS axis, 0 at the patient-right /
anterior / inferior side. Which voxel axis runs along that LPS axis, and in which direction,
comes from the image's direction matrix (``lps_axes``, the same helper that made the box), so
the crop is right for any voxel order or flipped axis. Edges map to voxel indices by inverting
``make_box`` (``lo = i_min / n``, ``hi = (i_max + 1) / n``, mirrored when the axis runs against
LPS) with ``tumorcot.render.planes.fraction_range``: the four-decimal rounding of stored boxes is
absorbed, any larger remainder widens the crop outwards so it never cuts into the region.

``canonical_array`` (from ``tumorcot.render.planes``) gives a volume's voxels as ``[z, y, x]``
in LPS canonical order (index 0 = inferior / anterior / right), the orientation of the boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import SimpleITK as sitk

from tumorcot.errors import GeometryError
from tumorcot.imaging.geometry import lps_axes
from tumorcot.render.planes import canonical_array, fraction_range

__all__ = ["box_to_index_range", "canonical_array", "crop_to_box"]


def _check_box(roi_box: Sequence[float]) -> tuple[float, ...]:
    box = tuple(float(v) for v in roi_box)
    if len(box) != 6 or not all(math.isfinite(v) for v in box):
        raise GeometryError(f"an ROI box is six finite numbers (x0, y0, z0, x1, y1, z1), got {roi_box!r}")
    if any(box[a] > box[a + 3] for a in range(3)):
        raise GeometryError(f"ROI box {box} has a lower edge above its upper edge")
    return box


def box_to_index_range(image: sitk.Image, roi_box: Sequence[float]) -> tuple[list[int], list[int]]:
    """(start index, size) per voxel axis ``(i, j, k)`` of the region ``roi_box`` covers."""
    box = _check_box(roi_box)
    dims = image.GetSize()
    start, size = [0, 0, 0], [0, 0, 0]
    for lps, (voxel_axis, sign) in enumerate(lps_axes(image)):
        lo, hi = box[lps], box[lps + 3]
        if sign < 0:
            lo, hi = 1.0 - hi, 1.0 - lo
        first, end = fraction_range(lo, hi, dims[voxel_axis])
        start[voxel_axis], size[voxel_axis] = first, end - first
    return start, size


def crop_to_box(image: sitk.Image, roi_box: Sequence[float]) -> sitk.Image:
    """The part of ``image`` inside ``roi_box``, on the same grid (origin moved, direction and
    spacing kept), so the crop stays where it was in physical space."""
    start, size = box_to_index_range(image, roi_box)
    return sitk.RegionOfInterest(image, size=size, index=start)
