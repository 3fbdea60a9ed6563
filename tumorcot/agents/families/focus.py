"""Conversation turns, including TumorChain's interleaved organ focus.

Every record gets its turns here, as the last step of generation (after any LLM rewording):

* plain records: ``question`` (user) -> ``answer`` (assistant), texts from ``tumorcot.conversation``;
* organ-level reasoning records (report, TNM, pathology) when ``interleave`` is on:
  ``question`` -> ``first_pass`` (assistant, from the whole volume: is there a lesion in the
  organ at all) -> ``attend`` (user: "attend to <organ>", with the organ's ROI box and
  ``crop_ref="crop:<organ>"``, the CT cropped to that box) -> ``final`` (assistant: the full
  step-aligned reasoning and conclusion).

The first pass only states what the organ's lesion count licenses; the calibrator checks it and
that the attend turn's box is the organ's measured box.
"""

from __future__ import annotations

from tumorcot.conversation import answer_text, attend_text, question_text
from tumorcot.schemas import CaseFacts, CoTRecord, Turn
from tumorcot.vocabulary import display_name

FOCUS_TASKS = ("cot_report", "tnm_staging", "pathology")


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
    turns = [
        question,
        Turn(role="assistant", kind="first_pass", content=first_pass_text(record, facts), focus_organ=record.organ),
        Turn(role="user", kind="attend", content=attend_text(record.organ, box),
             focus_organ=record.organ, roi_box=box, crop_ref=f"crop:{record.organ}"),
        Turn(role="assistant", kind="final", content=answer_text(record), focus_organ=record.organ, roi_box=box),
    ]
    return record.model_copy(update={"turns": turns})
