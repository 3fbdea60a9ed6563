"""Prefect flow ``build_dataset``: one task per batch of cases, then one task that writes the shards.

Orchestration is kept to a fixed cost per run plus a small one per batch: the versions (KG,
prompts, options) are computed once per run; unchanged cases are recognised in the flow without
a task; ``write_shards`` gets the run's outcomes through ``quote`` (Prefect does not walk them
looking for futures; not used for ``process_cases``, whose batch must survive Dask's graph
serialisation); tasks persist no results; the flow returns a small summary (the full one, with
every case's outcome, is ``runs/<run_id>.json``, which ``run_build`` returns)."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.utilities.annotations import quote

from tumorcot.agents.base import PIPELINE_VERSION
from tumorcot.agents.scheduler import close_schedulers
from tumorcot.errors import ManifestError, RemovalRefusedError, TumorcotError
from tumorcot.case_manifest import read_case_manifest
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import case_records, extract_facts, input_hashes, llm_config, llm_requests
from tumorcot.privacy import case_id_for, load_or_create_salt, scrub_ids
from tumorcot.review.verdicts import quarantined_ids
from tumorcot.prompts import prompt_version
from tumorcot.schemas import CaseFacts, CaseInput, CaseOutcome, GenerationOptions
from tumorcot.schemas.options import resolve_options
from tumorcot.store.atomic import atomic_write_json
from tumorcot.store.cases import CaseStore
from tumorcot.store.lock import dataset_lock
from tumorcot.store.memory import use_system_allocator
from tumorcot.store.private import bind, state_dir
from tumorcot.store.removal import inputs_missing, removal_problem
from tumorcot.store.update import case_entry, update_dataset
from tumorcot.flows.incremental import current_result, input_signature
from tumorcot.flows.segment import SegmentationPlan, ensure_gpu_limit, resolve_plan, segmented_case
from tumorcot.flows.progress import current as current_progress, showing
from tumorcot.flows.settings import explicit, resolve_settings


def pipeline_versions(generator: str, options: GenerationOptions | dict | None = None,
                      segmentation: SegmentationPlan | dict | None = None) -> dict:
    """Everything besides the inputs that decides a case's records: a change reprocesses the case.

    For the LLM generator the model names belong here too (the endpoint URL and key do not)."""
    versions = {"kg": load_kg().version, "prompts": prompt_version(), "pipeline": PIPELINE_VERSION,
                "generator": generator, "options": resolve_options(options).model_dump(mode="json"),
                "segmentation": resolve_plan(segmentation).version()}
    if generator == "llm":
        from tumorcot.agents.client import LLMConfig

        config = LLMConfig.from_env()
        versions["models"] = {"default": config.model, **dict(sorted(config.agent_models.items()))}
    return versions


def build_key(hashes: dict, versions: dict) -> str:
    return hashlib.sha256(json.dumps([hashes, versions], sort_keys=True).encode()).hexdigest()


@task(name="process_case", cache_policy=NO_CACHE, persist_result=False, task_run_name="process_case-{case.row}")
def process_case(case: CaseInput, dataset_dir: Path, salt: bytes, run_id: str, generator: str,
                 force: bool = False, use_llm_cache: bool = True, options: dict | None = None,
                 versions: dict | None = None, segmentation: dict | None = None,
                 state: str | None = None) -> CaseOutcome:
    """Load, measure, generate, calibrate and store one case; never raises for a bad case.

    ``force`` reprocesses an unchanged case; ``use_llm_cache=False`` (regeneration) also makes
    every LLM call afresh instead of answering from the response cache. ``versions`` are the
    run's ``pipeline_versions`` (computed here when not given); ``state`` the dataset's private state
    folder as the flow resolved it (a Dask worker elsewhere has no other way to know it)."""
    bind(dataset_dir, state)
    versions = versions or pipeline_versions(generator, options, segmentation)
    step = prepare_case(case, dataset_dir, salt, run_id, force, versions, segmentation)
    if isinstance(step, CaseOutcome):
        return step
    try:
        records, log, rejected = case_records(step.facts, load_kg(), run_id, generator, report=case.report,
                                              options=resolve_options(options),
                                              cache_dir=state_dir(dataset_dir) / "llm-cache" if use_llm_cache else None)
    except Exception as exc:  # a bad case is reported and the batch goes on
        return failed_outcome(step.case, step.case_id, run_id, exc)
    return finish_case(step, dataset_dir, run_id, records, log, rejected)


@dataclass
class PreparedCase:
    """A measured case waiting for its records (the state between measurement and storing)."""

    case: CaseInput
    case_id: str
    key: str
    facts: CaseFacts
    hashes: dict
    signature: dict | None
    quarantined: frozenset = frozenset()   # record ids judged wrong in review: never stored
    started: float = field(default_factory=time.perf_counter)


def failed_outcome(case: CaseInput, case_id: str, run_id: str, exc: Exception) -> CaseOutcome:
    kind = type(exc).__name__ if isinstance(exc, TumorcotError) else f"internal {type(exc).__name__}"
    return CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id, status="failed",
                       error_type=kind, reason=scrub_ids(str(exc), case, case_id))


def prepare_case(case: CaseInput, dataset_dir: Path, salt: bytes, run_id: str, force: bool, versions: dict,
                 segmentation: dict | None = None) -> PreparedCase | CaseOutcome:
    """Hash, recognise an unchanged case, segment and measure: the case's facts, or its final
    outcome (unchanged, or failed with the reason)."""
    started = time.perf_counter()
    case_id = case_id_for(case.patient_id, case.study_id, salt)
    store = CaseStore(dataset_dir)
    try:
        quarantined_records, quarantined_cases = quarantined_ids(dataset_dir)
        if case_id in quarantined_cases:
            return CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id, status="failed",
                               error_type="QuarantinedByReview", reason="the case was quarantined after clinical "
                               "review (its reasons: review/verdicts.json, tumorcot audit)")
        signature = input_signature(case)
        hashes = input_hashes(case)
        key = build_key(hashes, versions)
        done = None if force else store.done(case_id)
        if done is not None and done.get("key") == key:
            store.remember_input(case_id, case, done)
            if signature and done.get("input_signature") != signature:   # touched, same content
                store.write_done(case_id, dict(done, input_signature=signature))
            return CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id, status="unchanged",
                               records=done.get("records", 0), rejected=done.get("rejected", 0),
                               elapsed_s=round(time.perf_counter() - started, 4))
        plan = resolve_plan(segmentation)
        segmented = segmented_case(case, plan, dataset_dir, hashes["ct"])
        facts = extract_facts(segmented, salt, hashes if segmented is case else input_hashes(segmented),
                              segmentation_backend=plan.backend)
        return PreparedCase(case, case_id, key, facts, hashes, signature, frozenset(quarantined_records), started)
    except Exception as exc:  # a bad case is reported and the batch goes on
        return failed_outcome(case, case_id, run_id, exc)


def finish_case(step: PreparedCase, dataset_dir: Path, run_id: str, records: list, log: list,
                rejected: int) -> CaseOutcome:
    """Store a case's records (less those quarantined in review), log and facts; its outcome."""
    records = [r for r in records if r.record_id not in step.quarantined]
    try:
        CaseStore(dataset_dir).write(
            step.case_id, step.key, step.facts, records, log,
            {"records": len(records), "rejected": rejected, "run_id": run_id, "input_sha256": step.hashes,
             "input_signature": step.signature}, case=step.case)
    except Exception as exc:
        return failed_outcome(step.case, step.case_id, run_id, exc)
    return CaseOutcome(run_id=run_id, case_label=step.case.label, case_id=step.case_id, status="ok",
                       records=len(records), rejected=rejected, llm_calls=llm_requests(log),
                       elapsed_s=round(time.perf_counter() - step.started, 4))


