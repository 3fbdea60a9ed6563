"""One ``{label id: structure name}`` table for TotalSegmentator's ``total`` task.

Measurement and the knowledge graph both read it, so an organ is called the same everywhere.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def total_labels() -> dict[int, str]:
    """TotalSegmentator v2 ``total`` label ids -> names (117 classes)."""
    text = resources.files("tumorcot.data").joinpath("labels_total_v2.json").read_text()
    return {int(k): v for k, v in json.loads(text)["labels"].items()}


@lru_cache(maxsize=1)
def label_ids() -> dict[str, int]:
    return {name: i for i, name in total_labels().items()}


LUNG_LOBES = (
    "lung_upper_lobe_left",
    "lung_lower_lobe_left",
    "lung_upper_lobe_right",
    "lung_middle_lobe_right",
    "lung_lower_lobe_right",
)


def organ_family(name: str) -> str:
    """The organ a knowledge graph reasons about: kidney_left -> kidney, lung lobes -> lung."""
    if name.startswith("kidney_") and not name.startswith("kidney_cyst"):
        return "kidney"
    if name in LUNG_LOBES:
        return "lung"
    if name.startswith("adrenal_gland"):
        return "adrenal_gland"
    return name


def side_of(name: str) -> str | None:
    """Laterality encoded in a TotalSegmentator name, if any."""
    if name.endswith("_left"):
        return "left"
    if name.endswith("_right"):
        return "right"
    return None


def display_name(name: str) -> str:
    """Human wording of a structure name: kidney_right -> right kidney."""
    if name in ("outside_organs", "unknown_organ"):
        return "soft tissue outside the segmented organs" if name == "outside_organs" else "unlocalised tissue"
    words = name.split("_")
    if words[-1] in ("left", "right"):
        words = [words[-1], *words[:-1]]
    return " ".join(words)
