"""PNG encoding with Pillow: grey (``L``) or RGB, no text chunks or other metadata."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

COMPRESS_LEVEL = 1
"""zlib level: on a 512x512 windowed CT slice, within 7 % of the default's (6) size at 60 % of its time."""


def encode_png(pixels: np.ndarray) -> bytes:
    """``[H, W]`` or ``[H, W, 3]`` uint8 -> PNG bytes."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"PNG pixels are uint8 [H, W] or [H, W, 3], got {pixels.dtype} {pixels.shape}")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=COMPRESS_LEVEL)
    return buffer.getvalue()


def square_pixels(pixels: np.ndarray, row_mm: float, col_mm: float) -> np.ndarray:
    """Resample so one pixel is as tall as it is wide (the finer spacing kept; bilinear)."""
    if abs(row_mm - col_mm) <= 1e-3 * min(row_mm, col_mm):
        return pixels
    h, w = pixels.shape[:2]
    step = min(row_mm, col_mm)
    size = (max(1, round(w * col_mm / step)), max(1, round(h * row_mm / step)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).resize(size, Image.BILINEAR))
