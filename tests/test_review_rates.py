"""Review statistics against independent computations: Wilson intervals from scipy, Cohen's kappa
from a confusion matrix, leakage on hand-made rows, stratified sampling coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from tumorcot.errors import ReviewError
from tumorcot.review.leakage import split_leaks
from tumorcot.review.rates import cohen_kappa, review_rates, wilson_interval
from tumorcot.review.sample import parse_stratify, stratified_sample


@pytest.mark.parametrize("wrong,n", [
    (0, 1),     # smallest sample, no error: upper bound far from 0
    (1, 4),
    (3, 10),
    (10, 10),   # every record wrong: lower bound below 1
    (7, 250),   # rare errors in a large sample
])
def test_wilson_interval_equals_scipy(wrong, n):
    ci = binomtest(wrong, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(wrong, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_interval_of_nothing_is_none():
    assert wilson_interval(0, 0) is None


def kappa_from_confusion(a: list[str], b: list[str]) -> float:
    cats = sorted(set(a) | set(b))
    m = np.zeros((len(cats), len(cats)))
    for x, y in zip(a, b):
        m[cats.index(x), cats.index(y)] += 1
    m /= m.sum()
    po, pe = np.trace(m), float(m.sum(axis=1) @ m.sum(axis=0))
    return (po - pe) / (1 - pe)


@pytest.mark.parametrize("a,b", [
    (["correct", "wrong", "correct", "unsure", "correct", "wrong"],
     ["correct", "wrong", "wrong", "unsure", "correct", "correct"]),       # partial agreement
    (["correct", "wrong"] * 5, ["wrong", "correct"] * 5),                   # systematic disagreement: < 0
    (["correct", "wrong", "unsure"], ["correct", "wrong", "unsure"]),       # perfect: 1
])
def test_cohen_kappa_equals_confusion_matrix_formula(a, b):
    assert cohen_kappa(list(zip(a, b))) == pytest.approx(kappa_from_confusion(a, b))


def test_cohen_kappa_undefined_when_both_raters_use_one_category():
    assert cohen_kappa([("correct", "correct")] * 4) is None


def test_rates_merge_reviewers_and_group_steps_by_stage():
    records = {
        "r1": {"case_id": "c1", "task": "localization", "subtask": "organ_box", "organ": "liver", "stages": ["finding"]},
        "r2": {"case_id": "c1", "task": "localization", "subtask": "organ_box", "organ": "spleen", "stages": ["finding"]},
        "r3": {"case_id": "c2", "task": "cot_report", "subtask": "organ_report", "organ": "liver",
               "stages": ["finding", "impression", "pathology"]},
    }
    verdicts = [
        {"record_id": "r1", "reviewer": "a", "verdict": "correct", "steps": []},
        {"record_id": "r1", "reviewer": "b", "verdict": "wrong", "steps": []},      # any wrong -> wrong
        {"record_id": "r2", "reviewer": "a", "verdict": "unsure", "steps": []},     # not in the rate
        {"record_id": "r3", "reviewer": "a", "verdict": "correct",
         "steps": [{"index": 0, "verdict": "correct"}, {"index": 1, "verdict": "wrong"}]},
        {"record_id": "gone", "reviewer": "a", "verdict": "wrong", "steps": []},   # not a known record
    ]
    rates = review_rates(verdicts, records)
    by_task = {r["group"]: r for r in rates["by_task"]}
    assert (by_task["localization"]["wrong"], by_task["localization"]["correct"], by_task["localization"]["unsure"]) == (1, 0, 1)
    assert by_task["localization"]["error_rate"] == 1.0
    assert by_task["cot_report"]["error_rate"] == 0.0
    assert rates["overall"]["error_rate"] == pytest.approx(1 / 2)
    stages = {r["group"]: r for r in rates["by_stage"]}
    assert set(stages) == {"finding", "impression"} and stages["impression"]["wrong"] == 1
    [pair] = rates["agreement"]
    assert pair["reviewers"] == ["a", "b"] and pair["records"] == 1
    assert pair["kappa"] == pytest.approx(kappa_from_confusion(["correct"], ["wrong"]))


def test_split_leaks_find_a_ct_and_a_patient_in_two_splits():
    rows = [
        {"image_sha256": "aaa", "patient_pseudo_id": "p1", "split": "train", "case_id": "c1"},
        {"image_sha256": "aaa", "patient_pseudo_id": "p2", "split": "test", "case_id": "c2"},    # same CT
        {"image_sha256": "bbb", "patient_pseudo_id": "p3", "split": "train", "case_id": "c3"},
        {"image_sha256": "ccc", "patient_pseudo_id": "p3", "split": "validation", "case_id": "c4"},  # same patient
        {"image_sha256": "ddd", "patient_pseudo_id": "p4", "split": "train", "case_id": "c5"},
        {"image_sha256": "ddd", "patient_pseudo_id": "p4", "split": "train", "case_id": "c6"},  # same split: fine
    ]
    leaks = split_leaks(rows)
    assert [(x["kind"], x["key"]) for x in leaks] == [("image", "aaa"), ("patient", "p3")]
    assert leaks[0]["splits"] == {"test": ["c2"], "train": ["c1"]}


def test_stratified_sample_covers_every_stratum_and_is_seeded():
    rows = [{"record_id": f"r{i:03d}", "task": "lesion_attribute" if i < 90 else "tnm_staging", "organ": "liver"}
            for i in range(100)]
    sample = stratified_sample(rows, 10, ("task", "organ"), seed=4)
    tasks = [r["task"] for r in sample]
    assert len(sample) == 10 and len({r["record_id"] for r in sample}) == 10
    assert tasks.count("tnm_staging") == 5                          # rare stratum gets an equal share
    assert sample == stratified_sample(rows, 10, ("task", "organ"), seed=4)
    assert sample != stratified_sample(rows, 10, ("task", "organ"), seed=5)
    assert len(stratified_sample(rows, 500, ("task",), seed=0)) == 100   # never more than there is


def test_stratify_rejects_unknown_columns():
    with pytest.raises(ReviewError, match="cannot stratify by colour"):
        parse_stratify("task,colour")
