"""Conversation turns, including TumorChain's interleaved organ focus.

Every record gets its turns here, as the last step of generation (after any LLM rewording):

* plain records: ``question`` (user; multiple-choice options listed "A. ...") -> ``answer``
  (assistant: ``<think>`` rationale, conclusion, and the option letter for multiple choice);
* organ-level reasoning records (report, TNM, pathology) when ``interleave`` is on:
  ``question`` -> ``first_pass`` (assistant, from the whole volume: is there a lesion in the
  organ at all) -> ``attend`` (user: "attend to <organ>", with the organ's ROI box and
  ``crop_ref="crop:<organ>"``, the CT cropped to that box) -> ``final`` (assistant: the full
  step-aligned reasoning and conclusion).

The first pass only states what the organ's lesion count licenses; the calibrator checks it and
that the attend turn's box is the organ's measured box.
"""

from __future__ import annotations

from tumorcot.agents.base import fmt_box
from tumorcot.labels import display_name
from tumorcot.schemas import CaseFacts, CoTRecord, Turn

FOCUS_TASKS = ("cot_report", "tnm_staging", "pathology")
LETTERS = "ABCDEFGH"


def question_text(record: CoTRecord) -> str:
    if record.form != "multiple_choice":
        return record.question
    return record.question + "\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(record.options))


def answer_text(record: CoTRecord) -> str:
    text = record.assistant_text()
    if record.form == "multiple_choice" and record.answer_index is not None:
        text += f"\nAnswer: {LETTERS[record.answer_index]}. {record.answer}"
    return text


def focus_box(record: CoTRecord, facts: CaseFacts) -> list[float] | None:
    """The organ's measured box, or the record's own ROI for lesions outside every organ."""
    organ = facts.organ(record.organ) if record.organ else None
    return list(organ.bbox.normalized) if organ is not None else record.roi_box


def first_pass_text(record: CoTRecord, facts: CaseFacts) -> str:
    name = display_name(record.organ)
    n = len(facts.lesions_in(record.organ))
    seen = "no focal lesion" if n == 0 else ("a focal lesion" if n == 1 else "several focal lesions")
    return f"On the whole volume, the {name} shows {seen}. I will attend to the {name} to characterise it."


def with_turns(record: CoTRecord, facts: CaseFacts, interleave: bool = True) -> CoTRecord:
    question = Turn(role="user", kind="question", content=question_text(record))
    box = focus_box(record, facts) if record.organ else None
    if not (interleave and record.task in FOCUS_TASKS and box is not None):
        turns = [question, Turn(role="assistant", kind="answer", content=answer_text(record))]
        return record.model_copy(update={"turns": turns})
    name = display_name(record.organ)
    turns = [
        question,
        Turn(role="assistant", kind="first_pass", content=first_pass_text(record, facts), focus_organ=record.organ),
        Turn(role="user", kind="attend", content=f"Attend to the {name}: region {fmt_box(box)}.",
             focus_organ=record.organ, roi_box=box, crop_ref=f"crop:{record.organ}"),
        Turn(role="assistant", kind="final", content=answer_text(record), focus_organ=record.organ, roi_box=box),
    ]
    return record.model_copy(update={"turns": turns})
