"""Batch mode for ``--generator llm``: send the LLM work as OpenAI Batch API / ``vllm run-batch``
JSONL files instead of live requests, in rounds.

The agents of a case depend on each other's answers (reasoner -> judge -> summarizer -> question
writer), so one file cannot hold a whole build. Each round:

1. ``prepare_round`` generates every case against the response cache of the dataset; the first
   request a case cannot answer from the cache (and every request of that round of agents) goes
   into the requests file, and the case stops there;
2. the user runs the file (OpenAI Batch API, or ``vllm run-batch -i requests.jsonl -o results.jsonl``);
3. ``ingest_round`` stores the successful answers in the dataset's cache.

When a round writes 0 requests, ``tumorcot build --generator llm`` answers everything from the
cache and makes 0 calls. A batch result is only a cached answer: the calibrator checks it exactly
as it checks a live one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tumorcot.agents.batch import BatchWriter, ingest_results
from tumorcot.agents.cache import ResponseCache
from tumorcot.errors import LLMOutputError, ManifestError
from tumorcot.store.private import state_dir


def cache_dir(dataset_dir: Path) -> Path:
    return state_dir(dataset_dir) / "llm-cache"   # the cache ``tumorcot build --generator llm`` reads


def prepare_round(manifest: Path, dataset_dir: Path, requests_path: Path, *, options=None, progress=None) -> dict:
    """Write the next round of requests; returns counts (requests, cases ready/pending/failed)."""
    from tumorcot.agents.client import LLMClient, LLMConfig
    from tumorcot.agents.llm import LLMGenerator
    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.knowledge_graph import load_kg
    from tumorcot.flows.settings import resolve_settings
    from tumorcot.flows.versions import pipeline_versions
    from tumorcot.pipeline import extract_facts, with_t_checks
    from tumorcot.privacy import case_id_for, load_or_create_salt, scrub_ids
    from tumorcot.store.cases import CaseStore
    from tumorcot.store.keys import facts_key, facts_sha256, input_hashes

    config = LLMConfig.from_env(cache_dir=cache_dir(dataset_dir))
    if not config.model:
        raise LLMOutputError("batch mode needs TUMORCOT_MODEL (the model name is part of every request)")
    Path(dataset_dir).mkdir(parents=True, exist_ok=True)
    settings = resolve_settings(dataset_dir, "llm", options)   # the dataset's own unless given
    options, versions = settings.options, pipeline_versions("llm", settings.options, settings.segmentation)
    salt, kg, store = load_or_create_salt(dataset_dir), load_kg(), CaseStore(dataset_dir)

    def facts_of(entry):
        """Facts kept under the case's facts key (a build or an earlier round measured it), else
        measured from the manifest's masks, and kept when that is the dataset's segmentation."""
        case_id, hashes = case_id_for(entry.patient_id, entry.study_id, salt), input_hashes(entry)
        key = facts_key(hashes, versions)
        kept = store.measured(case_id, key)
        if kept is not None:
            return with_t_checks(kept[0])   # KG-dependent checks from the current KG
        facts = extract_facts(entry, salt, hashes)
        if settings.segmentation.backend == "precomputed":
            store.keep_measured(case_id, key, facts_sha256(facts), facts)
        return facts

    writer = BatchWriter()
    summary = {"requests": 0, "ready": 0, "pending": 0, "failed": []}
    entries = read_case_manifest(manifest)

    async def run() -> None:
        async with LLMClient(config, batch=writer) as client:
            for entry in entries:
                if isinstance(entry, ManifestError):
                    summary["failed"].append(str(entry))
                else:
                    try:
                        facts = facts_of(entry)
                        result = await LLMGenerator(kg, config, options=options).agenerate(
                            facts, report=entry.report, client=client)
                        summary["pending" if result.deferred else "ready"] += 1
                    except Exception as exc:  # a bad case is reported; the round goes on
                        reason = scrub_ids(str(exc), entry, "<patient>")
                        summary["failed"].append(f"{entry.label}: {type(exc).__name__}: {reason}")
                if progress is not None:
                    progress()

    asyncio.run(run())
    if len(writer):
        summary["requests"] = writer.write(requests_path)
    return summary


def ingest_round(dataset_dir: Path, results_path: Path, requests_path: Path | None = None) -> dict:
    """Store a results file's successful answers in the dataset's response cache."""
    cache = ResponseCache(cache_dir(dataset_dir))
    try:
        report = ingest_results(results_path, cache, requests=requests_path)
    finally:
        cache.close()
    return {"stored": report.stored, "failed": report.failed, "skipped": report.skipped, "reasons": report.reasons}
