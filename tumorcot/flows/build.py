"""Prefect flow ``build_dataset``: wires the per-case tasks (``flows/cases.py``), the shard update
and the publication of the summaries; it computes nothing itself.

Orchestration is kept to a fixed cost per run plus a small one per batch: the versions are
computed once per run (``flows/versions.py``); unchanged cases are recognised in the flow without
a task (``tumorcot.store.keys.current_result``); ``write_shards`` gets the run's outcomes through
``quote`` (Prefect does not walk them looking for futures; not used for ``process_cases``, whose
batch must survive Dask's graph serialisation); tasks persist no results; the flow returns a
small summary (the full one, with every case's outcome, is ``runs/<run_id>.json``, which
``run_build`` returns). The CLI's progress display and a crash test's ``pause`` are passed to the
flow as parameters (in-process objects; Prefect records only their type)."""

from __future__ import annotations

import json
import math
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.utilities.annotations import quote

from tumorcot.agents.scheduler import close_schedulers
from tumorcot.case_manifest import read_case_manifest
from tumorcot.errors import ManifestError, RemovalRefusedError
from tumorcot.exports.summaries import publish_summaries
from tumorcot.flows.artifacts import publish_artifacts
from tumorcot.flows.cases import (PROBE_CASES, auto_batch_size, llm_batches, missing_outcome, process_cases,
                                  process_cases_llm)
from tumorcot.flows.progress import InProcess
from tumorcot.flows.segment import SegmentationPlan, ensure_gpu_limit
from tumorcot.flows.settings import explicit, resolve_settings
from tumorcot.flows.versions import pipeline_versions
from tumorcot.privacy import case_id_for, load_or_create_salt
from tumorcot.schemas import CaseInput, CaseOutcome, GenerationOptions
from tumorcot.store.atomic import atomic_write_json, remove_stale_temporaries
from tumorcot.store.cases import CaseStore
from tumorcot.store.keys import current_result
from tumorcot.store.lock import dataset_lock
from tumorcot.store.memory import use_system_allocator
from tumorcot.store.private import bind, state_dir
from tumorcot.store.removal import inputs_missing, removal_problem
from tumorcot.store.update import case_entry, update_dataset


@task(name="write_shards", cache_policy=NO_CACHE, persist_result=False)
def write_shards(dataset_dir: Path, outcomes: list[CaseOutcome], run_id: str, versions: dict,
                 known: dict[str, dict] | None = None, pause=None) -> dict:
    """Shards and manifest for the kept cases, then the published summaries (card, Croissant,
    stats); ``known`` maps case ids to ``done.json`` already read; ``pause`` see ``update_dataset``."""
    store = CaseStore(dataset_dir)
    known = known or {}
    kept = [o for o in outcomes if o.status in ("ok", "unchanged", "missing", "degraded")]
    failures = [o.model_dump(include={"case_label", "case_id", "error_type", "reason"})
                for o in sorted(outcomes, key=lambda o: (o.case_label, o.case_id or "")) if o.status == "failed"]
    keep_ids = {o.case_id for o in kept}
    for stale in set(store.case_ids()) - keep_ids - {o.case_id for o in outcomes}:
        store.remove(stale)  # cases no longer in the manifest leave the dataset
    entries = [case_entry(store, o.case_id, known.get(o.case_id)) for o in kept]
    manifest, mode = update_dataset(dataset_dir, entries, run_id=run_id, versions=versions, failures=failures,
                                    pause=pause)
    if pause is not None:
        pause("summaries")
    publish_summaries(dataset_dir, manifest, only_if_stale=mode == "unchanged")
    return {"record_count": manifest["record_count"], "assembly": mode}


