"""Overlays on a display slice: a mask's contour and an ROI box outline, drawn into RGB.

Pure functions returning new arrays. The contour is the mask's inner boundary: mask pixels with
at least one 4-neighbour outside the mask (or on the slice edge).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CONTOUR_RGB = (255, 64, 64)
BOX_RGB = (255, 220, 0)


def to_rgb(grey: np.ndarray) -> np.ndarray:
    """``[H, W]`` uint8 grey -> ``[H, W, 3]`` uint8."""
    return np.repeat(np.asarray(grey, dtype=np.uint8)[..., None], 3, axis=2)


def contour(mask: np.ndarray) -> np.ndarray:
    """Boolean inner boundary of a 2-D mask."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1, constant_values=False)
    interior = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~interior


def draw_contour(rgb: np.ndarray, mask: np.ndarray, colour: Sequence[int] = CONTOUR_RGB) -> np.ndarray:
    """A copy of ``rgb`` with the contour of ``mask`` (same ``[H, W]``) painted in ``colour``."""
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask {mask.shape} and image {rgb.shape[:2]} differ in size")
    out = rgb.copy()
    out[contour(mask)] = colour
    return out


def draw_box(rgb: np.ndarray, rect: Sequence[int], colour: Sequence[int] = BOX_RGB) -> np.ndarray:
    """A copy of ``rgb`` with the outline of ``rect = (row0, col0, row1, col1)`` (ends exclusive)."""
    r0, c0, r1, c1 = (int(v) for v in rect)
    h, w = rgb.shape[:2]
    r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
    out = rgb.copy()
    if r0 >= r1 or c0 >= c1:
        return out
    out[r0, c0:c1] = colour
    out[r1 - 1, c0:c1] = colour
    out[r0:r1, c0] = colour
    out[r0:r1, c1 - 1] = colour
    return out
