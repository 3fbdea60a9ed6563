"""Lesion components from empty-plane boxes against ITK's ConnectedComponent on the whole mask."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from tumorcot.imaging.components import kind_values, lesion_components, occupied_boxes


def _random_mask(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(3, 30, 3))
    mask = np.zeros(shape, np.uint8)
    for _ in range(rng.integers(1, 8)):
        centre = [rng.integers(0, n) for n in shape]
        radius = rng.integers(0, 5, 3)
        box = tuple(slice(max(c - r, 0), c + r + 1) for c, r in zip(centre, radius))
        blob = rng.random(mask[box].shape) < rng.uniform(0.2, 1.0)
        mask[box][blob] = rng.integers(1, 4)
    return mask


def _itk_components(mask, lesion_labels):
    """(kind, count, vmin, vmax, crop bytes) per component, the pre-box implementation's way."""
    values = sorted(int(v) for v in np.unique(mask) if v)
    out = []
    for kind, members in kind_values(values, lesion_labels).items():
        binary = sitk.GetImageFromArray(np.isin(mask, members).astype(np.uint8))
        cc = sitk.ConnectedComponent(binary, True)
        shape = sitk.LabelShapeStatisticsImageFilter()
        shape.Execute(cc)
        cc_array = sitk.GetArrayFromImage(cc)
        for label in shape.GetLabels():
            x, y, z, sx, sy, sz = shape.GetBoundingBox(label)
            crop = cc_array[z:z + sz, y:y + sy, x:x + sx] == label
            out.append((kind, int(shape.GetNumberOfPixels(label)), (x, y, z),
                        (x + sx - 1, y + sy - 1, z + sz - 1), crop.tobytes()))
    return sorted(out)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "lesion_labels",
    [
        None,  # every non-zero value is one kind, touching values merge
        {1: "tumor", 2: "cyst"},  # two kinds; value 3 unmapped -> "lesion"
        {1: "a", 2: "a", 3: "b"},  # two values of one kind merge
    ],
)
def test_matches_itk_connected_components(seed, lesion_labels):
    mask = _random_mask(seed)
    found = lesion_components(mask, lesion_labels)
    ours = sorted((c.kind, c.voxel_count, c.vmin, c.vmax, c.mask.tobytes()) for c in found)
    assert ours == _itk_components(mask, lesion_labels)
    keys = [(-c.voxel_count, c.vmin[2], c.vmin[1], c.vmin[0]) for c in found]
    assert keys == sorted(keys)


def test_boxes_hold_every_voxel_and_have_no_empty_plane():
    mask = _random_mask(3)
    covered = np.zeros(mask.shape, bool)
    for box in occupied_boxes(mask):
        sub = mask[box]
        assert not covered[box].any()  # boxes are disjoint
        covered[box] = True
        for axis in range(3):
            assert sub.any(axis=tuple(a for a in range(3) if a != axis)).all()
    assert covered[mask > 0].all()


def test_diagonal_neighbours_stay_one_component():
    mask = np.zeros((4, 4, 4), np.uint8)
    mask[0, 0, 0] = mask[1, 1, 1] = mask[2, 2, 2] = 1  # corner-to-corner: 26-connected
    mask[3, 3, 0] = 1  # not adjacent to (2, 2, 2)
    found = lesion_components(mask, None)
    assert [(c.voxel_count, c.vmin, c.vmax) for c in found] == [
        (3, (0, 0, 0), (2, 2, 2)), (1, (0, 3, 3), (0, 3, 3))]


def test_empty_mask_has_no_components():
    assert lesion_components(np.zeros((3, 3, 3), np.uint8), None) == []
