"""Task families on real CT and on the phantom: each appears where its data exists and never
where it does not; multiple-choice positions are balanced; negatives follow the configured
share; organ-focus turns are well-formed and checked by the calibrator."""

from __future__ import annotations

import math
import re

from collections import Counter

import pytest
from factories import sarcoma_case

from tumorcot.agents.calibrator import calibrate, check_record
from tumorcot.agents.offline import OfflineGenerator
from tumorcot.case_manifest import read_case_manifest
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import extract_facts
from tumorcot.store.keys import input_hashes
from tumorcot.schemas import CaseInput, GenerationOptions, PathologyLabels

SALT = b"t" * 32
KG = load_kg()


def facts_of(case: CaseInput):
    return extract_facts(case, SALT, input_hashes(case))


def generate(facts, **options):
    records = OfflineGenerator(KG, GenerationOptions(**options)).generate(facts)
    accepted, rejected = calibrate(records, facts, KG)
    assert not rejected, [(r.record_id, r.subtask, why) for r, why in rejected]  # a generator bug otherwise
    return accepted


@pytest.fixture(scope="module")
def phantom_facts(tmp_path_factory):
    from tumorcot.imaging.phantom import write_phantom_cases

    manifest = write_phantom_cases(tmp_path_factory.mktemp("phantom") / "cases", 32, seed=3, scale=4)
    return [facts_of(c) for c in read_case_manifest(manifest)]


@pytest.fixture(scope="module")
def sarcoma_facts(shared_data):
    return facts_of(sarcoma_case(shared_data, "behavior=malignant; diagnosis=soft-tissue sarcoma"))


@pytest.fixture(scope="module")
def totalseg_facts(shared_data):
    ts = shared_data / "totalseg"
    # example_seg.nii.gz is TotalSegmentator's output for example_ct_sm.nii.gz (the same grid); on
    # example_ct.nii.gz it would be misaligned (the liver would measure about -69 HU)
    return facts_of(CaseInput(row=1, patient_id="TS-0001", study_id="1", ct=ts / "example_ct_sm.nii.gz",
                              organ_mask=ts / "example_seg.nii.gz"))


def test_real_organ_segmentation_without_lesion_mask_gives_organ_level_families_only(totalseg_facts):
    records = generate(totalseg_facts)
    # no lesion mask: boxes, measures and relations of complete organs (tests/test_families_organs.py)
    assert {r.task for r in records} == {"localization", "organ_measure", "spatial"}
    assert {r.subtask for r in records if r.task == "localization"} == {"organ_box"}


def test_real_sarcoma_labels_are_question_context_and_ajcc_soft_tissue_t_comes_from_size(sarcoma_facts):
    records = generate(sarcoma_facts)
    tasks = Counter(r.task for r in records)
    assert set(tasks) == {"localization", "lesion_attribute", "cot_report", "pathology", "tnm_staging"}
    [pathology] = [r for r in records if r.task == "pathology"]
    # the given label is context in the question, compared with the imaging impressions in the target
    assert pathology.question.startswith("Pathology report: soft-tissue sarcoma, malignant. ")
    assert "Given" not in pathology.answer and "soft-tissue sarcoma" in pathology.conclusion
    assert "pathology.diagnosis" in pathology.steps[-1].fact_ids
    # AJCC 8 trunk/extremity sarcoma: T3 is > 10 cm and <= 15 cm; STS_001's greatest dimension is about 11.5 cm
    [lesion] = sarcoma_facts.lesions
    assert 100 < lesion.max_diameter_3d_mm <= 150
    [tnm] = [r for r in records if r.subtask == "tnm"]
    assert "T3 by size" in tnm.answer and "conditional" not in tnm.answer   # in any of the answer forms
    assert "staging:soft_tissue:T" in tnm.steps[-1].kg_node_ids
    assert f"{lesion.max_diameter_3d_mm / 10:.1f} cm" in tnm.steps[-1].text         # the number the finding states
    assert f"greatest dimension {lesion.max_diameter_3d_mm / 10:.1f} cm" in tnm.steps[0].text
    assert "mm slices" in tnm.steps[-1].text                                          # slice-thickness caveat
    assert "N and M are not staged from imaging" in tnm.conclusion
    assert not any(t in tnm.answer + tnm.think for t in ("N0", "M0", "(given)"))