PROBE_CASES = 4          # cases sent one per task first, to time a case
TASK_TARGET_S = 3.0      # then each task carries about this much work (a task costs ~60 ms, mostly API-server CPU)
MAX_AUTO_BATCH = 200


def auto_batch_size(seconds_per_case: float, cases: int) -> int:
    """Cases per task so that a task carries about ``TASK_TARGET_S`` of work: one per task for
    real CT (seconds a case, full parallelism on any cluster), dozens for tiny phantom cases."""
    return max(1, min(MAX_AUTO_BATCH, cases, math.ceil(TASK_TARGET_S / max(seconds_per_case, 1e-3))))


@task(name="process_cases", cache_policy=NO_CACHE, persist_result=False)
def process_cases(cases: list[CaseInput], dataset_dir: Path, salt: bytes, run_id: str, generator: str,
                  force: bool = False, options: dict | None = None, versions: dict | None = None,
                  segmentation: dict | None = None, state: str | None = None) -> list[CaseOutcome]:
    """A batch of cases in one task: the per-case work of ``process_case`` in a loop."""
    versions = versions or pipeline_versions(generator, options, segmentation)
    return [process_case.fn(c, dataset_dir, salt, run_id, generator, force, options=options, versions=versions,
                            segmentation=segmentation, state=state) for c in cases]


