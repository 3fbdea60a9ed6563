"""The closed-world claim check: every kind of wrong claim of issue 11 is rejected with its own
reason code; faithful phrasings in other words pass."""

from __future__ import annotations

import pytest

from factories import case_facts
from tumorcot.agents.calibrator import check_record
from tumorcot.agents.claims import claim_set
from tumorcot.agents.lexicon import lexicon_for
from tumorcot.agents.offline import OfflineGenerator
from tumorcot.knowledge_graph import load_kg
from tumorcot.schemas import PathologyLabels

KG = load_kg()
LABELS = PathologyLabels(behavior="malignant", diagnosis="pancreatic ductal adenocarcinoma",
                         organ="pancreas", t="T2", n="N0", m="M0")


def facts_with_places(labels=LABELS):
    """The unit-test case with sub-locations and a liver volume of 1,369.4 mL."""
    facts = case_facts(labels)
    where = {"L1": "right lobe, anterior segment VIII", "L2": "segment V", "L3": "head", "L4": "upper pole"}
    lesions = [l.model_copy(update={"sub_location": where[l.id]}) for l in facts.lesions]
    organs = [o.model_copy(update={"volume_ml": 1369.4}) if o.name == "liver" else o for o in facts.organs]
    return facts.model_copy(update={"lesions": lesions, "organs": organs})


@pytest.fixture(scope="module")
def generated():
    facts = facts_with_places()
    records = OfflineGenerator(KG).generate(facts)
    assert all(check_record(r, facts, KG) == [] for r in records)
    return facts, records


def report(records, organ):
    return next(r for r in records if r.subtask == "organ_report" and r.organ == organ)


def with_step_text(record, index, text):
    steps = [s.model_copy(update={"text": text}) if s.index == index else s for s in record.steps]
    return record.model_copy(update={"steps": steps})


def add_to_conclusion(record, text):
    return record.model_copy(update={"conclusion": record.conclusion + " " + text})


@pytest.mark.parametrize("organ, added, code", [
    # categorical words swapped
    ("liver", "Notably, L1 is hyperdense.", "[feature]"),
    ("liver", "L1 is round and well-defined.", "[feature]"),          # shape and margin not measured
    ("pancreas", "L3 is well-defined.", "[feature]"),                 # it is ill-defined
    ("pancreas", "L3 is cystic.", "[feature]"),                       # it is solid
    ("pancreas", "L3 is not irregular.", "[feature]"),                # negation checked too
    ("liver", "L1 lies in segment VII.", "[subregion]"),              # segment VIII
    ("pancreas", "L3 sits in the pancreatic tail.", "[subregion]"),   # head
    ("kidney_left", "L4 is at the lower pole.", "[subregion]"),       # upper pole
    # impression or histology in text only
    ("pancreas", "Consistent with hepatocellular carcinoma.", "[impression]"),
    ("pancreas", "The histology is fibrolamellar carcinoma.", "[outside-lexicon]"),
    # compact or prefixed staging, stage groups
    ("pancreas", "Staged T3N1M1.", "[tnm]"),
    ("pancreas", "Nodal and distant status N1M1.", "[tnm]"),
    ("pancreas", "Restaged ypT2 after therapy.", "[tnm]"),
    ("pancreas", "This is AJCC stage IV disease.", "[stage-group]"),
    # numbers: glued units, wrong quantity or unit, slice numbers, counts in words
    ("liver", "L1 has a volume of 183mL.", "[number]"),
    ("liver", "L1 volume 34.0 mL.", "[number]"),                      # 34.0 is the long axis in mm
    ("liver", "L1 measures 34.0 x 23.8 cm.", "[number]"),
    ("liver", "L1 is on axial slice 19.", "[number]"),
    ("liver", "There are three focal lesions in the liver.", "[number]"),
    # organs outside any hand-written list
    ("pancreas", "L3 is abutting the duodenum.", "[organ]"),
    ("pancreas", "The small bowel is displaced.", "[organ]"),
    ("liver", "The bladder is unremarkable.", "[organ]"),
    ("kidney_left", "L4 is near the psoas.", "[organ]"),
    # labels of one organ stated in another organ's report
    ("liver", "Stage T2 N0 M0.", "[tnm]"),
])
def test_each_kind_of_wrong_claim_is_rejected(generated, organ, added, code):
    facts, records = generated
    bad = add_to_conclusion(report(records, organ), added)
    reasons = check_record(bad, facts, KG)
    assert any(code in r for r in reasons), reasons


def test_a_labelled_pathology_step_may_not_add_a_histology(generated):
    facts, records = generated
    record = report(records, "pancreas")
    last = record.steps[-1]
    reasons = check_record(with_step_text(record, last.index, last.text + " The histology is fibrolamellar carcinoma."),
                           facts, KG)
    assert any("fibrolamellar" in r or "carcinoma" in r for r in reasons), reasons


def test_wrong_number_in_a_step_is_bound_to_its_quantity(generated):
    facts, records = generated
    record = report(records, "liver")
    text = record.steps[0].text.replace("volume 19.6 mL", "volume 23.8 mL")   # 23.8 is the short axis (mm)
    assert text != record.steps[0].text
    reasons = check_record(with_step_text(record, 0, text), facts, KG)
    assert any("step 0: [number]" in r and "23.8" in r for r in reasons), reasons


