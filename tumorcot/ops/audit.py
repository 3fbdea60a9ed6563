"""``tumorcot audit``: what each run did and how every record came to be, from the dataset alone.

Sources: ``runs/<run_id>.json`` (one summary per build, regeneration or review quarantine), the generation-log
shards (``AgentTurn`` rows: offline-generator rows, calibrator rejections, LLM agent turns with
tokens, latency, attempts and verdicts, regeneration notes), the facts shards, the manifest and
the clinician verdicts (``review/verdicts.json``).
Log rows exist for the cases in the dataset now: a regenerated case's older turns are replaced.
Everything returned is plain JSON-ready data; ``audit_tables`` renders it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pyarrow.compute as pc

from tumorcot.errors import TumorcotError
from tumorcot.review.ingest import review_summary
from tumorcot.review.verdicts import stored_review
from tumorcot.store.log_stats import agent_stats, rejection_reasons
from tumorcot.store.shards import read_log, read_manifest, read_records

def load_runs(dataset_dir: Path) -> list[dict]:
    runs = []
    for path in sorted((dataset_dir / "runs").glob("*.json")):
        runs.append(json.loads(path.read_text()))
    return sorted(runs, key=lambda r: r["run_id"].split("-", 1)[1])


def _log_rows(dataset_dir: Path) -> list[dict]:
    return read_log(dataset_dir).to_pylist() if (dataset_dir / "manifest.json").exists() else []


def run_report(dataset_dir: Path) -> dict:
    """``tumorcot audit D``: one entry per run, with its agents and rejection reasons."""
    rows = _log_rows(dataset_dir)
    by_run: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_run[row["run_id"]].append(row)
    runs = []
    for summary in load_runs(dataset_dir):
        turns = by_run.get(summary["run_id"], [])
        agents = agent_stats(turns)
        runs.append({
            "run_id": summary["run_id"], "kind": summary.get("kind", "build"),
            "reason": summary.get("reason"), "ok": summary.get("ok", 0),
            "unchanged": summary.get("unchanged", 0), "failed": summary.get("failed", 0),
            "records": summary.get("records", 0), "rejected": summary.get("rejected", 0),
            "assembly": summary.get("assembly"), "llm_calls": summary.get("llm_calls", 0),
            "retries": sum(a["retries"] for a in agents),
            "tokens": sum(a["prompt_tokens"] + a["completion_tokens"] for a in agents),
            "log_rows": len(turns), "agents": agents, "rejections": rejection_reasons(turns),
        })
    manifest = read_manifest(dataset_dir) if (dataset_dir / "manifest.json").exists() else {}
    return {"dataset": str(dataset_dir), "record_count": manifest.get("record_count", 0),
            "cases": len(manifest.get("cases", [])), "failing_cases": len(manifest.get("failures", [])),
            "versions": manifest.get("versions", {}), "runs": runs, "agents": agent_stats(rows),
            "review": review_summary(dataset_dir)}


def record_lineage(dataset_dir: Path, record_id: str) -> dict:
    """``tumorcot audit D --record ID``: the record, its inputs, facts, versions and agent turns."""
    records = read_records(dataset_dir)
    hit = records.filter(pc.equal(records["record_id"], record_id)).to_pylist()
    if not hit:
        raise TumorcotError(f"no record {record_id} in {dataset_dir}")
    record = hit[0]
    case_id = record["case_id"]
    manifest = read_manifest(dataset_dir)
    case = next((c for c in manifest.get("cases", []) if c["case_id"] == case_id), {})
    facts = _facts_of(dataset_dir, manifest, case_id)
    turns = [t for t in _log_rows(dataset_dir)
             if t["case_id"] == case_id and t["record_id"] in (None, record_id)]
    return {
        "record": record,
        "case": {"case_id": case_id, "patient_pseudo_id": record["patient_pseudo_id"],
                 "study_pseudo_id": record["study_pseudo_id"], "written_by": case.get("written_by"),
                 "build_key": case.get("key")},
        "input_sha256": facts.get("input_sha256") or case.get("input_sha256", {}),
        "segmentation": {k: v for k, v in facts.items() if "segment" in k or k in ("has_organ_mask",
                                                                                  "has_lesion_mask")},
        "versions": {"kg": record["kg_version"], "prompts": record["prompt_version"],
                     "pipeline": record["pipeline_version"], "generator": record["generator"],
                     "dataset": manifest.get("versions", {})},
        "facts": facts,
        "review": [v for v in stored_review(dataset_dir)["verdicts"] if v["record_id"] == record_id],
        "turns": [{k: t[k] for k in ("run_id", "agent", "attempt", "template", "model", "messages_json",
                                     "raw_response", "parsed_json", "verdict", "reasons", "error",
                                     "prompt_tokens", "completion_tokens", "latency_ms", "cached",
                                     "record_id", "timestamp")} for t in turns],
    }


def _facts_of(dataset_dir: Path, manifest: dict, case_id: str) -> dict:
    import pyarrow.parquet as pq

    for entry in manifest["files"]:
        if entry["kind"] == "facts":
            table = pq.read_table(dataset_dir / entry["path"])
            hit = table.filter(pc.equal(table["case_id"], case_id)).to_pylist()
            if hit:
                return json.loads(hit[0]["facts_json"])
    return {}


def failures_report(dataset_dir: Path) -> dict:
    """``tumorcot audit D --failures``: failing cases now, failed cases per run, failed turns."""
    manifest = read_manifest(dataset_dir) if (dataset_dir / "manifest.json").exists() else {}
    history = [dict(o, run_id=r["run_id"]) for r in load_runs(dataset_dir)
               for o in r.get("outcomes", []) if o["status"] == "failed"]
    turns = [{k: t[k] for k in ("run_id", "case_id", "record_id", "agent", "attempt", "verdict", "error", "reasons")}
             for t in _log_rows(dataset_dir) if t["verdict"] == "failed" or t["error"]]
    return {"current": manifest.get("failures", []),
            "history": [{k: h.get(k) for k in ("run_id", "case_label", "case_id", "error_type", "reason")}
                        for h in history],
            "failed_turns": turns}
