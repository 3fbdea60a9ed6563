"""Prefect flow ``regenerate_patient``: re-run one patient's cases, bypassing every cache, and
replace exactly that patient's records in the dataset.

The flow receives the pseudonymous patient id (never the raw one: flow parameters are stored by
the Prefect API). The patient's case rows come from the private state folder (``STATE/cases/*/input.json``).
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from tumorcot.agents.scheduler import close_schedulers
from tumorcot.errors import RegenerationError
from tumorcot.flows.artifacts import run_artifacts
from tumorcot.flows.cases import process_case
from tumorcot.flows.versions import pipeline_versions
from tumorcot.privacy import load_or_create_salt
from tumorcot.schemas import AgentTurn, CaseOutcome
from tumorcot.schemas.options import stored_options
from tumorcot.store.atomic import atomic_write_json
from tumorcot.store.cases import CaseStore
from tumorcot.store.lock import dataset_lock
from tumorcot.store.memory import use_system_allocator
from tumorcot.store.private import state_dir
from tumorcot.store.shards import read_manifest
from tumorcot.exports.summaries import publish_summaries
from tumorcot.store.update import case_entry, update_dataset


def patient_case_ids(dataset_dir: Path, patient_pseudo_id: str) -> list[str]:
    """The patient's cases in the dataset manifest; RegenerationError when there are none."""
    if not (dataset_dir / "manifest.json").exists():
        raise RegenerationError(f"{dataset_dir} is not a tumorcot dataset (no manifest.json)")
    ids = [c["case_id"] for c in read_manifest(dataset_dir).get("cases", [])
           if c.get("patient_pseudo_id") == patient_pseudo_id]
    if not ids:
        raise RegenerationError(f"unknown patient: no case of patient {patient_pseudo_id} in {dataset_dir} "
                                "(cases that failed are retried by `tumorcot build`)")
    return ids


@flow(name="regenerate_patient", log_prints=False)
async def regenerate_patient(dataset: Path, patient_pseudo_id: str, reason: str = "", wait_s: float = 0.0) -> dict:
    """Regenerate every case of one (pseudonymous) patient and swap its records in atomically.

    An ``async`` flow whose work runs in a worker thread: Prefect joins a sync flow's heartbeat
    thread at the end of the run, and that thread sleeps in 1 s steps, which adds up to a second
    to every sync run, more than a regeneration's own work. The async engine does not join it;
    heartbeats are sent the same way."""
    summary, outcomes = await asyncio.to_thread(_regenerate, Path(dataset), patient_pseudo_id, reason, wait_s)
    for kind, fields in await asyncio.to_thread(run_artifacts, summary, outcomes):
        await (acreate_table_artifact if kind == "table" else acreate_markdown_artifact)(**fields)
    return summary


def _regenerate(dataset: Path, patient_pseudo_id: str, reason: str,
                wait_s: float) -> tuple[dict, list[CaseOutcome]]:
    run_id = datetime.now(timezone.utc).strftime("regen-%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    use_system_allocator()
    with dataset_lock(dataset, wait_s=wait_s):
        case_ids = patient_case_ids(dataset, patient_pseudo_id)
        previous = read_manifest(dataset)
        store = CaseStore(dataset)
        inputs = [store.recall_input(c) for c in case_ids]
        if any(i is None for i in inputs):
            raise RegenerationError("the dataset keeps no case row for this patient (built before "
                                    "regeneration support): run `tumorcot build` once first")
        generator = previous.get("versions", {}).get("generator", "offline")
        # the build's own options (a manifest from before the family mix: built without one)
        options = stored_options(previous.get("versions", {}).get("options")).model_dump(mode="json")
        segmentation = previous.get("versions", {}).get("segmentation")
        salt = load_or_create_salt(dataset)
        versions = pipeline_versions(generator, options, segmentation)
        futures = [process_case.submit(case, dataset, salt, run_id, generator, True, False, options, versions,
                                       segmentation, str(state_dir(dataset))) for case in inputs]
        try:
            outcomes = [f.result() for f in futures]
        finally:
            close_schedulers(run_id)   # the LLM scheduler of these cases (llm generator), if any
        failed = [o for o in outcomes if o.status != "ok"]
        if failed:
            raise RegenerationError("regeneration failed, dataset unchanged: " + "; ".join(
                f"{o.case_id}: {o.error_type}: {o.reason}" for o in failed))
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for case_id in case_ids:
            store.append_log(case_id, [AgentTurn(run_id=run_id, case_id=case_id, agent="regenerate",
                                                 reasons=[reason or "(no reason given)"], timestamp=now)])
        ids = set(case_ids)
        cases = [case_entry(store, c["case_id"]) if c["case_id"] in ids else c for c in previous["cases"]]
        manifest, mode = update_dataset(dataset, cases, run_id=run_id, versions=versions,
                                        failures=previous.get("failures", []))
        publish_summaries(dataset, manifest, only_if_stale=mode == "unchanged")
        summary = {
            "run_id": run_id, "kind": "regenerate", "dataset": str(dataset), "reason": reason,
            "patient_pseudo_id": patient_pseudo_id, "ok": len(outcomes), "unchanged": 0, "failed": 0,
            "records": manifest["record_count"], "assembly": mode,
            "rejected": sum(o.rejected for o in outcomes),
            "outcomes": [o.model_dump() for o in sorted(outcomes, key=lambda o: o.case_id)],
        }
        atomic_write_json(dataset / "runs" / f"{run_id}.json", {**summary, "dataset": dataset.name})   # no local path
    return summary, outcomes
