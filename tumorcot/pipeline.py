"""One case, start to finish, without Prefect: inputs -> facts -> records -> calibrated records.

The flow calls these functions from its tasks; tests call them directly.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import SimpleITK as sitk

from tumorcot.agents.calibrator import calibrate
from tumorcot.errors import CaseInputError
from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.imaging.plausibility import check_lesions, check_organs
from tumorcot.imaging.structures import case_masks
from tumorcot.imaging.measure import measure_lesions, measure_organs
from tumorcot.imaging.phase import calcium_cutoff, estimate_phase
from tumorcot.knowledge_graph import KnowledgeGraph, load_kg
from tumorcot.knowledge_graph.staging import given_t_checks
from tumorcot.privacy import case_id_for, pseudonymise
from tumorcot.scope import lesion_labels_by_id, resolve_case_pathology
from tumorcot.schemas import AgentTurn, CaseFacts, CaseInput, CoTRecord, CTInfo, GenerationOptions
from tumorcot.store.keys import input_hashes


def extract_facts(case: CaseInput, salt: bytes, hashes: dict[str, str] | None = None, *,
                  segmentation_backend: str = "precomputed") -> CaseFacts:
    hashes = hashes or input_hashes(case)
    loaded = load_ct(case.ct, case=case.label, sha256=hashes.get("ct"))
    ct = loaded.image
    masks = case_masks(case, ct)
    organ_mask, lesion_mask = masks.organ_mask, masks.lesion_mask
    annotated = case.annotated_organs or masks.annotated_organs
    if lesion_mask is not None and _is_empty(lesion_mask) and not annotated:
        raise CaseInputError("lesion_mask is empty on the CT grid (no non-zero voxel): wrong file or label? "
                             "For a case without lesions leave lesion_mask blank; for a verified-negative study "
                             "name the organs that were checked in annotated_organs", case=case.label)
    organs = measure_organs(ct, organ_mask) if organ_mask is not None else []
    check_organs(organs, case=case.label)
    phase, evidence = estimate_phase(
        sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(organ_mask) if organ_mask is not None else None,
        sitk.GetArrayViewFromImage(lesion_mask) if lesion_mask is not None else None, organs, ct.GetSpacing())
    segments = load_mask(case.liver_segments, ct, case=case.label, what="liver_segments") \
        if case.liver_segments and lesion_mask is not None else None
    lesions = measure_lesions(ct, lesion_mask, organ_mask, organs, lesion_labels=masks.lesion_labels,
                              liver_segments=segments, calcium_hu=calcium_cutoff(phase, evidence),
                              case=case.label) if lesion_mask is not None else []
    check_lesions(lesions, ct, case=case.label)
    for lesion in lesions:
        lesion.provenance = masks.lesion_provenance or "annotated"
    facts = CaseFacts(
        case_id=case_id_for(case.patient_id, case.study_id, salt),
        patient_pseudo_id=pseudonymise(case.patient_id, salt),
        study_pseudo_id=pseudonymise(f"{case.patient_id}\x1f{case.study_id}", salt, prefix="s"),
        ct=CTInfo(size=tuple(ct.GetSize()), spacing_mm=tuple(ct.GetSpacing()),
                  input_format=loaded.input_format, content_sha256=loaded.sha256),
        organs=organs, lesions=lesions, has_organ_mask=organ_mask is not None,
        has_lesion_mask=lesion_mask is not None, annotated_organs=annotated,
        pathology=resolve_case_pathology(case, lesions), lesion_pathology=lesion_labels_by_id(case, lesions),
        segmentation_backend=segmentation_backend,
        synthetic=case.synthetic or (case.source or "").startswith("synthetic"), source=case.source,
        input_sha256=hashes, contrast_phase=phase, phase_evidence=evidence,
    )
    return with_t_checks(facts)


def with_t_checks(facts: CaseFacts) -> CaseFacts:
    """The facts with each given T compared with the current KG's size rule. The comparison
    depends on the KG, so facts reused from the private store (their key has no KG version)
    are refreshed with it before any record is made."""
    return facts.model_copy(update={"t_checks": given_t_checks(facts, load_kg())})


def _is_empty(mask) -> bool:
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(mask)
    return stats.GetMaximum() == 0


def offline_records(facts: CaseFacts, kg: KnowledgeGraph, run_id: str,
                    options: GenerationOptions | None = None) -> tuple[list[CoTRecord], list[AgentTurn], int]:
    """Generate with the offline KG-grounded generator and calibrate; (accepted, log, rejected)."""
    from tumorcot.agents.offline import OfflineGenerator

    start = time.perf_counter()
    generated = OfflineGenerator(kg, options).generate(facts)
    accepted, rejected = calibrate(generated, facts, kg)
    elapsed_ms = (time.perf_counter() - start) * 1000
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    log = [AgentTurn(run_id=run_id, case_id=facts.case_id, agent="offline-generator", model=None,
                     parsed_json=json.dumps({"generated": len(generated), "accepted": len(accepted)}),
                     latency_ms=elapsed_ms, verdict="accepted" if not rejected else "rejected",
                     reasons=[f"{r.record_id} ({r.subtask}): {'; '.join(why)}" for r, why in rejected],
                     timestamp=now)]
    for record, why in rejected:
        log.append(AgentTurn(run_id=run_id, case_id=facts.case_id, record_id=record.record_id,
                             agent="calibrator", verdict="rejected", reasons=why, timestamp=now,
                             parsed_json=record.model_dump_json()))
    return accepted, log, len(rejected)


def llm_config(cache_dir=None, concurrency: int | None = None):
    """The endpoint from the environment (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``,
    ``TUMORCOT_MODEL``); ``LLMOutputError`` when it names no endpoint or model."""
    from tumorcot.agents.client import LLMConfig
    from tumorcot.errors import LLMOutputError

    config = LLMConfig.from_env(cache_dir=cache_dir, concurrency=concurrency)
    if not config.configured:
        raise LLMOutputError("--generator llm needs OPENAI_BASE_URL and TUMORCOT_MODEL")
    return config


def llm_records(facts: CaseFacts, kg: KnowledgeGraph, run_id: str, *, report: str | None = None,
                cache_dir=None, options: GenerationOptions | None = None) -> tuple[list[CoTRecord], list[AgentTurn], int]:
    """Generate with the multi-agent LLM engine (endpoint from the environment) on the process's
    LLM scheduler; same contract as ``offline_records``: (accepted, log, rejected-or-failed count)."""
    from tumorcot.agents.llm import LLMGenerator
    from tumorcot.agents.scheduler import shared_scheduler

    config = llm_config(cache_dir)
    generator = LLMGenerator(kg, config, run_id=run_id, options=options)
    result = shared_scheduler(config, run_id).run(
        lambda client: generator.agenerate(facts, report=report, client=client))
    return result.records, result.log, len(result.failed)


def case_records(facts: CaseFacts, kg: KnowledgeGraph, run_id: str, generator: str = "offline", *,
                 report: str | None = None, cache_dir=None,
                 options: GenerationOptions | None = None) -> tuple[list[CoTRecord], list[AgentTurn], int]:
    """Dispatch on the generator name: ``offline`` or ``llm``."""
    if generator == "llm":
        records, log, failed = llm_records(facts, kg, run_id, report=report, cache_dir=cache_dir, options=options)
    else:
        records, log, failed = offline_records(facts, kg, run_id, options)
    return stamp_provenance(records, facts), log, failed


def stamp_provenance(records: list[CoTRecord], facts: CaseFacts) -> list[CoTRecord]:
    """Each lesion record says whether its lesion was annotated or predicted by a model."""
    provenance = {lesion.id: lesion.provenance for lesion in facts.lesions}
    for record in records:
        if record.lesion_id in provenance:
            record.lesion_provenance = provenance[record.lesion_id]
    return records


def llm_requests(log: list[AgentTurn]) -> int:
    """HTTP requests in a generation log (cache hits and verdict rows excluded)."""
    return sum(1 for t in log if t.model is not None and t.template and not t.cached)
