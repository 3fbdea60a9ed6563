"""Clinician review of records: the verdict file a review pack exports and ``review ingest`` reads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VERDICT_FORMAT = "tumorcot-review/1"
Judgement = Literal["correct", "wrong", "unsure"]


class StepVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(description="the step's index in the record")
    verdict: Judgement
    reason: str = ""


class RecordVerdict(BaseModel):
    """One reviewer's judgement of one record (and of any of its steps)."""

    model_config = ConfigDict(extra="forbid")

    record_id: str
    reviewer: str = Field(min_length=1, description="pseudonymous reviewer id chosen by the reviewer")
    verdict: Judgement | None = Field(default=None, description="None when only steps were judged")
    reason: str = ""
    steps: list[StepVerdict] = []
    time: str | None = Field(default=None, description="ISO time the verdict was last changed")


class VerdictFile(BaseModel):
    """What the review pack exports: ``{"format": VERDICT_FORMAT, "pack": ..., "verdicts": [...]}``."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["tumorcot-review/1"] = VERDICT_FORMAT
    pack: dict = Field(default={}, description="the pack's id, dataset run and seed, as written by review pack")
    exported: str | None = None
    verdicts: list[RecordVerdict]
