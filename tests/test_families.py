"""Task families on real CT and on the phantom: each appears where its data exists and never
where it does not; multiple-choice positions are balanced; negatives follow the configured
share; organ-focus turns are well-formed and checked by the calibrator."""

from __future__ import annotations

import math

from collections import Counter

import pytest

from tumorcot.agents.calibrator import calibrate, check_record
from tumorcot.agents.offline import OfflineGenerator
from tumorcot.case_manifest import read_case_manifest
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import extract_facts, input_hashes
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
    sts = shared_data / "ibsi_sts" / "STS_001"
    case = CaseInput(row=1, patient_id="STS-001", study_id="1", ct=sts / "CT_image.nii.gz",
                     lesion_mask=sts / "CT_mask.nii.gz", lesion_labels="1:tumor",
                     pathology="behavior=malignant; diagnosis=soft-tissue sarcoma")
    return facts_of(case)


@pytest.fixture(scope="module")
def totalseg_facts(shared_data):
    ts = shared_data / "totalseg"
    return facts_of(CaseInput(row=1, patient_id="TS-0001", study_id="1", ct=ts / "example_ct.nii.gz",
                              organ_mask=ts / "example_seg.nii.gz"))


def test_real_organ_segmentation_without_lesion_mask_gives_localization_only(totalseg_facts):
    records = generate(totalseg_facts)
    assert {r.task for r in records} == {"localization"}
    assert {r.subtask for r in records} == {"organ_box"}


def test_real_sarcoma_gets_lesion_families_and_no_tnm_without_a_rule_or_labels(sarcoma_facts):
    records = generate(sarcoma_facts)
    tasks = Counter(r.task for r in records)
    assert set(tasks) == {"localization", "lesion_attribute", "cot_report", "pathology"}
    [pathology] = [r for r in records if r.task == "pathology"]
    assert "soft-tissue sarcoma" in pathology.conclusion          # the given label, cited
    assert "pathology.diagnosis" in pathology.steps[-1].fact_ids
    # soft tissue has no size-based T rule in the KG and the labels give no T/N/M: no TNM record
    assert "tnm_staging" not in tasks


def test_real_sarcoma_tnm_comes_only_from_given_labels(sarcoma_facts):
    labelled = sarcoma_facts.model_copy(update={"pathology": PathologyLabels.parse(
        "behavior=malignant; diagnosis=soft-tissue sarcoma; t=T2; n=N0")})
    [tnm] = [r for r in generate(labelled) if r.task == "tnm_staging"]
    assert "T2 (given)" in tnm.answer and "N0 (given)" in tnm.answer
    assert "M not given" in tnm.answer and "M0" not in tnm.think + tnm.answer


def test_phantom_shows_all_five_families_and_every_subtask(phantom_facts):
    records = [r for f in phantom_facts for r in generate(f)]
    assert {r.task for r in records} == {"localization", "lesion_attribute", "cot_report", "tnm_staging", "pathology"}
    assert {"organ_box", "lesion_box", "presence", "count", "size", "density", "shape", "margin", "content",
            "sub_location", "organ_report", "tnm", "pathology"} <= {r.subtask for r in records}


def test_tnm_records_only_where_size_rule_or_labels_decide(phantom_facts):
    size_organs = {"pancreas", "kidney", "liver", "lung"}
    seen = 0
    for facts in phantom_facts:
        unlabelled = facts.model_copy(update={"pathology": None})
        for record in generate(unlabelled):
            if record.task != "tnm_staging":
                continue
            seen += 1
            assert KG.organ_key(record.organ) in size_organs
            assert "conditional" in record.answer          # malignancy from the KG, not from labels
            leading = record.steps[1].kg_node_ids[0]        # the rule stages only its tumour types
            assert leading in KG.staging_rule(KG.organ_key(record.organ))["applies_to"]
            assert not any(t in record.think for t in ("N0", "N1", "M0", "M1", "NX", "MX"))
            # stomach / colon / esophagus never get a T without labels
            assert KG.organ_key(record.organ) not in {"stomach", "colon", "esophagus"}
    assert seen > 0


def test_calibrator_recomputes_size_based_t(phantom_facts):
    for facts in phantom_facts:
        unlabelled = facts.model_copy(update={"pathology": None})
        for record in generate(unlabelled):
            if record.task == "tnm_staging" and "size-based" in record.answer:
                t = record.answer.split(" ")[0]
                wrong = {"T1": "T2", "T1a": "T1b", "T1b": "T2", "T2": "T3", "T3": "T1"}.get(t, "T4")
                forged = record.model_copy(update={"answer": record.answer.replace(t, wrong, 1)})
                assert any(f"'{wrong}'" in why for why in check_record(forged, unlabelled, KG))
                # and no T at all once the malignant class is removed from the chain
                steps = [s.model_copy(update={"kg_node_ids": [n for n in s.kg_node_ids if n != "pathology:malignant"]})
                         for s in record.steps]
                assert any(f"'{t}'" in why for why in check_record(record.model_copy(update={"steps": steps}),
                                                                   unlabelled, KG))
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
        unlabelled = facts.model_copy(update={"pathology": None})
        for record in generate(unlabelled):
            if record.task == "pathology":
                assert record.form == "open" and record.answer.startswith("Differential, not a diagnosis")
                assert "needs pathological confirmation" in record.answer


def test_split_ratios_decide_the_split_per_patient(phantom_facts):
    everything_train = {r.split for f in phantom_facts for r in generate(f, split_ratios=(1, 0, 0))}
    assert everything_train == {"train"}
    by_patient = {}
    for facts in phantom_facts:
        for record in generate(facts, split_ratios=(0.5, 0.25, 0.25)):
            by_patient.setdefault(record.patient_pseudo_id, set()).add(record.split)
    assert all(len(splits) == 1 for splits in by_patient.values())
    assert len({next(iter(s)) for s in by_patient.values()}) == 3   # 32 patients reach all three splits


def test_build_keeps_each_patient_in_one_split_and_options_are_part_of_the_build_key(tmp_path, prefect_server):
    from ops_helpers import read_rows, write_rows

    from tumorcot.flows.build import run_build
    from tumorcot.imaging.phantom import write_phantom_cases
    from tumorcot.store.shards import read_manifest, read_records

    rows = read_rows(write_phantom_cases(tmp_path / "cases", 6, seed=5, scale=4))
    # every patient has a second study (same volumes, another study id)
    rows += [dict(r, study_id=f"{r['study_id']}-followup") for r in rows]
    manifest = write_rows(tmp_path / "cases" / "two-studies.csv", rows)
    options = GenerationOptions(split_ratios=(0.4, 0.3, 0.3))
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
    changed = run_build(manifest, tmp_path / "ds", options=GenerationOptions(split_ratios=(1, 0, 0)))
    assert changed["ok"] == 12
    assert {r["split"] for r in read_records(tmp_path / "ds").to_pylist()} == {"train"}


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
