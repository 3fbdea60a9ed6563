"""Pathology: benign vs malignant and histology only from given labels; without labels, the
knowledge graph's differential for the lesion, phrased as a differential that needs confirmation.

One record per lesion. Its steps are the lesion's finding -> impression -> pathology chain
(``chains.lesion_chain``). Benign-vs-malignant is asked as multiple choice only when the labels
give the behaviour.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, lesion_phrase
from tumorcot.agents.chains import given_pathology, lesion_chain, render_think
from tumorcot.vocabulary import ATTRIBUTE_VALUES
from tumorcot.vocabulary import display_name
from tumorcot.schemas import CoTRecord


def pathology_records(make: RecordFactory) -> list[CoTRecord]:
    out = []
    for lesion in make.facts.lesions:
        noun, where = lesion_phrase(lesion)
        steps = lesion_chain(make.facts, lesion, make.kg)
        impression, pathology = steps[1], steps[-1]
        given = given_pathology(make.facts, lesion.organ)
        q, tpl = make.question("pathology", lesion.id, lesion=noun, where=where, organ=display_name(lesion.organ))
        fields = dict(task="pathology", subtask="pathology", subject=lesion.id, question=q, template=tpl,
                      organ=lesion.organ, lesion_id=lesion.id, roi_box=list(lesion.bbox.normalized),
                      steps=steps, think=render_think(steps))
        if given is not None and given.behavior and make.wants_choice("pathology", lesion.id):
            options, index = make.place(given.behavior, [v for v in ATTRIBUTE_VALUES["behavior"]])
            out.append(make.make(**fields, answer=given.behavior, conclusion=pathology.text,
                                 form="multiple_choice", options=options, answer_index=index))
        elif given is not None:
            out.append(make.make(**fields, answer=pathology.text))
        else:
            out.append(make.make(**fields, answer=f"Differential, not a diagnosis: {impression.text} {pathology.text}"))
    return out
