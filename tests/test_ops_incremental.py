"""Incremental builds and single-patient regeneration through the real flows."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from ops_helpers import copy_dataset, listed_and_present, read_rows, records_by_id, write_rows
from tumorcot.store.private import default_state_dir

from tumorcot.errors import DatasetLockedError, RegenerationError
from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.ops.regenerate import patient_pseudonym, regenerate
from tumorcot.store.lock import dataset_lock
from tumorcot.store.shards import read_log, read_manifest, read_records
from tumorcot.ops.validate import validate_dataset

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    return write_phantom_cases(tmp_path_factory.mktemp("phantoms"), 4, seed=3, scale=4)


@pytest.fixture
def built(phantoms, tmp_path, monkeypatch):
    monkeypatch.setenv("TUMORCOT_SALT", "ops-test-salt")
    out = tmp_path / "ds"
    summary = run_build(phantoms, out)
    assert summary["failed"] == 0 and summary["assembly"] == "full"
    return out


def shard_mtimes(out: Path) -> dict[str, int]:
    return {f["path"]: (out / f["path"]).stat().st_mtime_ns for f in read_manifest(out)["files"]}


def test_unchanged_rebuild_writes_nothing(built, phantoms):
    before_manifest = (built / "manifest.json").read_bytes()
    before = shard_mtimes(built)
    again = run_build(phantoms, built)
    assert again["assembly"] == "unchanged" and again["unchanged"] == 4 and again["ok"] == 0
    assert shard_mtimes(built) == before and (built / "manifest.json").read_bytes() == before_manifest


def test_manifest_records_each_cases_input_hashes(built):
    cases = read_manifest(built)["cases"]
    assert len(cases) == 4
    for case in cases:
        assert {"ct", "organ_mask", "fields"} <= set(case["input_sha256"])
        assert case["key"] and case["written_by"] and case["patient_pseudo_id"].startswith("p-")


def test_changed_case_reprocessed_removed_case_leaves(built, phantoms, tmp_path):
    rows = read_rows(phantoms)
    rows[0]["pathology"] = "behavior=benign; diagnosis=hepatic cyst; organ=liver"   # a changed field
    edited = write_rows(phantoms.parent / "edited.csv", rows[:3])                     # case 3 removed
    summary = run_build(edited, built)
    assert summary["assembly"] == "incremental" and summary["ok"] == 1 and summary["unchanged"] == 2
    removed = patient_pseudonym(built, rows[3]["patient_id"])
    assert removed not in {r["patient_pseudo_id"] for r in read_records(built).to_pylist()}
    assert removed not in {c["patient_pseudo_id"] for c in read_manifest(built)["cases"]}
    # the incremental result equals a from-scratch build of the edited manifest (same salt)
    fresh = run_build(edited, tmp_path / "fresh")
    assert fresh["assembly"] == "full"
    assert records_by_id(built) == records_by_id(tmp_path / "fresh")
    assert read_log(built).num_rows == read_log(tmp_path / "fresh").num_rows
    assert validate_dataset(built)[0] == []
    listed, present = listed_and_present(built)
    assert listed == present


def test_regenerate_replaces_exactly_one_patient(built, phantoms):
    rows = read_rows(phantoms)
    target = patient_pseudonym(built, rows[1]["patient_id"])
    before = read_records(built).to_pylist()
    others_before = records_by_id_where(before, lambda r: r["patient_pseudo_id"] != target)
    old_case = {c["case_id"]: c for c in read_manifest(built)["cases"]}
    summary = regenerate(built, rows[1]["patient_id"], reason="prompt fix #12")
    assert summary["assembly"] == "incremental" and summary["patient_pseudo_id"] == target
    after = read_records(built).to_pylist()
    assert records_by_id_where(after, lambda r: r["patient_pseudo_id"] != target) == others_before
    assert {r["record_id"] for r in after if r["patient_pseudo_id"] == target} == \
        {r["record_id"] for r in before if r["patient_pseudo_id"] == target}
    new_case = {c["case_id"]: c for c in read_manifest(built)["cases"]}
    changed = {cid for cid in new_case if new_case[cid]["written_by"] != old_case[cid]["written_by"]}
    assert {new_case[c]["patient_pseudo_id"] for c in changed} == {target}
    notes = [t for t in read_log(built).to_pylist() if t["agent"] == "regenerate"]
    assert len(notes) == 1 and notes[0]["reasons"] == ["prompt fix #12"] and notes[0]["run_id"] == summary["run_id"]
    assert (built / "runs" / f"{summary['run_id']}.json").exists()
    assert validate_dataset(built)[0] == []
    assert rows[1]["patient_id"] not in (built / "runs" / f"{summary['run_id']}.json").read_text()


def records_by_id_where(records: list[dict], keep) -> dict[str, dict]:
    return {r["record_id"]: r for r in records if keep(r)}


def test_unknown_patient_is_a_clear_error_and_changes_nothing(built):
    before = {p: p.read_bytes() for p in built.rglob("*") if p.is_file()}
    with pytest.raises(RegenerationError, match="unknown patient") as error:
        regenerate(built, "nobody-with-this-id", reason="typo")
    after = {p: p.read_bytes() for p in built.rglob("*") if p.is_file()}
    assert after == before
    assert "nobody-with-this-id" not in str(error.value)   # the message names the pseudonym only


def test_regenerate_fails_clearly_or_waits_while_another_writer_holds_the_lock(built, phantoms):
    patient = read_rows(phantoms)[0]["patient_id"]
    manifest_before = (built / "manifest.json").read_bytes()
    with dataset_lock(built):
        with pytest.raises(DatasetLockedError):
            regenerate(built, patient, reason="while building", wait_s=0)
    assert (built / "manifest.json").read_bytes() == manifest_before

    held, release = threading.Event(), threading.Event()

    def writer():
        with dataset_lock(built):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    held.wait(10)
    threading.Timer(1.0, release.set).start()
    summary = regenerate(built, patient, reason="after the build", wait_s=60)
    assert release.is_set()          # it only got the lock once the other writer let go
    thread.join()
    assert summary["ok"] == 1


def test_regenerate_works_on_a_copied_dataset_without_the_case_manifest(built, phantoms, tmp_path):
    """The private case rows make regeneration independent of the original manifest file."""
    copy = tmp_path / "copy"
    copy_dataset(built, copy)
    summary = regenerate(copy, read_rows(phantoms)[2]["patient_id"], reason="moved dataset")
    assert summary["ok"] == 1 and validate_dataset(copy)[0] == []


def test_input_file_content_change_is_reprocessed_and_a_touch_is_not(phantoms, tmp_path, monkeypatch):
    monkeypatch.setenv("TUMORCOT_SALT", "ops-test-salt")
    cases = tmp_path / "cases"
    shutil.copytree(phantoms.parent, cases)
    manifest = cases / phantoms.name
    run_build(manifest, tmp_path / "ds")
    ct = cases / "case_002_ct.nii.gz"
    ct.write_bytes(ct.read_bytes())                           # new mtime, same content
    touched = run_build(manifest, tmp_path / "ds")
    assert touched["assembly"] == "unchanged" and touched["unchanged"] == 4
    shutil.copyfile(cases / "case_000_ct.nii.gz", ct)         # same grid, other content
    changed = run_build(manifest, tmp_path / "ds")
    assert changed["ok"] == 1 and changed["unchanged"] == 3 and changed["assembly"] == "incremental"