@task(name="process_cases_llm", cache_policy=NO_CACHE, persist_result=False)
def process_cases_llm(cases: list[CaseInput], dataset_dir: Path, salt: bytes, run_id: str, force: bool = False,
                      options: dict | None = None, versions: dict | None = None, segmentation: dict | None = None,
                      llm_concurrency: int = 16, state: str | None = None) -> list[CaseOutcome]:
    """A batch of cases for the LLM generator: this task's thread measures them one after another
    and hands each measured case's agents to the process's LLM scheduler at once (one event loop,
    one client, one in-flight limit of ``llm_concurrency`` shared by every task of the process),
    so the agents of many cases, of this batch and of the other running batches, are in flight
    together; each case is stored as soon as its agents are done. See ``agents/scheduler.py``."""
    from tumorcot.agents.llm import LLMGenerator
    from tumorcot.agents.scheduler import shared_scheduler

    bind(dataset_dir, state)
    versions = versions or pipeline_versions("llm", options, segmentation)
    config = llm_config(state_dir(dataset_dir) / "llm-cache", llm_concurrency)
    scheduler = shared_scheduler(config, run_id)
    generator = LLMGenerator(load_kg(), config, run_id=run_id, options=resolve_options(options))
    outcomes: list[CaseOutcome] = []

    def prepare(case: CaseInput) -> PreparedCase | None:
        step = prepare_case(case, dataset_dir, salt, run_id, force, versions, segmentation)
        if isinstance(step, CaseOutcome):
            outcomes.append(step)
            return None
        return step

    def stage(step: PreparedCase):
        return lambda client: generator.agenerate(step.facts, report=step.case.report, client=client)

    def finish(step: PreparedCase, future) -> CaseOutcome:
        try:
            result = future.result()
        except Exception as exc:  # a bad case is reported and the batch goes on
            return failed_outcome(step.case, step.case_id, run_id, exc)
        return finish_case(step, dataset_dir, run_id, result.records, result.log, len(result.failed))

    outcomes += scheduler.pipeline(cases, prepare, stage, finish)
    scheduler.flush()   # the batch's answers are on disk before the task reports it done
    return outcomes


def llm_batches(pending: list, workers: int, llm_concurrency: int) -> list[list]:
    """Batches for the LLM generator: one per case worker (every worker measures and feeds the
    scheduler), at most ``llm_concurrency`` cases each (more in flight would only queue)."""
    if not pending:
        return []
    count = max(max(1, workers), math.ceil(len(pending) / max(1, llm_concurrency)))
    size = math.ceil(len(pending) / min(count, len(pending)))
    return [pending[i:i + size] for i in range(0, len(pending), size)]


@task(name="write_shards", cache_policy=NO_CACHE, persist_result=False)
def write_shards(dataset_dir: Path, outcomes: list[CaseOutcome], run_id: str, versions: dict,
                 known: dict[str, dict] | None = None) -> dict:
    """Shards and manifest for the kept cases; ``known`` maps case ids to ``done.json`` already read."""
    store = CaseStore(dataset_dir)
    known = known or {}
    kept = [o for o in outcomes if o.status in ("ok", "unchanged", "missing")]
    failures = [o.model_dump(include={"case_label", "case_id", "error_type", "reason"})
                for o in sorted(outcomes, key=lambda o: (o.case_label, o.case_id or "")) if o.status == "failed"]
    keep_ids = {o.case_id for o in kept}
    for stale in set(store.case_ids()) - keep_ids - {o.case_id for o in outcomes}:
        store.remove(stale)  # cases no longer in the manifest leave the dataset
    entries = [case_entry(store, o.case_id, known.get(o.case_id)) for o in kept]
    manifest, mode = update_dataset(dataset_dir, entries, run_id=run_id, versions=versions, failures=failures)
    return {"record_count": manifest["record_count"], "assembly": mode}


