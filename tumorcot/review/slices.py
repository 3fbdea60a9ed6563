"""The three CT views of a record in a review pack: axial, coronal and sagittal slices through
the record's region, windowed for its organ, with the mask contour (the lesion, else the organ)
and the ROI box drawn in (with ``tumorcot.render``'s windows, slices and overlays).

The CT and masks come from the case row kept in the private state folder (the record itself
only knows the CT's content hash). Masks made by TotalSegmentator during the build are not
in the case row: such records show the box without a contour, and say so.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tumorcot.errors import ReviewError, TumorcotError
from tumorcot.exports.images import CaseImages
from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.render import (PLANES, apply_window, box_rect, canonical_array, canonical_spacing, draw_box,
                             draw_contour, encode_png, pixel_spacing, plane_slice, to_rgb, window_for)
from tumorcot.imaging.geometry import lps_axes
from tumorcot.render.planes import box_center, box_ranges, canonical_index
from tumorcot.schemas import CaseFacts


@dataclass
class CaseVolumes:
    """One case's CT and masks as canonical ``[z, y, x]`` arrays (``render.planes``)."""

    hu: np.ndarray
    spacing_zyx: tuple[float, float, float]
    organs: np.ndarray | None
    lesions: np.ndarray | None
    z_of_k: list[int] | None = None
    """Canonical z of each CT slice index k (facts name slices by k), when k is the axial axis."""


def load_case_volumes(images: CaseImages, case_id: str) -> CaseVolumes:
    """``ReviewError`` naming the case (never its raw ids or paths) when the CT cannot be read."""
    try:
        ct_path = images.source(case_id)
        row = images.store.recall_input(case_id)
        ct = load_ct(ct_path, case=case_id).image
        masks = {}
        for field in ("organ_mask", "lesion_mask"):
            path = getattr(row, field)
            masks[field] = canonical_array(load_mask(Path(path), ct, case=case_id, what=field)) if path else None
    except TumorcotError as exc:
        raise ReviewError(f"cannot show the CT: {type(exc).__name__}", case=case_id) from None
    z_of_k = [canonical_index(ct, (0, 0, k))[0] for k in range(ct.GetSize()[2])] \
        if lps_axes(ct)[2][0] == 2 else None
    return CaseVolumes(hu=canonical_array(ct), spacing_zyx=canonical_spacing(ct),
                       organs=masks["organ_mask"], lesions=masks["lesion_mask"], z_of_k=z_of_k)


def record_region(record: dict, facts: CaseFacts) -> tuple[list[float] | None, str | None]:
    """(normalised box shown, what its contour outlines: ``lesion``, ``organ`` or None)."""
    lesion = next((x for x in facts.lesions if x.id == record["lesion_id"]), None) if record["lesion_id"] else None
    organ = facts.organ(record["organ"]) if record["organ"] else None
    box = record["roi_box"] or (list(lesion.bbox.normalized) if lesion else None) or \
        (list(organ.bbox.normalized) if organ else None)
    return box, ("lesion" if lesion else "organ" if organ else None)


def _record_mask(volumes: CaseVolumes, record: dict, facts: CaseFacts, kind: str | None) -> np.ndarray | None:
    if kind == "lesion" and volumes.lesions is not None:
        lesion = next(x for x in facts.lesions if x.id == record["lesion_id"])
        inside = np.zeros(volumes.lesions.shape, dtype=bool)   # this lesion only: the mask inside its box
        (z0, z1), (y0, y1), (x0, x1) = box_ranges(volumes.lesions.shape, lesion.bbox.normalized)
        inside[z0:z1, y0:y1, x0:x1] = volumes.lesions[z0:z1, y0:y1, x0:x1] != 0
        return inside
    if kind == "organ" and volumes.organs is not None:
        return volumes.organs == facts.organ(record["organ"]).label_id
    return None


def _through(mask: np.ndarray, axis: int, span: tuple[int, int]) -> int:
    """The slice along ``axis`` (within ``span``) where the mask is largest: through the lesion
    or organ, even where the middle of its box misses it (a curved lung lobe, the colon)."""
    other = tuple(a for a in range(3) if a != axis)
    area = mask.sum(axis=other)[span[0]:span[1]]
    return span[0] + int(np.argmax(area)) if area.size and area.max() > 0 else (span[0] + span[1] - 1) // 2


def record_views(volumes: CaseVolumes, record: dict, facts: CaseFacts) -> list[dict]:
    """Per plane: ``{"plane", "index", "of", "window", "contour", "png", "width_mm", "height_mm"}``,
    the slice through the largest cross-section of the mask (else the middle of the box); for a
    lesion's axial view, the slice its diameters were measured on (``axial_slice``).

    Pixels are voxels (no resampling, so overlays stay crisp; the page gives each image its
    physical aspect). The box outline is drawn one pixel *outside* the region, so it never
    covers the contour of a small lesion whose extent it equals."""
    box, kind = record_region(record, facts)
    mask = _record_mask(volumes, record, facts, kind)
    window = window_for(record["organ"])
    views = []
    for axis, plane in enumerate(PLANES):
        n = volumes.hu.shape[axis]
        index = _through(mask, axis, box_ranges(volumes.hu.shape, box)[axis] if box else (0, n)) \
            if mask is not None else (box_center(volumes.hu.shape, box, plane) if box else n // 2)
        label = f"{index + 1}/{n}"
        if plane == "axial" and kind == "lesion" and volumes.z_of_k is not None:
            k = next(x for x in facts.lesions if x.id == record["lesion_id"]).axial_slice
            index, label = volumes.z_of_k[k], f"slice k={k} (measured)"   # the slice the facts name
        pixels = to_rgb(apply_window(plane_slice(volumes.hu, plane, index), window))
        if mask is not None:
            pixels = draw_contour(pixels, plane_slice(mask, plane, index) != 0)
        if box is not None:
            r0, c0, r1, c1 = box_rect(volumes.hu.shape, box, plane)
            pixels = draw_box(pixels, (r0 - 1, c0 - 1, r1 + 1, c1 + 1))
        row_mm, col_mm = pixel_spacing(volumes.spacing_zyx, plane)
        views.append({"plane": plane, "index": int(index), "of": int(n), "label": label, "window": window.name,
                      "contour": kind if mask is not None else None, "png": encode_png(pixels),
                      "width_mm": round(pixels.shape[1] * col_mm, 1), "height_mm": round(pixels.shape[0] * row_mm, 1)})
    return views


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
