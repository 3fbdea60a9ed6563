"""The TNM family's focused records, ``t_check`` and ``t_band``: only where a report gives a T the
AJCC 8 size rule can check, on complete lesions; only the size rule's T is stated; cut-offs and
the gap to the next one as the AJCC tables give them (written out here, independently of the KG
data file); N and M never in the target. Real CT (IBSI soft-tissue sarcoma) and the phantom."""

from __future__ import annotations

import re

import pytest
from factories import sarcoma_case

from tumorcot.agents.calibrator import calibrate, check_record
from tumorcot.agents.offline import OfflineGenerator
from tumorcot.case_manifest import read_case_manifest
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import extract_facts, with_t_checks
from tumorcot.schemas import GenerationOptions, PathologyLabels
from tumorcot.store.keys import input_hashes

KG = load_kg()
SALT = b"s" * 32
# AJCC 8 T by greatest dimension (cm): (upper cut-off, T, upper end inclusive); the last band is open
BANDS = {
    "pancreas": [(0.5, "T1a", True), (1.0, "T1b", False), (2.0, "T1c", True), (4.0, "T2", True), (None, "T3", True)],
    "kidney": [(4.0, "T1a", True), (7.0, "T1b", True), (10.0, "T2a", True), (None, "T2b", True)],
    "soft_tissue": [(5.0, "T1", True), (10.0, "T2", True), (15.0, "T3", True), (None, "T4", True)],
}


def ajcc(rule: str, cm: float) -> tuple[str, float | None, float | None]:
    """(T, lower cut-off, upper cut-off) for a greatest dimension of ``cm``."""
    low = None
    for high, t, inclusive in BANDS[rule]:
        if high is None or cm < high or (inclusive and cm == high):
            return t, low, high
        low = high
    raise AssertionError("unreachable")


def generate(facts):
    facts = with_t_checks(facts)
    records = OfflineGenerator(KG, GenerationOptions()).generate(facts)
    accepted, rejected = calibrate(records, facts, KG)
    assert not rejected, [(r.subtask, why) for r, why in rejected]
    return facts, accepted


def focused(records):
    return [r for r in records if r.subtask in ("t_check", "t_band")]


@pytest.fixture(scope="module")
def sarcoma(shared_data):
    case = sarcoma_case(shared_data, "behavior=malignant; diagnosis=soft-tissue sarcoma; T=T2; N=N0")
    return extract_facts(case, SALT, input_hashes(case))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    manifest = write_phantom_cases(tmp_path_factory.mktemp("staging") / "cases", 32, seed=3, scale=4)
    return [(c, extract_facts(c, SALT, input_hashes(c))) for c in read_case_manifest(manifest)]


def test_real_sarcoma_given_t2_is_flagged_and_the_band_is_t3(sarcoma):
    facts, records = generate(sarcoma)
    [lesion] = facts.lesions
    cm = round(lesion.max_diameter_3d_mm / 10, 1)
    t, low, high = ajcc("soft_tissue", cm)
    assert (t, low, high) == ("T3", 10.0, 15.0)          # STS_001 measures about 11.5 cm
    [check] = [r for r in records if r.subtask == "t_check"]
    assert check.question.startswith("Pathology report: soft-tissue sarcoma, malignant, T2, N0. ")
    assert "T2" in check.answer and "T3" in check.answer and ("flag" in check.answer or "No" in check.answer)
    [band] = [r for r in records if r.subtask == "t_band"]
    assert "T2" not in band.question                       # the band question does not give the T away
    assert f"more than {low:.1f} cm and up to {high:.1f} cm" in band.think
    assert f"{high - cm:.1f} cm" in band.think and band.answer.count("T3") == 1
    for record in (check, band):
        assert not re.search(r"\b[NM][0-3X]\b", record.answer + record.think)     # N0 is context only
        assert "staging:soft_tissue:T" in record.steps[1].kg_node_ids


def test_a_lesion_cut_by_the_field_of_view_gets_no_focused_record(sarcoma):
    cut = sarcoma.model_copy(update={"lesions": [sarcoma.lesions[0].model_copy(update={"truncated": True})]})
    _, records = generate(cut)
    assert focused(records) == []


def test_without_a_given_t_there_is_no_focused_record(sarcoma):
    unstaged = sarcoma.model_copy(update={"pathology": PathologyLabels.parse(
        "behavior=malignant; diagnosis=soft-tissue sarcoma")})
    _, records = generate(unstaged)
    assert focused(records) == [] and [r.subtask for r in records if r.task == "tnm_staging"] == ["tnm"]


def test_phantom_bands_and_checks_follow_the_ajcc_tables(phantom):
    seen = {"t_check": 0, "t_band": 0}
    for case, raw in phantom:
        facts, records = generate(raw)
        if case.pathology is None or not case.pathology.t:
            assert focused(records) == [] and not [r for r in records if r.task == "tnm_staging"
                                                   and "conditional" not in r.answer], case.pathology
            continue
        given_t = case.pathology.t
        for record in focused(records):
            assert record.question[-1] in ".?" and "{#" not in record.question and "#}" not in record.question
            lesion = next(l for l in facts.lesions if l.id == record.lesion_id)
            rule = KG.organ_key(lesion.organ)
            t, low, high = ajcc(rule, round(lesion.max_diameter_3d_mm / 10, 1))
            cm = round(lesion.max_diameter_3d_mm / 10, 1)
            seen[record.subtask] += 1
            if record.subtask == "t_band":
                assert set(re.findall(r"\bT\d[a-c]?\b", record.answer)) == {t}, (t, record.answer)
                for cut in (low, high):
                    assert cut is None or f"{cut:.1f} cm" in record.think
                assert high is None or f"{high - cm:.1f} cm" in record.answer
            else:
                agrees = t == given_t or (len(given_t) == 2 and t.startswith(given_t))
                assert ("flag" in record.answer.lower()) == (not agrees), (t, given_t, record.answer)
            assert not re.search(r"\b[NM][0-3X]\b", record.answer + record.think)
    assert seen["t_check"] >= 5 and seen["t_band"] >= 5, seen


def test_calibrator_rejects_a_forged_band(sarcoma):
    facts, records = generate(sarcoma)
    [band] = [r for r in records if r.subtask == "t_band"]
    forged_t = band.model_copy(update={"answer": band.answer.replace("T3", "T4")})
    assert any("'T4'" in why for why in check_record(forged_t, facts, KG))
    cut = band.steps[-1]
    moved = cut.model_copy(update={"text": cut.text.replace("15.0 cm", "20.0 cm")})
    forged_cut = band.model_copy(update={"steps": [*band.steps[:-1], moved]})
    assert any("20.0" in why for why in check_record(forged_cut, facts, KG))
