"""Vessel contact of a lesion, in degrees of the vessel's circumference, computed in a crop.

Rule: for each vessel in ``VESSELS`` present in the organ mask, per axial slice, the vessel's
cross-sections (8-connected 2-D components) that the lesion touches (8-neighbourhood); contact =
share of the section's one-voxel outer ring covered by lesion voxels, times 360 degrees; the
maximum over the lesion's slices (0.0 when the lesion never touches the vessel).

Cost follows the lesion, not the slice: the work happens in the lesion's box grown in-plane by
``VESSEL_MARGIN_MM`` (enough to hold a whole cross-section of any vessel in ``VESSELS`` beside the
lesion). A touched cross-section that reaches the edge of that crop is measured again in the
whole slice, so the result equals the whole-slice computation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from tumorcot.vocabulary import VESSELS, label_id

VESSEL_LABELS = {label_id(name): name for name in VESSELS}   # total label id -> vessel name
VESSEL_MARGIN_MM = 40.0
RING8 = np.ones((3, 3), dtype=bool)
IN_SLICE = np.zeros((3, 3, 3), dtype=bool)
IN_SLICE[1] = True  # 8-connectivity within a slice, none across slices


def _contact(section: np.ndarray, lesion: np.ndarray) -> float:
    ring = ndimage.binary_dilation(section, RING8) & ~section
    return 360.0 * float(np.count_nonzero(ring & lesion)) / float(np.count_nonzero(ring))


def _touches_edge(box, shape, lo, hi, full) -> bool:
    """A section's box reaches a crop edge that is not also the slice's edge."""
    return any((b.start == 0 and l > 0) or (b.stop == n and h < m - 1)
               for b, n, l, h, m in zip(box, shape, lo, hi, full))


def vessel_contact(organ_view: np.ndarray, comp: np.ndarray, vmin, vmax, present: set[int],
                   spacing) -> dict[str, float]:
    """Degrees of each present vessel's circumference the lesion touches (max over slices)."""
    nk, nj, ni = organ_view.shape
    k0 = vmin[2]
    # where the lesion can touch anything: its box grown by one voxel in-plane
    near_lo = (max(vmin[1] - 1, 0), max(vmin[0] - 1, 0))
    near_hi = (min(vmax[1] + 1, nj - 1), min(vmax[0] + 1, ni - 1))
    lesion_near = np.zeros((comp.shape[0], near_hi[0] - near_lo[0] + 1, near_hi[1] - near_lo[1] + 1), bool)
    lesion_near[:, vmin[1] - near_lo[0]:vmax[1] - near_lo[0] + 1, vmin[0] - near_lo[1]:vmax[0] - near_lo[1] + 1] = comp
    reach = ndimage.binary_dilation(lesion_near, IN_SLICE)
    labels_near = organ_view[k0:vmax[2] + 1, near_lo[0]:near_hi[0] + 1, near_lo[1]:near_hi[1] + 1]
    # the crop a touched cross-section is measured in: the box grown by VESSEL_MARGIN_MM
    grow = [int(math.ceil(VESSEL_MARGIN_MM / float(spacing[a]))) for a in (0, 1)]
    lo = (max(vmin[1] - grow[1], 0), max(vmin[0] - grow[0], 0))  # (j, i)
    hi = (min(vmax[1] + grow[1], nj - 1), min(vmax[0] + grow[0], ni - 1))
    near_in_crop = (slice(near_lo[0] - lo[0], near_hi[0] - lo[0] + 1), slice(near_lo[1] - lo[1], near_hi[1] - lo[1] + 1))
    out = {}
    for label, name in VESSEL_LABELS.items():
        if label not in present:
            continue
        touching = reach & (labels_near == label)
        best = 0.0
        for k in np.flatnonzero(touching.any(axis=(1, 2))):
            organ_slice = organ_view[k0 + k, lo[0]:hi[0] + 1, lo[1]:hi[1] + 1]
            lesion = np.zeros(organ_slice.shape, dtype=bool)
            lesion[near_in_crop] = lesion_near[k]
            parts, _ = ndimage.label(organ_slice == label, RING8)
            boxes = ndimage.find_objects(parts)
            for part in np.unique(parts[near_in_crop][touching[k]]):
                box = boxes[part - 1]
                if _touches_edge(box, organ_slice.shape, lo, hi, (nj, ni)):
                    full = ndimage.label(organ_view[k0 + k] == label, RING8)[0]
                    seed = np.argwhere(parts == part)[0] + np.asarray(lo)
                    whole = np.zeros((nj, ni), dtype=bool)
                    whole[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1] = lesion
                    best = max(best, _contact(full == full[tuple(seed)], whole))
                else:
                    region = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
                    best = max(best, _contact(parts[region] == part, lesion[region]))
        out[name] = round(best, 1)
    return out
