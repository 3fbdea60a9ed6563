"""A record as a conversation: the one place every export and loader gets its turns from.

A record carries typed ``turns`` (question -> answer, or the four-turn organ-focus exchange
question -> first_pass -> attend -> final). Records written before turns existed have none:
they become the two turns ``question`` (user) and ``answer`` (assistant, ``<think>`` rationale
then conclusion). Either way, a multiple-choice question shows its lettered options and an
``attend`` turn names its organ and region, so a text-only trainer sees what the metadata says.
"""

from __future__ import annotations

import string

from tumorcot.labels import display_name
from tumorcot.schemas import CoTRecord

LETTERS = string.ascii_uppercase


def format_box(box) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in box) + "]"


def options_line(options: list[str]) -> str:
    """``Options: A. x  B. y  C. z``."""
    return "Options: " + "  ".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(options))


def question_text(record: CoTRecord, text: str | None = None) -> str:
    """The question, with its lettered options when it is multiple choice (not repeated)."""
    text = record.question if text is None else text
    if record.form == "multiple_choice" and record.options and "Options:" not in text:
        text = f"{text}\n{options_line(record.options)}"
    return text


def attend_text(content: str, organ: str | None, box) -> str:
    """An attend turn's text, completed with its organ and normalised box when they are missing."""
    parts = [content.strip()] if content.strip() else []
    if organ and display_name(organ) not in content and organ not in content:
        parts.append(f"Attend to the {display_name(organ)}.")
    if box is not None and format_box(box) not in content:
        parts.append(f"Region (normalised LPS x0, y0, z0, x1, y1, z1): {format_box(box)}.")
    return " ".join(parts)


def _turn(role: str, kind: str, content: str, focus_organ=None, roi_box=None, crop_ref=None) -> dict:
    turn = {"role": role, "kind": kind, "content": content}
    if focus_organ is not None:
        turn["focus_organ"] = focus_organ
    if roi_box is not None:
        turn["roi_box"] = [float(v) for v in roi_box]
    if crop_ref is not None:
        turn["crop_ref"] = crop_ref
    return turn


def conversation(record: CoTRecord | dict) -> list[dict]:
    """Turn dicts ``{role, kind, content[, focus_organ, roi_box, crop_ref]}``, user first.

    Uses the record's own turns when it has them, else the question/answer fallback."""
    if isinstance(record, dict):
        record = CoTRecord.model_validate(record)
    if not record.turns:
        return [_turn("user", "question", question_text(record)),
                _turn("assistant", "answer", record.assistant_text())]
    turns = []
    for t in record.turns:
        content = t.content
        if t.kind == "question":
            content = question_text(record, content)
        elif t.kind == "attend":
            content = attend_text(content, t.focus_organ, t.roi_box)
        turns.append(_turn(t.role, t.kind, content, t.focus_organ, t.roi_box, t.crop_ref))
    return turns


def focus_of(turns: list[dict]) -> list[dict]:
    """The ROI references of a conversation: one entry per turn that has a box or a crop."""
    return [{"turn": i, **{k: v for k, v in turn.items() if k in ("kind", "focus_organ", "roi_box", "crop_ref")}}
            for i, turn in enumerate(turns) if "roi_box" in turn or "crop_ref" in turn]
