"""Error rates with Wilson 95 % intervals, and Cohen's kappa between two reviewers.

A record's *judgement* merges its reviewers: ``wrong`` when any reviewer judged it wrong,
``correct`` when at least one judged it correct and none wrong, else ``unsure``. The error
rate of a group is wrong / (correct + wrong): unsure judgements are counted but left out of
the rate. Steps are judged the same way, per (record, step index), grouped by stage.
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations

Z95 = 1.959963984540054
"""Standard normal quantile for a two-sided 95 % interval."""
CATEGORIES = ("correct", "wrong", "unsure")


def wilson_interval(wrong: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of the proportion wrong/n (Wilson 1927); None when n == 0."""
    if n == 0:
        return None
    p = wrong / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def merge_judgements(verdicts: list[str]) -> str:
    if "wrong" in verdicts:
        return "wrong"
    return "correct" if "correct" in verdicts else "unsure"


def rate_row(group: str, judgements: list[str]) -> dict:
    wrong, correct = judgements.count("wrong"), judgements.count("correct")
    n = wrong + correct
    interval = wilson_interval(wrong, n)
    return {"group": group, "judged": len(judgements), "correct": correct, "wrong": wrong,
            "unsure": judgements.count("unsure"), "error_rate": wrong / n if n else None,
            "ci95": list(interval) if interval else None}


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters over ``pairs`` of categories; None when undefined (no pairs,
    or both raters always gave one and the same category, so chance agreement is 1)."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    chance = sum((sum(a == c for a, _ in pairs) / n) * (sum(b == c for _, b in pairs) / n) for c in CATEGORIES)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


def record_judgements(verdicts: list[dict]) -> dict[str, str]:
    """record_id -> merged judgement, over the verdicts that judge the record itself."""
    by_record: dict[str, list[str]] = defaultdict(list)
    for v in verdicts:
        if v.get("verdict"):
            by_record[v["record_id"]].append(v["verdict"])
    return {rid: merge_judgements(vs) for rid, vs in by_record.items()}


def step_judgements(verdicts: list[dict]) -> dict[tuple[str, int], str]:
    by_step: dict[tuple[str, int], list[str]] = defaultdict(list)
    for v in verdicts:
        for s in v.get("steps", []):
            by_step[(v["record_id"], s["index"])].append(s["verdict"])
    return {key: merge_judgements(vs) for key, vs in by_step.items()}


def _grouped(items, key) -> list[dict]:
    groups: dict[str, list[str]] = defaultdict(list)
    for item, judgement in items:
        groups[key(item)].append(judgement)
    return [rate_row(g, js) for g, js in sorted(groups.items())]


def agreement(verdicts: list[dict]) -> list[dict]:
    """Cohen's kappa for every pair of reviewers who judged the same records."""
    by_reviewer: dict[str, dict[str, str]] = defaultdict(dict)
    for v in verdicts:
        if v.get("verdict"):
            by_reviewer[v["reviewer"]][v["record_id"]] = v["verdict"]
    out = []
    for a, b in combinations(sorted(by_reviewer), 2):
        shared = sorted(set(by_reviewer[a]) & set(by_reviewer[b]))
        if not shared:
            continue
        pairs = [(by_reviewer[a][r], by_reviewer[b][r]) for r in shared]
        out.append({"reviewers": [a, b], "records": len(shared),
                    "agreement": sum(x == y for x, y in pairs) / len(pairs), "kappa": cohen_kappa(pairs)})
    return out


def record_info(row: dict) -> dict:
    """What the rates need of a judged record; kept with the verdicts, so the rates of records
    later quarantined out of the dataset can still be computed."""
    return {"case_id": row["case_id"], "task": row["task"], "subtask": row["subtask"], "organ": row["organ"],
            "stages": [s["stage"] for s in row["steps"]]}


def review_rates(verdicts: list[dict], records: dict[str, dict]) -> dict:
    """Error rates per task, organ and step stage, overall, and reviewer agreement.

    ``records`` maps record ids to ``record_info`` (task, organ, step stages); verdicts of
    records not in it are left out (the caller reports them)."""
    judged = {rid: j for rid, j in record_judgements(verdicts).items() if rid in records}
    steps = {}
    for (rid, index), judgement in step_judgements(verdicts).items():
        row = records.get(rid)
        if row is not None and 0 <= index < len(row["stages"]):
            steps[(rid, index)] = (row["stages"][index], judgement)
    return {
        "overall": rate_row("all records", list(judged.values())),
        "by_task": _grouped(((records[r], j) for r, j in judged.items()), lambda row: row["task"]),
        "by_organ": _grouped(((records[r], j) for r, j in judged.items()), lambda row: row["organ"] or "(none)"),
        "by_stage": _grouped(((stage, j) for stage, j in steps.values()), lambda stage: stage),
        "agreement": agreement([v for v in verdicts if v["record_id"] in records]),
        "reviewers": sorted({v["reviewer"] for v in verdicts}),
        "records_judged": len(judged), "steps_judged": len(steps),
    }
