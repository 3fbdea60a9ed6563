"""Resectability of a pancreatic lesion from its measured vessel contact: the KG's
``resectability:pancreas`` rule (NCCN Guidelines Pancreatic Adenocarcinoma v2.2021, Criteria
Defining Resectability Status, PANC-C).

Evaluated only where every vessel the rule names is segmented in the case and its contact with
the lesion was measured (``LesionFacts.vessel_contact_deg``), the lesion is not cut by the field
of view (its contact could continue outside it) and its place in the pancreas is known (the rows
differ for the head and for the body and tail). Otherwise: ``None``, no status.

Per vessel: contact in degrees -> band against ``vessel_encasement_deg`` (none = 0, le = up to
it, gt = above it) -> the first rule row for that vessel, location and band -> the categories it
allows. A row allowing several categories leaves the choice to something not measured (its
``open`` text: vein contour, reconstructability, unsegmented branches). The status is the most
advanced category over the vessels; when more than one status remains possible the result is
indeterminate, with the possible statuses as its differential -- never a guess. Vascular criteria
only: metastatic disease is not assessed from vessel contact.
"""

from __future__ import annotations

from dataclasses import dataclass

from tumorcot.errors import KnowledgeGraphError
from tumorcot.knowledge_graph.graph import KnowledgeGraph, with_thresholds
from tumorcot.schemas.facts import CaseFacts, LesionFacts
from tumorcot.schemas.records import CoTRecord
from tumorcot.vocabulary import organ_family, threshold

RULE = "resectability:pancreas"
INDETERMINATE = "resectability:indeterminate"


@dataclass(frozen=True)
class VesselCall:
    """One vessel's row: its contact, band and the categories (KG node ids) the row allows."""

    vessel: str
    degrees: float
    band: str
    categories: tuple[str, ...]
    row: str
    open: str | None


@dataclass(frozen=True)
class Resectability:
    location: str                 # "head" or "body_tail" (the rule's location groups)
    calls: tuple[VesselCall, ...]
    statuses: tuple[str, ...]     # possible statuses (KG node ids), least advanced first

    @property
    def decided(self) -> bool:
        return len(self.statuses) == 1


def band(degrees: float) -> str:
    if degrees <= 0:
        return "none"
    return "le" if degrees <= threshold("vessel_encasement_deg") else "gt"


def location_group(rule: dict, sub_location: str | None) -> str | None:
    return next((g for g, places in rule["locations"].items() if sub_location in places), None)


def missing_vessels(rule: dict, facts: CaseFacts, lesion: LesionFacts) -> list[str]:
    """The vessels the rule needs that are not segmented in the case or not measured for the lesion."""
    return [v for v in rule["vessels"] if facts.organ(v) is None or v not in lesion.vessel_contact_deg]


def _row(rule: dict, vessel: str, location: str, contact: dict[str, float]) -> dict:
    b = band(contact[vessel])
    for row in rule["rules"]:
        if vessel not in row["vessels"] or row.get("location", location) != location:
            continue
        if not (row["band"] == b or row["band"] == "contact" and b != "none"):
            continue
        if row.get("with_contact") and contact.get(row["with_contact"], 0.0) <= 0:
            continue
        return row
    raise KnowledgeGraphError(f"{RULE}: no row for {vessel} ({location}, {b})")


def combine(kg: KnowledgeGraph, allowed: list[tuple[str, ...]]) -> tuple[str, ...]:
    """Possible statuses: the most advanced category over the vessels, for every choice each
    vessel's row leaves open."""
    order = lambda node: kg.node(node)["order"]   # noqa: E731
    floor = max(min(order(c) for c in cats) for cats in allowed)
    return tuple(sorted({c for cats in allowed for c in cats if order(c) >= floor}, key=order))


def evaluate(kg: KnowledgeGraph, facts: CaseFacts, lesion: LesionFacts) -> Resectability | None:
    """The lesion's resectability by the rule, or None where the rule cannot be evaluated."""
    if RULE not in kg or organ_family(lesion.organ) != kg.node(RULE)["organ"] or lesion.truncated:
        return None
    rule = kg.node(RULE)
    location = location_group(rule, lesion.sub_location)
    if location is None or missing_vessels(rule, facts, lesion):
        return None
    contact = {v: lesion.vessel_contact_deg[v] for v in rule["vessels"]}
    calls = []
    for vessel in rule["vessels"]:
        row = _row(rule, vessel, location, contact)
        calls.append(VesselCall(vessel, contact[vessel], band(contact[vessel]), tuple(row["categories"]),
                                with_thresholds(row["row"]),
                                with_thresholds(row["open"]) if row.get("open") else None))
    return Resectability(location, tuple(calls), combine(kg, [c.categories for c in calls]))


def status_reasons(record: CoTRecord, facts: CaseFacts, kg: KnowledgeGraph) -> list[str]:
    """The calibrator's check of a record that cites resectability statuses: its lesion's status
    recomputed from the facts; each step citing a vessel's contact must cite exactly that vessel's
    row categories, the last step exactly the possible statuses (plus ``indeterminate`` when more
    than one remains)."""
    cited = {n for s in record.steps for n in s.kg_node_ids if n.startswith("resectability:") and n != RULE}
    if not cited:
        return []
    lesion = next((l for l in facts.lesions if l.id == record.lesion_id), None)
    result = evaluate(kg, facts, lesion) if lesion is not None else None
    if result is None:
        return [f"[resectability] cites {', '.join(sorted(cited))} but no status can be evaluated for "
                f"{record.lesion_id or 'the record'} (a needed vessel, its place or its lesion missing)"]
    reasons = []
    last = record.steps[-1]
    expected = set(result.statuses) | (set() if result.decided else {INDETERMINATE})
    if set(last.kg_node_ids) != expected:
        reasons.append(f"step {last.index}: [resectability] states {sorted(last.kg_node_ids)}, the facts give "
                       f"{sorted(expected)}")
    for step in record.steps[:-1]:
        calls = [c for c in result.calls if f"lesion:{lesion.id}.contact_{c.vessel}_deg" in step.fact_ids]
        stated = {n for n in step.kg_node_ids if n.startswith("resectability:") and n != RULE}
        if stated and (not calls or any(stated != set(c.categories) for c in calls)):
            reasons.append(f"step {step.index}: [resectability] states {sorted(stated)}, the rows of its vessels give "
                           f"{sorted({n for c in calls for n in c.categories})}")
    return reasons
