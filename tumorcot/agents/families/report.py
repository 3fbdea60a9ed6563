"""Per-organ chain-of-thought reports: a ``<think>`` of ordered findings -> impression ->
pathology steps (``chains.organ_chain``), then a conclusion."""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory
from tumorcot.agents.chains import conclusion_of, organ_chain, render_think, report_context
from tumorcot.agents.families.localization import REPORT_FAMILIES
from tumorcot.schemas import CaseFacts, CoTRecord
from tumorcot.vocabulary import NO_HOST, display_name, organ_family


def report_organs(facts: CaseFacts) -> list[str]:
    """Report organs present in the organ mask that hold a lesion or that the lesion mask covers
    (``annotated_organs``: no claim about an organ nobody annotated), then lesion hosts outside
    every known organ."""
    organs = [o.name for o in facts.organs if organ_family(o.name) in REPORT_FAMILIES
              and (facts.lesions_in(o.name) or facts.is_annotated(o.name))]
    return organs + sorted({l.organ for l in facts.lesions if l.organ in NO_HOST})


def report_records(make: RecordFactory) -> list[CoTRecord]:
    out = []
    for organ in report_organs(make.facts):
        steps = organ_chain(make.facts, organ, make.kg)
        q, tpl = make.question("organ_report", organ, organ=display_name(organ))
        q = report_context(make.facts, make.facts.lesions_in(organ)) + q
        organ_facts = make.facts.organ(organ)
        out.append(make.make(task="cot_report", subtask="organ_report", subject=organ, question=q,
                             template=tpl, answer=conclusion_of(steps), organ=organ,
                             roi_box=list(organ_facts.bbox.normalized) if organ_facts else None,
                             steps=steps, think=render_think(steps),
                             negative=organ_facts is not None and organ_facts.lesion_count == 0
                             and not make.facts.lesions_in(organ)))
    return out
