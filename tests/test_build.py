"""End to end through the Prefect flow: real CT, phantom demo, bad inputs, shard integrity."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import SimpleITK as sitk

from tumorcot.flows.build import run_build
from tumorcot.store.private import default_state_dir
from tumorcot.store.shards import read_log, read_manifest, read_records
from tumorcot.ops.validate import validate_dataset

pytestmark = pytest.mark.usefixtures("prefect_server")

# These tests read records of every family; the default family mix would publish a share of them.
EVERY_RECORD = {"family_mix": None}


def write_manifest(path: Path, rows: list[dict]) -> Path:
    fields = ["patient_id", "study_id", "ct", "organ_mask", "lesion_mask", "lesion_labels", "pathology", "source"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})
    return path


def facts_of(out: Path) -> list[dict]:
    table = ds.dataset(out / "facts").to_table().to_pylist()
    return [json.loads(r["facts_json"]) for r in table]


@pytest.fixture(scope="module")
def totalseg_build(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("totalseg")
    ts = shared_data / "totalseg"
    manifest = write_manifest(out / "cases.csv", [
        {"patient_id": "TS-0001", "study_id": "1", "ct": ts / "example_ct_sm.nii.gz",
         "organ_mask": ts / "example_seg.nii.gz", "source": "TotalSegmentator example"}])
    return out, run_build(manifest, out / "ds", options=EVERY_RECORD)


def test_real_totalsegmentator_example_measures_organs(totalseg_build):
    out, summary = totalseg_build
    assert summary["ok"] == 1 and summary["failed"] == 0
    [facts] = facts_of(out / "ds")
    liver = next(o for o in facts["organs"] if o["name"] == "liver")
    assert liver["voxel_count"] == 38634
    assert liver["volume_ml"] == pytest.approx(38634 * 27 / 1000, rel=1e-6)  # 3 mm isotropic voxels
    assert 30 < liver["mean_hu"] < 60                                          # non-contrast liver ~45 HU
    for organ in facts["organs"]:
        box = organ["bbox"]["normalized"]
        assert all(0.0 <= v <= 1.0 for v in box) and box[0] < box[3] and box[1] < box[4] and box[2] <= box[5]
        assert all(0 <= v < n for v, n in zip(organ["bbox"]["voxel_max"], facts["ct"]["size"]))
    records = read_records(out / "ds").to_pylist()
    localized = {r["organ"] for r in records if r["subtask"] == "organ_box"}
    # organs cut by the field of view (truncated) get no box claim; the others do
    truncated = {o["name"] for o in facts["organs"] if o["truncated"]}
    assert {"liver", "kidney_left", "kidney_right"} <= truncated  # this CT ends mid-abdomen
    assert "pancreas" in localized and not localized & truncated
    assert facts["contrast_phase"] == "non_contrast"
    assert all(r["generator"] == "offline-kg" and not r["synthetic"] for r in records)
    # no lesion mask: nothing may claim that an organ is lesion-free
    assert not any(r["task"] == "cot_report" or r["subtask"] == "count" for r in records)


def test_shards_load_with_pyarrow_and_datasets(totalseg_build):
    out, _ = totalseg_build
    table = ds.dataset(out / "ds" / "data", format="parquet").to_table()
    assert table.num_rows == read_manifest(out / "ds")["record_count"] > 0
    from datasets import load_dataset

    loaded = load_dataset("parquet", data_dir=str(out / "ds" / "data"), cache_dir=str(out / "hf-cache"))
    assert sum(split.num_rows for split in loaded.values()) == table.num_rows
    assert set(loaded) <= {"train", "validation", "test"}


def test_no_raw_identifier_in_any_output(totalseg_build):
    out, _ = totalseg_build
    for path in (out / "ds").rglob("*"):
        if path.is_file():   # everything in the dataset folder is publishable
            data = path.read_bytes()
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq
                data = json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
            assert b"TS-0001" not in data, path


@pytest.mark.parametrize("with_empty_organ_mask, expected_organ", [
    (False, "unknown_organ"),   # no organ segmentation: the host cannot be known
    (True, "outside_organs"),   # a segmentation that found no abdominal organ in this limb crop
])
def test_real_sarcoma_tumour_volume_and_hu(shared_data, tmp_path, with_empty_organ_mask, expected_organ):
    sts = shared_data / "ibsi_sts" / "STS_001"
    row = {"patient_id": "STS-001", "study_id": "1", "ct": sts / "CT_image.nii.gz",
           "lesion_mask": sts / "CT_mask.nii.gz", "lesion_labels": "1:tumor",
           "pathology": "behavior=malignant; diagnosis=soft-tissue sarcoma"}
    if with_empty_organ_mask:
        mask = sitk.ReadImage(str(sts / "CT_mask.nii.gz")) * 0
        sitk.WriteImage(sitk.Cast(mask, sitk.sitkUInt8), str(tmp_path / "organs.nii.gz"))
        row["organ_mask"] = tmp_path / "organs.nii.gz"
    summary = run_build(write_manifest(tmp_path / "m.csv", [row]), tmp_path / "ds", options=EVERY_RECORD)
    assert summary["ok"] == 1, summary["outcomes"]
    [facts] = facts_of(tmp_path / "ds")
    [lesion] = facts["lesions"]
    assert lesion["volume_ml"] == pytest.approx(365.0, rel=0.01)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(sts / "CT_image.nii.gz")))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(sts / "CT_mask.nii.gz"))) > 0
    assert lesion["mean_hu"] == pytest.approx(float(ct[mask].mean()), abs=0.05)
    assert lesion["organ"] == expected_organ and lesion["kind"] == "tumor"
    records = read_records(tmp_path / "ds").to_pylist()
    sizes = [r for r in records if r["subtask"] == "size"]
    assert sizes and all("pancreas" not in r["answer"] and "liver" not in r["answer"] for r in sizes)
    report = [r for r in records if r["subtask"] == "organ_report"]
    assert [r["organ"] for r in report] == [expected_organ]
    assert "soft-tissue sarcoma" in report[0]["steps"][-1]["text"]   # given label, cited


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory):
    from tumorcot.imaging.phantom import write_phantom_cases

    out = tmp_path_factory.mktemp("demo") / "ds"
    manifest = write_phantom_cases(out.with_name("inputs"), 3, seed=0)   # inputs never inside the dataset
    return out, run_build(manifest, out)


def test_demo_shards_validate_and_a_flipped_byte_is_caught(demo_build, tmp_path):
    out, summary = demo_build
    assert summary["failed"] == 0 and summary["records"] > 0
    problems, counts = validate_dataset(out)
    assert problems == [] and counts["records"] == summary["records"]
    records = read_records(out).to_pylist()
    assert all(r["synthetic"] for r in records)
    assert {"localization", "lesion_attribute", "cot_report"} <= {r["task"] for r in records}
    assert len(read_log(out)) >= 3
    # corrupt one byte of a copy of the first shard
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("cases"))
    shard = copy / read_manifest(copy)["files"][0]["path"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    problems, _ = validate_dataset(copy)
    assert problems and shard.name in problems[0] and "sha256" in problems[0]


def test_unchanged_rebuild_reuses_every_case(demo_build):
    out, first = demo_build
    before = {f["path"]: f["sha256"] for f in read_manifest(out)["files"] if f["kind"] == "records"}
    again = run_build(out.with_name("inputs") / "manifest.csv", out)
    assert again["ok"] == 0 and again["unchanged"] == first["ok"] and again["records"] == first["records"]
    after = {f["path"]: f["sha256"] for f in read_manifest(out)["files"] if f["kind"] == "records"}
    assert before == after


def test_bad_inputs_fail_alone_with_clear_reasons(shared_data, tmp_path):
    ts = shared_data / "totalseg"
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes((ts / "example_ct_sm.nii.gz").read_bytes()[:20000])
    empty = sitk.Image(sitk.ReadImage(str(ts / "example_seg.nii.gz")).GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(sitk.ReadImage(str(ts / "example_seg.nii.gz")))
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    good = {"ct": ts / "example_ct_sm.nii.gz", "organ_mask": ts / "example_seg.nii.gz"}
    rows = [
        {"patient_id": "GOOD", "study_id": "1", **good},
        {"patient_id": "CORRUPT", "study_id": "1", "ct": corrupt},
        {"patient_id": "OTHERGRID", "study_id": "1", "ct": ts / "example_ct_sm.nii.gz",
         "lesion_mask": shared_data / "ibsi_sts" / "STS_019" / "CT_mask.nii.gz"},
        {"patient_id": "EMPTY", "study_id": "1", **good, "lesion_mask": tmp_path / "empty.nii.gz"},
        {"patient_id": "MISSING", "study_id": "1", "ct": tmp_path / "nowhere.nii.gz"},
        {"patient_id": "GOOD", "study_id": "1", **good},
    ]
    summary = run_build(write_manifest(tmp_path / "m.csv", rows), tmp_path / "ds")
    by_row = {o["case_label"]: o for o in summary["outcomes"]}
    assert by_row["row 1"]["status"] == "ok"
    expected = {"row 2": ("CaseInputError", "corrupt"), "row 3": ("GeometryError", "physical space"),
                "row 4": ("CaseInputError", "empty"), "row 5": ("CaseInputError", "not found"),
                "row 6": ("ManifestError", "duplicate")}
    for row, (kind, words) in expected.items():
        assert by_row[row]["status"] == "failed", by_row[row]
        assert by_row[row]["error_type"] == kind and words in by_row[row]["reason"].lower(), by_row[row]
    assert validate_dataset(tmp_path / "ds")[0] == []
    failures = read_manifest(tmp_path / "ds")["failures"]
    assert len(failures) == 5
    assert "CORRUPT" not in json.dumps(summary) and "OTHERGRID" not in json.dumps(failures)


def test_published_files_are_readable_and_the_private_folder_is_not(demo_build):
    import stat

    out, _ = demo_build
    for name in ("manifest.json", "README.md", "croissant.json", "stats.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) & 0o044 == 0o044, name   # group/other can read
    shards = [out / f["path"] for f in read_manifest(out)["files"]]
    assert shards and all(stat.S_IMODE(p.stat().st_mode) & 0o044 == 0o044 for p in shards), shards
    private = default_state_dir(out)
    assert not (out / ".tumorcot").exists() and not (out / "llm-cache").exists()
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE((private / "salt").stat().st_mode) == 0o600
    done = next(private.glob("cases/*/done.json"))
    assert stat.S_IMODE(done.stat().st_mode) == 0o600
