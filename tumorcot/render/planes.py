"""Axial, coronal and sagittal slices of a CT in display orientation.

Orientation. Volumes are first put in LPS canonical order ``[z, y, x]`` (``canonical_array``):
z runs inferior -> superior, y anterior -> posterior, x patient right -> left, whatever the
image's voxel order and direction matrix (each voxel axis is matched to the LPS axis its
direction cosine points along most, ``lps_axes``). Slices then follow the radiological display
convention:

- axial (index z): rows anterior (top) -> posterior, columns patient right (image left) -> left,
  i.e. seen from the feet;
- coronal (index y): rows superior (top) -> inferior, columns patient right (image left) -> left,
  i.e. seen from the front;
- sagittal (index x): rows superior (top) -> inferior, columns anterior (image left) -> posterior,
  i.e. seen from the patient's left.

Pixels are voxels: no resampling, so a pixel's value is exactly one voxel's (``pixel_spacing``
gives the millimetres of a row and a column step; ``png.square_pixels`` corrects the aspect).
A normalised box (``BOX_CONVENTION``: fractions of the field of view along LPS x, y, z, 0 at the
right / anterior / inferior side) maps to canonical index ranges by ``fraction_range``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import SimpleITK as sitk

from tumorcot.imaging.geometry import lps_axes

Plane = Literal["axial", "coronal", "sagittal"]
PLANES: tuple[Plane, ...] = ("axial", "coronal", "sagittal")
NORMAL_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}
"""Canonical ``[z, y, x]`` axis each plane's index runs along."""

EDGE_TOLERANCE = 0.25
"""Voxels by which a box edge may miss a voxel boundary and still snap to it (stored boxes are
rounded to four decimals)."""

_NUMPY_AXIS = {0: 2, 1: 1, 2: 0}   # SimpleITK voxel axis i, j, k -> numpy axis of GetArray


def _canonical_axes(image: sitk.Image) -> tuple[list[int], list[int]]:
    """(numpy axes giving z, y, x; canonical positions to flip)."""
    axes = lps_axes(image)                               # per LPS x, y, z: (voxel axis, sign)
    order = [_NUMPY_AXIS[axes[lps][0]] for lps in (2, 1, 0)]
    flips = [pos for pos, lps in enumerate((2, 1, 0)) if axes[lps][1] < 0]
    return order, flips


def canonical_array(image: sitk.Image) -> np.ndarray:
    """Voxels as ``[z, y, x]`` with each axis running inferior->superior, anterior->posterior,
    right->left (LPS canonical), whatever the image's voxel order and direction; a copy that
    outlives ``image``."""
    order, flips = _canonical_axes(image)
    view = sitk.GetArrayViewFromImage(image)         # valid only while ``image`` lives
    out = np.transpose(view, order)
    if flips:
        out = np.flip(out, axis=flips)
    return np.array(out, order="C")   # always a copy: a view would outlive the image's buffer


def canonical_index(image: sitk.Image, ijk: Sequence[int]) -> tuple[int, int, int]:
    """Where voxel ``(i, j, k)`` lands in ``canonical_array(image)``: ``(z, y, x)``."""
    size = image.GetSize()
    out = []
    for lps in (2, 1, 0):
        voxel_axis, sign = lps_axes(image)[lps]
        v = int(ijk[voxel_axis])
        out.append(v if sign > 0 else size[voxel_axis] - 1 - v)
    return tuple(out)


def canonical_spacing(image: sitk.Image) -> tuple[float, float, float]:
    """Voxel spacing in mm along canonical z, y, x."""
    spacing = image.GetSpacing()
    return tuple(float(spacing[lps_axes(image)[lps][0]]) for lps in (2, 1, 0))


def plane_slice(volume: np.ndarray, plane: Plane, index: int) -> np.ndarray:
    """Slice ``index`` of a canonical ``[z, y, x]`` volume, in display orientation (a view)."""
    if plane == "axial":
        return volume[index]
    if plane == "coronal":
        return volume[::-1, index, :]
    if plane == "sagittal":
        return volume[::-1, :, index]
    raise ValueError(f"plane is one of {', '.join(PLANES)}, got {plane!r}")


def display_pixel(shape: Sequence[int], plane: Plane, zyx: Sequence[int]) -> tuple[int, int]:
    """Row and column of canonical voxel ``zyx`` on its ``plane`` slice (``shape``: ``[z, y, x]``)."""
    z, y, x = (int(v) for v in zyx)
    if plane == "axial":
        return y, x
    if plane == "coronal":
        return shape[0] - 1 - z, x
    if plane == "sagittal":
        return shape[0] - 1 - z, y
    raise ValueError(f"plane is one of {', '.join(PLANES)}, got {plane!r}")


def pixel_spacing(spacing_zyx: Sequence[float], plane: Plane) -> tuple[float, float]:
    """Millimetres of one row step and one column step on a ``plane`` slice."""
    sz, sy, sx = spacing_zyx
    return {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}[plane]


def fraction_range(lo: float, hi: float, n: int) -> tuple[int, int]:
    """``[first, end)`` voxel indices covering the fractions ``lo..hi`` of ``n`` voxels (at least
    one voxel; edges within ``EDGE_TOLERANCE`` of a boundary snap to it, else widen outwards)."""
    lo, hi = min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0)
    first = min(max(math.floor(lo * n + EDGE_TOLERANCE), 0), n - 1)
    end = min(max(math.ceil(hi * n - EDGE_TOLERANCE), first + 1), n)
    return first, end


def box_ranges(shape: Sequence[int], roi_box: Sequence[float]) -> tuple[tuple[int, int], ...]:
    """``[first, end)`` along canonical z, y, x of a normalised box ``(x0, y0, z0, x1, y1, z1)``."""
    return tuple(fraction_range(roi_box[lps], roi_box[lps + 3], shape[axis])
                 for axis, lps in enumerate((2, 1, 0)))


def box_rect(shape: Sequence[int], roi_box: Sequence[float], plane: Plane) -> tuple[int, int, int, int]:
    """``(row0, col0, row1, col1)``, ends exclusive, of a normalised box on a ``plane`` slice."""
    (z0, z1), (y0, y1), (x0, x1) = box_ranges(shape, roi_box)
    nz = shape[0]
    if plane == "axial":
        return y0, x0, y1, x1
    if plane == "coronal":
        return nz - z1, x0, nz - z0, x1
    if plane == "sagittal":
        return nz - z1, y0, nz - z0, y1
    raise ValueError(f"plane is one of {', '.join(PLANES)}, got {plane!r}")


def box_center(shape: Sequence[int], roi_box: Sequence[float], plane: Plane) -> int:
    """The ``plane`` slice index through the middle of a normalised box."""
    first, end = box_ranges(shape, roi_box)[NORMAL_AXIS[plane]]
    return (first + end - 1) // 2
