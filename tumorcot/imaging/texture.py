"""A lesion's content (from its eroded core) and margin (edge sharpness against its surroundings).

Both work on a padded crop of the CT around the lesion (the larger of 2 x the erosion radius and
3 sigma, + 2 voxels per axis, clipped at the volume's border). Thresholds and sources:
``tumorcot.vocabulary.THRESHOLDS``.

Content, from the core (lesion eroded by ~2 mm; all lesion voxels when fewer than
``MIN_REGION_VOXELS`` remain), median / IQR HU, first match:
  median < ``FAT_HU`` -> fatty; share of voxels above the calcium cut-off (``CALCIUM_HU``, raised
  to the aortic median on an enhanced scan) >= ``CALCIFIED_SHARE`` -> calcified; median within
  ``FLUID_HU`` and IQR <= ``FLUID_MAX_IQR_HU`` -> cystic (fluid); else solid.

Margin:
  inside = the core; outside = the shell between one voxel and ``2 x radius`` voxels outside the
  lesion, its part inside the host organ when that holds at least ``MIN_REGION_VOXELS`` voxels
  (the lesion is compared with its organ), else all of it. noise = mean robust SD (IQR / 1.349)
  of inside and outside; contrast = |median inside - median outside|, both taken on the plateaus
  at least 3 sigma from the edge where the lesion and the region are large enough (a blurred edge
  does not lower the contrast it is normalised by). contrast <= ``MARGIN_MIN_CONTRAST_HU`` or
  contrast / noise < ``MARGIN_MIN_CNR`` -> "not assessable". Otherwise the gradient magnitude of the crop
  (Gaussian derivative, sigma = the largest voxel spacing) is taken as a root mean
  square over the edge band (the lesion's boundary voxels next to the outside region and that
  region's first layer next to the lesion), with the
  noise's share removed (E|edge + noise|^2 = |edge|^2 + E|noise|^2; ``_noise_floor``);
  sharpness = that x sqrt(2 pi) x sigma / contrast;
  >= ``WELL_DEFINED_SHARPNESS`` well-defined, else ill-defined.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from tumorcot.imaging.regions import MIN_REGION_VOXELS, dilate, erode, radius_voxels, robust
from tumorcot.vocabulary import threshold

t = threshold
FAT_HU, CALCIUM_HU, CALCIFIED_SHARE = t("fatty_hu"), t("calcified_hu"), t("calcified_share")
FLUID_HU, FLUID_MAX_IQR_HU = (t("fluid_hu_low"), t("fluid_hu_high")), t("fluid_max_iqr_hu")
MARGIN_MIN_CONTRAST_HU, MARGIN_MIN_CNR = t("isodense_hu"), t("margin_min_cnr")
NOISE_DISTANCE_SIGMAS, WELL_DEFINED_SHARPNESS = t("noise_distance_sigmas"), t("well_defined_sharpness")


MARGIN_SLICES = 12
"""Margins of taller lesions are measured on this many central slices (around the largest axial
section): the cost of the margin follows the lesion's cross-section, not its height."""

CHI2_3_MEDIAN_OVER_MEAN = 0.7887
"""Median / mean of a chi-square distribution with 3 degrees of freedom (2.366 / 3)."""


class LesionCrop:
    """The CT, organ labels and lesion mask on a padded box around one lesion."""

    def __init__(self, ct: sitk.Image, ct_view, organ_view, comp: np.ndarray, vmin, vmax):
        spacing = ct.GetSpacing()
        self.radius = radius_voxels(spacing)
        self.sigma_mm = max(spacing)
        # voxels per numpy axis beyond which the smoothed edge has faded (3 sigma)
        self.far = tuple(math.ceil(NOISE_DISTANCE_SIGMAS * self.sigma_mm / s) for s in spacing[::-1])
        size = ct.GetSize()
        pad = [max(2 * self.radius[2 - a], self.far[2 - a]) + 2 for a in range(3)]  # per (i, j, k)
        self.lo = [max(vmin[a] - pad[a], 0) for a in range(3)]
        self.hi = [min(vmax[a] + pad[a], size[a] - 1) for a in range(3)]
        box = tuple(slice(self.lo[a], self.hi[a] + 1) for a in (2, 1, 0))
        self.ct_image = ct
        self.hu = ct_view[box]
        self.organs = organ_view[box] if organ_view is not None else None
        self.lesion = np.zeros(self.hu.shape, dtype=bool)
        self.lesion[tuple(slice(vmin[a] - self.lo[a], vmin[a] - self.lo[a] + comp.shape[2 - a])
                          for a in (2, 1, 0))] = comp
        core = erode(self.lesion, self.radius)
        self.eroded = np.count_nonzero(core) >= MIN_REGION_VOXELS
        self.core = core if self.eroded else self.lesion
        self.core_hu = self.hu[self.core].astype(np.float64)


