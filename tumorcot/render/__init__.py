"""Rendering CT for people and image trainers: windows, display-oriented slices, overlays, PNG.

- ``windows``: HU windows (abdomen, liver, lung, bone) and windowing HU -> uint8;
- ``planes``: LPS canonical volumes, axial / coronal / sagittal slices in display orientation,
  normalised boxes on a slice;
- ``overlay``: mask contour and ROI box outlines in RGB;
- ``png``: PNG bytes;
- ``compose``: all of it for one slice (``render_slice``).
"""

from tumorcot.render.compose import render_slice
from tumorcot.render.overlay import draw_box, draw_contour, to_rgb
from tumorcot.render.planes import (PLANES, box_rect, canonical_array, canonical_index, canonical_spacing,
                                    display_pixel, pixel_spacing, plane_slice)
from tumorcot.render.png import encode_png, square_pixels
from tumorcot.render.windows import WINDOWS, Window, apply_window, window_for

__all__ = ["PLANES", "WINDOWS", "Window", "apply_window", "box_rect", "canonical_array", "canonical_index",
           "canonical_spacing", "display_pixel", "draw_box", "draw_contour", "encode_png", "pixel_spacing",
           "plane_slice", "render_slice", "square_pixels", "to_rgb", "window_for"]
