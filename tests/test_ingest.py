"""``tumorcot ingest`` and named masks, on fixtures cut in the test from the real TotalSegmentator
example of ../shared/data (never committed volumes): a per-structure folder (TotalSegmentator /
AbdomenAtlas layout), nnU-Net raw folders with v1 (MSD liver) and v2 (KiTS) ``dataset.json``, and
the stand-in TotalSegmentator emitting a ``liver_vessels`` map with a tumour label."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from typer.testing import CliRunner

from totalseg_standin import calls, install, make_weights
from tumorcot.cli import app
from tumorcot.errors import ManifestError
from tumorcot.imaging.structures import resolve
from tumorcot.ingest.nnunet import label_names
from tumorcot.vocabulary import total_labels
from tumorcot.pipeline import extract_facts
from tumorcot.schemas import CaseInput
from tumorcot.store.private import state_dir

runner = CliRunner()


@pytest.fixture(scope="module")
def example(shared_data):
    ts = shared_data / "totalseg"
    seg = sitk.ReadImage(str(ts / "example_seg.nii.gz"))
    return ts / "example_ct_sm.nii.gz", seg, sitk.GetArrayFromImage(seg)   # the pair on one grid


def write_like(array: np.ndarray, reference: sitk.Image, path: Path) -> Path:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def ball_in(organ: np.ndarray, radius: int = 2) -> np.ndarray:
    """A ball of ``radius`` voxels around the organ voxel deepest inside it."""
    depth = ndimage.distance_transform_edt(organ)
    centre = np.unravel_index(np.argmax(depth), organ.shape)
    grid = np.indices(organ.shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2


def read_manifest_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def records_text(dataset: Path) -> list[tuple]:
    import pyarrow.dataset as ds

    table = ds.dataset(dataset / "data").to_table(columns=["task", "subtask", "question", "answer", "conclusion"])
    return sorted(tuple(r.values()) for r in table.to_pylist())


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("name, role, organs, kind", [
    ("gall_bladder", "organ", ("gallbladder",), None),                      # AbdomenAtlas spelling
    ("postcava", "organ", ("inferior_vena_cava",), None),                   # AbdomenAtlas IVC
    ("kidney_left.nii.gz", "organ", ("kidney_left",), None),                # TotalSegmentator name + suffix
    ("Kidney", "organ", ("kidney_left", "kidney_right"), None),             # KiTS: both sides, split
    ("liver_tumor", "lesion", ("liver",), "tumor"),                         # TotalSegmentator liver_vessels
    ("liver_cyst", "lesion", ("liver",), "cyst"),
    ("pancreatic_pdac", "lesion", ("pancreas",), "tumor"),                   # AbdomenAtlas 3.0
    ("colon cancer primaries", "lesion", ("colon",), "tumor"),              # MSD Task10
    ("tumour", "lesion", (), "tumor"),                                      # MSD: organ from the labels
    ("lung_left", "ignored", (), None),                                     # no whole-lung label
])
def test_structure_names_resolve_through_one_table(name, role, organs, kind):
    structure = resolve(name)
    assert (structure.role, structure.organs, structure.kind) == (role, organs, kind)


def test_unknown_name_is_not_guessed():
    with pytest.raises(KeyError):
        resolve("femur_head_left")


@pytest.mark.parametrize("labels, expected", [
    ({"0": "background", "1": "liver", "2": "cancer"}, {1: "liver", 2: "cancer"}),          # v1 (MSD)
    ({"background": 0, "kidney": 1, "tumor": 2, "cyst": 3}, {1: "kidney", 2: "tumor", 3: "cyst"}),  # v2 (KiTS)
])
def test_dataset_json_label_forms(labels, expected):
    assert label_names({"labels": labels}, where="t") == expected


def test_region_based_labels_are_refused():
    with pytest.raises(ManifestError, match="region-based"):
        label_names({"labels": {"background": 0, "kidney": [1, 2, 3], "tumor": 2}}, where="t")


# ---------------------------------------------------------------- per-structure folders

def test_totalseg_folder_equals_the_multilabel_build(tmp_path, example, prefect_server):
    ct, seg, labels = example
    case = tmp_path / "root" / "s0001"
    case.mkdir(parents=True)
    shutil.copy(ct, case / "ct.nii.gz")
    for value in np.unique(labels[labels > 0]):
        write_like(labels == value, seg, case / "segmentations" / f"{total_labels()[int(value)]}.nii.gz")

    result = invoke("ingest", "totalseg", tmp_path / "root", "-o", tmp_path / "folder.csv")
    assert result.exit_code == 0, result.output
    (row,) = read_manifest_rows(tmp_path / "folder.csv")
    assert Path(row["organ_mask"]).name == "segmentations" and row["lesion_mask"] == ""

    # the folder's organ map equals the multilabel map: same organ facts
    folder_case = CaseInput(row=1, patient_id="P", study_id="1", ct=case / "ct.nii.gz",
                            organ_mask=case / "segmentations")
    multi_case = CaseInput(row=1, patient_id="P", study_id="1", ct=ct,
                           organ_mask=ct.parent / "example_seg.nii.gz")
    salt = b"s" * 16
    assert extract_facts(folder_case, salt).organs == extract_facts(multi_case, salt).organs

    multi = tmp_path / "multi.csv"
    multi.write_text(f"patient_id,study_id,ct,organ_mask\ns0001,s0001,{ct},{ct.parent / 'example_seg.nii.gz'}\n")
    assert invoke("build", "-m", tmp_path / "folder.csv", "-o", tmp_path / "ds_folder").exit_code == 0
    # the same salt (same pseudonyms, so the same per-case record choices) for the second dataset
    (tmp_path / "ds_multi.private").mkdir(mode=0o700)
    shutil.copy(state_dir(tmp_path / "ds_folder") / "salt", tmp_path / "ds_multi.private" / "salt")
    assert invoke("build", "-m", multi, "-o", tmp_path / "ds_multi").exit_code == 0
    assert records_text(tmp_path / "ds_folder") == records_text(tmp_path / "ds_multi")


def test_atlas_case_with_a_lesion_file(tmp_path, example, prefect_server):
    ct, seg, labels = example
    ids = {name: i for i, name in total_labels().items()}
    case = tmp_path / "atlas" / "BDMAP_00000001"
    case.mkdir(parents=True)
    shutil.copy(ct, case / "ct.nii.gz")
    masks = case / "segmentations"
    liver = labels == ids["liver"]
    write_like(liver, seg, masks / "liver.nii.gz")
    write_like(labels == ids["gallbladder"], seg, masks / "gall_bladder.nii.gz")
    write_like(labels == ids["inferior_vena_cava"], seg, masks / "postcava.nii.gz")
    write_like(labels == ids["pancreas"], seg, masks / "pancreas.nii.gz")
    lesion = ball_in(liver)
    write_like(lesion, seg, masks / "liver_lesion.nii.gz")
    write_like(np.zeros_like(liver), seg, masks / "pancreatic_lesion.nii.gz")   # annotated, none found

    result = invoke("ingest", "atlas", tmp_path / "atlas", "-o", tmp_path / "atlas.csv")
    assert result.exit_code == 0, result.output
    (row,) = read_manifest_rows(tmp_path / "atlas.csv")
    assert row["patient_id"] == "BDMAP_00000001"
    assert row["organ_mask"] == row["lesion_mask"] == "atlas/BDMAP_00000001/segmentations"
    assert set(row["annotated_organs"].split(";")) == {"liver", "pancreas"}

    facts = extract_facts(CaseInput(row=1, patient_id="P", study_id="1", ct=case / "ct.nii.gz",
                                    organ_mask=masks, lesion_mask=masks), b"s" * 16)
    assert {o.name for o in facts.organs} == {"liver", "gallbladder", "inferior_vena_cava", "pancreas"}
    (found,) = facts.lesions
    assert (found.organ, found.kind, found.voxel_count) == ("liver", "lesion", int(lesion.sum()))

    build = invoke("build", "-m", tmp_path / "atlas.csv", "-o", tmp_path / "ds")
    assert build.exit_code == 0, build.output


def test_unknown_structure_is_reported_by_ingest_and_fails_only_its_case(tmp_path, example):
    ct, seg, labels = example
    for name in ("A", "B"):
        case = tmp_path / "root" / name
        case.mkdir(parents=True)
        shutil.copy(ct, case / "ct.nii.gz")
        write_like(labels == 5, seg, case / "segmentations" / "liver.nii.gz")
    write_like(labels == 5, seg, tmp_path / "root" / "B" / "segmentations" / "femur_head_left.nii.gz")
    result = invoke("ingest", "atlas", tmp_path / "root", "-o", tmp_path / "m.csv")
    assert result.exit_code == 1
    assert "unknown structure femur_head_left in 1 case(s), e.g. B" in " ".join(result.output.split())
    assert len(read_manifest_rows(tmp_path / "m.csv")) == 2


# ---------------------------------------------------------------- nnU-Net raw

def test_nnunet_v1_msd_liver(tmp_path, example, prefect_server):
    ct, seg, labels = example
    root = tmp_path / "Task03_Liver"
    liver = labels == 5
    tumour = ball_in(liver)
    label = np.where(liver, 1, 0)
    label[tumour] = 2
    write_like(label, seg, root / "labelsTr" / "liver_7.nii.gz")
    (root / "imagesTr").mkdir()
    shutil.copy(ct, root / "imagesTr" / "liver_7.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "name": "Liver", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "training": [{"image": "./imagesTr/liver_7.nii.gz", "label": "./labelsTr/liver_7.nii.gz"}]}))
    (tmp_path / "path.csv").write_text("case,diagnosis,behavior\nliver_7,hepatocellular carcinoma,malignant\n")

    result = invoke("ingest", "nnunet", root, "-o", tmp_path / "m.csv", "--pathology-csv", tmp_path / "path.csv")
    assert result.exit_code == 0, result.output
    (row,) = read_manifest_rows(tmp_path / "m.csv")
    assert row["mask_labels"] == "1:liver;2:cancer" and row["annotated_organs"] == "liver"
    assert row["pathology"] == "diagnosis=hepatocellular carcinoma; behavior=malignant"

    case = CaseInput(row=1, patient_id="P", study_id="1", ct=root / "imagesTr" / "liver_7.nii.gz",
                     organ_mask=root / "labelsTr" / "liver_7.nii.gz", lesion_mask=root / "labelsTr" / "liver_7.nii.gz",
                     mask_labels=row["mask_labels"])
    facts = extract_facts(case, b"s" * 16)
    assert [o.name for o in facts.organs] == ["liver"]
    assert facts.organs[0].voxel_count == int((label == 1).sum())
    (lesion,) = facts.lesions
    assert (lesion.kind, lesion.organ, lesion.voxel_count) == ("tumor", "liver", int(tumour.sum()))
    assert invoke("build", "-m", tmp_path / "m.csv", "-o", tmp_path / "ds").exit_code == 0


def test_nnunet_v2_kits_kidney_split_by_side(tmp_path, example):
    ct, seg, labels = example
    ids = {name: i for i, name in total_labels().items()}
    left, right = labels == ids["kidney_left"], labels == ids["kidney_right"]
    tumour, cyst = ball_in(left, 1), ball_in(right, 1)
    label = np.where(left | right, 1, 0)
    label[tumour], label[cyst] = 2, 3
    root = tmp_path / "Dataset220_KiTS"
    write_like(label, seg, root / "labelsTr" / "case_00000.nii.gz")
    (root / "imagesTr").mkdir()
    shutil.copy(ct, root / "imagesTr" / "case_00000_0000.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "kidney": 1, "tumor": 2, "cyst": 3},
        "numTraining": 1, "file_ending": ".nii.gz"}))

    result = invoke("ingest", "nnunet", root, "-o", tmp_path / "m.csv")
    assert result.exit_code == 0, result.output
    (row,) = read_manifest_rows(tmp_path / "m.csv")
    assert row["annotated_organs"] == "kidney_left;kidney_right"
    case = CaseInput(row=1, patient_id="P", study_id="1", ct=root / "imagesTr" / "case_00000_0000.nii.gz",
                     organ_mask=root / "labelsTr" / "case_00000.nii.gz",
                     lesion_mask=root / "labelsTr" / "case_00000.nii.gz", mask_labels=row["mask_labels"])
    facts = extract_facts(case, b"s" * 16)
    counts = {o.name: o.voxel_count for o in facts.organs}
    # the midline split gives back TotalSegmentator's own left and right kidneys (minus the lesions)
    assert counts == {"kidney_left": int((left & ~tumour).sum()), "kidney_right": int((right & ~cyst).sum())}
    hosts = {lesion.kind: lesion.organ for lesion in facts.lesions}
    assert hosts == {"tumor": "kidney_left", "cyst": "kidney_right"}


def test_nnunet_refuses_non_ct_channels(tmp_path):
    root = tmp_path / "mr"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2"}, "labels": {"background": 0}}))
    result = invoke("ingest", "nnunet", root, "-o", tmp_path / "m.csv")
    assert result.exit_code == 2 and "single-channel CT" in result.output


# ---------------------------------------------------------------- TotalSegmentator lesion subtasks

def test_liver_vessels_tumour_becomes_a_model_predicted_lesion(tmp_path, example, monkeypatch, prefect_server):
    import pyarrow.dataset as ds

    ct, seg, labels = example
    liver = labels == 5
    tumour = ball_in(liver)
    vessels = np.zeros_like(labels)
    vessels[liver & ~tumour & (np.indices(liver.shape)[2] % 7 == 0)] = 1
    vessels[tumour] = 2
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(make_weights(tmp_path / "home")))
    log = install(tmp_path, monkeypatch, ct.parent / "example_seg.nii.gz")
    monkeypatch.setenv("STANDIN_SEG_LIVER_VESSELS", str(write_like(vessels, seg, tmp_path / "lv.nii.gz")))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"patient_id,study_id,ct\nP1,1,{ct}\n")

    result = invoke("build", "-m", manifest, "-o", tmp_path / "ds", "--segmentation", "totalsegmentator",
                    "--seg-subtasks", "liver_vessels")
    assert result.exit_code == 0, result.output
    assert sorted(c["ta"] for c in calls(log)) == ["liver_vessels", "total"]
    facts = [json.loads(r["facts_json"]) for r in ds.dataset(tmp_path / "ds" / "facts").to_table().to_pylist()]
    (lesion,) = facts[0]["lesions"]
    assert (lesion["kind"], lesion["organ"], lesion["provenance"]) == ("tumor", "liver", "model-predicted")
    assert lesion["voxel_count"] == int(tumour.sum())
    records = ds.dataset(tmp_path / "ds" / "data").to_table(columns=["lesion_id", "lesion_provenance"]).to_pylist()
    about_lesion = [r for r in records if r["lesion_id"]]
    assert about_lesion and all(r["lesion_provenance"] == "model-predicted" for r in about_lesion)
