"""Voxel <-> LPS helpers and normalised boxes (``tumorcot.schemas.facts.BOX_CONVENTION``).

A voxel axis is matched to the LPS axis its direction cosine points along most (oblique grids
take the dominant axis). A box's normalised edges are the voxel *edges* (``i_min`` and
``i_max + 1``) divided by the axis size, flipped when the voxel axis runs against the LPS axis,
so x0 is always the patient-right edge, y0 the anterior and z0 the inferior edge.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from tumorcot.schemas.facts import Box


def lps_axes(image: sitk.Image) -> list[tuple[int, int]]:
    """For LPS axes x, y, z: ``(voxel axis, +1 | -1)`` of the voxel axis running along it."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    out = []
    for lps in range(3):
        voxel_axis = int(np.argmax(np.abs(direction[lps, :])))
        out.append((voxel_axis, 1 if direction[lps, voxel_axis] > 0 else -1))
    if len({axis for axis, _ in out}) != 3:
        raise ValueError("direction matrix does not map voxel axes one-to-one onto LPS axes")
    return out


def make_box(image: sitk.Image, voxel_min, voxel_max) -> Box:
    """Box from inclusive voxel ``(i, j, k)`` bounds on ``image``'s grid."""
    size = image.GetSize()
    lo_hi = []
    for voxel_axis, sign in lps_axes(image):
        n = size[voxel_axis]
        lo, hi = voxel_min[voxel_axis] / n, (voxel_max[voxel_axis] + 1) / n
        if sign < 0:
            lo, hi = 1.0 - hi, 1.0 - lo
        lo_hi.append((round(min(max(lo, 0.0), 1.0), 4), round(min(max(hi, 0.0), 1.0), 4)))
    normalized = tuple(v for v, _ in lo_hi) + tuple(v for _, v in lo_hi)
    return Box(
        voxel_min=tuple(int(v) for v in voxel_min),
        voxel_max=tuple(int(v) for v in voxel_max),
        normalized=normalized,
    )


def index_to_lps(image: sitk.Image, ijk) -> tuple[float, float, float]:
    """Continuous voxel index ``(i, j, k)`` -> LPS millimetres."""
    point = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in ijk])
    return (round(point[0], 2), round(point[1], 2), round(point[2], 2))


def bbox_slices(voxel_min, voxel_max) -> tuple[slice, slice, slice]:
    """Numpy ``[k, j, i]`` slices of an inclusive voxel box."""
    return tuple(slice(int(voxel_min[a]), int(voxel_max[a]) + 1) for a in (2, 1, 0))
