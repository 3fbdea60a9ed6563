"""Regions for robust HU statistics: eroded organ references, lesion cores, shells, FOV edges.

Rules (thresholds and sources in ``tumorcot.vocabulary.THRESHOLDS``):

- erosion / dilation by a box of ``radius_voxels(spacing)`` voxels per axis = ceil(2 mm /
  spacing), at least 1; done axis by axis (separable, cost linear in the crop);
- organ reference: the organ's label inside its own box, minus every lesion voxel, eroded; its
  median and IQR HU. Hollow organs and the gallbladder (``HOLLOW_ORGANS``) have none, nor has an
  organ with fewer than ``MIN_REGION_VOXELS`` voxels left;
- truncated: a box touching the first or last voxel plane of the volume on any axis (the object
  may continue outside the field of view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tumorcot.imaging.geometry import bbox_slices
from tumorcot.vocabulary import HOLLOW_ORGANS, threshold

EROSION_MM = threshold("erosion_mm")
MIN_REGION_VOXELS = int(threshold("min_region_voxels"))


@dataclass
class RobustHU:
    median: float
    iqr: float
    count: int

    @property
    def sigma(self) -> float:
        """Robust SD (IQR / 1.349, exact for a normal distribution)."""
        return self.iqr / 1.349


ROBUST_SAMPLE = 1 << 17
"""Quantiles of larger sets are taken on an evenly strided sample of about this many values
(deterministic; the sampling error of a median of 131k values is far below 1 HU)."""


def robust(values: np.ndarray) -> RobustHU | None:
    """Median and IQR of the values (None for none)."""
    if values.size == 0:
        return None
    sample = values.ravel()
    if sample.size > 2 * ROBUST_SAMPLE:
        sample = sample[:: sample.size // ROBUST_SAMPLE]
    q25, q50, q75 = np.percentile(sample.astype(np.float64), (25, 50, 75))
    return RobustHU(float(q50), float(q75 - q25), int(values.size))


def radius_voxels(spacing_ijk) -> tuple[int, int, int]:
    """Per numpy axis ``(k, j, i)``: voxels covering ``EROSION_MM`` (at least one)."""
    return tuple(max(1, math.ceil(EROSION_MM / float(s) - 1e-6)) for s in spacing_ijk[::-1])


def _box_filter(mask: np.ndarray, radius, combine) -> np.ndarray:
    """``combine`` (AND: erosion, OR: dilation) over a window of ``2 r + 1`` voxels per axis,
    outside the array False. Per axis: zero padding of ``r`` and a doubling of the window
    (each step combines two shifted views), so the cost is a few boolean passes per axis."""
    out = mask.astype(bool)  # a fresh boolean array, whatever the radius
    for axis, r in enumerate(radius):
        if r <= 0:
            continue
        n = out.shape[axis]
        shape = list(out.shape)
        shape[axis] = n + 2 * r
        windows = np.zeros(shape, dtype=bool)
        windows[_along(axis, r, r + n)] = out
        width, w = 2 * r + 1, 1  # windows[i] covers padded voxels i .. i + w - 1
        while w < width:
            step = min(w, width - w)
            size = windows.shape[axis]
            windows = combine(windows[_along(axis, 0, size - step)], windows[_along(axis, step, size)])
            w += step
        out = windows
    return out


def _along(axis: int, start: int, stop: int) -> tuple[slice, ...]:
    return (slice(None),) * axis + (slice(start, stop),)


def erode(mask: np.ndarray, radius) -> np.ndarray:
    """Box erosion (outside the array counts as background)."""
    return _box_filter(mask, radius, np.logical_and)


def dilate(mask: np.ndarray, radius) -> np.ndarray:
    """Box dilation."""
    return _box_filter(mask, radius, np.logical_or)


def touches_edge(vmin, vmax, size) -> bool:
    """True when an inclusive voxel box ``(i, j, k)`` reaches the volume's border."""
    return any(lo <= 0 or hi >= n - 1 for lo, hi, n in zip(vmin, vmax, size))


def organ_reference(name: str, label: int, vmin, vmax, ct_view: np.ndarray,
                    organ_view: np.ndarray, lesion_view: np.ndarray | None,
                    spacing) -> RobustHU | None:
    """Median/IQR HU of the organ minus its lesions, eroded; None where no reference exists."""
    if name in HOLLOW_ORGANS:
        return None
    region = bbox_slices(vmin, vmax)
    inside = organ_view[region] == label
    if lesion_view is not None:
        inside &= lesion_view[region] == 0
    core = erode(inside, radius_voxels(spacing))
    if np.count_nonzero(core) < MIN_REGION_VOXELS:
        return None
    return robust(ct_view[region][core])
