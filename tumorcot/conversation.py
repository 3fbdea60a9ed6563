"""A record as a conversation: the one renderer of turn texts, used by the generators (which
store the turns in the record), the chat exports and the torch Dataset (which read them back).

* ``question_text``: the question, then its lettered options one per line ("A. ...") when it is
  multiple choice;
* ``answer_text``: ``<think>`` rationale, conclusion and, for multiple choice, "Answer: B. ...";
* ``attend_text``: "Attend to the <organ>: region [x0, y0, z0, x1, y1, z1]." (normalised box).

``conversation(record)`` gives the record's stored turns as dicts, never re-rendering them (so
nothing is said twice); a record written before turns existed gets the two turns ``question``
(user) and ``answer`` (assistant) rendered here.
"""

from __future__ import annotations

import string

from tumorcot.schemas import CoTRecord
from tumorcot.vocabulary import display_name

LETTERS = string.ascii_uppercase
ANSWER_LINE = "\nAnswer: "   # before a multiple-choice answer's letter and option
TURN_EXTRAS = ("focus_organ", "roi_box", "crop_ref")


def format_box(box) -> str:
    """A normalised box as records state it: ``[0.100, 0.200, ...]``."""
    return "[" + ", ".join(f"{v:.3f}" for v in box) + "]"


def question_text(record: CoTRecord) -> str:
    if record.form != "multiple_choice" or not record.options:
        return record.question
    return record.question + "\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(record.options))


def answer_text(record: CoTRecord) -> str:
    text = record.assistant_text()
    if record.form == "multiple_choice" and record.answer_index is not None:
        text += f"{ANSWER_LINE}{LETTERS[record.answer_index]}. {record.answer}"
    return text


def without_answer_line(text: str) -> str:
    """An answer turn's text without its multiple-choice "Answer: B. ..." line."""
    return text.rsplit(ANSWER_LINE, 1)[0]


def attend_text(organ: str, box) -> str:
    return f"Attend to the {display_name(organ)}: region {format_box(box)}."


def _turn_dict(role: str, kind: str, content: str, **extras) -> dict:
    return {"role": role, "kind": kind, "content": content,
            **{k: v for k, v in extras.items() if v is not None}}


def conversation(record: CoTRecord | dict) -> list[dict]:
    """Turn dicts ``{role, kind, content[, focus_organ, roi_box, crop_ref]}``, user first."""
    if isinstance(record, dict):
        record = CoTRecord.model_validate(record)
    if not record.turns:
        return [_turn_dict("user", "question", question_text(record)),
                _turn_dict("assistant", "answer", answer_text(record))]
    return [_turn_dict(t.role, t.kind, t.content, **{k: getattr(t, k) for k in TURN_EXTRAS}) for t in record.turns]


def focus_of(turns: list[dict]) -> list[dict]:
    """The ROI references of a conversation: one entry per turn that has a box or a crop."""
    return [{"turn": i, **{k: v for k, v in turn.items() if k in ("kind", *TURN_EXTRAS)}}
            for i, turn in enumerate(turns) if "roi_box" in turn or "crop_ref" in turn]
