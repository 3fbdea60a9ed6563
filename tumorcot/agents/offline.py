"""The offline KG-grounded generator: the default when no LLM endpoint is configured.

Per case it writes every task family the case's data supports (``agents/families``):
localization (organ and lesion boxes), lesion attributes (presence, count, size, density, shape,
margin, content, sub-location), a per-organ chain-of-thought report (findings -> impression ->
pathology), TNM staging where labels or a KG size rule license it, and pathology (labels, or a
KG differential said to be one), and the organ-level families (organ measures, tumour burden,
spatial relations, vessel contact, pancreatic resectability). Then it keeps the configured share of
negatives and gives every record its conversation turns. Every record is stored; the family mix
chooses which reach the shards.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory
from tumorcot.agents.families.burden import tumor_burden_records
from tumorcot.agents.families.organs import organ_measure_records
from tumorcot.agents.families.spatial import spatial_records, vessel_contact_records
from tumorcot.agents.families.attributes import lesion_attribute_records, organ_presence_records
from tumorcot.agents.families.focus import with_turns
from tumorcot.agents.families.localization import LOCALIZATION_FAMILIES, REPORT_FAMILIES, localization_records
from tumorcot.agents.families.negatives import select_negatives
from tumorcot.agents.families.pathology import pathology_records
from tumorcot.agents.families.resectability import resectability_records
from tumorcot.agents.families.report import report_organs, report_records
from tumorcot.agents.families.staging import staging_records
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.schemas import CaseFacts, CoTRecord, GenerationOptions

__all__ = ["LOCALIZATION_FAMILIES", "REPORT_FAMILIES", "OfflineGenerator", "finish_records", "report_organs"]


def finish_records(records: list[CoTRecord], facts: CaseFacts, options: GenerationOptions) -> list[CoTRecord]:
    """Negative share, then conversation turns (the LLM engine does the same two steps, with its
    rewrites in between). The family mix is applied when shards are written (``families.mix``)."""
    kept = select_negatives(records, options.negative_share)
    return [with_turns(r, facts, options.interleave) for r in kept]


class OfflineGenerator:
    name = "offline-kg"

    def __init__(self, kg: KnowledgeGraph, options: GenerationOptions | None = None):
        self.kg = kg
        self.options = options or GenerationOptions()

    def draft(self, facts: CaseFacts) -> list[CoTRecord]:
        """Every family's records before the negative share and the turns (the LLM engine
        rewrites some of these first)."""
        make = RecordFactory(facts, self.kg, self.name, self.options)
        records = localization_records(make)
        if facts.has_lesion_mask:
            records += organ_presence_records(make)
        for lesion in facts.lesions:
            records += lesion_attribute_records(make, lesion)
        if facts.has_lesion_mask:
            records += report_records(make)
        records += staging_records(make)
        records += pathology_records(make)
        records += organ_measure_records(make) + tumor_burden_records(make) + spatial_records(make)
        records += vessel_contact_records(make) + resectability_records(make)
        return records

    def generate(self, facts: CaseFacts) -> list[CoTRecord]:
        return finish_records(self.draft(facts), facts, self.options)

    def report_organs(self, facts: CaseFacts) -> list[str]:
        return report_organs(facts)
