"""The measurement's cheap morphology against the library operations it replaces.

Box erosion / dilation (``regions``), the face-connected boundary (``diameters``), the cubes
marching cubes visits (``shape``) and the 3-D hull taken over row ends (``diameters``) must give
exactly what scipy / scikit-image give on the whole array: same masks, same mesh, same vertices.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull
from skimage.measure import marching_cubes

from tumorcot.imaging.diameters import _boundary, max_diameter_3d
from tumorcot.imaging.regions import dilate, erode
from tumorcot.imaging.shape import _surface_cubes, ibsi_sphericity


def _blobs(seed):
    """Smooth random blobs, some touching the array's edges."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(2, 28, 3))
    return ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.5, 3.0)) > rng.uniform(0.4, 0.6)


RADII = [(1, 1, 1), (2, 3, 3), (3, 6, 6), (0, 2, 0), (5, 1, 0), (12, 12, 12), (0, 0, 0)]


@pytest.mark.parametrize("seed", range(12))
def test_box_erosion_and_dilation_equal_scipy_with_a_box(seed):
    mask = _blobs(seed)
    for radius in RADII:
        box = np.ones([2 * r + 1 for r in radius], dtype=bool)
        expected_erosion = ndimage.binary_erosion(mask, box, border_value=0)
        expected_dilation = ndimage.binary_dilation(mask, box)
        eroded, dilated = erode(mask, radius), dilate(mask, radius)
        assert eroded.dtype == bool and np.array_equal(eroded, expected_erosion), radius
        assert dilated.dtype == bool and np.array_equal(dilated, expected_dilation), radius
        assert not np.shares_memory(eroded, mask) and not np.shares_memory(dilated, mask)
    view = mask[::2, :, ::-1]  # strided input
    assert np.array_equal(erode(view, (1, 1, 1)), ndimage.binary_erosion(view, np.ones((3, 3, 3)), border_value=0))


@pytest.mark.parametrize("seed", range(12))
def test_boundary_is_the_mask_minus_its_cross_erosion(seed):
    mask = _blobs(seed)
    assert np.array_equal(_boundary(mask), mask & ~ndimage.binary_erosion(mask, border_value=0))
    for plane in mask:
        assert np.array_equal(_boundary(plane), plane & ~ndimage.binary_erosion(plane, border_value=0))


@pytest.mark.parametrize("seed", range(12))
def test_marching_cubes_on_surface_cubes_builds_the_whole_volume_mesh(seed):
    mask = _blobs(seed)
    mask.flat[mask.size // 2] = True  # never empty
    padded = np.pad(mask, 1).astype(np.float32)
    spacing = (1.5, 0.8, 0.7)
    verts, faces, _, _ = marching_cubes(padded, 0.5, spacing=spacing)
    verts_m, faces_m, _, _ = marching_cubes(padded, 0.5, mask=_surface_cubes(padded > 0.5), spacing=spacing)
    assert np.array_equal(verts, verts_m) and np.array_equal(faces, faces_m)
    assert 0.0 < ibsi_sphericity(mask, (0.7, 0.8, 1.5)) <= 1.0


def test_hull_over_row_ends_has_the_vertices_of_the_hull_over_the_whole_boundary():
    z, y, x = np.ogrid[-22:23, -50:51, -50:51]
    ball = (x / 47.0) ** 2 + (y / 40.0) ** 2 + (z / 20.0) ** 2 <= 1  # longest along i: 75.2 mm
    spacing = np.array([0.8, 0.8, 1.5])
    kk, jj, ii = np.nonzero(ball & ~ndimage.binary_erosion(ball, border_value=0))
    points = np.stack([ii, jj, kk], axis=1) * spacing
    row = kk * ball.shape[1] + jj
    ends = np.flatnonzero(np.r_[True, row[1:] != row[:-1]] | np.r_[row[1:] != row[:-1], True])
    assert ends.size < points.shape[0] / 2
    assert np.array_equal(ConvexHull(points).vertices, ends[ConvexHull(points[ends]).vertices])
    # the diameter itself: brute force over all boundary voxel pairs, + half a voxel (0.4 mm) of
    # edge along i
    brute = max(float(np.sqrt(((points[a:a + 512, None] - points[None]) ** 2).sum(-1)).max())
                for a in range(0, len(points), 512))
    assert brute == pytest.approx(75.2)
    assert max_diameter_3d(ball, spacing) == pytest.approx(brute + 0.4, abs=1e-6)


def test_axis_ratio_of_a_lesion_one_slice_thick_is_that_of_the_slab_it_fills():
    """A disc of radius 20 mm in one 5 mm slice: the solid's second moments are R^2 / 4 in plane
    (a uniform disc) and t^2 / 12 through it (a uniform slab), so the ratio is
    sqrt((R^2 / 4) / (t^2 / 12)) = sqrt(100 / 2.083) = 6.93, not the unbounded ratio of the voxel
    centres (whose spread through the slice is zero)."""
    from tumorcot.imaging.shape import axis_ratio

    radius, thickness, pixel = 20.0, 5.0, 0.5
    n = int(2 * radius / pixel) + 4
    y, x = np.mgrid[:n, :n] * pixel
    centre = (n - 1) * pixel / 2
    mask = np.zeros((3, n, n), bool)
    mask[1] = (x - centre) ** 2 + (y - centre) ** 2 <= radius ** 2
    expected = np.sqrt((radius ** 2 / 4) / (thickness ** 2 / 12))
    assert axis_ratio(mask, (pixel, pixel, thickness)) == pytest.approx(expected, rel=0.03)
