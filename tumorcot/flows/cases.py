"""The per-case tasks of a build: facts (measured, or reused), records, stored results.

``prepare_case`` decides with the two keys of ``tumorcot.store.keys``: a case whose records key
is stored is *unchanged*; else, when facts measured under its facts key are kept
(``CaseStore.measured``), they are read back from the private state folder (no CT decoded, no
segmentation run) and only its records are made again; else it is segmented and measured, and
the facts are kept at once (a case whose generation then fails is not measured again). ``finish_case`` stores the records, log and facts with both
keys. ``process_cases`` runs batches with the offline generator, ``process_cases_llm`` with the
build-wide LLM scheduler (see ``agents/scheduler.py``).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tumorcot.errors import TumorcotError
from tumorcot.flows.measure_pool import measurement_processes, prepared, worker_pool
from tumorcot.flows.segment import resolve_plan, segmented_case
from tumorcot.flows.versions import pipeline_versions
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import case_records, extract_facts, llm_config, llm_requests, with_t_checks
from tumorcot.privacy import case_id_for, scrub_ids
from tumorcot.review.verdicts import quarantined_ids
from tumorcot.schemas import CaseFacts, CaseInput, CaseOutcome
from tumorcot.schemas.options import resolve_options
from tumorcot.store.cases import CaseStore
from tumorcot.store.keys import (facts_key, facts_sha256, input_hashes, input_signature, recorded_hashes,
                                 records_key, stored_facts_current)
from tumorcot.store.private import bind, state_dir


@dataclass
class PreparedCase:
    """A case with its facts, waiting for its records (the state between measurement and storing)."""

    case: CaseInput
    case_id: str
    key: str                  # records key
    facts: CaseFacts
    hashes: dict
    signature: dict | None
    facts_key: str
    facts_hash: str
    measured: bool            # False: the stored facts were reused
    quarantined: frozenset = frozenset()   # record ids judged wrong in review: never stored
    started: float = field(default_factory=time.perf_counter)


def failed_outcome(case: CaseInput, case_id: str, run_id: str, exc: Exception) -> CaseOutcome:
    kind = type(exc).__name__ if isinstance(exc, TumorcotError) else f"internal {type(exc).__name__}"
    return CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id, status="failed",
                       error_type=kind, reason=scrub_ids(str(exc), case, case_id))


def missing_outcome(case: CaseInput, salt: bytes, run_id: str, fields: list[str], previous: dict) -> CaseOutcome:
    """A published case whose inputs are gone: kept as published, reported missing."""
    return CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id_for(case.patient_id, case.study_id, salt),
                       status="missing", error_type="InputsMissing", records=previous.get("records", 0),
                       reason=f"input file(s) not found: {', '.join(fields)}; its published records are kept "
                              "(--allow-removal removes them)")


def _unchanged(store: CaseStore, case: CaseInput, case_id: str, run_id: str, done: dict, started: float,
               measured: bool = False, **updates) -> CaseOutcome:
    store.remember_input(case_id, case, done)
    if any(done.get(k) != v for k, v in updates.items() if v is not None):   # touched, same content
        store.write_done(case_id, {**done, **{k: v for k, v in updates.items() if v is not None}})
    return CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id, status="unchanged",
                       records=done.get("records", 0), rejected=done.get("rejected", 0), measured=measured,
                       elapsed_s=round(time.perf_counter() - started, 4))


def prepare_case(case: CaseInput, dataset_dir: Path, salt: bytes, run_id: str, force: bool, versions: dict,
                 segmentation: dict | None = None) -> PreparedCase | CaseOutcome:
    """The case's facts (stored or measured) and keys, or its final outcome (unchanged, or failed
    with the reason). ``force`` re-measures and regenerates whatever is stored."""
    started = time.perf_counter()
    case_id = case_id_for(case.patient_id, case.study_id, salt)
    store = CaseStore(dataset_dir)
    try:
        quarantined_records, quarantined_cases = quarantined_ids(dataset_dir)
        if case_id in quarantined_cases:
            return CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id, status="failed",
                               error_type="QuarantinedByReview", reason="the case was quarantined after clinical "
                               "review (its reasons: review/verdicts.json, tumorcot audit)")
        done = None if force else store.done(case_id)
        signature = input_signature(case)
        hashes = recorded_hashes(case, done, signature) or input_hashes(case)
        fkey = facts_key(hashes, versions)
        if stored_facts_current(done, fkey) and done.get("key") == records_key(done["facts_sha256"], hashes, versions):
            return _unchanged(store, case, case_id, run_id, done, started, input_signature=signature)
        kept = None if force else store.measured(case_id, fkey)
        if kept is not None:   # KG-dependent checks (given T vs the KG's size rule): from the current KG
            (facts, facts_hash), measured = (with_t_checks(kept[0]), kept[1]), False
        else:
            plan = resolve_plan(segmentation)
            facts = measure_case(case, plan, dataset_dir, salt, hashes)
            facts_hash, measured = facts_sha256(facts), True
            store.keep_measured(case_id, fkey, facts_hash, facts)
        key = records_key(facts_hash, hashes, versions)
        if done is not None and done.get("key") == key:   # same facts as the stored records': they stand
            return _unchanged(store, case, case_id, run_id, done, started, measured=measured, facts_key=fkey,
                              facts_sha256=facts_hash, input_signature=signature, input_sha256=hashes)
        return PreparedCase(case, case_id, key, facts, hashes, signature, fkey, facts_hash, measured,
                            frozenset(quarantined_records), started)
    except Exception as exc:  # a bad case is reported and the batch goes on
        return failed_outcome(case, case_id, run_id, exc)


def measure_case(case: CaseInput, plan, dataset_dir: Path, salt: bytes, hashes: dict) -> CaseFacts:
    """Segment (with the plan's backend) and measure: the one CT decode of a case."""
    segmented = segmented_case(case, plan, dataset_dir, hashes["ct"])
    return extract_facts(segmented, salt, hashes if segmented is case else input_hashes(segmented),
                         segmentation_backend=plan.backend)


def llm_gaps(log: list) -> list[str]:
    """The LLM requests of a case that got no usable answer (endpoint down, timeouts, refusals
    after every retry): their turns are logged with verdict ``failed``."""
    return sorted({f"{t.agent}: {t.error or 'no answer'}" for t in log if t.model and t.verdict == "failed"})


def finish_case(step: PreparedCase, dataset_dir: Path, run_id: str, records: list, log: list,
                rejected: int) -> CaseOutcome:
    """Store a case's records (less those quarantined in review), log and facts; its outcome.

    A case whose LLM stage did not complete is *degraded*: what it could make is stored (each
    record labelled with the generator that wrote it), but its records key is marked so that
    the next build redoes it; the response cache answers the calls that succeeded, so only the
    missing work is asked again."""
    records = [r for r in records if r.record_id not in step.quarantined]
    gaps = llm_gaps(log)
    key = f"{step.key}#degraded" if gaps else step.key
    try:
        CaseStore(dataset_dir).write(
            step.case_id, key, step.facts, records, log,
            {"records": len(records), "rejected": rejected, "run_id": run_id, "input_sha256": step.hashes,
             "input_signature": step.signature, "facts_key": step.facts_key, "facts_sha256": step.facts_hash},
            case=step.case)
    except Exception as exc:
        return failed_outcome(step.case, step.case_id, run_id, exc)
    return CaseOutcome(run_id=run_id, case_label=step.case.label, case_id=step.case_id,
                       status="degraded" if gaps else "ok", error_type="LLMStageIncomplete" if gaps else None,
                       reason=f"{len(gaps)} LLM request kind(s) got no answer, retried by the next build: "
                              + "; ".join(gaps)[:500] if gaps else None,
                       records=len(records), rejected=rejected, llm_calls=llm_requests(log), measured=step.measured,
                       elapsed_s=round(time.perf_counter() - step.started, 4))


@task(name="process_case", cache_policy=NO_CACHE, persist_result=False, task_run_name="process_case-{case.row}")
def process_case(case: CaseInput, dataset_dir: Path, salt: bytes, run_id: str, generator: str,
                 force: bool = False, use_llm_cache: bool = True, options: dict | None = None,
                 versions: dict | None = None, segmentation: dict | None = None,
                 state: str | None = None) -> CaseOutcome:
    """Facts, records, calibration and storage of one case; never raises for a bad case.

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
                      llm_concurrency: int = 16, state: str | None = None, workers: int = 1,
                      build_cases: int = 0) -> list[CaseOutcome]:
    """A batch of cases for the LLM generator: its cases are measured (in worker processes, see
    ``flows/measure_pool.py``, or in this task's thread) and each case's agents are handed to the
    process's LLM scheduler as soon as it is measured (one event loop, one client, one in-flight
    limit of ``llm_concurrency`` shared by every task of the process), so the agents of many
    cases, of this batch and of the other running batches, are in flight together; each case is
    stored as soon as its agents are done. ``workers`` and ``build_cases`` (case workers and
    cases of the whole build) decide the measurement processes. See ``agents/scheduler.py``."""
    from tumorcot.agents.llm import LLMGenerator
    from tumorcot.agents.scheduler import shared_scheduler

    bind(dataset_dir, state)
    versions = versions or pipeline_versions("llm", options, segmentation)
    config = llm_config(state_dir(dataset_dir) / "llm-cache", llm_concurrency)
    scheduler = shared_scheduler(config, run_id)
    generator = LLMGenerator(load_kg(), config, run_id=run_id, options=resolve_options(options))
    outcomes: list[CaseOutcome] = []
    measure = functools.partial(_prepare_bound, dataset_dir=dataset_dir, salt=salt, run_id=run_id, force=force,
                                versions=versions, segmentation=segmentation, state=state)
    processes = measurement_processes(workers, segmentation, max(build_cases, len(cases)))
    if processes:   # the same processes draft the records and run the last gate's claim checks
        generator.check_pool = worker_pool(processes)
        scheduler.worker_processes = max(scheduler.worker_processes, processes)

    def prepare(item: tuple[CaseInput, PreparedCase | CaseOutcome | Exception]) -> PreparedCase | None:
        case, step = item
        if isinstance(step, Exception):   # the measuring process could not return the case
            step = failed_outcome(case, case_id_for(case.patient_id, case.study_id, salt), run_id, step)
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

    outcomes += scheduler.pipeline(prepared(cases, measure, processes), prepare, stage, finish)
    scheduler.flush()   # the batch's answers are on disk before the task reports it done
    return outcomes


def _prepare_bound(case: CaseInput, *, dataset_dir: Path, salt: bytes, run_id: str, force: bool, versions: dict,
                   segmentation: dict | None, state: str | None) -> PreparedCase | CaseOutcome:
    """``prepare_case`` in any process (a measurement worker learns the state folder here)."""
    bind(dataset_dir, state)
    return prepare_case(case, dataset_dir, salt, run_id, force, versions, segmentation)


LLM_CASES_PER_SLOT = 16   # an LLM batch holds at most this many cases per --llm-concurrency slot


def llm_batches(pending: list, workers: int, llm_concurrency: int) -> list[list]:
    """Batches for the LLM generator: one per case worker (every worker measures and feeds the
    scheduler), so that every pending case is in flight at once and one batch's last cases never
    leave the endpoint idle while the next batch waits for a worker; at most
    ``LLM_CASES_PER_SLOT * llm_concurrency`` cases each, which bounds the facts held in memory
    and keeps progress moving on very large builds (then the drain at a batch's end is a few
    percent of its time)."""
    if not pending:
        return []
    cap = LLM_CASES_PER_SLOT * max(1, llm_concurrency)
    count = max(max(1, workers), math.ceil(len(pending) / cap))
    size = math.ceil(len(pending) / min(count, len(pending)))
    return [pending[i:i + size] for i in range(0, len(pending), size)]