def run_artifacts(summary: dict, outcomes: list[CaseOutcome]) -> list[tuple[str, dict]]:
    """The run's Prefect artifacts as (``table`` | ``markdown``, keyword arguments)."""
    from tumorcot.ops.audit import agent_stats

    artifacts = [("table", {
        "key": "tumorcot-cases", "description": "Per-case outcome of this build",
        "table": [o.model_dump(include={"case_label", "case_id", "status", "records", "rejected", "error_type",
                                        "reason"}) for o in outcomes]})]
    written = [o.case_id for o in outcomes if o.status == "ok"]
    turns = _run_log(Path(summary["dataset"]), summary["run_id"], written) if written else []
    if turns:
        artifacts.append(("table", {"key": "tumorcot-agents", "description": "Generation log of this run, per agent",
                                    "table": agent_stats(turns)}))
    lines = [f"# tumorcot {summary.get('kind', 'build')} {summary['run_id']}", "",
             f"- cases ok: {summary['ok']}, unchanged: {summary['unchanged']}, failed: {summary['failed']}",
             f"- records in dataset: {summary['records']}", f"- rejected by the calibrator: {summary['rejected']}",
             f"- shard update: {summary.get('assembly')}"]
    artifacts.append(("markdown", {"key": "tumorcot-summary", "markdown": "\n".join(lines)}))
    return artifacts


def _publish(summary: dict, outcomes: list[CaseOutcome]) -> None:
    for kind, fields in run_artifacts(summary, outcomes):
        (create_table_artifact if kind == "table" else create_markdown_artifact)(**fields)


PER_CASE_LOG_LIMIT = 100
STAT_COLUMNS = ["run_id", "agent", "verdict", "error", "attempt", "cached", "prompt_tokens", "completion_tokens",
                "latency_ms"]