def content_of(core_hu: np.ndarray, calcium_hu: float | None = None) -> dict:
    """Content and the core statistics behind it, from the core's HU values (``calcium_hu``:
    the calcium cut-off, ``CALCIUM_HU`` by default)."""
    calcium_hu = CALCIUM_HU if calcium_hu is None else calcium_hu
    core_hu = np.asarray(core_hu, dtype=np.float64)
    stats = robust(core_hu)
    calcified = float(np.mean(core_hu > calcium_hu))
    if stats.median < FAT_HU:
        content = "fatty"
    elif calcified >= CALCIFIED_SHARE:
        content = "calcified"
    elif FLUID_HU[0] <= stats.median <= FLUID_HU[1] and stats.iqr <= FLUID_MAX_IQR_HU:
        content = "cystic"
    else:
        content = "solid"
    return {"content": content, "core_median_hu": round(stats.median, 2),
            "core_iqr_hu": round(stats.iqr, 2), "calcified_fraction": round(calcified, 4)}


class MarginView:
    """The arrays margin rules look at: the crop itself, or for a lesion taller than
    ``MARGIN_SLICES`` slices a slab of that many central slices (around its largest axial
    section) plus the padding its morphology needs; ``evaluate`` marks the slices statistics use."""

    def __init__(self, crop: LesionCrop):
        self.crop = crop
        k_lesion = np.flatnonzero(crop.lesion.any(axis=(1, 2)))
        k0, k1 = int(k_lesion[0]), int(k_lesion[-1])
        if k1 - k0 + 1 > MARGIN_SLICES:
            widest = k0 + int(np.argmax(crop.lesion[k0:k1 + 1].sum(axis=(1, 2))))
            k0 = min(max(widest - MARGIN_SLICES // 2, k0), k1 + 1 - MARGIN_SLICES)
            k1 = k0 + MARGIN_SLICES - 1
            pad = max(2 * crop.radius[0], crop.far[0]) + 2
            lo, hi = max(k0 - pad, 0), min(k1 + pad, crop.lesion.shape[0] - 1)
        else:
            lo, hi = 0, crop.lesion.shape[0] - 1
        rows = slice(lo, hi + 1)
        self.hu, self.lesion = crop.hu[rows], crop.lesion[rows]
        self.organs = crop.organs[rows] if crop.organs is not None else None
        self.evaluate = np.zeros(self.lesion.shape, dtype=bool)
        self.evaluate[k0 - lo:k1 - lo + 1] = True
        self.far_dilated = dilate(self.lesion, crop.far)
        self.far_eroded = erode(self.lesion, crop.far)
        self.near = dilate(self.lesion, (1, 1, 1))


def _surroundings(view: MarginView, host_label: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(outside shell, region)``: the shell voxels used as the outside, and the region they come
    from (the host organ, or everything but the lesion)."""
    shell = dilate(view.lesion, tuple(2 * r for r in view.crop.radius)) & ~view.near & view.evaluate
    if host_label is not None and view.organs is not None:
        host = view.organs == host_label
        host &= ~view.lesion
        if np.count_nonzero(shell & host) >= MIN_REGION_VOXELS:
            return shell & host, host
    return shell, ~view.lesion


def _gradient_square(hu: np.ndarray, spacing_kji, sigma_mm: float) -> np.ndarray:
    """Squared gradient magnitude (HU/mm)^2 of a Gaussian (sigma in mm) smoothed ``[k, j, i]``
    array; derivatives in voxel units divided by the spacing. Seven 1-D passes: the smoothing
    along k is shared by the j and i derivatives."""
    sigmas = [sigma_mm / float(s) for s in spacing_kji]

    def g(a, axis, order=0):
        return ndimage.gaussian_filter1d(a, sigmas[axis], axis=axis, order=order, mode="nearest")

    smooth_k = g(hu, 0)
    d_i = g(g(smooth_k, 1), 2, 1) / float(spacing_kji[2])
    total = np.square(d_i)
    d_j = g(g(smooth_k, 2), 1, 1) / float(spacing_kji[1])
    total += np.square(d_j)
    d_k = g(g(g(hu, 2), 1), 0, 1) / float(spacing_kji[0])
    total += np.square(d_k)
    return total


@lru_cache(maxsize=32)
def _white_noise_gain(spacing_kji: tuple[float, float, float], sigma_mm: float) -> float:
    """E|gradient|^2 per unit noise variance for white noise: the squared gradient of the
    filter's impulse response, summed."""
    half = [int(math.ceil(4 * sigma_mm / s)) + 1 for s in spacing_kji]
    impulse = np.zeros([2 * h + 1 for h in half], dtype=np.float64)
    impulse[tuple(half)] = 1.0
    return float(_gradient_square(impulse, spacing_kji, sigma_mm).sum())


def _noise_floor(view: MarginView, square: np.ndarray, region: np.ndarray, noise_sd: float) -> float:
    """Mean squared gradient that noise alone produces: the smaller of (a) the white-noise value
    for the measured noise SD (an upper bound: CT noise is spatially correlated) and (b) the
    median squared gradient at least 3 sigma from the lesion's edge, outside in the region and
    deep in the lesion, / ``CHI2_3_MEDIAN_OVER_MEAN`` (an upper bound where other edges are near)."""
    crop = view.crop
    spacing = tuple(float(s) for s in crop.ct_image.GetSpacing()[::-1])
    floors = [noise_sd**2 * _white_noise_gain(spacing, crop.sigma_mm)]
    far = ((region & ~view.far_dilated) | view.far_eroded) & view.evaluate
    if np.count_nonzero(far) >= MIN_REGION_VOXELS:
        floors.append(robust(square[far]).median / CHI2_3_MEDIAN_OVER_MEAN)
    return min(floors)


def margin_of(crop: LesionCrop, host_label: int | None) -> dict:
    view = MarginView(crop)
    core = erode(view.lesion, crop.radius) & view.evaluate
    if np.count_nonzero(core) < MIN_REGION_VOXELS:
        core = view.lesion & view.evaluate
    inside = robust(view.hu[core])
    outside_mask, region = _surroundings(view, host_label)
    outside = robust(view.hu[outside_mask])
    if outside is None:
        return {"margin": "not assessable", "edge_contrast_hu": None, "edge_sharpness": None,
                "boundary_gradient_hu_per_mm": None}
    noise = max((inside.sigma + outside.sigma) / 2.0, 1e-6)
    # the plateaus on either side of the edge: >= 3 sigma away where the lesion / region allow
    deep_in = view.far_eroded & view.evaluate
    far_out = region & ~view.far_dilated & view.evaluate
    if np.count_nonzero(deep_in) >= MIN_REGION_VOXELS:
        inside = robust(view.hu[deep_in])
    if np.count_nonzero(far_out) >= MIN_REGION_VOXELS:
        outside = robust(view.hu[far_out])
    contrast = abs(inside.median - outside.median)
    result = {"edge_contrast_hu": round(contrast, 2)}
    sigma = crop.sigma_mm
    square = _gradient_square(view.hu.astype(np.float32), crop.ct_image.GetSpacing()[::-1], sigma)
    band = (view.lesion & ~erode(view.lesion, (1, 1, 1)) & dilate(region, (1, 1, 1))
            | view.near & region) & view.evaluate  # the edge between the lesion and the region
    floor = _noise_floor(view, square, region, noise)
    edge = math.sqrt(max(float(square[band].mean()) - floor, 0.0))
    result["boundary_gradient_hu_per_mm"] = round(edge, 2)
    if contrast <= MARGIN_MIN_CONTRAST_HU or contrast / noise < MARGIN_MIN_CNR:
        return {**result, "margin": "not assessable", "edge_sharpness": None}
    sharpness = edge * math.sqrt(2.0 * math.pi) * sigma / contrast
    margin = "well-defined" if sharpness >= WELL_DEFINED_SHARPNESS else "ill-defined"
    return {**result, "margin": margin, "edge_sharpness": round(sharpness, 3)}
