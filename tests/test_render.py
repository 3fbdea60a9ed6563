"""Units of tumorcot.render: windows, display orientation, overlays, PNG.

Expected values are computed independently: grey levels with exact fractions, display positions
from each voxel's physical LPS point (SimpleITK), contours by counting neighbours.
"""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from tumorcot.render import (WINDOWS, apply_window, box_rect, canonical_array, canonical_index, display_pixel,
                             draw_box, encode_png, pixel_spacing, plane_slice, render_slice, square_pixels,
                             window_for)
from tumorcot.render.overlay import BOX_RGB, CONTOUR_RGB, contour


def grey_of(hu: int, width: float, level: float) -> int:
    """255 * (clip(hu) - low) / width, exactly, rounded half to even."""
    low, high = Fraction(level) - Fraction(width) / 2, Fraction(level) + Fraction(width) / 2
    value = (min(max(Fraction(hu), low), high) - low) * 255 / Fraction(width)
    return round(value)    # Fraction rounds half to even


# ---- windows ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, width, level", [
    ("abdomen", 400, 50),     # Radiopaedia standard: abdomen soft tissues W400 L50
    ("liver", 150, 30),       # liver W150 L30
    ("lung", 1500, -600),     # lungs W1500 L-600
    ("bone", 1800, 400),      # bone W1800 L400
])
def test_window_presets_and_grey_levels_match_exact_arithmetic(name, width, level):
    window = WINDOWS[name]
    assert (window.width_hu, window.level_hu) == (width, level)
    hu = np.arange(-1100, 2200, dtype=np.int16)           # every integer HU, both clipped ends
    expected = np.array([grey_of(int(v), width, level) for v in hu], dtype=np.uint8)
    assert np.array_equal(apply_window(hu, window), expected)
    assert apply_window(np.array([level - width]), window)[0] == 0
    assert apply_window(np.array([level + width]), window)[0] == 255


@pytest.mark.parametrize("organ, window", [
    ("liver", "liver"),
    ("lung_upper_lobe_left", "lung"),      # lobes -> lung family
    ("vertebrae_L1", "bone"),
    ("rib_left_7", "bone"),
    ("sacrum", "bone"),
    ("kidney_right", "abdomen"),
    ("pancreas", "abdomen"),
    (None, "abdomen"),                     # a record without an organ
])
def test_window_for_organ(organ, window):
    assert window_for(organ).name == window


def test_window_meta_names_its_source():
    meta = WINDOWS["liver"].as_meta()
    assert meta["width_hu"] == 150 and meta["level_hu"] == 30 and "Radiopaedia" in meta["source"]


# ---- display orientation ----------------------------------------------------------------------

def numbered_image(direction) -> sitk.Image:
    """4 x 5 x 6 voxels numbered 0..119, spacing 1, origin 0, with ``direction``."""
    image = sitk.GetImageFromArray(np.arange(120, dtype=np.int16).reshape(6, 5, 4))
    image.SetDirection([float(v) for v in np.asarray(direction).ravel()])
    return image


DIRECTIONS = {
    "identity": np.eye(3),
    "flip-xy (RAS-stored NIfTI)": np.diag([-1, -1, 1]),
    "flip-z": np.diag([1, 1, -1]),
    "permuted + flipped": np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]]),
}


def physical_ranks(image: sitk.Image) -> dict[int, tuple[int, int, int]]:
    """Voxel value -> rank of its physical (z, y, x) among the grid's coordinates."""
    points = {}
    for k in range(image.GetSize()[2]):
        for j in range(image.GetSize()[1]):
            for i in range(image.GetSize()[0]):
                points[int(image[i, j, k])] = image.TransformIndexToPhysicalPoint((i, j, k))
    ranks = []
    for axis in (2, 1, 0):
        values = sorted({round(p[axis], 6) for p in points.values()})
        ranks.append({v: n for n, v in enumerate(values)})
    return {value: tuple(ranks[n][round(p[axis], 6)] for n, axis in enumerate((2, 1, 0)))
            for value, p in points.items()}


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_slices_follow_the_radiological_display_convention(direction):
    image = numbered_image(direction)
    volume = canonical_array(image)
    rank = physical_ranks(image)     # (z, y, x) ranks: inferior, anterior, patient-right first
    nz = volume.shape[0]
    for plane in ("axial", "coronal", "sagittal"):
        normal = {"axial": 0, "coronal": 1, "sagittal": 2}[plane]
        for index in range(volume.shape[normal]):
            pixels = plane_slice(volume, plane, index)
            for (row, col), value in np.ndenumerate(pixels):
                z, y, x = rank[int(value)]
                assert (z, y, x)[normal] == index
                if plane == "axial":          # anterior at the top, patient right on the image left
                    assert (row, col) == (y, x)
                elif plane == "coronal":      # superior at the top, patient right on the image left
                    assert (row, col) == (nz - 1 - z, x)
                else:                         # superior at the top, anterior on the image left
                    assert (row, col) == (nz - 1 - z, y)


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_voxel_lands_on_its_display_pixel(direction):
    image = numbered_image(direction)
    volume = canonical_array(image)
    for ijk in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        zyx = canonical_index(image, ijk)
        assert volume[zyx] == image[ijk]
        for plane, normal in (("axial", 0), ("coronal", 1), ("sagittal", 2)):
            row, col = display_pixel(volume.shape, plane, zyx)
            assert plane_slice(volume, plane, zyx[normal])[row, col] == image[ijk]


