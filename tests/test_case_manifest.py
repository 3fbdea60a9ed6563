import json

import pytest

from tumorcot.case_manifest import read_case_manifest
from tumorcot.errors import ManifestError
from tumorcot.schemas import CaseInput


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_rows_resolve_paths_and_parse_pathology(tmp_path):
    path = write(tmp_path, "m.csv",
                 "patient_id,study_id,ct,lesion_mask,lesion_labels,pathology\n"
                 "P1,S1,ct.nii.gz,les.nii.gz,1:tumor;2:cyst,behavior=malignant; T=T2; N=N0; M=M0\n")
    [case] = read_case_manifest(path)
    assert isinstance(case, CaseInput)
    assert case.ct == tmp_path / "ct.nii.gz" and case.lesion_mask == tmp_path / "les.nii.gz"
    assert case.lesion_labels == {1: "tumor", 2: "cyst"}
    assert (case.pathology.behavior, case.pathology.t, case.pathology.n, case.pathology.m) == ("malignant", "T2", "N0", "M0")


@pytest.mark.parametrize("row, field", [
    ("P1,,ct.nii.gz,", "study_id"),                       # a required field left empty
    ("P1,S1,ct.nii.gz,T=T9", "pathology"),                # not a T category
    ("P1,S1,ct.nii.gz,behavior=probably bad", "pathology"),  # behaviour must be benign|malignant
    ("P1,S1,ct.nii.gz,diagnosis", "pathology"),           # not key=value
])
def test_bad_rows_name_row_and_field_and_others_go_on(tmp_path, row, field):
    path = write(tmp_path, "m.csv", f"patient_id,study_id,ct,pathology\nP0,S0,a.nii.gz,\n{row}\n")
    good, bad = read_case_manifest(path)
    assert isinstance(good, CaseInput)
    assert isinstance(bad, ManifestError)
    assert "row 2" in str(bad) and field in str(bad)


def test_duplicate_patient_and_study_is_an_error_on_the_later_row(tmp_path):
    path = write(tmp_path, "m.csv", "patient_id,study_id,ct\nP1,S1,a.nii.gz\nP1,S2,b.nii.gz\nP1,S1,c.nii.gz\n")
    first, second_study, dup = read_case_manifest(path)
    assert isinstance(first, CaseInput) and isinstance(second_study, CaseInput)  # a second study is fine
    assert isinstance(dup, ManifestError) and "row 3" in str(dup) and "duplicate" in str(dup)


def test_jsonl_manifest_and_bad_json_line(tmp_path):
    lines = [json.dumps({"patient_id": "P1", "study_id": "S1", "ct": "a.nii.gz", "source": "x"}), "{not json",
             json.dumps({"patient_id": "P2", "study_id": "S1", "ct": "b.nii.gz", "colour": "red"})]
    path = write(tmp_path, "m.jsonl", "\n".join(lines) + "\n")
    ok, bad_json, unknown = read_case_manifest(path)
    assert isinstance(ok, CaseInput) and ok.source == "x"
    assert isinstance(bad_json, ManifestError) and "not JSON" in str(bad_json)
    assert isinstance(unknown, ManifestError) and "colour" in str(unknown)


def test_missing_columns_and_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="lacks the column"):
        read_case_manifest(write(tmp_path, "m.csv", "patient_id,ct\nP1,a.nii.gz\n"))
    with pytest.raises(ManifestError, match="does not exist"):
        read_case_manifest(tmp_path / "nope.csv")
