"""One row of the case manifest (CSV or JSONL), validated.

Columns: ``patient_id, study_id, ct`` (required); ``organ_mask, lesion_mask, lesion_labels,
report, pathology, lesion_pathology, annotated_organs, source`` (optional). Relative paths are
resolved against the manifest's folder. ``lesion_labels`` maps lesion-mask values to kinds
("1:tumor;2:cyst"); without it any non-zero voxel is a lesion.

``pathology`` (the whole case) is a JSON object or ``key=value; key=value``, with keys among
``diagnosis, histology, behavior (benign|malignant), organ, T, N, M``; ``organ=kidney`` means the
kidney that holds the lesion. ``lesion_pathology`` gives labels per lesion, keyed by lesion-mask
value or lesion id: a JSON object (``{"1": {"diagnosis": "renal cell carcinoma"}, "L2": "..."}``)
or ``1: diagnosis=renal cell carcinoma, behavior=malignant | 2: diagnosis=simple renal cyst``.

``annotated_organs`` names the organs the lesion mask was drawn for (``liver`` or
``liver;kidney_left;kidney_right``; ``kidney`` means both sides); empty means every organ with a
mask. Records claim "no lesion" only for annotated organs, and an empty lesion mask is a valid
verified-negative study only when this column says which organs were checked.
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
    def parse(cls, text: str | dict | None, separators: str = r"[;\n]") -> "PathologyLabels | None":
        if text is None or (isinstance(text, str) and not text.strip()):
            return None
        if isinstance(text, dict):
            data = text
        elif text.strip().startswith("{"):
            data = json.loads(text)
        else:
            data = {}
            for part in re.split(separators, text):
                if not part.strip():
                    continue
                if "=" not in part:
                    raise ValueError(f"pathology entry {part.strip()!r} is not key=value")
                key, value = part.split("=", 1)
                data[key.strip()] = value.strip()
        return cls(**{k.lower(): v for k, v in data.items()})

    def summary(self, *, stage: bool = True) -> str:
        """The labels as one line of a pathology report ("renal cell carcinoma, malignant, T1a");
        ``stage=False`` leaves out T, N and M."""
        parts = [v for v in (self.diagnosis, self.histology) if v]
        if self.behavior and not any(self.behavior in p.lower() for p in parts):
            parts.append(self.behavior)
        if stage:
            parts += [getattr(self, k) for k in ("t", "n", "m") if getattr(self, k)]
        return ", ".join(parts)


def parse_lesion_pathology(value) -> dict[str, PathologyLabels] | None:
    """``{"1": labels, "L2": labels}`` from JSON or ``1: k=v, k=v | 2: k=v``; keys are lesion-mask
    values (digits) or lesion ids (``L<n>``)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value = json.loads(text)
        else:
            value = {}
            for part in text.split("|"):
                key, sep, labels = part.partition(":")
                if not sep:
                    raise ValueError(f"lesion_pathology entry {part.strip()!r} is not '<mask value or lesion id>: k=v, ...'")
                value[key.strip()] = labels
    out = {}
    for key, labels in value.items():
        key = str(key).strip()
        if not re.fullmatch(r"\d+|L\d+", key):
            raise ValueError(f"lesion_pathology key {key!r} is neither a lesion-mask value nor a lesion id (L1, L2, ...)")
        parsed = labels if isinstance(labels, PathologyLabels) else PathologyLabels.parse(labels, r"[;,\n]")
        if parsed is not None:
            out[key] = parsed
    return out or None


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
    lesion_pathology: dict[str, PathologyLabels] | None = Field(
        default=None, description="labels per lesion, keyed by lesion-mask value ('2') or lesion id ('L1')")
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

    @field_validator("lesion_pathology", mode="before")
    @classmethod
    def _lesion_pathology(cls, value):
        return parse_lesion_pathology(value)

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
