"""Connected lesion components, found in small boxes instead of over the whole volume.

``occupied_boxes`` cuts the lesion mask's non-zero region at every empty plane (a whole i, j or
k plane of the box without a non-zero voxel), recursively, until no box can be cut. A
26-connected component never crosses an empty plane (each step changes an index by at most 1),
so every component lies in exactly one box. Components are then labelled per box and per kind
(``scipy.ndimage.label``, 26-connectivity), each returned with the boolean crop of its own box.
Only the first cut reads the whole mask (three ``any`` reductions); nothing volume-sized is
allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass
class Component:
    kind: str
    voxel_count: int
    vmin: tuple[int, int, int]
    vmax: tuple[int, int, int]
    """Inclusive voxel index box (i, j, k) on the mask's grid."""
    mask: np.ndarray
    """Boolean ``[k, j, i]`` crop over ``vmin..vmax``."""


def _cut(sub: np.ndarray) -> tuple[int, list[tuple[int, int]]] | None:
    """``(axis, [(start, stop), ...])`` of the occupied runs along the first axis that has an
    empty plane (an empty box gives no runs), or None when no plane of ``sub`` is empty."""
    for axis in range(3):
        occupied = np.flatnonzero(sub.any(axis=tuple(a for a in range(3) if a != axis)))
        if occupied.size == 0:
            return axis, []
        gaps = np.flatnonzero(np.diff(occupied) > 1)
        if gaps.size or occupied[0] > 0 or occupied[-1] < sub.shape[axis] - 1:
            starts = np.r_[occupied[0], occupied[gaps + 1]]
            stops = np.r_[occupied[gaps], occupied[-1]] + 1
            return axis, list(zip(starts.tolist(), stops.tolist()))
    return None


def occupied_boxes(view: np.ndarray) -> list[tuple[slice, slice, slice]]:
    """Numpy ``[k, j, i]`` boxes, none with an empty plane, holding every non-zero voxel."""
    todo = [tuple(slice(0, n) for n in view.shape)]
    boxes = []
    while todo:
        box = todo.pop()
        cut = _cut(view[box])
        if cut is None:
            boxes.append(box)
            continue
        axis, runs = cut
        offset = box[axis].start
        for start, stop in runs:
            todo.append(box[:axis] + (slice(offset + start, offset + stop),) + box[axis + 1 :])
    return boxes


def kind_values(present, lesion_labels: dict[int, str] | None) -> dict[str, list[int]]:
    """Mask values grouped by kind; unmapped values (and all, without a mapping) are "lesion"."""
    kinds: dict[str, list[int]] = {}
    for value in present:
        kind = (lesion_labels or {}).get(int(value), "lesion")
        kinds.setdefault(kind, []).append(int(value))
    return kinds


def lesion_components(
    view: np.ndarray, lesion_labels: dict[int, str] | None
) -> list[Component]:
    """26-connected components of each kind, largest first (ties: by k, j, i of the box corner,
    then by kind in the order of their smallest mask value, then in raster order)."""
    found = []
    for box in occupied_boxes(view):
        crop = view[box]
        if lesion_labels is None:
            kinds = {"lesion": None}
        else:
            kinds = kind_values(np.unique(crop[crop != 0]), lesion_labels)
        for kind, values in kinds.items():
            binary = crop != 0 if len(kinds) == 1 else np.isin(crop, values)
            labelled, _ = ndimage.label(binary, structure=CONNECTIVITY_26)
            del binary
            for number, local in enumerate(ndimage.find_objects(labelled), start=1):
                mask = labelled[local] == number
                vmin = tuple(box[a].start + local[a].start for a in (2, 1, 0))
                vmax = tuple(box[a].start + local[a].stop - 1 for a in (2, 1, 0))
                found.append(Component(kind, int(np.count_nonzero(mask)), vmin, vmax, mask))
    found.sort(key=lambda c: (-c.voxel_count, c.vmin[2], c.vmin[1], c.vmin[0]))
    return found
