"""``tumorcot build --segmentation totalsegmentator`` through a stand-in TotalSegmentator
executable that honours the CLI contract (it copies the real reference segmentation of
../shared/data and logs when it ran): masks are made for rows without one, cached by CT content,
one job at a time on the GPU through the Prefect tag limit, and a clear error without weights."""

from __future__ import annotations

import json

import pytest

from ops_helpers import write_rows
from totalseg_standin import calls, install, make_weights
from tumorcot.flows.build import run_build
from tumorcot.flows.segment import GPU_TAG, SegmentationPlan
from tumorcot.pipeline import extract_facts
from tumorcot.schemas import CaseInput
from tumorcot.store.shards import read_manifest

@pytest.fixture
def stand_in(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(make_weights(tmp_path / "totalseg_home")))
    return install(tmp_path, monkeypatch, shared_data / "totalseg" / "example_seg.nii.gz")


def rows(shared_data):
    ts = shared_data / "totalseg"
    return [{"patient_id": "SEG-A", "study_id": "1", "ct": ts / "example_ct.nii.gz"},
            {"patient_id": "SEG-B", "study_id": "1", "ct": ts / "example_ct_sm.nii.gz"}]


def test_totalsegmentator_backend_one_gpu_job_at_a_time_cached(tmp_path, stand_in, shared_data, prefect_server,
                                                               monkeypatch):
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("STANDIN_SLEEP", "1.5")
    manifest = write_rows(tmp_path / "m.csv", rows(shared_data))
    plan = SegmentationPlan(backend="totalsegmentator", device="gpu")
    summary = run_build(manifest, tmp_path / "ds", concurrency=2, segmentation=plan)
    assert summary["ok"] == 2, summary["outcomes"]
    made = calls(stand_in)
    assert len(made) == 2 and all(c["device"] == "gpu" and c["ta"] == "total" for c in made)
    first, second = sorted(made, key=lambda c: c["start"])
    assert first["end"] <= second["start"]                  # never two jobs on the one GPU
    with get_client(sync_client=True) as client:
        assert client.read_concurrency_limit_by_tag(GPU_TAG).concurrency_limit == 1

    # the facts equal those measured from the same reference segmentation given as organ_mask
    ts = shared_data / "totalseg"
    reference = extract_facts(CaseInput(row=1, patient_id="SEG-A", study_id="1", ct=ts / "example_ct.nii.gz",
                                        organ_mask=ts / "example_seg.nii.gz"), b"s" * 32)
    facts = [json.loads(r) for r in _facts_json(tmp_path / "ds")]
    built = next(f for f in facts if f["ct"]["size"] == list(reference.ct.size))
    assert built["segmentation_backend"] == "totalsegmentator"
    assert {o["name"]: round(o["volume_ml"], 3) for o in built["organs"]} == \
        {o.name: round(o.volume_ml, 3) for o in reference.organs}
    assert read_manifest(tmp_path / "ds")["versions"]["segmentation"]["backend"] == "totalsegmentator"

    again = run_build(manifest, tmp_path / "ds", concurrency=2, segmentation=plan)
    assert again["unchanged"] == 2 and len(calls(stand_in)) == 2   # no second segmentation
    forced = run_build(manifest, tmp_path / "ds", concurrency=2, segmentation=plan, force=True)
    assert forced["ok"] == 2 and len(calls(stand_in)) == 2        # reprocessed, masks from the cache


def test_missing_weights_fail_the_case_clearly_and_the_batch_goes_on(tmp_path, stand_in, shared_data,
                                                                     prefect_server, monkeypatch):
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "no-weights-here"))
    given = dict(rows(shared_data)[1], organ_mask=shared_data / "totalseg" / "example_seg.nii.gz")
    manifest = write_rows(tmp_path / "m.csv", [rows(shared_data)[0], given])
    summary = run_build(manifest, tmp_path / "ds", segmentation={"backend": "totalsegmentator", "device": "cpu"})
    assert summary["ok"] == 1 and summary["failed"] == 1
    [failed] = [o for o in summary["outcomes"] if o["status"] == "failed"]
    assert failed["error_type"] == "SegmentationError" and "weights not found" in failed["reason"]
    assert "SEG-A" not in json.dumps(summary)
    assert calls(stand_in) == []


def _facts_json(dataset):
    import pyarrow.parquet as pq

    return [row["facts_json"] for path in sorted((dataset / "facts").glob("*.parquet"))
            for row in pq.read_table(path).to_pylist()]


def test_cpu_segmentations_are_not_serialised(tmp_path, stand_in, shared_data, prefect_server, monkeypatch):
    """The contrast that shows the GPU tag limit is what serialises the jobs above."""
    monkeypatch.setenv("STANDIN_SLEEP", "1.5")
    manifest = write_rows(tmp_path / "m.csv", rows(shared_data))
    summary = run_build(manifest, tmp_path / "ds", concurrency=2,
                        segmentation=SegmentationPlan(backend="totalsegmentator", device="cpu"))
    assert summary["ok"] == 2
    first, second = sorted(calls(stand_in), key=lambda c: c["start"])
    assert second["start"] < first["end"]
