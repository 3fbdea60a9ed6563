"""One display image from a canonical volume: window, slice, optional contour and box."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tumorcot.render.overlay import draw_box, draw_contour, to_rgb
from tumorcot.render.planes import Plane, box_rect, plane_slice
from tumorcot.render.windows import Window, apply_window


def render_slice(volume_hu: np.ndarray, plane: Plane, index: int, window: Window, *,
                 mask: np.ndarray | None = None, roi_box: Sequence[float] | None = None) -> np.ndarray:
    """Slice ``index`` of canonical ``[z, y, x]`` HU through ``window``: ``[H, W]`` uint8 grey, or
    ``[H, W, 3]`` RGB when a normalised ``roi_box`` outline and / or a ``mask`` contour (same
    canonical grid; non-zero = inside; drawn over the outline) is drawn."""
    grey = apply_window(plane_slice(volume_hu, plane, index), window)
    if mask is None and roi_box is None:
        return grey
    rgb = to_rgb(grey)
    if roi_box is not None:
        rgb = draw_box(rgb, box_rect(volume_hu.shape, roi_box, plane))
    if mask is not None:                  # drawn last: a thin structure's contour stays visible on its box
        if mask.shape != volume_hu.shape:
            raise ValueError(f"mask {mask.shape} is not on the volume's grid {volume_hu.shape}")
        rgb = draw_contour(rgb, plane_slice(mask, plane, index) != 0)
    return rgb
