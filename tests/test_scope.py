"""Labels and scope, through ``tumorcot build`` on the real TotalSegmentator example CT.

Probes built here from its organ segmentation: the gallbladder given as a liver lesion (real
fluid), a lesion in the right kidney labelled ``organ=kidney``, two right-kidney lesions with
their own labels, lesions in both kidneys under one ``organ=kidney`` label (ambiguous), an empty
lesion mask annotated for the liver only (a verified-negative study), and STS_001 with a given T
that disagrees with its size.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from typer.testing import CliRunner

from tumorcot.cli import app
from tumorcot.store.shards import read_manifest, read_records
from tumorcot.vocabulary import total_labels

pytestmark = pytest.mark.usefixtures("prefect_server")
IDS = {name: i for i, name in total_labels().items()}
FIELDS = ["patient_id", "study_id", "ct", "organ_mask", "lesion_mask", "pathology", "lesion_pathology",
          "annotated_organs", "source"]


def ball_in(organ: np.ndarray, radius: int, shift: int = 0) -> np.ndarray:
    """A ball of ``radius`` voxels around the voxel deepest inside ``organ``, shifted along i."""
    depth = ndimage.distance_transform_edt(organ)
    k, j, i = np.unravel_index(np.argmax(depth), organ.shape)
    zz, yy, xx = np.indices(organ.shape)
    return ((zz - k) ** 2 + (yy - j) ** 2 + (xx - i - shift) ** 2 <= radius ** 2) & organ


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    ts, sts = shared_data / "totalseg", shared_data / "ibsi_sts" / "STS_001"
    root = tmp_path_factory.mktemp("scope")
    seg = sitk.ReadImage(str(ts / "example_seg.nii.gz"))
    labels = sitk.GetArrayFromImage(seg)

    def write(array, name):
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        image.CopyInformation(seg)
        sitk.WriteImage(image, str(root / name))
        return root / name

    gallbladder = labels == IDS["gallbladder"]
    as_liver = labels.copy()
    as_liver[gallbladder] = IDS["liver"]
    right, left = labels == IDS["kidney_right"], labels == IDS["kidney_left"]
    two = ball_in(right, 2, -4).astype(np.uint8) + 2 * ball_in(right, 3, 4).astype(np.uint8)
    common = {"study_id": "1", "ct": ts / "example_ct_sm.nii.gz", "organ_mask": ts / "example_seg.nii.gz"}
    rows = [
        {**common, "patient_id": "GB", "organ_mask": write(as_liver, "gb_as_liver_seg.nii.gz"),
         "lesion_mask": write(gallbladder, "gb.nii.gz"), "annotated_organs": "liver", "source": "gallbladder"},
        {**common, "patient_id": "KID", "lesion_mask": write(ball_in(right, 3), "kidney.nii.gz"),
         "pathology": "organ=kidney; diagnosis=renal cell carcinoma; behavior=malignant; T=T1a",
         "annotated_organs": "kidney", "source": "kidney"},
        {**common, "patient_id": "TWO", "lesion_mask": write(two, "two.nii.gz"), "source": "two",
         "lesion_pathology": "1: diagnosis=simple renal cyst, behavior=benign | "
                             "2: diagnosis=renal cell carcinoma, behavior=malignant"},
        {**common, "patient_id": "AMBIG", "lesion_mask": write(ball_in(right, 3) | ball_in(left, 3), "both.nii.gz"),
         "pathology": "organ=kidney; diagnosis=renal cell carcinoma", "source": "ambiguous"},
        {**common, "patient_id": "NEG", "lesion_mask": write(np.zeros_like(labels), "empty.nii.gz"),
         "annotated_organs": "liver", "source": "negative"},
        {"patient_id": "STS", "study_id": "1", "ct": sts / "CT_image.nii.gz", "lesion_mask": sts / "CT_mask.nii.gz",
         "pathology": "behavior=malignant; diagnosis=soft-tissue sarcoma; T=T2", "source": "sts"},
    ]
    manifest = root / "cases.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in FIELDS})
    # a high negative share keeps the negative records of the lesion-free study (kept with that probability);
    # every record (--mix off): the tests look for each label's records, which a family mix would thin
    result = CliRunner().invoke(app, ["build", "-m", str(manifest), "-o", str(root / "ds"), "--allow-failures",
                                      "--negative-share", "0.95", "--mix", "off"])
    assert result.exit_code == 0, result.output
    records = read_records(root / "ds").to_pylist()
    by_source: dict[str, list[dict]] = {}
    for record in records:
        by_source.setdefault(record["source"], []).append(record)
    return by_source, read_manifest(root / "ds"), root


def one(records, subtask, organ=None):
    hits = [r for r in records if r["subtask"] == subtask and (organ is None or r["organ"] == organ)]
    assert len(hits) == 1, [(r["subtask"], r["organ"]) for r in records]
    return hits[0]


def test_gallbladder_given_as_a_liver_lesion_is_fluid_never_malignant_and_never_staged(built):
    records = built[0]["gallbladder"]
    assert "cystic" in one(records, "content")["conclusion"].lower()   # in whichever answer form
    report = one(records, "organ_report", "liver")
    impression = next(s for s in report["steps"] if s["stage"] == "impression")
    leading = impression["kg_node_ids"][0]
    assert leading in ("impression:liver:simple_cyst", "impression:liver:indeterminate")
    assert "carcinoma" not in impression["text"].split(";")[0]       # no malignant leading impression
    assert not any(r["task"] == "tnm_staging" for r in records)       # no T
    assert "non-contrast CT" in report["answer"]                       # the phase caveat travels with it


def test_organ_kidney_resolves_to_the_side_holding_the_lesion(built):
    records = built[0]["kidney"]
    pathology = one(records, "pathology")
    assert pathology["organ"] == "kidney_right"
    # the given label is question context, and the target compares it with the imaging impressions
    assert pathology["question"].startswith("Pathology report: renal cell carcinoma, malignant. ")
    assert "the pathology report's renal cell carcinoma" in pathology["answer"]
    assert "Given" not in pathology["answer"] and "No pathology report is given" not in pathology["answer"]
    tnm = one(records, "tnm")
    assert "T1a" in tnm["question"] and "T1a by size; report T1a agrees" in tnm["answer"]
    # the left kidney was annotated (organ word 'kidney' = both sides): a verified negative, in
    # the multiple-choice form or any of the bank's answer forms for no lesion
    import jinja2

    from tumorcot.prompts import forms

    negatives = {jinja2.Template(line).render(n=0, organ="left kidney") for line in forms("answers/presence.j2")}
    presence = one(records, "presence", "kidney_left")
    assert presence["negative"] and presence["answer"] in {"No"} | negatives


def test_two_lesions_keep_their_own_labels(built):
    records = [r for r in built[0]["two"] if r["subtask"] == "pathology"]
    assert len(records) == 2
    by_label = {("simple renal cyst" in r["question"]): r for r in records}
    cyst, rcc = by_label[True], by_label[False]
    assert "renal cell carcinoma" in rcc["question"] and "renal cell carcinoma" not in cyst["question"]
    assert cyst["lesion_id"] != rcc["lesion_id"]
    assert "the pathology report's simple renal cyst is among the imaging impressions" in cyst["answer"]
    # lesions are named by size and place, never by id
    assert not any(" L1" in r["question"] + r["answer"] or " L2" in r["question"] + r["answer"]
                   for r in built[0]["two"])


def test_ambiguous_organ_kidney_is_a_row_error_and_the_batch_goes_on(built):
    _, manifest, _ = built
    [failure] = [f for f in manifest["failures"]]
    assert "ambiguous" in failure["reason"] and "kidney_left, kidney_right" in failure["reason"]
    assert "ambiguous" not in built[0]


def test_annotated_liver_only_gives_verified_negatives_for_the_liver_and_no_other_claim(built):
    lesion_tasks = {"lesion_attribute", "cot_report", "pathology", "tnm_staging"}
    records = [r for r in built[0]["negative"] if r["task"] in lesion_tasks]
    # presence, count and organ report of the liver, each kept with p = 0.95: at least one survives
    assert records and {r["organ"] for r in records} == {"liver"}      # no lesion claim about the spleen
    others = [r for r in built[0]["negative"] if r["task"] not in lesion_tasks | {"localization"}]
    assert not [r for r in others if "lesion" in (r["answer"] + r["conclusion"]).lower()]  # organ-level only
    absent = ("no focal lesion", "free of focal lesion")   # the answer bank's wordings of absence
    assert all(r["negative"] and any(a in r["conclusion"].lower() for a in absent) for r in records), \
        [r["conclusion"] for r in records]
    # a case without annotated_organs claims negatives for every organ it has a mask for
    assert "spleen" in {r["organ"] for r in built[0]["two"] if r["subtask"] == "presence"}


def test_a_given_t_that_disagrees_with_the_measured_size_is_flagged(built):
    tnm = one(built[0]["sts"], "tnm")
    assert "T2" in tnm["question"]
    assert "T3 by size; report T2 disagrees (flagged)" in tnm["answer"]   # in whichever answer form
    assert "tcheck:L1.agrees" in tnm["steps"][-1]["fact_ids"]
    assert "N0" not in tnm["answer"] and "Given" not in tnm["answer"]
