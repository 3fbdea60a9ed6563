"""Caveats that travel with the claims they qualify, on real CT and on the phantom.

- The estimated contrast phase opens every organ report's findings and goes with every
  attenuation statement, citing ``case.contrast_phase``.
- A margin that is "not assessable" and an attenuation that is "not assessed" are said, with
  their reason, in the finding and in the margin / density records (not silently skipped).
- An organ or lesion cut by the field of view gets no complete volume or size claim: volumes
  are "at least", the lesion has no size record and no T by size.

Real CT: TotalSegmentator's example (``example_ct_sm`` with its organ segmentation, 30 slices; the
liver runs from the first to the last slice), non-contrast (aorta about 42 HU). Probe lesions
drawn here: a ball in the homogeneous liver (inside looks like outside), a ball in the stomach
(hollow organ), and a block of liver on the last slice (cut by the field of view).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from tumorcot.agents.base import fmt
from tumorcot.agents.calibrator import calibrate, check_record
from tumorcot.agents.offline import OfflineGenerator
from tumorcot.imaging.phantom import make_phantom
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import extract_facts
from tumorcot.schemas import CaseInput, GenerationOptions
from tumorcot.store.keys import input_hashes
from tumorcot.vocabulary import total_labels

KG = load_kg()
IDS = {name: i for i, name in total_labels().items()}
ATTENUATION = re.compile(r"\b(hypodense|isodense|hyperdense)\b")


def records_of(case: CaseInput):
    facts = extract_facts(case, b"c" * 32, input_hashes(case))
    records = OfflineGenerator(KG, GenerationOptions(mc_share=0.0)).generate(facts)
    accepted, rejected = calibrate(records, facts, KG)
    assert not rejected, [(r.subtask, why) for r, why in rejected]  # every caveat passes the claim gate
    return facts, accepted


def ball_in(organ: np.ndarray, radius: int) -> np.ndarray:
    """A ball around the voxel deepest inside ``organ``, the volume's edge counting as outside."""
    depth = ndimage.distance_transform_edt(np.pad(organ, 1))[1:-1, 1:-1, 1:-1]
    k, j, i = np.unravel_index(np.argmax(depth), organ.shape)
    zz, yy, xx = np.indices(organ.shape)
    return ((zz - k) ** 2 + (yy - j) ** 2 + (xx - i) ** 2 <= radius ** 2) & organ


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    ts = shared_data / "totalseg"
    seg = sitk.ReadImage(str(ts / "example_seg.nii.gz"))
    labels = sitk.GetArrayFromImage(seg)
    liver, stomach = labels == IDS["liver"], labels == IDS["stomach"]
    last = np.zeros_like(liver)
    last[-2:] = liver[-2:]  # the liver on the last two slices: touches the edge of the field of view
    edge = ball_in(last, 3)
    lesions = ball_in(liver, 3).astype(np.uint8) + 2 * ball_in(stomach, 2).astype(np.uint8) + 3 * edge.astype(np.uint8)
    image = sitk.GetImageFromArray(lesions)
    image.CopyInformation(seg)
    path = tmp_path_factory.mktemp("caveats") / "lesions.nii.gz"
    sitk.WriteImage(image, str(path))
    return records_of(CaseInput(row=1, patient_id="CAV", study_id="1", ct=ts / "example_ct_sm.nii.gz",
                                organ_mask=ts / "example_seg.nii.gz", lesion_mask=path))


def _steps(records):
    return [(r, s) for r in records for s in r.steps]


def test_real_ct_phase_opens_every_report_and_goes_with_every_attenuation_statement(real):
    facts, records = real
    assert facts.contrast_phase == "non_contrast"  # aorta about 42 HU: no enhancement
    reports = [r for r in records if r.task == "cot_report"]
    assert {r.organ for r in reports} >= {"liver", "stomach"}
    for report in reports:
        first = report.steps[0]
        assert first.text.startswith("Contrast phase: non-contrast (estimated from measured HU).")
        assert "case.contrast_phase" in first.fact_ids
        assert "Contrast phase: non-contrast" in report.answer
    stated = [(r, s) for r, s in _steps(records) if ATTENUATION.search(s.text)]
    assert stated  # the liver ball is isodense to the liver
    for record, step in stated:
        assert "non-contrast CT" in step.text and "case.contrast_phase" in step.fact_ids, step.text


