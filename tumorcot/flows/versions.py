"""The run's versions: everything besides a case's inputs that decides its facts or its records.

``tumorcot.store.keys`` splits them: ``imaging`` and ``segmentation`` decide the facts key (a
change re-measures), the rest the records key (a change regenerates from the stored facts);
the split ratios and the family mix in ``options`` decide neither (they are applied when shards
are written).
"""

from __future__ import annotations

from tumorcot.agents.base import PIPELINE_VERSION
from tumorcot.flows.segment import SegmentationPlan, resolve_plan
from tumorcot.imaging import imaging_version
from tumorcot.knowledge_graph import load_kg
from tumorcot.prompts import prompt_version
from tumorcot.schemas import GenerationOptions
from tumorcot.schemas.options import resolve_options


def pipeline_versions(generator: str, options: GenerationOptions | dict | None = None,
                      segmentation: SegmentationPlan | dict | None = None) -> dict:
    """Measurement (imaging code and vocabulary, segmentation plan) and generation (KG, prompts,
    pipeline, generator, options; for the LLM generator the model names, not the endpoint URL or
    key) versions, computed once per run."""
    versions = {"imaging": imaging_version(), "segmentation": resolve_plan(segmentation).version(),
                "kg": load_kg().version, "prompts": prompt_version(), "pipeline": PIPELINE_VERSION,
                "generator": generator, "options": resolve_options(options).model_dump(mode="json")}
    if generator == "llm":
        from tumorcot.agents.client import LLMConfig

        config = LLMConfig.from_env()
        versions["models"] = {"default": config.model, **dict(sorted(config.agent_models.items()))}
    return versions
