"""Closed answer sets for multiple-choice questions.

A multiple-choice record's options are its answer plus up to ``MAX_DISTRACTORS`` other members of
the same closed set (same attribute, same organ and same sub-location scheme), so every option
is a well-formed answer to the question and exactly one is true for the measured facts.
"""

from __future__ import annotations

from tumorcot.agents.base import unit_hash

MAX_DISTRACTORS = 3

ATTRIBUTE_VALUES = {
    "presence": ("Yes", "No"),
    "density": ("hypodense", "isodense", "hyperdense"),
    "shape": ("round", "oval", "lobulated", "irregular"),
    "margin": ("well-defined", "ill-defined"),
    "content": ("cystic", "calcified", "solid", "fatty"),
    "behavior": ("benign", "malignant"),
}

_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")
# One tuple per sub-location scheme the imaging stage reports (tumorcot.imaging.describe).
SUB_LOCATION_SCHEMES = (
    tuple(f"segment {r}" for r in _ROMAN),
    ("left lobe, lateral segment II", "left lobe, lateral segment III", "caudate lobe, segment I",
     "left lobe, medial segment IVa", "left lobe, medial segment IVb", "right lobe, anterior segment VIII",
     "right lobe, anterior segment V", "right lobe, posterior segment VII", "right lobe, posterior segment VI"),
    ("head", "body", "tail"),
    ("upper pole", "interpolar", "lower pole"),
    ("right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe"),
)


def distractors(answer: str, pool: tuple[str, ...], salt: str) -> list[str]:
    """Up to ``MAX_DISTRACTORS`` members of ``pool`` other than ``answer``, chosen by hash."""
    others = sorted((v for v in pool if v != answer), key=lambda v: unit_hash(salt, v))
    return others[:MAX_DISTRACTORS]


def sub_location_pool(answer: str) -> tuple[str, ...] | None:
    """The scheme ``answer`` belongs to, or None (then the question stays open)."""
    return next((scheme for scheme in SUB_LOCATION_SCHEMES if answer in scheme), None)


def count_pool(count: int) -> tuple[str, ...]:
    """Four consecutive counts that include ``count``, starting at 0 where possible."""
    low = max(0, count - 2)
    return tuple(str(n) for n in range(low, low + 4))
