"""Segmentation backends, with a stand-in TotalSegmentator executable (fake at the seam)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import pytest
import SimpleITK as sitk

from tumorcot.errors import SegmentationError
from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.imaging.segment import (
    SegmentOptions,
    check_weights,
    run_totalsegmentator,
    segmentation_path,
)

STAND_IN = '''#!{python}
"""Stand-in for the TotalSegmentator CLI: copies a reference segmentation to -o."""
import argparse, json, os, shutil, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("-i", required=True)
parser.add_argument("-o", required=True)
parser.add_argument("--ml", action="store_true")
parser.add_argument("--fast", action="store_true")
parser.add_argument("--device", choices=["cpu", "gpu"], default="gpu")
parser.add_argument("--roi_subset", nargs="+")
parser.add_argument("-ta", default="total")
args = parser.parse_args()
assert args.ml and os.path.exists(args.i)
assert os.listdir(os.path.join(os.environ["TOTALSEG_HOME_DIR"], "nnunet", "results"))
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(vars(args)) + "\\n")
time.sleep(float(os.environ.get("STANDIN_SLEEP", "0")))
if os.environ.get("STANDIN_FAIL"):
    sys.exit("simulated failure: CUDA out of memory")
shutil.copy(os.environ["STANDIN_SEG"], args.o)
'''


@pytest.fixture
def weights(tmp_path, monkeypatch):
    home = tmp_path / "totalseg_home"
    results = home / "nnunet" / "results" / "Dataset291_fake" / "fold_0"
    results.mkdir(parents=True)
    (results / "checkpoint_final.pth").write_bytes(b"not really weights")
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    return home


@pytest.fixture
def stand_in(tmp_path, monkeypatch, shared_data):
    exe = tmp_path / "bin" / "TotalSegmentator"
    exe.parent.mkdir()
    exe.write_text(STAND_IN.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("TUMORCOT_TOTALSEG_BIN", str(exe))
    monkeypatch.setenv("STANDIN_LOG", str(log))
    monkeypatch.setenv("STANDIN_SEG", str(shared_data / "totalseg" / "example_seg.nii.gz"))
    return log


def _calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_stand_in_run_is_cached_and_loads(tmp_path, weights, stand_in, shared_data):
    ct_path = shared_data / "totalseg" / "example_ct_sm.nii.gz"
    options = SegmentOptions(fast=True, roi_subset=("liver", "spleen"))
    first = run_totalsegmentator(ct_path, tmp_path / "cache", case="c1", options=options)
    again = run_totalsegmentator(ct_path, tmp_path / "cache", case="c1", options=options)
    assert first == again and first.is_file()
    calls = _calls(stand_in)
    assert len(calls) == 1  # second call served from the cache
    assert calls[0]["fast"] and calls[0]["device"] == "cpu"
    assert calls[0]["roi_subset"] == ["liver", "spleen"] and calls[0]["ta"] == "total"
    ct = load_ct(ct_path, case="c1").image
    mask = load_mask(first, ct, case="c1", what="organs")
    assert mask.GetSize() == ct.GetSize()
    other = run_totalsegmentator(ct_path, tmp_path / "cache", case="c1",
                                 options=SegmentOptions(task="liver_segments"))
    assert other != first and _calls(stand_in)[-1]["ta"] == "liver_segments"
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
    assert info.value.case == "c5" and _calls(stand_in) == []


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
