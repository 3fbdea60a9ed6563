"""Regions for robust HU statistics: eroded organ references, lesion cores, shells, FOV edges.

Rules (thresholds and sources in ``tumorcot.vocabulary.THRESHOLDS``):

- erosion / dilation by a box of ``radius_voxels(spacing)`` voxels per axis = ceil(2 mm /
  spacing), at least 1; done as three 1-D min/max filters (separable, cost linear in the crop);
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
from scipy import ndimage

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


def _box_filter(mask: np.ndarray, radius, filter1d) -> np.ndarray:
    if mask.dtype != bool or not any(r > 0 for r in radius):
        mask = mask.astype(bool)  # a fresh 0/1 array
        if not any(r > 0 for r in radius):
            return mask
    out = mask.view(np.uint8)  # the boolean's 0/1 bytes, read in place
    for axis, r in enumerate(radius):
        if r > 0:
            out = filter1d(out, 2 * r + 1, axis=axis, mode="constant", cval=0)
    return out.view(bool)  # min/max of 0/1 bytes are 0/1: a valid boolean array


def erode(mask: np.ndarray, radius) -> np.ndarray:
    """Box erosion (outside the array counts as background)."""
    return _box_filter(mask, radius, ndimage.minimum_filter1d)


def dilate(mask: np.ndarray, radius) -> np.ndarray:
    """Box dilation."""
    return _box_filter(mask, radius, ndimage.maximum_filter1d)


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
