"""A record whose rationale is a short chain: value -> reference or threshold -> label.

The organ-level families (``organs``, ``burden``, ``spatial``) state numbers and labels derived
from measured facts (``schemas.derived``). Each step cites the facts it states and follows from
the steps before it, so the label step is checked against everything the chain has cited. The
answer is a separate sentence from the subtask's answer bank (``prompts/answers``), never the
rationale word for word. The lesion attributes (``attributes``) and boxes (``localization``) are
chains too; a closed-answer record may be asked as multiple choice (``closed``): its answer is
then the option, its conclusion the answer sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tumorcot.agents.base import RecordFactory
from tumorcot.agents.families.choice import distractors
from tumorcot.schemas import CoTRecord, Step


@dataclass
class Link:
    """One step of the chain: its text and the fact ids (and KG nodes) it states."""

    text: str
    fact_ids: list[str]
    kg_node_ids: list[str] = field(default_factory=list)
    organ: str | None = None


def chain_record(make: RecordFactory, *, task: str, subtask: str, subject: str, organ: str | None,
                 links: list[Link], question: dict, answer: dict, roi=None, lesion_id: str | None = None,
                 negative: bool = False, closed: tuple[str, tuple[str, ...] | None] | None = None) -> CoTRecord:
    """One record: the question and answer forms drawn for ``subject``, the links as steps;
    ``closed=(answer, pool)`` makes it multiple choice when drawn so (``wants_choice``)."""
    table = make.table
    missing = [f for link in links for f in link.fact_ids if f not in table]
    if missing:   # a generator bug: a chain must only cite facts that exist
        raise ValueError(f"{make.facts.case_id}: {subtask} cites missing facts {missing}")
    q, tpl = make.question(subtask, subject, **question)
    steps = [Step(index=i, stage="finding", organ=link.organ or organ, text=link.text, fact_ids=link.fact_ids,
                  kg_node_ids=[n for n in link.kg_node_ids if n in make.kg], roi_box=list(roi) if roi else None,
                  follows_from=list(range(i))) for i, link in enumerate(links)]
    text, form = make.answer(subtask, subject, **answer)
    fields = dict(task=task, subtask=subtask, subject=subject, question=q, template=tpl, answer_template=form,
                  organ=organ, lesion_id=lesion_id, roi_box=list(roi) if roi else None, steps=steps,
                  think=" ".join(s.text for s in steps), negative=negative)
    if closed and closed[1] and make.wants_choice(subtask, subject):
        value, pool = closed
        options, index = make.place(value, distractors(value, pool, f"{make.facts.case_id}\x1f{subject}"))
        return make.make(**fields, answer=value, conclusion=text, form="multiple_choice", options=options,
                         answer_index=index)
    return make.make(**fields, answer=text, conclusion=text)
