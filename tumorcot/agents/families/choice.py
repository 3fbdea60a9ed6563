"""Closed answer sets for multiple-choice questions.

A multiple-choice record's options are its answer plus up to ``MAX_DISTRACTORS`` other members of
the same closed set (same attribute, same organ and same sub-location scheme), so every option
is a well-formed answer to the question and exactly one is true for the measured facts.
"""

from __future__ import annotations

from tumorcot.agents.base import unit_hash
from tumorcot.vocabulary import ATTRIBUTE_VALUES, SUB_LOCATION_SCHEMES

MAX_DISTRACTORS = 3


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
