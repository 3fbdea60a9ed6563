"""Kidney size comparison (organ_measure / kidney_compare): the kidneys' lengths along their
principal axes against the guideline's 1.5 cm size discrepancy, not a volume gap of measurement
noise. Expected lengths come from the planted geometry or from an SVD of the mask's voxel
positions computed here; the label from the cut-off typed here from its source."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from tumorcot.agents.calibrator import calibrate
from tumorcot.agents.offline import OfflineGenerator
from tumorcot.case_manifest import read_case_manifest
from tumorcot.imaging.diameters import principal_length_mm
from tumorcot.imaging.phantom import make_phantom, write_phantom_cases
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import extract_facts
from tumorcot.schemas import CaseInput, GenerationOptions
from tumorcot.store.keys import input_hashes
from tumorcot.vocabulary import label_id

KG = load_kg()
# Hirsch AT et al., ACC/AHA 2005 PAD guideline (Circulation 2006;113:e463), renal arterial disease,
# class I clue: "a discrepancy in size between the 2 kidneys of greater than 1.5 cm".
SIZE_GAP_CM = 1.5
KIDNEYS = ("kidney_left", "kidney_right")


def facts_of(case):
    return extract_facts(case, b"t" * 32, input_hashes(case))


def generate(facts):
    accepted, rejected = calibrate(OfflineGenerator(KG, GenerationOptions()).generate(facts), facts, KG)
    assert not rejected, [(r.subtask, why) for r, why in rejected]
    return accepted


def kidney_record(facts):
    found = [r for r in generate(facts) if r.subtask == "kidney_compare"]
    assert len(found) <= 1
    return found[0] if found else None


def svd_length_mm(organs: sitk.Image, name: str) -> float:
    """Independent length: physical voxel centres (index -> LPS through origin, direction and
    spacing), first right-singular vector, extent + half a voxel along it (the diameter edge rule)."""
    kji = np.argwhere(sitk.GetArrayViewFromImage(organs) == label_id(name))
    ijk = kji[:, ::-1].astype(float)
    direction = np.asarray(organs.GetDirection()).reshape(3, 3)
    spacing = np.asarray(organs.GetSpacing())
    points = np.asarray(organs.GetOrigin()) + (ijk * spacing) @ direction.T
    centred = points - points.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    along = centred @ axis
    voxel_axis = direction.T @ axis      # the axis in voxel coordinates, for the edge width
    return float(along.max() - along.min() + 0.5 * np.abs(voxel_axis) @ spacing)


def test_principal_length_follows_an_oblique_long_axis():
    """A planted 10 cm ellipsoid tilted 35 degrees in the coronal plane: its length is found along
    the tilt; its craniocaudal extent alone would say about 8.5 cm."""
    spacing = (1.5, 1.5, 2.5)   # (x, y, z) mm
    z, y, x = np.mgrid[-30:31, -30:31, -30:31].astype(float)
    x, y, z = x * spacing[0], y * spacing[1], z * spacing[2]
    a = np.radians(35.0)
    u, w = x * np.cos(a) + z * np.sin(a), -x * np.sin(a) + z * np.cos(a)   # w: the long axis
    mask = (u / 20.0) ** 2 + (y / 25.0) ** 2 + (w / 50.0) ** 2 <= 1.0
    length = principal_length_mm(mask, spacing)
    assert length == pytest.approx(100.0, abs=spacing[2])
    kk = np.flatnonzero(mask.any(axis=(1, 2)))
    assert (kk.max() - kk.min() + 1) * spacing[2] < 90.0   # the craniocaudal extent falls short


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    manifest = write_phantom_cases(tmp_path_factory.mktemp("kidneys") / "cases", 8, seed=3, scale=4)
    cases = read_case_manifest(manifest)
    return [(c, facts_of(c)) for c in cases]


def test_phantom_kidney_lengths_match_the_planted_and_an_independent_measure(phantom):
    for case, facts in phantom:
        organs = sitk.ReadImage(str(case.organ_mask))
        for name in KIDNEYS:
            measured = facts.organ(name).length_mm
            assert measured == pytest.approx(svd_length_mm(organs, name), abs=0.06), (case.patient_id, name)
    # planted: 9 cm kidneys (semi-axis 45 mm), case 8k+7 a right kidney at 0.7 scale (6.3 cm);
    # the ellipsoid's thin tips fall between 12 mm slices, so within two slices
    small = phantom[7][1].organ("kidney_right").length_mm
    assert small == pytest.approx(63.0, abs=24.0)
    assert phantom[7][1].organ("kidney_left").length_mm == pytest.approx(90.0, abs=24.0)
    assert phantom[7][1].organ("kidney_left").length_mm - small > 10 * SIZE_GAP_CM


def test_label_follows_the_length_gap_and_the_cut_off_both_ways(phantom):
    outcomes = set()
    for case, facts in phantom:
        organs = sitk.ReadImage(str(case.organ_mask))
        left, right = (round(svd_length_mm(organs, n) / 10, 1) for n in KIDNEYS)
        gap = abs(left - right)
        rec = kidney_record(facts)
        assert rec is not None, case.patient_id
        discrepancy = gap > SIZE_GAP_CM
        outcomes.add(discrepancy)
        assert f"{left:.1f} cm" in rec.steps[0].text and f"{right:.1f} cm" in rec.steps[0].text
        verdict = rec.steps[-1].text
        assert f"{SIZE_GAP_CM:g} cm" in verdict and f"{gap:.1f} cm" in verdict
        if discrepancy:
            small, big = ("right kidney", "left kidney") if right < left else ("left kidney", "right kidney")
            assert "exceeds" in verdict and f"the {small} smaller than the {big}" in verdict
            answer = rec.answer.lower()
            assert "similar" not in answer and big in answer
            assert f"{small} is larger" not in answer and f"{big} is smaller" not in answer
        else:
            assert "no size discrepancy" in verdict and "smaller" not in rec.answer and "larger" not in rec.answer
        # value -> supporting volumes -> gap -> cut-off -> label, each citing its facts
        assert [s.follows_from for s in rec.steps] == [[], [0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]
        assert rec.steps[3].fact_ids == ["case.threshold_kidney_length_gap_cm"]
        assert "organ:kidney_left.length_finding" in rec.steps[-1].fact_ids
        assert {"organ:kidney_left.volume_ml", "organ:kidney_right.volume_ml"} == set(rec.steps[1].fact_ids)
        assert " mL" not in verdict   # volumes support, they do not decide
    assert outcomes == {True, False}


def _phantom_case(tmp_path, crop=None, drop=None):
    """A lesion-free scale-4 phantom; ``crop``: voxel slices (i, j, k) of the kept part; ``drop``:
    an organ erased from the organ mask."""
    ct, organs, _, _ = make_phantom(5, plan="none", shape=(40, 40, 20), spacing_mm=(8.0, 8.0, 12.0))
    if crop is not None:
        ct, organs = ct[crop], organs[crop]
    if drop is not None:
        organs = sitk.ChangeLabel(organs, changeMap={label_id(drop): 0})
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(organs, str(tmp_path / "organs.nii.gz"))
    return facts_of(CaseInput(row=1, patient_id="p", study_id="s", ct=tmp_path / "ct.nii.gz",
                              organ_mask=tmp_path / "organs.nii.gz"))


def test_no_comparison_when_a_kidney_is_truncated_or_missing(tmp_path):
    whole = _phantom_case(tmp_path)
    assert kidney_record(whole) is not None
    # x from index 10 on: the right kidney (x -85..-35 mm, index 8.9..15.1) is cut by the field of view
    cut = _phantom_case(tmp_path, crop=(slice(10, None), slice(None), slice(None)))
    assert cut.organ("kidney_right").truncated and not cut.organ("kidney_left").truncated
    assert cut.organ("kidney_right").length_mm is not None            # measured, a lower bound only
    missing = _phantom_case(tmp_path, drop="kidney_left")
    assert missing.organ("kidney_left") is None
    for facts in (cut, missing):
        assert kidney_record(facts) is None
        assert not [k for k in facts.fact_table() if "length_finding" in k or "gap_right" in k]


def test_real_ct_kidneys_are_measured_but_not_compared(shared_data):
    """The TotalSegmentator example ends mid-abdomen: both kidneys touch the field of view's
    bottom, their lengths are lower bounds, so no comparison record."""
    ts = shared_data / "totalseg"
    facts = facts_of(CaseInput(row=1, patient_id="TS-0001", study_id="1", ct=ts / "example_ct.nii.gz",
                               organ_mask=ts / "example_seg.nii.gz"))
    organs = sitk.ReadImage(str(ts / "example_seg.nii.gz"))
    for name in KIDNEYS:
        kidney = facts.organ(name)
        assert kidney.truncated
        assert kidney.length_mm == pytest.approx(svd_length_mm(organs, name), abs=0.06)
        assert 60.0 < kidney.length_mm < 130.0   # a real (partial) kidney, not a voxel count
    assert kidney_record(facts) is None


def test_cli_demo_publishes_both_outcomes(tmp_path, prefect_server):
    """Through `tumorcot demo`: 8 full-size phantom cases; case 7's small right kidney is the one
    size discrepancy, the others are similar in length."""
    from typer.testing import CliRunner

    from tumorcot.cli import app
    from tumorcot.store.shards import read_records

    result = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "demo"), "-n", "8", "--mix", "off"])
    assert result.exit_code == 0, result.output
    records = [r for r in read_records(tmp_path / "demo").to_pylist() if r["subtask"] == "kidney_compare"]
    assert len(records) == 8
    discrepant = [r for r in records if "exceeds the 1.5 cm cut-off" in r["think"]]
    assert len(discrepant) == 1 and "the right kidney smaller than the left kidney" in discrepant[0]["think"]
    assert all("no size discrepancy" in r["think"] for r in records if r not in discrepant)
    assert not any(" mL more than" in r["answer"] for r in records)
