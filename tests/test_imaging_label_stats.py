"""Run-length label statistics against ITK's LabelStatistics / LabelShapeStatistics filters."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from tumorcot.imaging import label_stats
from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.imaging.label_stats import label_statistics


def _itk_reference(values: np.ndarray, labels: np.ndarray):
    ct, mask = sitk.GetImageFromArray(values), sitk.GetImageFromArray(labels)
    stats = sitk.LabelStatisticsImageFilter()
    stats.UseHistogramsOff()
    stats.Execute(ct, mask)
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(mask)
    out = {}
    for label in shape.GetLabels():
        bb = stats.GetBoundingBox(label)
        out[label] = (int(stats.GetCount(label)), stats.GetMean(label),
                      stats.GetSigma(label) if stats.GetCount(label) > 1 else 0.0,
                      shape.GetCentroid(label), (bb[0], bb[2], bb[4]), (bb[1], bb[3], bb[5]))
    return out


def _random_case(seed, shape, values_dtype, labels_dtype, n_labels):
    rng = np.random.default_rng(seed)
    # blocky labels (long runs, runs ending at row ends) plus isolated single voxels
    coarse = rng.integers(0, n_labels + 1, (shape[0], shape[1], shape[2] // 4 + 1))
    labels = np.repeat(coarse, 4, axis=2)[:, :, : shape[2]].astype(labels_dtype)
    labels.flat[rng.choice(labels.size, 5, replace=False)] = n_labels + 1
    if values_dtype == np.float32:
        values = rng.normal(40, 300, shape).astype(np.float32)
    else:
        info = np.iinfo(values_dtype)
        values = rng.integers(info.min, info.max, shape, endpoint=True).astype(values_dtype)
    return values, labels


@pytest.mark.parametrize(
    "seed, shape, values_dtype, labels_dtype, n_labels",
    [
        (0, (7, 9, 13), np.int16, np.uint8, 5),  # full int16 range: exact sums of squares
        (1, (5, 16, 16), np.float32, np.uint8, 3),  # float CT: float64 sums
        (2, (4, 6, 30), np.int16, np.uint16, 300),  # uint16 labels above 255
        (3, (3, 5, 8), np.uint16, np.uint8, 2),  # uint16 intensities: int64 squares
        (4, (6, 1, 11), np.int8, np.uint8, 4),  # one row per slice
    ],
)
def test_matches_itk_filters(seed, shape, values_dtype, labels_dtype, n_labels):
    values, labels = _random_case(seed, shape, values_dtype, labels_dtype, n_labels)
    _assert_matches(label_statistics(labels, values), _itk_reference(values, labels), centroids=True)


def _assert_matches(ours, reference, *, centroids: bool) -> None:
    """Per label: count, min, max exact; mean and std to rounding; centroids where comparable."""
    assert sorted(ours) == sorted(reference)
    for label, (count, mean, std, centroid, vmin, vmax) in reference.items():
        st = ours[label]
        assert (st.count, st.vmin, st.vmax) == (count, vmin, vmax)
        assert st.mean == pytest.approx(mean, rel=1e-12, abs=1e-9)
        assert st.std == pytest.approx(std, rel=1e-9, abs=1e-9)
        if centroids:
            assert st.centroid_ijk == pytest.approx(centroid, abs=1e-9)  # unit spacing, origin 0


def test_row_blocks_of_large_slices_give_the_same_result(monkeypatch):
    values, labels = _random_case(5, (3, 20, 24), np.int16, np.uint8, 6)
    whole = label_statistics(labels, values)
    monkeypatch.setattr(label_stats, "SLAB_VOXELS", 50)  # two rows per block
    assert label_statistics(labels, values) == whole


def test_background_only_gives_nothing():
    assert label_statistics(np.zeros((2, 3, 4), np.uint8), np.ones((2, 3, 4), np.int16)) == {}


def test_signed_or_wide_label_maps_are_refused():
    with pytest.raises(TypeError):
        label_statistics(np.zeros((2, 2, 2), np.int32), np.zeros((2, 2, 2), np.int16))


def test_real_ct_matches_itk(shared_data):
    ct = load_ct(shared_data / "totalseg" / "example_ct_sm.nii.gz", case="ts").image
    mask = load_mask(shared_data / "totalseg" / "example_seg.nii.gz", ct, case="ts", what="organs")
    values, labels = sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(mask)
    _assert_matches(label_statistics(labels, values), _itk_reference(values, labels), centroids=False)
