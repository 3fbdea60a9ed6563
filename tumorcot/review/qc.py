"""The numbers of the QC report, from the dataset folder alone (shards, stats, facts, log, verdicts).

``qc_figures`` returns plain JSON-ready data; ``report`` draws and writes it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from tumorcot.store.log_stats import rejection_reasons
from tumorcot.review.ingest import review_summary
from tumorcot.review.leakage import dataset_leaks, describe_leak
from tumorcot.schemas.options import TUMORCOT_MIX
from tumorcot.store.shards import read_manifest
from tumorcot.store.stats import load_or_compute_stats

LOG_COLUMNS = ["agent", "verdict", "record_id", "reasons"]


def _facts(dataset_dir: Path, manifest: dict) -> list[dict]:
    out = []
    for entry in manifest["files"]:
        if entry["kind"] == "facts":
            out += [json.loads(t) for t in pq.read_table(dataset_dir / entry["path"],
                                                          columns=["facts_json"]).column(0).to_pylist()]
    return out


def _log_rows(dataset_dir: Path, manifest: dict) -> list[dict]:
    rows = []
    for entry in manifest["files"]:
        if entry["kind"] == "log":
            rows += pq.read_table(dataset_dir / entry["path"], columns=LOG_COLUMNS).to_pylist()
    return rows


def task_mix(by_task: dict[str, int]) -> list[dict]:
    total = sum(by_task.values())
    return [{"task": t, "records": n, "share": n / total if total else 0.0} for t, n in by_task.items()]


def family_mix(stats: dict) -> list[dict]:
    """The family groups' shares (``stats.json`` family_mix) beside TumorCoT's published mix
    (``schemas.options.TUMORCOT_MIX``: 1,497,818 records; TumorChain, ICLR 2026)."""
    mix = stats["family_mix"]
    groups = list(TUMORCOT_MIX) + sorted(set(mix["records"]) - set(TUMORCOT_MIX))
    return [{"group": g, "records": mix["records"].get(g, 0), "share": mix["achieved"].get(g) or 0.0,
             "published_share": TUMORCOT_MIX.get(g)} for g in groups]


def lesion_rows(facts: list[dict]) -> list[dict]:
    return [{"organ": les["organ"], "long_axis_mm": les["long_axis_mm"], "volume_ml": les["volume_ml"],
             "hu_difference": les.get("hu_difference"), "attenuation": les.get("attenuation") or "not measured",
             "mean_hu": les["mean_hu"]} for f in facts for les in f["lesions"]]


def qc_figures(dataset_dir: Path) -> dict:
    dataset_dir = Path(dataset_dir)
    manifest = read_manifest(dataset_dir)
    stats, _ = load_or_compute_stats(dataset_dir)
    facts = _facts(dataset_dir, manifest)
    leaks = dataset_leaks(dataset_dir)
    return {
        "dataset": str(dataset_dir), "run_id": manifest["run_id"], "records": stats["records"],
        "cases": len(manifest["cases"]), "failing_cases": len(manifest.get("failures", [])),
        "task_mix": task_mix(stats["by_task"]), "family_mix": family_mix(stats),
        "lesions": lesion_rows(facts),
        "contrast_phase": dict(Counter(f.get("contrast_phase") or "not estimated" for f in facts)),
        "answer_positions": stats["answer_positions"],
        "splits": {"records": stats["by_split"], "patients": {k: v for k, v in stats["patients"].items()
                                                              if k != "total"}},
        "rejections": rejection_reasons(_log_rows(dataset_dir, manifest)),
        "review": review_summary(dataset_dir),
        "leakage": [describe_leak(leak) for leak in leaks],
    }