def _run_log(dataset_dir: Path, run_id: str, written: list[str]) -> list[dict]:
    """This run's log rows (the columns ``agent_stats`` reads): from the written cases' own logs
    when they are few, else from the log shards filtered on ``run_id``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tumorcot.schemas import AgentTurn
    from tumorcot.schemas.arrow import arrow_schema
    from tumorcot.store.shards import case_tables, read_manifest

    if len(written) <= PER_CASE_LOG_LIMIT:
        schema = arrow_schema(AgentTurn)
        tables = [t.select(STAT_COLUMNS) for t in case_tables(CaseStore(dataset_dir), sorted(written), "log", schema)]
    else:
        tables = [pq.read_table(dataset_dir / f["path"], columns=STAT_COLUMNS, filters=[("run_id", "=", run_id)])
                  for f in read_manifest(dataset_dir)["files"] if f["kind"] == "log"]
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    return [r for r in rows if r["run_id"] == run_id]




@flow(name="build_dataset", log_prints=False)
def build_dataset(manifest: Path, out: Path, generator: str | None = None, force: bool = False,
                  batch_size: int = 0, options: dict | None = None, segmentation: dict | None = None,
                  llm_concurrency: int = 16, workers: int = 2, state_dir_path: str | None = None,
                  allow_removal: bool = False) -> dict:
    """Build (or incrementally update) the dataset in ``out`` from the case manifest.

    Cases go to tasks in batches of ``batch_size``; with 0 the first ``PROBE_CASES`` go one per
    task and the first to finish sizes the rest (``auto_batch_size``), so that the per-task
    orchestration cost stays small whether a case takes 50 ms (phantoms) or a minute (real CT).
    ``generator`` (``offline`` or ``llm``), ``options`` (``GenerationOptions`` fields: splits,
    negative share, multiple-choice share, interleaving) and ``segmentation`` (``SegmentationPlan``
    fields) override the settings stored with the dataset (``flows/settings.py``; defaults for a
    new dataset: offline, default options, the manifest's masks); ``state_dir_path`` is the
    private state folder (default: ``$TUMORCOT_STATE_DIR``, else ``OUT.private`` beside ``out``).

    Without ``allow_removal`` a manifest that would remove most published cases is refused
    (``RemovalRefusedError``, nothing written), and a published case whose input files are
    missing keeps its records and is reported ``missing`` (``store/removal.py``).

    With ``generator="llm"`` the cases go to ``process_cases_llm`` in ``llm_batches`` (one per
    case worker, ``workers``), whose agents share one LLM scheduler per process with at most
    ``llm_concurrency`` requests in flight (per worker process with Dask)."""
    flow_started = time.time()
    bind(out, state_dir_path)
    settings = resolve_settings(out, generator, options, segmentation)
    for warning in settings.warnings:
        get_run_logger().info("settings: %s", warning)
    generator, plan = settings.generator, settings.segmentation
    options, segmentation = settings.options.model_dump(mode="json"), plan.model_dump(mode="json")
    use_system_allocator()
    manifest, out = Path(manifest).absolute(), Path(out).absolute()   # tasks may run on other machines
    out.mkdir(parents=True, exist_ok=True)
    run_id = datetime.now(timezone.utc).strftime("run-%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    state = str(state_dir(out))   # resolved here, passed to every task
    with dataset_lock(out):
        salt = load_or_create_salt(out)
        entries = read_case_manifest(manifest)
        outcomes = [CaseOutcome(run_id=run_id, case_label=e.case or "manifest", status="failed",
                                error_type="ManifestError", reason=str(e))
                    for e in entries if isinstance(e, ManifestError)]
        cases = [e for e in entries if not isinstance(e, ManifestError)]
        problem = removal_problem(out, cases, salt, allow_removal=allow_removal)
        if problem:
            raise RemovalRefusedError(problem)
        progress = current_progress()
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
                                                llm_concurrency, state)
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
            llm_stats = close_schedulers()   # this process's (threads); Dask workers close theirs at exit
        del futures, pending
        manifest_json = write_shards(out, quote(outcomes), run_id, versions, quote(known))
        summary = {
            "run_id": run_id, "dataset": str(out),
            "ok": sum(o.status == "ok" for o in outcomes),
            "unchanged": sum(o.status == "unchanged" for o in outcomes),
            "failed": sum(o.status == "failed" for o in outcomes),
            "missing": sum(o.status == "missing" for o in outcomes),
            "records": manifest_json["record_count"], "assembly": manifest_json["assembly"],
            "rejected": sum(o.rejected for o in outcomes if o.status == "ok"),
            "llm_calls": sum(o.llm_calls for o in outcomes if o.status == "ok"),
            "flow_started": flow_started,
        }
        if llm_stats:
            summary["llm"] = llm_stats[0] if len(llm_stats) == 1 else llm_stats
        record = run_record_path(out, run_id)
        atomic_write_json(record, {**summary, "outcomes": [o.model_dump() for o in
                                                           sorted(outcomes, key=lambda o: o.case_label)]})
    _publish(summary, outcomes)
    return {**summary, "run_record": str(record)}


def missing_outcome(case: CaseInput, salt: bytes, run_id: str, fields: list[str], previous: dict) -> CaseOutcome:
    """A published case whose inputs are gone: kept as published, reported missing."""
    return CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id_for(case.patient_id, case.study_id, salt),
                       status="missing", error_type="InputsMissing", records=previous.get("records", 0),
                       reason=f"input file(s) not found: {', '.join(fields)}; its published records are kept "
                              "(--allow-removal removes them)")


def run_record_path(out: Path, run_id: str) -> Path:
    return out / "runs" / f"{run_id}.json"


def run_build(manifest: Path, out: Path, *, generator: str | None = None, concurrency: int = 2,
              force: bool = False, progress=None, task_runner: str = "threads",
              dask_address: str | None = None, options: GenerationOptions | dict | None = None,
              segmentation: SegmentationPlan | dict | None = None, llm_concurrency: int = 16,
              allow_removal: bool = False) -> dict:
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
    with showing(progress):
        result = configured(Path(manifest).absolute(), Path(out).absolute(), generator=generator, force=force,
                            options=explicit(options) or None, segmentation=explicit(segmentation) or None,
                            llm_concurrency=per_process, workers=concurrency, state_dir_path=str(state_dir(out)),
                            allow_removal=allow_removal)
    summary = json.loads(Path(result["run_record"]).read_text())
    summary["startup_s"] = round(summary.get("flow_started", called) - called, 2)
    summary["prefect_server"] = "configured" if os.environ.get("PREFECT_API_URL") else "temporary"
    return summary
