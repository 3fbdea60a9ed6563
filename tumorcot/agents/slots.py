"""Slots: the LLM writes references, tumorcot writes the values and terms.

An agent's text may hold ``{L1.long_axis_mm}``, ``{liver.volume_ml}``, ``{L1.attenuation}``,
``{pathology.t}`` (fact ids, ``lesion:``/``organ:`` prefix optional) or ``{impression:liver:hcc}``,
``{feature:hypodense}`` (KG node ids). ``render`` replaces each with the fact's value and unit
(formatted as the offline generator formats it) or the node's label, and returns the fact ids and
node ids it used, which the step then cites: the number or attribute word cannot be wrong, and
the model keeps the free connective reasoning. A reference that resolves to nothing stays in the
text as written; the calibrator rejects it (``[slot]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tumorcot.agents.base import fmt
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.schemas import Fact
from tumorcot.vocabulary import display_name

SLOT = re.compile(r"\{([A-Za-z][A-Za-z0-9_:.\-]*)\}")
SPOKEN_UNITS = {"deg": "degrees"}
INTEGER_FACTS = ("lesion_count", "axial_slice")


@dataclass
class Rendered:
    text: str
    fact_ids: list[str] = field(default_factory=list)
    kg_node_ids: list[str] = field(default_factory=list)


def fact_text(fact: Fact) -> str:
    """A fact's value as records state it: '34.0 mm', '2', 'hypodense', 'right kidney'."""
    value = fact.value
    if isinstance(value, str):
        return display_name(value) if fact.name == "organ" else value
    if fact.name in INTEGER_FACTS:
        return str(int(value))
    unit = SPOKEN_UNITS.get(fact.unit, fact.unit)
    return fmt(float(value)) + (f" {unit}" if unit else "")


def resolve(ref: str, table: dict[str, Fact], kg: KnowledgeGraph) -> tuple[str, str | None, str | None] | None:
    """(text, fact id, node id) of one reference, or None."""
    if ref in kg:
        label = kg.label(ref)
        return (label.split(" (")[0] if ref.startswith("pathology:") else label), None, ref
    for fid in (ref, f"lesion:{ref}", f"organ:{ref}"):
        if fid in table:
            return fact_text(table[fid]), fid, None
    return None


def render(text: str, table: dict[str, Fact], kg: KnowledgeGraph) -> Rendered:
    out = Rendered(text)

    def one(m: re.Match) -> str:
        hit = resolve(m.group(1), table, kg)
        if hit is None:
            return m.group()
        value, fid, node = hit
        if fid and fid not in out.fact_ids:
            out.fact_ids.append(fid)
        if node and node not in out.kg_node_ids:
            out.kg_node_ids.append(node)
        return value

    out.text = SLOT.sub(one, text)
    return out