@flow(name="build_dataset", log_prints=False)
def build_dataset(manifest: Path, out: Path, generator: str | None = None, force: bool = False,
                  batch_size: int = 0, options: dict | None = None, segmentation: dict | None = None,
                  llm_concurrency: int = 16, workers: int = 2, state_dir_path: str | None = None,
                  progress: InProcess | None = None, pause: InProcess | None = None,
                  allow_removal: bool = False) -> dict:
    """Build (or incrementally update) the dataset in ``out`` from the case manifest.

    Cases go to tasks in batches of ``batch_size``; with 0 the first ``PROBE_CASES`` go one per
    task and the first to finish sizes the rest (``auto_batch_size``), so that the per-task
    orchestration cost stays small whether a case takes 50 ms (phantoms) or a minute (real CT).
    ``generator`` (``offline`` or ``llm``), ``options`` (``GenerationOptions`` fields: splits,
    negative share, multiple-choice share, interleaving, family mix -- TumorCoT's by default,
    ``{"family_mix": null}`` publishes every record) and ``segmentation`` (``SegmentationPlan``
    fields) override the settings stored with the dataset (``flows/settings.py``; defaults for a
    new dataset: offline, default options, the manifest's masks); ``state_dir_path`` is the
    private state folder (default: ``$TUMORCOT_STATE_DIR``, else ``OUT.private`` beside ``out``).

    With ``generator="llm"`` the cases go to ``process_cases_llm`` in ``llm_batches`` (one per
    case worker, ``workers``), whose agents share one LLM scheduler per process with at most
    ``llm_concurrency`` requests in flight (per worker process with Dask).

    ``progress`` holds the caller's display (``start(total)``, ``advance(outcome)``), told about
    every case; ``pause`` a callable ``pause(point)`` run at the shard update's crash points (crash
    tests). Both are ``InProcess``: passed explicitly, they never travel to a Dask worker.

    Without ``allow_removal`` a manifest that would remove most published cases is refused
    (``RemovalRefusedError``, nothing written), and a published case whose input files are
    missing keeps its records and is reported ``missing`` (``store/removal.py``)."""
    flow_started = time.time()
    bind(out, state_dir_path)
    settings = resolve_settings(out, generator, options, segmentation)
    for warning in settings.warnings:
        get_run_logger().info("settings: %s", warning)
    generator, plan = settings.generator, settings.segmentation
    options, segmentation = settings.options.model_dump(mode="json"), plan.model_dump(mode="json")
    progress, pause = (progress or InProcess()).value, (pause or InProcess()).value
    use_system_allocator()
    manifest, out = Path(manifest).absolute(), Path(out).absolute()   # tasks may run on other machines
    out.mkdir(parents=True, exist_ok=True)
    run_id = datetime.now(timezone.utc).strftime("run-%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    state = str(state_dir(out))   # resolved here, passed to every task
    with dataset_lock(out):
        for folder in (out, Path(state)):   # what writers killed earlier left half-written
            remove_stale_temporaries(folder)
        salt = load_or_create_salt(out)
        entries = read_case_manifest(manifest)
        outcomes = [CaseOutcome(run_id=run_id, case_label=e.case or "manifest", status="failed",
                                error_type="ManifestError", reason=str(e))
                    for e in entries if isinstance(e, ManifestError)]
        cases = [e for e in entries if not isinstance(e, ManifestError)]
        problem = removal_problem(out, cases, salt, allow_removal=allow_removal)
        if problem:
            raise RemovalRefusedError(problem)
        if progress is not None:
            progress.start(len(cases))
        if plan.backend == "totalsegmentator" and plan.device == "gpu":
            ensure_gpu_limit(plan.gpus)   # one TotalSegmentator job per GPU
        versions = pipeline_versions(generator, options, segmentation)   # once per run
        store, known, pending = CaseStore(out), {}, []
        for case in cases:   # unchanged cases are recognised here, without a task each
            missing = [] if allow_removal else inputs_missing(case)
            previous = store.done(case_id_for(case.patient_id, case.study_id, salt)) if missing else None
            if previous is not None:   # an unmounted share must not unpublish the case
                outcome = missing_outcome(case, salt, run_id, missing, previous)
                known[outcome.case_id] = previous
                outcomes.append(outcome)
                continue
            current = None if force else current_result(case, store, salt, versions)
            if current is None:
                pending.append(case)
                continue
            case_id, done = current
            known[case_id] = done
            outcome = CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id, status="unchanged",
                                  records=done.get("records", 0), rejected=done.get("rejected", 0))
            outcomes.append(outcome)
            if progress is not None:
                progress.advance(outcome)
        def submit(batch: list[CaseInput]):
            if generator == "llm":
                return process_cases_llm.submit(batch, out, salt, run_id, force, options, versions, segmentation,
                                                llm_concurrency, state, workers, len(pending))
            return process_cases.submit(batch, out, salt, run_id, generator, force, options, versions,
                                        segmentation, state)

        def collect(future) -> list[CaseOutcome]:
            done = future.result()
            outcomes.extend(done)
            if progress is not None:
                for outcome in done:
                    progress.advance(outcome)
            return done

        if batch_size:
            futures = [submit(pending[i:i + batch_size]) for i in range(0, len(pending), batch_size)]
        elif generator == "llm":
            futures = [submit(batch) for batch in llm_batches(pending, workers, llm_concurrency)]
        else:   # probe: a few single-case tasks; the first one done sizes the batches of the rest
            futures = [submit([case]) for case in pending[:PROBE_CASES]]
            rest = pending[PROBE_CASES:]
            if rest:
                first = next(as_completed(futures))
                futures.remove(first)
                timed = [o.elapsed_s for o in collect(first) if o.elapsed_s > 0]
                size = auto_batch_size(min(timed), len(rest)) if timed else 1
                futures += [submit(rest[i:i + size]) for i in range(0, len(rest), size)]
        try:
            for future in as_completed(futures):
                collect(future)
        finally:
            llm_stats = close_schedulers(run_id)   # this process's (threads); Dask workers close theirs at exit
        del futures, pending
        manifest_json = write_shards(out, quote(outcomes), run_id, versions, quote(known), pause)
        summary = {
            "run_id": run_id, "dataset": str(out),
            "ok": sum(o.status == "ok" for o in outcomes),
            "unchanged": sum(o.status == "unchanged" for o in outcomes),
            "failed": sum(o.status == "failed" for o in outcomes),
            "missing": sum(o.status == "missing" for o in outcomes),
            "degraded": sum(o.status == "degraded" for o in outcomes),
            "measured": sum(o.measured for o in outcomes),
            "records": manifest_json["record_count"], "assembly": manifest_json["assembly"],
            "rejected": sum(o.rejected for o in outcomes if o.status in ("ok", "degraded")),
            "llm_calls": sum(o.llm_calls for o in outcomes if o.status in ("ok", "degraded")),
            "flow_started": flow_started,
        }
        if llm_stats:
            summary["llm"] = llm_stats[0] if len(llm_stats) == 1 else llm_stats
        record = run_record_path(out, run_id)
        atomic_write_json(record, {**summary, "dataset": out.name,   # published: no local path
                                   "outcomes": [o.model_dump() for o in sorted(outcomes, key=lambda o: o.case_label)]})
    publish_artifacts(summary, outcomes)
    return {**summary, "run_record": str(record)}