def test_real_sarcoma_given_t_that_disagrees_with_the_size_is_flagged(sarcoma_facts):
    from tumorcot.knowledge_graph.staging import given_t_checks

    labelled = sarcoma_facts.model_copy(update={"pathology": PathologyLabels.parse(
        "behavior=malignant; diagnosis=soft-tissue sarcoma; t=T2; n=N0")})
    labelled = labelled.model_copy(update={"t_checks": given_t_checks(labelled, KG)})
    [check] = labelled.t_checks
    assert (check.given_t, check.size_t, check.agrees) == ("T2", "T3", False)       # flagged in the facts
    [tnm] = [r for r in generate(labelled) if r.subtask == "tnm"]
    assert tnm.question.startswith("Pathology report: soft-tissue sarcoma, malignant, T2, N0. ")
    assert "report T2 disagrees (flagged)" in tnm.answer                              # ...and the record says so
    assert "tcheck:L1.agrees" in tnm.steps[-1].fact_ids
    assert "N0" not in tnm.answer + tnm.think


def test_a_given_t_is_not_compared_with_a_lesion_cut_by_the_field_of_view(sarcoma_facts):
    from tumorcot.knowledge_graph.staging import given_t_checks

    labelled = sarcoma_facts.model_copy(update={"pathology": PathologyLabels.parse(
        "behavior=malignant; diagnosis=soft-tissue sarcoma; t=T2")})
    cut = labelled.model_copy(update={"lesions": [labelled.lesions[0].model_copy(update={"truncated": True})]})
    assert len(given_t_checks(labelled, KG)) == 1 and given_t_checks(cut, KG) == []   # a lower bound decides no T
    tnm = [r for r in generate(cut.model_copy(update={"t_checks": []})) if r.task == "tnm_staging"]
    assert not any("disagrees" in r.answer or "agrees" in r.answer for r in tnm)


def test_phantom_shows_every_family_and_every_subtask(phantom_facts):
    records = [r for f in phantom_facts for r in generate(f)]
    assert {r.task for r in records} == {"localization", "lesion_attribute", "cot_report", "tnm_staging", "pathology",
                                         "organ_measure", "tumor_burden", "spatial"}
    assert {"organ_box", "lesion_box", "presence", "count", "size", "density", "shape", "margin", "content",
            "sub_location", "organ_report", "tnm", "pathology"} <= {r.subtask for r in records}


AJCC_T = {  # AJCC 8 size cut-offs written out here, independently of the KG data file
    "pancreas": [(0.5, "T1a"), (0.99, "T1b"), (2.0, "T1c"), (4.0, "T2"), (99, "T3")],
    "kidney": [(4.0, "T1a"), (7.0, "T1b"), (10.0, "T2a"), (99, "T2b")],
}
DIAGNOSIS = {"pancreas": "pancreatic ductal adenocarcinoma", "kidney": "renal cell carcinoma"}


def _labelled(facts):
    """The phantom case with malignant labels for the organ of its largest pancreas/kidney lesion."""
    lesions = [l for l in facts.lesions if KG.organ_key(l.organ) in DIAGNOSIS]
    if not lesions:
        return None
    organ = max(lesions, key=lambda l: l.max_diameter_3d_mm).organ
    return facts.model_copy(update={"pathology": PathologyLabels(
        behavior="malignant", diagnosis=DIAGNOSIS[KG.organ_key(organ)], organ=organ)}), organ


def test_tnm_records_only_where_size_rule_or_labels_decide(phantom_facts):
    seen = 0
    for facts in phantom_facts:
        unlabelled = facts.model_copy(update={"pathology": None, "t_checks": []})
        for record in generate(unlabelled):
            if record.task != "tnm_staging":
                continue
            # without labels: only a decisive malignant KG impression the rule stages, stated conditionally
            assert "conditional" in record.answer
            leading = record.steps[1].kg_node_ids[0]
            assert leading in KG.staging_rule(KG.organ_key(record.organ))["applies_to"]
        labelled = _labelled(facts)
        if labelled is None:
            continue
        labelled, organ = labelled
        [tnm] = [r for r in generate(labelled) if r.subtask == "tnm" and r.organ == organ]
        lesion = max(labelled.lesions_in(organ), key=lambda l: (l.max_diameter_3d_mm, l.id))
        cm = round(lesion.max_diameter_3d_mm / 10, 1)
        expected = next(t for cut, t in AJCC_T[KG.organ_key(organ)] if cm <= cut)
        assert f"{expected} by size;" in tnm.answer, (cm, tnm.answer)
        assert not any(t in tnm.think for t in ("N0", "N1", "M0", "M1", "NX", "MX"))
        seen += 1
    assert seen > 0


