"""The synthetic phantom: files, manifest, determinism."""

from __future__ import annotations

import csv

import numpy as np
import SimpleITK as sitk

from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.imaging.phantom import make_phantom, write_phantom_cases
from tumorcot.schemas.case import PathologyLabels


def test_write_phantom_cases_manifest(tmp_path):
    manifest = write_phantom_cases(tmp_path, 4, seed=3)
    rows = list(csv.DictReader(open(manifest)))
    assert [r["patient_id"] for r in rows] == [f"phantom-3-{i:03d}" for i in range(4)]
    assert set(rows[0]) == {"patient_id", "study_id", "ct", "organ_mask", "lesion_mask",
                            "lesion_labels", "report", "pathology", "source"}
    assert all(r["source"] == "synthetic-phantom" for r in rows)
    assert rows[1]["pathology"].startswith("behavior=malignant; diagnosis=pancreatic")
    # case 3 has no lesion: no lesion mask at all (an empty one would be an input error)
    assert rows[3]["lesion_labels"] == rows[3]["pathology"] == rows[3]["lesion_mask"] == ""
    for row in rows:
        PathologyLabels.parse(row["pathology"])  # valid labels or none
        ct = load_ct(tmp_path / row["ct"], case=row["patient_id"])
        assert ct.image.GetSize() == (160, 160, 80)
        if row["lesion_mask"]:
            lesions = load_mask(tmp_path / row["lesion_mask"], ct.image, case="c", what="lesions")
            assert lesions.GetPixelID() == sitk.sitkUInt8
    directions = {load_ct(tmp_path / r["ct"], case="c").image.GetDirection()[0] for r in rows}
    assert directions == {1.0, -1.0}  # both LPS and RAS-like storage


def test_make_phantom_is_deterministic():
    a = make_phantom(11)
    b = make_phantom(11)
    assert np.array_equal(sitk.GetArrayViewFromImage(a[0]), sitk.GetArrayViewFromImage(b[0]))
    assert a[3] == b[3]
