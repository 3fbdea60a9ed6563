"""The training record: one VQA item with its step-aligned chain of thought."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["finding", "impression", "pathology"]
Task = Literal["localization", "lesion_attribute", "cot_report", "tnm_staging", "pathology",
               "organ_measure", "tumor_burden", "spatial"]
Split = Literal["train", "validation", "test"]
Form = Literal["open", "multiple_choice"]
TurnKind = Literal["question", "answer", "first_pass", "attend", "final"]


class Step(BaseModel):
    """One reasoning step, traceable to facts, KG nodes and a region of the CT."""

    model_config = ConfigDict(extra="forbid")

    index: int
    stage: Stage
    organ: str | None = None
    text: str
    fact_ids: list[str] = []
    kg_node_ids: list[str] = []
    roi_box: list[float] | None = Field(default=None, description="six normalised numbers")
    follows_from: list[int] = Field(default=[], description="indices of the steps it rests on")


class Turn(BaseModel):
    """A conversation turn, in the TumorChain interleaved format.

    Every record has at least ``question`` (user) and ``answer`` (assistant). An organ-focus
    record has four: ``question`` -> ``first_pass`` (assistant, from the whole volume) ->
    ``attend`` (user: "attend to <organ>", with that organ's ``roi_box`` and a ``crop_ref``) ->
    ``final`` (assistant: the full step-aligned reasoning and conclusion).
    """

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    kind: TurnKind
    content: str
    focus_organ: str | None = None
    roi_box: list[float] | None = Field(default=None, description="six normalised numbers (BOX_CONVENTION)")
    crop_ref: str | None = Field(default=None, description="'crop:<organ>' = the record's CT cropped to roi_box "
                                                           "(tumorcot.exports.crop materialises it)")


class CoTRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_id: str
    case_id: str
    patient_pseudo_id: str
    study_pseudo_id: str
    split: Split
    task: Task
    subtask: str
    organ: str | None = None
    lesion_id: str | None = None
    lesion_provenance: str | None = Field(default=None, description="'annotated' or 'model-predicted' (a "
                                          "TotalSegmentator subtask's lesion) for records about one lesion")
    question: str
    form: Form = "open"
    options: list[str] = Field(default=[], description="multiple choice: the shuffled options")
    answer_index: int | None = Field(default=None, description="multiple choice: index of the answer in options")
    negative: bool = Field(default=False, description="about an organ without lesions")
    answer: str
    think: str = Field(default="", description="the rationale, rendered from the steps")
    conclusion: str
    steps: list[Step] = []
    turns: list[Turn] = []
    roi_box: list[float] | None = None
    template: str = Field(description="question template name and variant")
    answer_template: str = Field(default="", description="answer form: 'answers/<subtask>.j2#<form>' ('' for "
                                 "answers that are the chain's own conclusion)")
    image_sha256: str
    generator: str = Field(description="'offline-kg' or 'llm:<model>'")
    synthetic: bool
    source: str | None = None
    kg_version: str
    prompt_version: str
    pipeline_version: str

    def assistant_text(self) -> str:
        """The answer as a model is trained to emit it."""
        return f"<think>{self.think}</think>\n{self.conclusion}" if self.think else self.conclusion