def test_calibrator_recomputes_size_based_t(phantom_facts):
    for facts in phantom_facts:
        labelled = _labelled(facts)
        if labelled is None:
            continue
        labelled, organ = labelled
        for record in generate(labelled):
            if record.task == "tnm_staging" and "by size" in record.answer:
                t = re.search(r"\bT\w+(?= by size)", record.answer).group()   # in any answer form
                wrong = {"T1a": "T1b", "T1b": "T1c", "T1c": "T2", "T2": "T3", "T3": "T1c"}.get(t, "T4")
                forged = record.model_copy(update={"answer": record.answer.replace(t, wrong, 1)})
                assert any(f"'{wrong}'" in why for why in check_record(forged, labelled, KG))
                # and no T at all once the malignant class is removed from the chain
                steps = [s.model_copy(update={"kg_node_ids": [n for n in s.kg_node_ids if n != "pathology:malignant"]})
                         for s in record.steps]
                assert any(f"'{t}'" in why for why in check_record(record.model_copy(update={"steps": steps}),
                                                                   labelled, KG))
                return
    pytest.fail("no size-based TNM record in the phantom cases")


def test_multiple_choice_positions_are_balanced(phantom_facts):
    records = [r for f in phantom_facts for r in generate(f, mc_share=1.0)]
    choice = [r for r in records if r.form == "multiple_choice"]
    assert len(choice) >= 300
    for k in sorted({len(r.options) for r in choice}):
        group = [r for r in choice if len(r.options) == k]
        counts = Counter(r.answer_index for r in group)
        expected = len(group) / k
        # every position's share within 10 points of 1/k (or 3 binomial SDs for small groups);
        # within 10 % of it for the large groups
        tolerance = max(0.10, 3 * math.sqrt((1 / k) * (1 - 1 / k) / len(group)))
        assert all(abs(counts[i] / len(group) - 1 / k) <= tolerance for i in range(k)), (k, counts)
        if len(group) >= 100:
            assert all(abs(counts[i] - expected) <= 0.1 * expected for i in range(k)), (k, counts)
    assert all(r.options[r.answer_index] == r.answer for r in choice)


def test_multiple_choice_share_and_open_form(phantom_facts):
    facts = phantom_facts[0]
    assert not any(r.form == "multiple_choice" for r in generate(facts, mc_share=0.0))
    closed = [r for r in generate(facts, mc_share=1.0) if r.subtask in ("presence", "density", "shape", "margin")]
    assert closed and all(r.form == "multiple_choice" for r in closed)


def test_negative_share_follows_the_option(phantom_facts):
    def share(value):
        records = [r for f in phantom_facts for r in generate(f, negative_share=value)
                   if r.subtask in ("presence", "count", "organ_report")]
        return sum(r.negative for r in records) / len(records), records

    none, records = share(0.0)
    assert none == 0.0 and records
    half, _ = share(0.5)
    most, _ = share(0.8)
    assert 0.35 <= half <= 0.6 and most > half
    # negatives are about organs without lesions, and say so
    for record in share(0.5)[1]:
        if record.negative:
            assert "No focal lesion" in record.conclusion or record.answer == "No" or "no focal lesion" in record.think


def test_interleaved_turns_attend_to_the_measured_organ_box(phantom_facts):
    facts = phantom_facts[1]
    records = generate(facts)
    for record in records:
        kinds = [t.kind for t in record.turns]
        if record.task in ("cot_report", "tnm_staging", "pathology"):
            assert kinds == ["question", "first_pass", "attend", "final"]
            attend = record.turns[2]
            organ = facts.organ(record.organ)
            expected = list(organ.bbox.normalized) if organ else record.roi_box
            assert attend.focus_organ == record.organ and attend.roi_box == expected
            assert attend.crop_ref == f"crop:{record.organ}"
            assert record.turns[3].content.startswith("<think>")
        else:
            assert kinds == ["question", "answer"]
    plain = generate(facts, interleave=False)
    assert all([t.kind for t in r.turns] == ["question", "answer"] for r in plain)


def test_calibrator_rejects_a_wrong_attend_box_first_pass_number_and_mc_answer(phantom_facts):
    facts = phantom_facts[1]
    records = generate(facts, mc_share=1.0)
    report = next(r for r in records if r.task == "cot_report")
    turns = [t.model_copy() for t in report.turns]
    turns[2] = turns[2].model_copy(update={"roi_box": [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]})
    assert any("attend box" in why for why in check_record(report.model_copy(update={"turns": turns}), facts, KG))
    turns = [t.model_copy() for t in report.turns]
    turns[1] = turns[1].model_copy(update={"content": "On the whole volume there are 7 lesions."})
    assert any("number '7'" in why for why in check_record(report.model_copy(update={"turns": turns}), facts, KG))
    choice = next(r for r in records if r.form == "multiple_choice")
    wrong = (choice.answer_index + 1) % len(choice.options)
    assert any("is not option" in why
               for why in check_record(choice.model_copy(update={"answer_index": wrong}), facts, KG))


