"""Per-label count, intensity mean/std, index centroid and index box in one run-length pass.

The label map is read slab by slab (a few slices, numpy ``[k, j, i]`` views, no copy of either
volume). Within a slab every row is cut into runs (maximal stretches of one label); the
intensities are summed per run (``np.add.reduceat``) and the runs are then folded into their
labels. Per voxel this is one comparison and two segmented sums, whatever the number of labels;
no per-label mask is built. Background (label 0) is skipped.

Sums are exact for integer intensities of at most 16 bits (int64 totals; per-slab float64
partials stay below 2**53), float64 otherwise. The standard deviation is the sample one
(ddof=1), as ITK's ``LabelStatisticsImageFilter``; 0.0 for a single voxel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLAB_VOXELS = 1 << 21
"""Voxels per slab: temporaries stay a few MiB, and a slab's float64 partial sums of squared
16-bit values (< 2**32 each) stay below 2**53, hence exact."""


@dataclass
class LabelStats:
    count: int
    mean: float
    std: float
    centroid_ijk: tuple[float, float, float]
    """Mean continuous voxel index (i, j, k)."""
    vmin: tuple[int, int, int]
    vmax: tuple[int, int, int]
    """Inclusive voxel index box (i, j, k)."""


def _exact_integers(values: np.ndarray) -> bool:
    return values.dtype.kind in "iub" and values.dtype.itemsize <= 2


class _Accumulator:
    """Per-label running totals, indexed by label value (labels must be 0..65535)."""

    def __init__(self, n_labels: int, exact: bool):
        self.exact = exact
        self.count = np.zeros(n_labels, np.int64)
        total = np.int64 if exact else np.float64
        self.sum = np.zeros(n_labels, total)
        self.sum_sq = np.zeros(n_labels, total)
        self.index_sum = np.zeros((3, n_labels), np.float64)
        big = np.iinfo(np.int64).max
        self.lo = np.full((3, n_labels), big, np.int64)
        self.hi = np.full((3, n_labels), -1, np.int64)

    def add_slab(self, labels: np.ndarray, values: np.ndarray, k0: int, j0: int) -> None:
        """Fold in a ``[k, j, i]`` block whose first voxel is (0, ``j0``, ``k0``)."""
        m, ny, nx = labels.shape
        rows = labels.reshape(m * ny, nx)
        starts_mask = np.empty(rows.shape, bool)
        starts_mask[:, 0] = True
        np.not_equal(rows[:, 1:], rows[:, :-1], out=starts_mask[:, 1:])
        starts = np.flatnonzero(starts_mask)
        del starts_mask
        flat_values = values.reshape(-1)
        if self.exact:
            run_sum = np.add.reduceat(flat_values, starts, dtype=np.int64)
            square = np.int64 if flat_values.dtype == np.uint16 else np.int32
            run_sum_sq = np.add.reduceat(
                np.multiply(flat_values, flat_values, dtype=square), starts, dtype=np.int64
            )
        else:
            as_float = flat_values.astype(np.float64)
            run_sum = np.add.reduceat(as_float, starts)
            as_float *= as_float
            run_sum_sq = np.add.reduceat(as_float, starts)
            del as_float
        run_label = rows.reshape(-1)[starts]
        run_len = np.diff(np.append(starts, rows.size))
        keep = run_label != 0
        if not keep.any():
            return
        starts, run_len = starts[keep], run_len[keep]
        label = run_label[keep].astype(np.intp)
        run_sum, run_sum_sq = run_sum[keep], run_sum_sq[keep]
        row, i0 = np.divmod(starts, nx)
        k, j = np.divmod(row, ny)
        k += k0
        j += j0
        n = self.count.size
        weights = run_len.astype(np.float64)
        self.count += np.rint(np.bincount(label, weights, minlength=n)).astype(np.int64)
        for total, part in ((self.sum, run_sum), (self.sum_sq, run_sum_sq)):
            slab_total = np.bincount(label, part.astype(np.float64), minlength=n)
            total += np.rint(slab_total).astype(np.int64) if self.exact else slab_total
        i_sum = run_len * i0 + run_len * (run_len - 1) // 2
        for axis, part in enumerate((i_sum, run_len * j, run_len * k)):
            self.index_sum[axis] += np.bincount(label, part.astype(np.float64), minlength=n)
        i1 = i0 + run_len - 1
        for axis, (low, high) in enumerate(((i0, i1), (j, j), (k, k))):
            np.minimum.at(self.lo[axis], label, low)
            np.maximum.at(self.hi[axis], label, high)

    def result(self) -> dict[int, LabelStats]:
        out = {}
        for label in np.flatnonzero(self.count):
            n = int(self.count[label])
            if self.exact:
                s, q = int(self.sum[label]), int(self.sum_sq[label])
                mean = s / n
                variance = (n * q - s * s) / (n * (n - 1)) if n > 1 else 0.0
            else:
                s, q = float(self.sum[label]), float(self.sum_sq[label])
                mean = s / n
                variance = max(q - s * s / n, 0.0) / (n - 1) if n > 1 else 0.0
            out[int(label)] = LabelStats(
                count=n,
                mean=mean,
                std=float(np.sqrt(variance)),
                centroid_ijk=tuple(float(self.index_sum[a, label]) / n for a in range(3)),
                vmin=tuple(int(self.lo[a, label]) for a in range(3)),
                vmax=tuple(int(self.hi[a, label]) for a in range(3)),
            )
        return out


def label_statistics(labels: np.ndarray, values: np.ndarray) -> dict[int, LabelStats]:
    """Statistics of every non-zero label of ``labels`` over ``values`` (same ``[k, j, i]``
    shape; labels an unsigned integer array of at most 16 bits)."""
    if labels.shape != values.shape or labels.ndim != 3:
        raise ValueError(f"label map {labels.shape} and image {values.shape} differ")
    if labels.dtype.kind != "u" or labels.dtype.itemsize > 2:
        raise TypeError(f"label map must be uint8 or uint16, not {labels.dtype}")
    acc = _Accumulator(1 << (8 * labels.dtype.itemsize), _exact_integers(values))
    nz, ny, nx = labels.shape
    rows = max(1, SLAB_VOXELS // nx)
    if rows >= ny:  # whole slices per slab
        step = rows // ny
        for k0 in range(0, nz, step):
            acc.add_slab(labels[k0 : k0 + step], values[k0 : k0 + step], k0, 0)
    else:  # very large slices: row blocks of one slice
        for k0 in range(nz):
            for j0 in range(0, ny, rows):
                block = (slice(k0, k0 + 1), slice(j0, j0 + rows))
                acc.add_slab(labels[block], values[block], k0, j0)
    return acc.result()
