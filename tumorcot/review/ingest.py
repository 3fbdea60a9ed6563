"""``tumorcot review ingest``: verdict files -> stored with the dataset -> error rates (and quarantine)."""

from __future__ import annotations

from pathlib import Path

from tumorcot.errors import ReviewError
from tumorcot.review.quarantine import Scope, apply_quarantine, new_run_id, plan_quarantine
from tumorcot.review.rates import record_info, review_rates
from tumorcot.review.verdicts import (check_against_records, merge_verdicts, read_verdict_file, stored_review,
                                      write_review)
from tumorcot.store.lock import dataset_lock
from tumorcot.store.shards import scan_records

RECORD_COLUMNS = ["record_id", "case_id", "task", "subtask", "organ", "steps"]


def dataset_records(dataset_dir: Path) -> dict[str, dict]:
    """record id -> ``record_info`` of every record now in the dataset."""
    if not (dataset_dir / "manifest.json").exists():
        raise ReviewError(f"{dataset_dir} is not a tumorcot dataset (no manifest.json)")
    rows = scan_records(dataset_dir, RECORD_COLUMNS).to_pylist()
    return {r["record_id"]: record_info(r) for r in rows}


def ingest(dataset_dir: Path, verdict_paths: list[Path], *, quarantine: bool = False, scope: Scope = "record",
           wait_s: float = 0.0) -> dict:
    """Store the files' verdicts with the dataset; rates over every stored verdict.

    Every file is read and checked before the dataset is touched: a malformed file is a
    ``ReviewError`` naming it; verdicts of records or steps the dataset does not hold are left
    out and listed in ``problems``; when none is left, ``ReviewError``."""
    dataset_dir = Path(dataset_dir)
    incoming = [v for path in verdict_paths for v in read_verdict_file(path).verdicts]
    records = dataset_records(dataset_dir)
    with dataset_lock(dataset_dir, wait_s=wait_s):
        review = stored_review(dataset_dir)
        known = {**review["records"], **records}   # quarantined records keep their stored info
        kept, problems = check_against_records(incoming, known)
        if not kept:
            raise ReviewError(f"no verdict in {', '.join(map(str, verdict_paths))} judges a record of {dataset_dir}: "
                              + "; ".join(problems[:5]))
        review["verdicts"] = merge_verdicts(review["verdicts"], kept)
        review["records"] = {rid: known[rid] for rid in sorted({v["record_id"] for v in review["verdicts"]})}
        run = None
        if quarantine:
            run_id = new_run_id()
            entries = plan_quarantine(review["verdicts"], {rid: r["case_id"] for rid, r in records.items()},
                                      scope, run_id)
            if entries:
                fresh = {(e["scope"], e.get("record_id"), e["case_id"]) for e in entries}
                review["quarantine"] = [e for e in review["quarantine"]   # a rerun after a crash
                                        if (e["scope"], e.get("record_id"), e["case_id"]) not in fresh] + entries
                write_review(dataset_dir, review)   # the list first: a crash after it is finished by a rerun
                run = apply_quarantine(dataset_dir, entries, run_id)
        section = write_review(dataset_dir, review)
    return {"dataset": str(dataset_dir), "ingested": len(kept), "problems": problems, "stored": section,
            "rates": review_rates(review["verdicts"], review["records"]), "quarantine": run}


def review_summary(dataset_dir: Path) -> dict | None:
    """Rates and quarantine of the verdicts stored with the dataset (for audit and the QC report)."""
    review = stored_review(Path(dataset_dir))
    if not review["verdicts"]:
        return None
    return {"rates": review_rates(review["verdicts"], review["records"]), "quarantine": review["quarantine"]}