def test_pathology_without_labels_is_a_differential_never_a_histology(phantom_facts):
    for facts in phantom_facts:
        unlabelled = facts.model_copy(update={"pathology": None, "t_checks": []})
        for record in generate(unlabelled):
            if record.task == "pathology":
                assert record.form == "open" and "differential" in record.answer.lower() \
                    and "not a diagnosis" in record.answer.lower()
                assert "needs pathological confirmation" in record.answer
                assert not record.question.startswith("Pathology report")


def test_split_ratios_decide_the_split_per_patient(phantom_facts):
    everything_train = {r.split for f in phantom_facts for r in generate(f, split_ratios=(1, 0, 0))}
    assert everything_train == {"train"}
    by_patient = {}
    for facts in phantom_facts:
        for record in generate(facts, split_ratios=(0.5, 0.25, 0.25)):
            by_patient.setdefault(record.patient_pseudo_id, set()).add(record.split)
    assert all(len(splits) == 1 for splits in by_patient.values())
    assert len({next(iter(s)) for s in by_patient.values()}) == 3   # 32 patients reach all three splits


def test_build_keeps_each_patient_in_one_split_splits_rewrite_shards_options_regenerate(tmp_path, prefect_server):
    from ops_helpers import read_rows, write_rows

    from tumorcot.flows.build import run_build
    from tumorcot.imaging.phantom import write_phantom_cases
    from tumorcot.store.shards import read_manifest, read_records

    rows = read_rows(write_phantom_cases(tmp_path / "cases", 6, seed=5, scale=4))
    # every patient has a second study (same volumes, another study id)
    rows += [dict(r, study_id=f"{r['study_id']}-followup") for r in rows]
    manifest = write_rows(tmp_path / "cases" / "two-studies.csv", rows)
    # every record (no family mix, which is chosen per split): a re-split then moves the same records
    options = GenerationOptions(split_ratios=(0.4, 0.3, 0.3), family_mix=None)
    first = run_build(manifest, tmp_path / "ds", options=options)
    assert first["ok"] == 12 and first["failed"] == 0
    records = read_records(tmp_path / "ds").to_pylist()
    splits: dict[str, set[str]] = {}
    studies: dict[str, set[str]] = {}
    for r in records:
        splits.setdefault(r["patient_pseudo_id"], set()).add(r["split"])
        studies.setdefault(r["patient_pseudo_id"], set()).add(r["study_pseudo_id"])
    assert len(splits) == 6 and all(len(s) == 1 for s in splits.values())
    assert all(len(s) == 2 for s in studies.values())
    assert read_manifest(tmp_path / "ds")["versions"]["options"]["split_ratios"] == [0.4, 0.3, 0.3]
    assert run_build(manifest, tmp_path / "ds", options=options)["unchanged"] == 12
    before = {r["record_id"]: r for r in records}
    resplit = run_build(manifest, tmp_path / "ds", options=GenerationOptions(split_ratios=(1, 0, 0)))
    # the split is assigned when shards are written: nothing regenerated, shards rewritten
    assert resplit["unchanged"] == 12 and resplit["measured"] == 0 and resplit["assembly"] == "full"
    after = read_records(tmp_path / "ds").to_pylist()
    assert {r["split"] for r in after} == {"train"}
    assert {r["record_id"]: dict(r, split=None) for r in after} == {k: dict(r, split=None) for k, r in before.items()}
    # a generation option regenerates the records from the stored facts: no CT measured again
    regenerated = run_build(manifest, tmp_path / "ds", options=GenerationOptions(split_ratios=(1, 0, 0), mc_share=1.0))
    assert regenerated["ok"] == 12 and regenerated["measured"] == 0


def test_multiple_choice_options_are_stated_once_in_records_and_exports(phantom_facts):
    from tumorcot.exports.chat import llava_item, sharegpt_item

    records = [r for f in phantom_facts[:6] for r in generate(f, mc_share=1.0) if r.form == "multiple_choice"]
    assert records
    for rec in records:
        lines = [f"{letter}. {option}" for letter, option in zip("ABCDEFGH", rec.options)]
        human = llava_item(rec, "/ct.nii.gz")["conversations"][0]["value"]
        user = sharegpt_item(rec, "/ct.nii.gz")["messages"][0]["content"]
        for text in (rec.turns[0].content, human, user):
            assert all(text.count(f"\n{line}") == 1 for line in lines), text
            assert "Options:" not in text
        final = rec.turns[-1].content
        assert final.count("Answer: ") == 1 and final.endswith(f"{'ABCDEFGH'[rec.answer_index]}. {rec.answer}")