def test_the_gate_rejects_a_phase_statement_without_its_fact(real):
    facts, records = real
    report = next(r for r in records if r.task == "cot_report")
    first = report.steps[0]
    bare = first.model_copy(update={"fact_ids": [f for f in first.fact_ids if f != "case.contrast_phase"]})
    broken = report.model_copy(update={"steps": [bare, *report.steps[1:]]})
    assert check_record(report, facts, KG) == []
    assert any("phase" in why for why in check_record(broken, facts, KG))


def test_real_ct_not_assessable_margin_and_not_assessed_attenuation_are_said_with_their_reason(real):
    facts, records = real
    [inside] = [l for l in facts.lesions if l.organ == "liver" and not l.truncated]
    [hollow] = [l for l in facts.lesions if l.organ == "stomach"]
    assert inside.margin == "not assessable" and inside.attenuation == "isodense"
    assert hollow.attenuation == "not assessed" and hollow.hu_difference is None

    def finding(lesion):
        [step] = [s for r in records if r.organ == lesion.organ and r.task == "cot_report" for s in r.steps
                  if s.stage == "finding" and f"lesion:{lesion.id}.long_axis_mm" in s.fact_ids]
        return step

    step = finding(inside)
    assert "margin not assessable (the lesion's inside looks like its surroundings)" in step.text
    assert f"lesion:{inside.id}.margin" in step.fact_ids
    step = finding(hollow)
    assert "attenuation relative to the organ not assessed (the stomach is a hollow organ with no " \
           "parenchymal reference)" in step.text
    assert f"lesion:{hollow.id}.attenuation" in step.fact_ids and "case.contrast_phase" in step.fact_ids

    [margin] = [r for r in records if r.subtask == "margin" and r.lesion_id == inside.id]
    assert margin.answer.endswith("not assessable: the lesion's inside looks like its surroundings.")  # any answer form
    assert f"lesion:{inside.id}.margin" in margin.steps[-1].fact_ids and margin.form != "multiple_choice"
    [density] = [r for r in records if r.subtask == "density" and r.lesion_id == hollow.id]
    assert "is not assessed: the stomach is a hollow organ with no parenchymal reference." in density.answer
    assert f"lesion:{hollow.id}.attenuation" in density.steps[0].fact_ids


def _volume_claims_are_lower_bounds(facts, records):
    """Every step citing a truncated structure's volume states it as 'at least'; returns how many."""
    cut = {f"lesion:{l.id}.volume_ml": l.volume_ml for l in facts.lesions if l.truncated}
    cut |= {f"organ:{o.name}.volume_ml": o.volume_ml for o in facts.organs if o.truncated}
    seen = 0
    for record, step in _steps(records):
        for fid in set(step.fact_ids) & set(cut):
            assert f"at least {fmt(cut[fid])} mL" in step.text, (record.subtask, step.text)
            assert f" {fmt(cut[fid])} mL" not in step.text.replace(f"at least {fmt(cut[fid])} mL", ""), step.text
            seen += 1
    return seen


def test_real_ct_truncated_structures_get_no_complete_volume_or_size(real):
    facts, records = real
    [edge] = [l for l in facts.lesions if l.truncated]
    assert edge.organ == "liver" and facts.organ("liver").truncated
    assert _volume_claims_are_lower_bounds(facts, records) >= 1
    assert not [r for r in records if r.subtask == "size" and r.lesion_id == edge.id]
    assert not [r for r in records if r.task == "tnm_staging" and r.lesion_id == edge.id]
    [step] = [s for r, s in _steps(records) if r.task == "cot_report" and s.stage == "finding"
              and f"lesion:{edge.id}.volume_ml" in s.fact_ids]
    assert f"volume at least {fmt(edge.volume_ml)} mL (cut by the field of view)" in step.text
    assert f"at least {fmt(edge.long_axis_mm)} x" in step.text and f"lesion:{edge.id}.truncated" in step.fact_ids
    assert not [r for r in records if r.lesion_id == edge.id and re.search(r"\bthe \d+ mm lesion", r.answer)]