@pytest.mark.parametrize("text", [
    "L1 in segment 8 of the liver measures 34 x 23.8 mm, volume 19.7 mL, mean 20.0 HU.",
    "L1 (Couinaud segment VIII, right lobe) is hypoattenuating: 40.0 HU below the organ mean.",
    "L1 is hypodense with a difference of \u221240.0 HU relative to the liver.",
    "The liver measures 1,369 mL and L1 lies in its anterior segment VIII, on axial slice 12.",
    "L1 is a 3.4 cm hypodense lesion, not hyperdense, with a volume of 19.7mL.",
])
def test_faithful_phrasings_pass(generated, text):
    facts, records = generated
    record = report(records, "liver")
    step = record.steps[0]
    ids = step.fact_ids + ["organ:liver.volume_ml", "organ:liver.mean_hu"]
    steps = [step.model_copy(update={"text": text, "fact_ids": ids})] + record.steps[1:]
    assert check_record(record.model_copy(update={"steps": steps}), facts, KG) == []


def test_question_rewording_must_keep_exactly_the_claims():
    original = "What is the attenuation of the tumour L3 in the pancreas compared with the surrounding tissue?"
    assert claim_set(original, KG) == claim_set("Compared with the tissue around it, how does the tumour L3 "
                                                "in the pancreas attenuate?", KG)
    assert claim_set(original, KG) != claim_set("What is the attenuation of the ill-defined tumour L3 in the "
                                                "pancreas?", KG)
    assert claim_set(original, KG) != claim_set("What is the attenuation of the tumour L3 in the duodenum?", KG)
    margin = "Is the boundary of the 18 mm lesion in the upper pole of the left kidney well-defined or ill-defined?"
    assert claim_set(margin, KG) != claim_set(margin.replace("18 mm lesion", "18 mm ill-defined lesion"), KG)


def test_lexicon_is_generated_from_the_kg_and_label_tables():
    lexicon = lexicon_for(KG)
    kinds = {p: lexicon.term(p).kind for p in ("duodenum", "small bowel", "urinary bladder", "iliopsoas",
                                               "segment 8", "hypoattenuating", "hcc", "pdac", "renal cell carcinoma")}
    assert kinds == {"duodenum": "organ", "small bowel": "organ", "urinary bladder": "organ", "iliopsoas": "organ",
                     "segment 8": "subregion", "hypoattenuating": "feature", "hcc": "impression",
                     "pdac": "impression", "renal cell carcinoma": "impression"}
    every_impression = [n for n, d in KG.graph.nodes(data=True) if d["type"] == "impression"]
    assert all(n in lexicon.term(KG.label(n)).keys for n in every_impression)
    hits = lexicon.scan("volume 183mL, 1,369 mL, \u221245.4 HU, T3N1M1 and ypT3")
    numbers = [(h.value, h.unit) for h in hits if h.kind == "number"]
    assert numbers == [(183.0, "mL"), (1369.0, "mL"), (-45.4, "HU")]
    assert [h.parts for h in hits if h.kind == "tnm"] == [["T3", "N1", "M1"], ["ypT3"]]


def test_offline_records_of_real_ct_and_phantoms_pass_the_same_gate(shared_data, tmp_path):
    """The offline generator's records of the real CT (TotalSegmentator example, sarcoma with its
    label) and of phantom cases pass the lexicon check with no reason at all."""
    from tumorcot.agents.calibrator import calibrate
    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.imaging.phantom import write_phantom_cases
    from tumorcot.pipeline import extract_facts
    from tumorcot.privacy import load_or_create_salt
    from tumorcot.schemas import GenerationOptions

    ts, sts = shared_data / "totalseg", shared_data / "ibsi_sts" / "STS_001"
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,study_id,ct,organ_mask,lesion_mask,lesion_labels,pathology\n"
                        f"TS,1,{ts / 'example_ct_sm.nii.gz'},{ts / 'example_seg.nii.gz'},,,\n"
                        f"STS,1,{sts / 'CT_image.nii.gz'},,{sts / 'CT_mask.nii.gz'},1:tumor,"
                        "behavior=malignant; diagnosis=soft-tissue sarcoma\n")
    salt = load_or_create_salt(tmp_path / "ds")
    cases = read_case_manifest(manifest) + read_case_manifest(write_phantom_cases(tmp_path / "ph", 2, seed=0))
    checked = 0
    for facts in (extract_facts(c, salt) for c in cases):
        for mc_share in (0.0, 1.0):
            records = OfflineGenerator(KG, GenerationOptions(mc_share=mc_share, negative_share=0.5)).generate(facts)
            _, rejected = calibrate(records, facts, KG)
            assert [why for _, why in rejected] == []
            checked += len(records)
    assert checked > 100


def test_per_lesion_labels_are_licensed_for_their_lesion_organ_only():
    facts = facts_with_places(None).model_copy(update={"lesion_pathology": {
        "L1": PathologyLabels(behavior="malignant", diagnosis="hepatocellular carcinoma", organ="liver", t="T2")}})
    records = OfflineGenerator(KG).generate(facts)
    assert [check_record(r, facts, KG) for r in records if check_record(r, facts, KG)] == []
    liver, pancreas = report(records, "liver"), report(records, "pancreas")
    assert "hepatocellular carcinoma" in liver.think
    assert any(f.startswith("pathology:L1.") for s in liver.steps for f in s.fact_ids)
    reasons = check_record(add_to_conclusion(pancreas, "Staged T2; hepatocellular carcinoma."), facts, KG)
    assert any("[tnm]" in r for r in reasons) and any("[impression]" in r for r in reasons), reasons
    labelled = next(s for s in liver.steps if any(f.startswith("pathology:L1.") for f in s.fact_ids))
    steps = [s.model_copy(update={"fact_ids": s.fact_ids + ["pathology:L1.t"]}) if s is labelled else s
             for s in liver.steps]
    own = add_to_conclusion(liver.model_copy(update={"steps": steps}), "L1 is given as T2.")
    assert check_record(own, facts, KG) == []
    assert any("[tnm]" in r for r in check_record(add_to_conclusion(own, "L2 is given as T2."), facts, KG))
