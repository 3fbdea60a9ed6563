"""``review ingest --quarantine``: take records judged wrong (or their whole cases) out of the
dataset through the normal incremental shard update, and say why.

Per affected case, its stored per-case records lose the judged records (scope ``record``), or
the case's stored results are removed (scope ``case``); the case's ``done.json`` then names the
quarantine run, so ``update_dataset`` rewrites only the shards holding those cases. The reasons
go to the case's generation log (an ``AgentTurn`` of agent ``review`` per record), to a run
record ``runs/review-*.json`` that ``tumorcot audit`` lists, and to the quarantine list kept with
the verdicts, which later builds honour (``flows/build.py`` leaves those records and cases out).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from tumorcot.schemas import AgentTurn, CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.atomic import atomic_write_arrow, atomic_write_json
from tumorcot.store.cases import CaseStore, read_table
from tumorcot.store.shards import read_manifest
from tumorcot.exports.summaries import publish_summaries
from tumorcot.store.update import case_entry, update_dataset

Scope = Literal["record", "case"]


def wrong_reasons(verdicts: list[dict]) -> dict[str, list[str]]:
    """record id -> "reviewer: reason" of every verdict judging the record or one of its steps wrong."""
    reasons: dict[str, list[str]] = defaultdict(list)
    for v in verdicts:
        if v.get("verdict") == "wrong":
            reasons[v["record_id"]].append(f"{v['reviewer']}: {v.get('reason') or '(no reason given)'}")
        for s in v.get("steps", []):
            if s["verdict"] == "wrong":
                reasons[v["record_id"]].append(f"{v['reviewer']}: step {s['index']}: "
                                               f"{s.get('reason') or '(no reason given)'}")
    return dict(reasons)


def plan_quarantine(verdicts: list[dict], present: dict[str, str], scope: Scope, run_id: str) -> list[dict]:
    """Quarantine entries for the records judged wrong that are still in the dataset.

    ``present`` maps the dataset's record ids to their case ids. Scope ``case`` gives one entry
    per case (holding the record ids and reasons that condemned it)."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = [{"scope": "record", "record_id": rid, "case_id": present[rid], "reasons": reasons,
                "run_id": run_id, "time": now}
               for rid, reasons in sorted(wrong_reasons(verdicts).items()) if rid in present]
    if scope == "record":
        return entries
    by_case: dict[str, dict] = {}
    for e in entries:
        case = by_case.setdefault(e["case_id"], {"scope": "case", "case_id": e["case_id"], "record_ids": [],
                                                 "reasons": [], "run_id": run_id, "time": now})
        case["record_ids"].append(e["record_id"])
        case["reasons"] += [f"record {e['record_id']}: {r}" for r in e["reasons"]]
    return list(by_case.values())


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("review-%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def apply_quarantine(dataset_dir: Path, entries: list[dict], run_id: str) -> dict:
    """Remove what ``entries`` name from the per-case results and update the shards; the caller
    holds the dataset lock. Returns the run record (also written to ``runs/<run_id>.json``)."""
    store = CaseStore(dataset_dir)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    dropped_cases = {e["case_id"] for e in entries if e["scope"] == "case"}
    by_case: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        if e["scope"] == "record" and e["case_id"] not in dropped_cases:
            by_case[e["case_id"]].append(e)
    removed = 0
    for case_id in sorted(dropped_cases):
        removed += (store.done(case_id) or {}).get("records", 0)
        store.remove(case_id)
    schema = arrow_schema(CoTRecord)
    for case_id, items in sorted(by_case.items()):
        ids = {e["record_id"] for e in items}
        table = read_table(store.records_path(case_id), schema)
        kept = table.filter([rid not in ids for rid in table.column("record_id").to_pylist()])
        removed += table.num_rows - kept.num_rows
        atomic_write_arrow(store.folder(case_id) / "records.arrow", kept)
        (store.folder(case_id) / "records.parquet").unlink(missing_ok=True)
        store.append_log(case_id, [AgentTurn(run_id=run_id, case_id=case_id, record_id=e["record_id"], agent="review",
                                             verdict="rejected", reasons=["quarantined after review: " + r
                                                                          for r in e["reasons"]], timestamp=now)
                                   for e in items])
        done = store.done(case_id) or {}
        store.write_done(case_id, {**done, "records": kept.num_rows, "run_id": run_id})
    previous = read_manifest(dataset_dir)
    cases = [case_entry(store, c["case_id"]) if c["case_id"] in by_case else c
             for c in previous["cases"] if c["case_id"] not in dropped_cases]
    manifest, mode = update_dataset(dataset_dir, cases, run_id=run_id, versions=previous.get("versions", {}),
                                    failures=previous.get("failures", []))
    publish_summaries(dataset_dir, manifest, only_if_stale=mode == "unchanged")
    run = {"run_id": run_id, "kind": "quarantine", "dataset": str(dataset_dir),
           "reason": f"review: {len(entries)} item(s) judged wrong quarantined", "ok": 0, "unchanged": 0,
           "failed": 0, "records": manifest["record_count"], "assembly": mode, "rejected": removed,
           "quarantine": entries, "outcomes": []}
    atomic_write_json(dataset_dir / "runs" / f"{run_id}.json", run)
    return run
