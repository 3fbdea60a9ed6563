"""Segmentation backends, with a stand-in TotalSegmentator executable (fake at the seam)."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import SimpleITK as sitk

from totalseg_standin import calls, install, make_weights
from tumorcot.errors import SegmentationError
from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.imaging.segment import (
    SegmentOptions,
    check_weights,
    run_totalsegmentator,
    segmentation_path,
)

@pytest.fixture
def weights(tmp_path, monkeypatch):
    home = make_weights(tmp_path / "totalseg_home")
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    return home


@pytest.fixture
def stand_in(tmp_path, monkeypatch, shared_data):
    return install(tmp_path, monkeypatch, shared_data / "totalseg" / "example_seg.nii.gz")


def test_stand_in_run_is_cached_and_loads(tmp_path, weights, stand_in, shared_data):
    ct_path = shared_data / "totalseg" / "example_ct_sm.nii.gz"
    options = SegmentOptions(fast=True, roi_subset=("liver", "spleen"))
    first = run_totalsegmentator(ct_path, tmp_path / "cache", case="c1", options=options)
    again = run_totalsegmentator(ct_path, tmp_path / "cache", case="c1", options=options)
    assert first == again and first.is_file()
    made = calls(stand_in)
    assert len(made) == 1  # second call served from the cache
    assert made[0]["fast"] and made[0]["device"] == "cpu"
    assert made[0]["roi_subset"] == ["liver", "spleen"] and made[0]["ta"] == "total"
    ct = load_ct(ct_path, case="c1").image
    mask = load_mask(first, ct, case="c1", what="organs")
    assert mask.GetSize() == ct.GetSize()
    other = run_totalsegmentator(ct_path, tmp_path / "cache", case="c1",
                                 options=SegmentOptions(task="liver_segments"))
    assert other != first and calls(stand_in)[-1]["ta"] == "liver_segments"
    assert not list((tmp_path / "cache").glob(".*partial*"))


def test_backend_selection(tmp_path, weights, stand_in, shared_data):
    ct_path = shared_data / "totalseg" / "example_ct_sm.nii.gz"
    given = shared_data / "totalseg" / "example_seg.nii.gz"
    assert segmentation_path("precomputed", ct_path=ct_path, precomputed=given,
                             cache_dir=tmp_path, case="c") == given
    assert segmentation_path("precomputed", ct_path=ct_path, precomputed=None,
                             cache_dir=tmp_path, case="c") is None
    made = segmentation_path("totalsegmentator", ct_path=ct_path, precomputed=None,
                             cache_dir=tmp_path, case="c")
    assert made.is_file()
    with pytest.raises(ValueError, match="unknown segmentation backend"):
        segmentation_path("magic", ct_path=ct_path, precomputed=None, cache_dir=tmp_path, case="c")


@pytest.mark.parametrize(
    "layout",
    [
        "missing",  # no TOTALSEG_HOME_DIR folder at all
        "empty_results",  # nnunet/results exists but holds no file
    ],
)
def test_no_weights_fails_fast(tmp_path, monkeypatch, stand_in, shared_data, layout):
    home = tmp_path / "empty_home"
    if layout == "empty_results":
        (home / "nnunet" / "results" / "Dataset291").mkdir(parents=True)
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    start = time.monotonic()
    with pytest.raises(SegmentationError, match="weights not found") as info:
        run_totalsegmentator(shared_data / "totalseg" / "example_ct_sm.nii.gz", tmp_path / "c",
                             case="c5")
    assert time.monotonic() - start < 5.0
    assert info.value.case == "c5" and calls(stand_in) == []


@pytest.mark.parametrize(
    "env, message",
    [
        ({"STANDIN_FAIL": "1"}, "CUDA out of memory"),  # CLI exits non-zero: stderr reported
        ({"STANDIN_SLEEP": "30"}, "timed out"),  # hung run killed by the timeout
    ],
)
def test_cli_failures_raise_segmentation_error(tmp_path, monkeypatch, weights, stand_in,
                                               shared_data, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SegmentationError, match=message) as info:
        run_totalsegmentator(shared_data / "totalseg" / "example_ct_sm.nii.gz", tmp_path / "c",
                             case="c6", options=SegmentOptions(timeout_s=2.0))
    assert info.value.case == "c6"
    assert not list((tmp_path / "c").glob("*.nii.gz"))


def test_missing_executable(tmp_path, weights, monkeypatch, shared_data):
    monkeypatch.setenv("TUMORCOT_TOTALSEG_BIN", str(tmp_path / "nowhere" / "TotalSegmentator"))
    with pytest.raises(SegmentationError, match="executable"):
        run_totalsegmentator(shared_data / "totalseg" / "example_ct_sm.nii.gz", tmp_path, case="c")


def test_real_totalsegmentator_when_weights_exist(tmp_path, shared_data):
    exe = os.environ.get("TUMORCOT_TOTALSEG_BIN", "TotalSegmentator")
    if shutil.which(exe) is None:
        pytest.skip("TotalSegmentator not installed (set TUMORCOT_TOTALSEG_BIN)")
    try:
        check_weights()
    except SegmentationError as exc:
        pytest.skip(str(exc))
    ct_path = shared_data / "totalseg" / "example_ct_sm.nii.gz"
    out = run_totalsegmentator(ct_path, tmp_path, case="real",
                               options=SegmentOptions(fast=True, roi_subset=("liver",)))
    ct = load_ct(ct_path, case="real").image
    mask = load_mask(out, ct, case="real", what="organs")
    liver = int((sitk.GetArrayViewFromImage(mask) == 5).sum())
    assert abs(liver - 38634) / 38634 < 0.15