def run_record_path(out: Path, run_id: str) -> Path:
    return out / "runs" / f"{run_id}.json"


def run_build(manifest: Path, out: Path, *, generator: str | None = None, concurrency: int = 2,
              force: bool = False, progress=None, task_runner: str = "threads",
              dask_address: str | None = None, options: GenerationOptions | dict | None = None,
              segmentation: SegmentationPlan | dict | None = None, llm_concurrency: int = 16,
              pause=None, allow_removal: bool = False) -> dict:
    """Run ``build_dataset`` with ``concurrency`` case workers (threads, or a Dask cluster); the run
    summary with every case's outcome (``runs/<run_id>.json``), plus ``startup_s``: the seconds
    from this call to the flow's first line (Prefect's engine and, without ``PREFECT_API_URL``,
    its temporary API server). ``generator``, ``options`` and ``segmentation`` override the
    dataset's stored settings only where given (fields set).

    ``llm_concurrency`` is the number of LLM requests in flight for the whole build: with threads
    one scheduler holds it; a local Dask cluster's ``concurrency`` worker processes share it out
    (each its own scheduler); with ``dask_address`` it applies per worker process."""
    import os

    from tumorcot.flows.runners import with_task_runner

    configured = with_task_runner(build_dataset, task_runner, concurrency=concurrency, dask_address=dask_address)
    per_process = llm_concurrency
    if task_runner == "dask" and not dask_address:
        per_process = max(1, math.ceil(llm_concurrency / max(1, concurrency)))
    called = time.time()
    result = configured(Path(manifest).absolute(), Path(out).absolute(), generator=generator, force=force,
                        options=explicit(options) or None, segmentation=explicit(segmentation) or None,
                        llm_concurrency=per_process, workers=concurrency, state_dir_path=str(state_dir(out)),
                        progress=InProcess(progress), pause=InProcess(pause), allow_removal=allow_removal)
    summary = json.loads(Path(result["run_record"]).read_text())
    summary["dataset"] = str(Path(out).absolute())
    summary["startup_s"] = round(summary.get("flow_started", called) - called, 2)
    summary["prefect_server"] = "configured" if os.environ.get("PREFECT_API_URL") else "temporary"
    return summary
