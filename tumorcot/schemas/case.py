"""One row of the case manifest (CSV or JSONL), validated.

Columns: ``patient_id, study_id, ct`` (required); ``organ_mask, lesion_mask, lesion_labels,
report, pathology, source`` (optional). Relative paths are resolved against the manifest's
folder. ``lesion_labels`` maps lesion-mask values to kinds ("1:tumor;2:cyst"); without it any
non-zero voxel is a lesion. ``pathology`` is a JSON object or ``key=value; key=value``, with keys
among ``diagnosis, histology, behavior (benign|malignant), organ, T, N, M``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TNM_PATTERNS = {
    "t": re.compile(r"^(y|p|c)?T(X|is|0|1|1a|1b|1c|1mi|2|2a|2b|2c|3|3a|3b|4|4a|4b)$", re.I),
    "n": re.compile(r"^(y|p|c)?N(X|0|1|1a|1b|1c|2|2a|2b|2c|3|3a|3b)$", re.I),
    "m": re.compile(r"^(y|p|c)?M(X|0|1|1a|1b|1c)$", re.I),
}


class PathologyLabels(BaseModel):
    """Pathology given with the case. Nothing here is ever inferred by tumorcot."""

    model_config = ConfigDict(extra="forbid")

    diagnosis: str | None = None
    histology: str | None = None
    behavior: str | None = Field(default=None, pattern="^(benign|malignant)$")
    organ: str | None = None
    t: str | None = None
    n: str | None = None
    m: str | None = None

    @field_validator("t", "n", "m")
    @classmethod
    def _tnm(cls, value: str | None, info) -> str | None:
        if value is None or value == "":
            return None
        value = value.strip()
        if not TNM_PATTERNS[info.field_name].match(value):
            raise ValueError(f"{value!r} is not a valid {info.field_name.upper()} category")
        return value

    @classmethod
    def parse(cls, text: str | dict | None) -> "PathologyLabels | None":
        if text is None or (isinstance(text, str) and not text.strip()):
            return None
        if isinstance(text, dict):
            data = text
        elif text.strip().startswith("{"):
            data = json.loads(text)
        else:
            data = {}
            for part in re.split(r"[;\n]", text):
                if not part.strip():
                    continue
                if "=" not in part:
                    raise ValueError(f"pathology entry {part.strip()!r} is not key=value")
                key, value = part.split("=", 1)
                data[key.strip()] = value.strip()
        return cls(**{k.lower(): v for k, v in data.items()})


FILE_FIELDS = ("ct", "organ_mask", "lesion_mask", "liver_segments")   # the fields that are input files


class CaseInput(BaseModel):
    """A validated manifest row; paths are absolute (``FILE_FIELDS``)."""

    model_config = ConfigDict(extra="forbid")

    row: int = Field(description="1-based data row number in the manifest, for error messages")
    patient_id: str = Field(min_length=1)
    study_id: str = Field(min_length=1)
    ct: Path
    organ_mask: Path | None = None
    lesion_mask: Path | None = None
    liver_segments: Path | None = Field(default=None, description="TotalSegmentator liver_segments map "
                                        "(labels 1-8 = Couinaud I-VIII): exact segments instead of the approximation")
    lesion_labels: dict[int, str] | None = None
    mask_labels: dict[int, str] | None = Field(default=None, description="names of the values of organ_mask / "
                                               "lesion_mask label files that are not TotalSegmentator ids, e.g. "
                                               "'1:liver;2:tumour' (nnU-Net dataset.json); names as in structures.json")
    lesion_provenance: Literal["annotated", "model-predicted"] = "annotated"
    annotated_organs: list[str] = Field(default=[], description="organs whose lesions the lesion mask annotates "
                                        "('liver' or 'liver;kidney_left;kidney_right'); empty = every organ with a "
                                        "mask. Negative claims are made only for these")
    predicted_masks: dict[str, Path] = Field(default={}, description="TotalSegmentator subtask -> its output "
                                             "(filled by --seg-subtasks, not a manifest column)")
    report: str | None = None
    pathology: PathologyLabels | None = None
    source: str | None = None
    synthetic: bool = False

    @field_validator("lesion_labels", "mask_labels", mode="before")
    @classmethod
    def _labels(cls, value):
        if value is None or value == "":
            return None
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("{"):
                return {int(k): v for k, v in json.loads(value).items()}
            out = {}
            for part in filter(str.strip, value.split(";")):
                key, _, kind = part.partition(":")
                out[int(key)] = kind.strip()
            return out
        return value

    @field_validator("annotated_organs", mode="before")
    @classmethod
    def _organ_list(cls, value):
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(";") if part.strip()]
        return value

    @field_validator("pathology", mode="before")
    @classmethod
    def _pathology(cls, value):
        if isinstance(value, PathologyLabels) or value is None:
            return value
        return PathologyLabels.parse(value)

    @model_validator(mode="after")
    def _one_naming(self):
        if self.mask_labels and self.lesion_labels:
            raise ValueError("give lesion kinds either by lesion_labels or by structure names in mask_labels, not both")
        return self

    def files(self) -> dict[str, Path]:
        """The case's input files that are given, by field."""
        return {field: getattr(self, field) for field in FILE_FIELDS if getattr(self, field) is not None}

    @property
    def label(self) -> str:
        """How errors name this case without leaking the patient id: the manifest row."""
        return f"row {self.row}"