def test_pixel_spacing_per_plane():
    assert pixel_spacing((3.0, 0.8, 0.7), "axial") == (0.8, 0.7)
    assert pixel_spacing((3.0, 0.8, 0.7), "coronal") == (3.0, 0.7)
    assert pixel_spacing((3.0, 0.8, 0.7), "sagittal") == (3.0, 0.8)


# ---- overlays ---------------------------------------------------------------------------------

def test_contour_is_the_masks_inner_ring():
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True                                  # 5 x 5 square
    ring = contour(mask)
    assert ring.sum() == 16 and not ring[3:6, 3:6].any() and ring[2, 2:7].all()
    single = np.zeros((3, 3), bool)
    single[1, 1] = True
    assert np.array_equal(contour(single), single)


def test_box_outline_and_box_on_each_plane():
    volume = np.zeros((10, 20, 40), np.int16)              # z, y, x
    box = [0.25, 0.5, 0.2, 0.75, 1.0, 0.6]                 # x 10..30, y 10..20, z 2..6
    assert box_rect(volume.shape, box, "axial") == (10, 10, 20, 30)
    assert box_rect(volume.shape, box, "coronal") == (10 - 6, 10, 10 - 2, 30)   # superior at the top
    assert box_rect(volume.shape, box, "sagittal") == (10 - 6, 10, 10 - 2, 20)
    rgb = draw_box(np.zeros((20, 40, 3), np.uint8), (10, 10, 20, 30))
    painted = (rgb == BOX_RGB).all(axis=2)
    assert painted.sum() == 2 * 20 + 2 * 10 - 4 and painted[10, 10] and painted[19, 29] and not painted[15, 20]


def test_render_slice_with_mask_and_box():
    volume = np.full((4, 12, 12), 30, np.int16)
    mask = np.zeros_like(volume)
    mask[2, 4:8, 4:8] = 1
    grey = render_slice(volume, "axial", 2, WINDOWS["liver"])
    assert grey.dtype == np.uint8 and grey.shape == (12, 12) and (grey == grey_of(30, 150, 30)).all()
    rgb = render_slice(volume, "axial", 2, WINDOWS["liver"], mask=mask, roi_box=[0, 0, 0, 1, 1, 1])
    assert rgb.shape == (12, 12, 3)
    assert (rgb[4, 5] == CONTOUR_RGB).all() and (rgb[0, 0] == BOX_RGB).all()
    assert (rgb[6, 6] == grey_of(30, 150, 30)).all()       # inside the contour: untouched grey


# ---- PNG --------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, mode", [((7, 9), "L"), ((7, 9, 3), "RGB")])
def test_png_round_trip_without_metadata(shape, mode):
    pixels = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    with Image.open(io.BytesIO(encode_png(pixels))) as png:
        assert png.mode == mode and not png.text
        assert np.array_equal(np.asarray(png), pixels)


def test_png_refuses_non_uint8():
    with pytest.raises(ValueError):
        encode_png(np.zeros((3, 3), np.float32))


def test_square_pixels_keeps_the_finer_spacing():
    pixels = np.zeros((10, 20), np.uint8)                  # rows 3 mm, columns 0.75 mm
    assert square_pixels(pixels, 3.0, 0.75).shape == (40, 20)
    assert square_pixels(pixels, 0.75, 0.75) is pixels


def test_canonical_array_outlives_its_image():
    """An identity-direction image needs no transpose or flip: the result must still be a copy, not
    a view of a buffer freed with the image."""
    def temporary():
        return canonical_array(sitk.GetImageFromArray(np.full((3, 4, 5), 7, np.uint8)))
    arrays = [temporary() for _ in range(20)]
    _ = [np.zeros((3, 4, 5), np.uint8) + i for i in range(20)]     # reuse of freed memory, if any
    assert all((a == 7).all() for a in arrays)
