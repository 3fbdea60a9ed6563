"""The offline generator's records pass the deterministic calibrator; tampered ones do not."""

import pytest

from factories import case_facts
from tumorcot.agents.calibrator import calibrate, check_record
from tumorcot.agents.offline import OfflineGenerator
from tumorcot.knowledge_graph import load_kg
from tumorcot.schemas import PathologyLabels


@pytest.fixture(scope="module")
def generated():
    facts = case_facts(PathologyLabels(behavior="malignant", diagnosis="pancreatic ductal adenocarcinoma",
                                       organ="pancreas", t="T2", n="N0", m="M0"))
    return facts, OfflineGenerator(load_kg()).generate(facts)


def test_every_offline_record_is_accepted(generated):
    facts, records = generated
    accepted, rejected = calibrate(records, facts, load_kg())
    assert rejected == []
    tasks = {(r.task, r.subtask) for r in accepted}
    assert {("localization", "organ_box"), ("localization", "lesion_box"), ("lesion_attribute", "size"),
            ("lesion_attribute", "density"), ("lesion_attribute", "count"), ("cot_report", "organ_report")} <= tasks


def test_report_steps_run_finding_impression_pathology_with_citations(generated):
    _, records = generated
    report = next(r for r in records if r.subtask == "organ_report" and r.organ == "pancreas")
    stages = [s.stage for s in report.steps]
    assert stages[0] == "finding" and stages[-1] == "pathology" and "impression" in stages
    assert stages.index("impression") > stages.index("finding")
    for step in report.steps:
        assert step.kg_node_ids, step
        if step.stage == "finding":
            assert step.fact_ids
        else:
            assert step.follows_from and all(i < step.index for i in step.follows_from)
    assert "impression:pancreas:pdac" in report.steps[1].kg_node_ids   # leading or in the differential
    # given labels are question context, not a claim of the target; the target compares them
    assert report.question.startswith("Pathology report: pancreatic ductal adenocarcinoma, malignant. ")
    [tnm] = [r for r in records if r.task == "tnm_staging" and r.organ == "pancreas"]
    assert tnm.question.startswith("Pathology report: pancreatic ductal adenocarcinoma, malignant, T2, N0, M0. ")
    assert "Given" not in report.answer + report.think
    assert "is among the imaging impressions" in report.steps[-1].text
    assert "pathology.diagnosis" in report.steps[-1].fact_ids
    assert report.think.startswith("1. [finding]")


def _tamper(record, old, new):
    assert old in record.answer + record.think, (old, record.answer)
    steps = [s.model_copy(update={"text": s.text.replace(old, new)}) for s in record.steps]
    return record.model_copy(update={"answer": record.answer.replace(old, new),
                                     "think": record.think.replace(old, new), "steps": steps})


@pytest.mark.parametrize("subtask, organ, old, new, reason", [
    # a wrong size: 34.0 mm becomes 48.0 mm (in whichever answer form the record has)
    ("size", "liver", "34.0", "48.0", "number '48.0"),
    # the wrong side: the left kidney's lesion said to be right
    ("organ_box", "kidney_left", "left kidney", "right kidney", "names the right kidney"),
    # the wrong organ: a liver lesion said to sit in the spleen
    ("size", "liver", "in the liver", "in the spleen", "names the spleen"),
])
def test_hallucinated_facts_are_rejected(generated, subtask, organ, old, new, reason):
    facts, records = generated
    record = next(r for r in records if r.subtask == subtask and r.organ == organ)
    assert check_record(record, facts, load_kg()) == []
    reasons = check_record(_tamper(record, old, new), facts, load_kg())
    assert any(reason in r for r in reasons), reasons


def test_unlicensed_impression_is_rejected(generated):
    facts, records = generated
    report = next(r for r in records if r.subtask == "organ_report" and r.organ == "kidney_left")
    steps = list(report.steps)
    imp = next(i for i, s in enumerate(steps) if s.stage == "impression")
    steps[imp] = steps[imp].model_copy(update={"kg_node_ids": ["impression:kidney:rcc"]})  # cystic excludes RCC
    reasons = check_record(report.model_copy(update={"steps": steps}), facts, load_kg())
    assert any("impression:kidney:rcc is not licensed" in r for r in reasons), reasons


def test_invented_n_stage_is_rejected_when_no_labels_are_given():
    facts = case_facts(pathology=None)
    records = OfflineGenerator(load_kg()).generate(facts)
    report = next(r for r in records if r.subtask == "organ_report" and r.organ == "pancreas")
    assert check_record(report, facts, load_kg()) == []
    assert "histology is not established" in report.steps[-1].text.lower()
    invented = report.model_copy(update={"conclusion": report.conclusion + " Staged T2 N1 M0."})
    reasons = check_record(invented, facts, load_kg())
    assert any("N category 'N1'" in r for r in reasons) and any("T category 'T2'" in r for r in reasons)


def test_histology_without_labels_is_rejected():
    facts = case_facts(pathology=None)
    records = OfflineGenerator(load_kg()).generate(facts)
    report = next(r for r in records if r.subtask == "organ_report" and r.organ == "pancreas")
    steps = list(report.steps)
    steps[-1] = steps[-1].model_copy(update={"text": "Pathology: pancreatic ductal adenocarcinoma."})
    reasons = check_record(report.model_copy(update={"steps": steps}), facts, load_kg())
    assert any("[histology] states histology 'pancreatic ductal adenocarcinoma' without a pathology label" in r
               for r in reasons), reasons
