"""Generation-log entries: one row per agent turn (or per offline generation of a case)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AgentTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    case_id: str
    record_id: str | None = None
    agent: str
    template: str | None = None
    template_sha256: str | None = None
    model: str | None = None
    params_json: str = "{}"
    messages_json: str = "[]"
    raw_response: str | None = None
    parsed_json: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    attempt: int = 1
    cached: bool = False
    error: str | None = None
    verdict: Literal["accepted", "rejected", "failed", "n/a"] = "n/a"
    reasons: list[str] = []
    timestamp: str


class CaseOutcome(BaseModel):
    """What happened to one case in one run; goes into the run summary and the failures list."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    case_label: str
    case_id: str | None = None
    status: Literal["ok", "failed", "unchanged", "missing", "degraded"] = Field(
        description="missing: a published case whose inputs are gone, kept as published; degraded: its LLM "
                    "stage did not complete (records it could make are kept; the next build retries it)")
    error_type: str | None = None
    reason: str | None = None
    records: int = 0
    rejected: int = 0
    llm_calls: int = 0
    measured: bool = Field(False, description="the CT was decoded and measured in this run (False: the stored "
                                              "facts were reused, or the case was unchanged)")
    elapsed_s: float = Field(0.0, description="wall seconds the case took in its task (0 when not processed)")
