"""Pathology: without labels, the knowledge graph's differential for the lesion, phrased as a
differential that needs confirmation; with labels, the labels are context in the question
("Pathology report: ...") and the target says whether the imaging impressions include them.

One record per lesion. Its steps are the lesion's finding -> impression -> pathology chain
(``chains.lesion_chain``). Labels never become a claim of the target ("Given pathology: ...").
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, lesion_phrase
from tumorcot.agents.chains import given_labels_for, lesion_chain, render_think, report_context
from tumorcot.vocabulary import display_name
from tumorcot.schemas import CoTRecord


def pathology_records(make: RecordFactory) -> list[CoTRecord]:
    out = []
    for lesion in make.facts.lesions:
        noun, where = lesion_phrase(lesion, make.facts)
        steps = lesion_chain(make.facts, lesion, make.kg)
        impression, pathology = steps[1], steps[-1]
        given, _ = given_labels_for(make.facts, lesion)
        q, tpl = make.question("pathology", lesion.id, lesion=noun, where=where, organ=display_name(lesion.organ))
        fields = dict(task="pathology", subtask="pathology", subject=lesion.id,
                      question=report_context(make.facts, [lesion]) + q, template=tpl,
                      organ=lesion.organ, lesion_id=lesion.id, roi_box=list(lesion.bbox.normalized),
                      steps=steps, think=render_think(steps))
        text, form = make.answer("pathology", lesion.id, impression=impression.text, pathology=pathology.text,
                                 given=given is not None)
        out.append(make.make(**fields, answer=text, answer_template=form))
    return out