@pytest.mark.parametrize("phase", ["non_contrast", "arterial"])
def test_phantom_variety_states_its_phase_and_every_not_assessed_value(tmp_path, phase):
    ct, organs, lesions, _ = make_phantom(0, plan="variety", phase=phase)
    paths = {}
    for name, image in (("ct", ct), ("organs", organs), ("lesions", lesions)):
        paths[name] = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(image, str(paths[name]))
    facts, records = records_of(CaseInput(row=1, patient_id="PH", study_id="1", ct=paths["ct"],
                                          organ_mask=paths["organs"], lesion_mask=paths["lesions"],
                                          lesion_labels={1: "tumor", 2: "cyst"}))
    assert facts.contrast_phase == phase
    said = phase.replace("_", "-")
    for report in (r for r in records if r.task == "cot_report"):
        assert report.steps[0].text.startswith(f"Contrast phase: {said} (estimated from measured HU).")
        assert "case.contrast_phase" in report.steps[0].fact_ids
    for _, step in _steps(records):
        if ATTENUATION.search(step.text):
            assert f"on this {said} CT" in step.text and "case.contrast_phase" in step.fact_ids, step.text
    margins = [r for r in records if r.subtask == "margin" and "not assessable" in r.answer]
    densities = [r for r in records if r.subtask == "density" and "not assessed" in r.answer]
    assert margins and densities  # the variety plan has both values
    for record, value in [(r, "margin") for r in margins] + [(r, "attenuation") for r in densities]:
        assert f"lesion:{record.lesion_id}.{value}" in record.steps[-1].fact_ids   # the step that says it
    _volume_claims_are_lower_bounds(facts, records)  # any organ the phantom cuts: "at least" volumes


def test_real_contrast_enhanced_dicom_series_states_its_phase(shared_data, tmp_path):
    """The 20-slice DICOM series is contrast-enhanced (aorta well above 100 HU): a ball drawn in
    its liver is described on this enhanced phase, and the liver report opens with it."""
    ts = shared_data / "totalseg"
    seg = sitk.ReadImage(str(ts / "example_seg_dicom.nii.gz"))
    labels = sitk.GetArrayFromImage(seg)
    image = sitk.GetImageFromArray(ball_in(labels == IDS["liver"], 3).astype(np.uint8))
    image.CopyInformation(seg)
    sitk.WriteImage(image, str(tmp_path / "lesion.nii.gz"))
    facts, records = records_of(CaseInput(row=1, patient_id="DCM", study_id="1", ct=ts / "example_ct_dicom",
                                          organ_mask=ts / "example_seg_dicom.nii.gz",
                                          lesion_mask=tmp_path / "lesion.nii.gz",
                                          annotated_organs=["liver"]))
    assert facts.contrast_phase in ("arterial", "portal_venous", "delayed") and facts.phase_evidence["aorta"] > 100
    said = facts.contrast_phase.replace("_", "-")
    reports = {r.organ: r for r in records if r.task == "cot_report"}
    assert set(reports) == {"liver"}
    for report in reports.values():
        assert report.steps[0].text.startswith(f"Contrast phase: {said} (estimated from measured HU).")
        assert "case.contrast_phase" in report.steps[0].fact_ids
    [lesion] = facts.lesions
    density = [r for r in records if r.subtask == "density" and r.lesion_id == lesion.id]
    for record in density:
        assert f"on this {said} CT" in record.answer and "case.contrast_phase" in record.steps[0].fact_ids
    _volume_claims_are_lower_bounds(facts, records)


def test_the_margin_reason_follows_the_rule_that_made_it_not_assessable(real):
    """imaging.texture.margin_of: no surroundings; contrast <= 10 HU (isodense_hu); else below one noise SD."""
    from tumorcot.agents.chains import not_assessed_reason

    facts, _ = real
    lesion = next(l for l in facts.lesions if l.margin == "not assessable")
    assert lesion.edge_contrast_hu <= 10
    assert not_assessed_reason(lesion, "margin") == "the lesion's inside looks like its surroundings"
    noisy = lesion.model_copy(update={"edge_contrast_hu": 30.0})
    assert not_assessed_reason(noisy, "margin") == "its difference from the surroundings is within the image noise"
    alone = lesion.model_copy(update={"edge_contrast_hu": None})
    assert not_assessed_reason(alone, "margin") == "there is no surrounding tissue to compare its inside with"
    liver = lesion.model_copy(update={"attenuation": "not assessed"})
    assert not_assessed_reason(liver, "attenuation") == \
        "too little of the liver remains around its lesions for a reference"
