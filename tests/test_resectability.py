"""Pancreatic resectability (spatial/resectability) by the NCCN PANC-C criteria: every status on
phantom lesions with planted vessel contact, the expected status typed here from the guideline's
rows (not read from the KG); no record where a needed vessel is not segmented (a phantom case
without one, the real TotalSegmentator CT, which has no superior mesenteric artery, celiac trunk,
common hepatic artery, superior mesenteric vein or main portal vein label), for a lesion labelled
as another kind, or for a lesion cut by the field of view; through the CLI build."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from typer.testing import CliRunner

from tumorcot.agents.calibrator import calibrate
from tumorcot.agents.offline import OfflineGenerator
from tumorcot.cli import app
from tumorcot.imaging.phantom import RESECT_PLANS, case_plan, make_phantom
from tumorcot.knowledge_graph import load_kg
from tumorcot.knowledge_graph.resectability import RULE, _row, band, evaluate, missing_vessels
from tumorcot.pipeline import extract_facts
from tumorcot.prompts import template_source
from tumorcot.schemas import CaseInput, GenerationOptions
from tumorcot.store.keys import input_hashes
from tumorcot.store.shards import read_records
from tumorcot.vocabulary import label_id

KG = load_kg()
PDAC = "behavior=malignant; diagnosis=pancreatic ductal adenocarcinoma; organ=pancreas"
NEEDED = ("superior_mesenteric_artery", "celiac_trunk", "common_hepatic_artery", "superior_mesenteric_vein",
          "main_portal_vein")


def expected_status(planted: dict[str, float], location: str = "head") -> set[str]:
    """NCCN v2.2021 PANC-C for a head lesion, typed from the table: no arterial or venous contact
    -> resectable; SMA contact <= 180 -> borderline; SMA > 180 -> locally advanced; SMV/PV
    contact <= 180 -> resectable without and borderline with vein contour irregularity (not
    measured: both possible)."""
    assert location == "head"
    touched = {v: d for v, d in planted.items() if d > 0}
    if not touched:
        return {"resectable"}
    if touched.get("superior_mesenteric_artery", 0) > 180:
        return {"locally advanced"}
    if set(touched) == {"superior_mesenteric_artery"}:
        return {"borderline resectable"}
    if set(touched) == {"superior_mesenteric_vein"} and touched["superior_mesenteric_vein"] <= 180:
        return {"resectable", "borderline resectable"}
    raise AssertionError(f"no expectation typed for {planted}")


def write_case(folder, plan, *, pathology=PDAC, drop=None, seed=2):
    ct, organs, lesions, truth = make_phantom(seed, plan=plan)
    if drop:   # the same case without one vessel's label
        array = sitk.GetArrayFromImage(organs)
        array[array == label_id(drop)] = 0
        stripped = sitk.GetImageFromArray(array)
        stripped.CopyInformation(organs)
        organs = stripped
    paths = {}
    for part, image in (("ct", ct), ("organs", organs), ("lesions", lesions)):
        paths[part] = folder / f"{plan}{'_' + drop if drop else ''}_{part}.nii.gz"
        sitk.WriteImage(image, str(paths[part]))
    case = CaseInput(row=1, patient_id=f"p-{plan}-{drop}", study_id="s", ct=paths["ct"],
                     organ_mask=paths["organs"], lesion_mask=paths["lesions"], lesion_labels="1:tumor",
                     pathology=pathology)
    return case, truth


def records_of(case):
    facts = extract_facts(case, b"t" * 32, input_hashes(case))
    records = OfflineGenerator(KG, GenerationOptions()).draft(facts)
    accepted, rejected = calibrate(records, facts, KG)
    assert not [(r.subtask, why) for r, why in rejected if r.subtask in ("resectability", "vessel_contact")]
    return facts, [r for r in accepted if r.subtask == "resectability"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("resect")


@pytest.mark.parametrize("plan", RESECT_PLANS)
def test_every_status_follows_the_planted_contact(folder, plan):
    case, truth = write_case(folder, plan)
    facts, records = records_of(case)
    [planted] = [l.planted_contact_deg for l in truth.lesions]
    [lesion] = facts.lesions
    assert lesion.sub_location == "head"
    for vessel, degrees in planted.items():   # the measured angle is the planted one, within a voxel's arc
        assert lesion.vessel_contact_deg[vessel] == pytest.approx(degrees, abs=25.0), vessel
    [record] = records
    expected = expected_status(planted)
    statuses = {KG.label(n) for s in record.steps[-1:] for n in s.kg_node_ids} - {"indeterminate"}
    assert statuses == expected
    if len(expected) == 1:
        [status] = expected
        assert status in record.answer.lower() and "indeterminate" not in record.answer.lower()
    else:
        assert record.answer.lower().startswith(("indeterminate", "its vessel contact leaves", "nccn status indeterminate",
                                                 "not decidable"))
        assert "contour" in record.answer   # what decides it, not measured, is said
    # per vessel: contact -> threshold -> category, each step citing its facts and nodes
    touched = [v for v, d in planted.items() if d > 0]
    for vessel in touched:
        [step] = [s for s in record.steps if f"lesion:L1.contact_{vessel}_deg" in s.fact_ids
                  and "case.threshold_vessel_encasement_deg" in s.fact_ids]
        assert "180 degrees" in step.text and any(n.startswith("resectability:") for n in step.kg_node_ids)
    assert RULE in {n for s in record.steps for n in s.kg_node_ids}
    assert "Pathology report:" in record.question and "adenocarcinoma, if" not in record.answer
    assert not {"resectable", "borderline", "advanced"} & set(record.question.lower().replace("?", " ").split())


def test_kg_lead_makes_it_conditional_and_another_kind_gives_none(folder):
    case, _ = write_case(folder, "resect_borderline", pathology="")
    _, [record] = records_of(case)   # no report: the KG's decisive lead is PDAC (solid hypodense, portal venous)
    assert "if it is pancreatic ductal adenocarcinoma" in record.question
    assert "if it is pancreatic ductal adenocarcinoma" in record.answer
    assert "impression:pancreas:pdac" in record.steps[0].kg_node_ids and "Pathology report" not in record.question
    other, _ = write_case(folder, "resect_borderline", pathology="behavior=malignant; diagnosis=pancreatic "
                          "neuroendocrine tumour; organ=pancreas")
    assert records_of(other)[1] == []


@pytest.mark.parametrize("drop", NEEDED)
def test_no_record_when_one_needed_vessel_is_missing(folder, drop):
    case, _ = write_case(folder, "resect_locally_advanced", drop=drop)
    facts, records = records_of(case)
    assert records == []
    # the other vessels were still measured: contact is stated, but no status is guessed from part of the criteria
    assert facts.lesions[0].vessel_contact_deg.get("superior_mesenteric_artery", 0) > 180 or drop == "superior_mesenteric_artery"


def test_rule_rows_cover_every_vessel_place_and_band():
    rule = KG.node(RULE)
    assert KG.citation(rule["ref"]).startswith("Tempero MA") and "PANC-C" in rule["where"]
    for vessel, location, degrees, celiac in itertools.product(rule["vessels"], rule["locations"], (0.0, 90.0, 270.0),
                                                              (0.0, 90.0)):
        contact = {v: 0.0 for v in rule["vessels"]} | {vessel: degrees}
        contact["celiac_trunk"] = contact["celiac_trunk"] or celiac
        row = _row(rule, vessel, location, contact)
        assert row["categories"] and row["row"]
        assert len(row["categories"]) == 1 or row.get("open"), row   # several statuses: what decides is named
    assert band(180.0) == "le" and band(180.1) == "gt" and band(0.0) == "none"


def test_wording_banks():
    questions = [l for l in template_source("questions/resectability.j2").splitlines() if l.strip() and not l.startswith("{#")]
    answers = [l for l in template_source("answers/resectability.j2").splitlines() if l.strip() and not l.startswith("{#")]
    assert len(questions) >= 8 and len(answers) >= 4


def test_demo_case_plans_cycle_the_statuses():
    assert [case_plan(i)[0] for i in (2, 10, 18, 26)] == list(RESECT_PLANS)


def _pancreas_ball(organs: np.ndarray, radius_vox: int) -> np.ndarray:
    """A ball lesion at the pancreas voxel deepest inside it (real TotalSegmentator mask)."""
    pancreas = organs == label_id("pancreas")
    depth = ndimage.distance_transform_edt(pancreas)
    centre = np.unravel_index(np.argmax(depth), depth.shape)
    grid = np.indices(organs.shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius_vox ** 2


def real_case(folder, shared_data) -> CaseInput:
    """The real TotalSegmentator CT and organ mask, with a ball lesion deep in its pancreas."""
    ts = shared_data / "totalseg"
    organs = sitk.ReadImage(str(ts / "example_seg.nii.gz"))
    lesion = sitk.GetImageFromArray(_pancreas_ball(sitk.GetArrayFromImage(organs), 3).astype(np.uint8))
    lesion.CopyInformation(organs)
    sitk.WriteImage(lesion, str(folder / "real_pancreas_lesion.nii.gz"))
    return CaseInput(row=1, patient_id="TS-0001", study_id="1", ct=ts / "example_ct_sm.nii.gz",
                     organ_mask=ts / "example_seg.nii.gz", lesion_mask=folder / "real_pancreas_lesion.nii.gz",
                     lesion_labels="1:tumor", pathology=PDAC, source="TotalSegmentator example")


def test_real_totalsegmentator_ct_lacks_the_vessels_so_no_status(folder, shared_data):
    case = real_case(folder, shared_data)
    facts, records = records_of(case)
    [lesion] = facts.lesions
    assert lesion.organ == "pancreas" and lesion.sub_location and not lesion.truncated
    # the total task's vessels are measured; the criteria's own are not segmented in total
    assert {"aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein"} <= set(lesion.vessel_contact_deg)
    assert missing_vessels(KG.node(RULE), facts, lesion) == list(NEEDED)
    assert evaluate(KG, facts, lesion) is None and records == []


def test_cli_build_gives_each_status_and_none_on_real_ct(folder, shared_data, prefect_server):
    real = real_case(folder, shared_data)
    rows, expected = [real], []
    for plan in (*RESECT_PLANS, "aorta_contact"):   # aorta_contact: a pancreatic lesion, no criteria vessels
        case, truth = write_case(folder, plan)
        rows.append(case)
        planted = [l.planted_contact_deg for l in truth.lesions if l.planted_contact_deg]
        expected += [frozenset(expected_status(p)) for p in planted]
    manifest = folder / "cases.csv"
    fields = ("patient_id", "study_id", "ct", "organ_mask", "lesion_mask", "lesion_labels", "pathology", "source")
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({"patient_id": c.patient_id, "study_id": c.study_id, "ct": c.ct, "organ_mask": c.organ_mask,
                          "lesion_mask": c.lesion_mask, "lesion_labels": "1:tumor", "pathology": PDAC,
                          "source": c.source or ""} for c in rows)
    result = CliRunner().invoke(app, ["build", "-m", str(manifest), "-o", str(folder / "ds"), "--mix", "off"])
    assert result.exit_code == 0, result.output
    records = read_records(folder / "ds").to_pylist()
    resect = [r for r in records if r["subtask"] == "resectability"]
    got = [frozenset(KG.label(n) for n in r["steps"][-1]["kg_node_ids"]) - {"indeterminate"} for r in resect]
    assert sorted(map(sorted, got)) == sorted(map(sorted, expected))
    real_records = [r for r in records if r["source"] == "TotalSegmentator example"]
    assert any(r["subtask"] == "size" for r in real_records)   # its lesion was measured
    assert not [r for r in real_records if r["subtask"] == "resectability"]
    card = (folder / "ds" / "README.md").read_text()   # the dataset card's per-subtask table
    assert f"| spatial | resectability | {len(RESECT_PLANS)} |" in card


def test_calibrator_rejects_a_status_the_facts_do_not_give(folder):
    case, _ = write_case(folder, "resect_borderline")
    facts = extract_facts(case, b"t" * 32, input_hashes(case))
    [record] = [r for r in OfflineGenerator(KG, GenerationOptions()).draft(facts) if r.subtask == "resectability"]
    last = record.steps[-1]
    swap = lambda text: text.replace("borderline resectable", "locally advanced")   # noqa: E731
    forged = record.model_copy(update={
        "steps": [*record.steps[:-1], last.model_copy(update={"text": swap(last.text),
                                                              "kg_node_ids": ["resectability:locally_advanced"]})],
        "answer": swap(record.answer), "conclusion": swap(record.conclusion), "think": swap(record.think)})
    accepted, rejected = calibrate([record, forged], facts, KG)
    assert [r.record_id for r in accepted] == [record.record_id]
    [(_, reasons)] = rejected
    assert any("[resectability]" in why for why in reasons), reasons


BODY_TAIL_CASES = [   # (contact, expected statuses): NCCN v2.2021 PANC-C rows for the body and tail, typed here
    ({"celiac_trunk": 90.0}, {"borderline resectable"}),                          # CA <= 180
    ({"celiac_trunk": 90.0, "aorta": 40.0}, {"locally advanced"}),                # CA contact with aortic involvement
    ({"celiac_trunk": 270.0}, {"borderline resectable", "locally advanced"}),     # CA > 180: modified Appleby if GDA intact
    ({"superior_mesenteric_artery": 200.0}, {"locally advanced"}),                # SMA > 180
    ({"main_portal_vein": 200.0}, {"borderline resectable", "locally advanced"}),  # vein > 180: reconstructable?
    ({"inferior_vena_cava": 30.0}, {"borderline resectable"}),                    # IVC contact
    ({}, {"resectable"}),
]


@pytest.mark.parametrize("contact, expected", BODY_TAIL_CASES)
def test_body_and_tail_rows_by_hand_built_facts(contact, expected):
    from factories import case_facts, organ

    facts = case_facts()
    vessels = KG.node(RULE)["vessels"]
    facts.organs += [organ(v, label_id(v), 5.0, 150.0, 0) for v in vessels if facts.organ(v) is None]
    lesion = next(l for l in facts.lesions if l.organ == "pancreas")
    lesion.sub_location = "body"
    lesion.vessel_contact_deg = {v: contact.get(v, 0.0) for v in vessels}
    result = evaluate(KG, facts, lesion)
    assert result.location == "body_tail" and {KG.label(s) for s in result.statuses} == expected
    lesion.sub_location = None   # the rows depend on the place: unknown place, no status
    assert evaluate(KG, facts, lesion) is None


def test_per_structure_names_of_public_collections():
    from tumorcot.imaging.structures import resolve

    # PanTS / AbdomenAtlas 3.0 spell the celiac trunk celiac_artery; their "veins" mask mixes the
    # superior mesenteric, portal and splenic veins, so it is read as no vessel at all
    assert resolve("celiac_artery").organs == ("celiac_trunk",)
    assert resolve("superior_mesenteric_artery").organs == ("superior_mesenteric_artery",)
    assert resolve("SMV").organs == ("superior_mesenteric_vein",)
    assert resolve("veins").role == "ignored"
    assert label_id("main_portal_vein") > 117 and label_id("portal_vein_and_splenic_vein") == 64


def test_cli_demo_case_2_is_resectable(tmp_path, prefect_server):
    result = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "demo"), "-n", "3", "--mix", "off"])
    assert result.exit_code == 0, result.output
    [record] = [r for r in read_records(tmp_path / "demo").to_pylist() if r["subtask"] == "resectability"]
    assert [KG.label(n) for n in record["steps"][-1]["kg_node_ids"]] == ["resectable"]   # case 2: no vessel touched
    assert "| spatial | resectability | 1 |" in (tmp_path / "demo" / "README.md").read_text()
