"""T from size (AJCC 8, the KG's ``staging:<organ>:T`` rules) and the check of a given T.

The size is the lesion's greatest dimension: its 3D maximum diameter (``max_diameter_3d_mm``,
stated in cm with one decimal), the same number every finding states. Measured on slices of
thickness s, a greatest dimension within s of a rule's cut-off is borderline: the record says so.

A given T is compared with the size rule where the rule applies (a given histology or diagnosis
the rule stages): smaller than the size rule's T always disagrees (size alone already reaches the
higher T); larger disagrees only when the given T is itself a size-defined category of a rule
without qualifiers (a larger T may come from extent, e.g. kidney T3a, liver T2 by vascular
invasion). The result is stored in ``CaseFacts.t_checks``.
"""

from __future__ import annotations

import re

from tumorcot.knowledge_graph.graph import KnowledgeGraph
from tumorcot.schemas import CaseFacts, LesionFacts, TCheck

QUALIFIERS = ("solitary", "multiple", "no_vascular_invasion")   # size-rule entries that need more than size
T_CODE = re.compile(r"^(?:y|p|c)?T(\d)([a-c]?)", re.I)


def greatest_dimension_cm(lesion: LesionFacts) -> float:
    return round(lesion.max_diameter_3d_mm / 10, 1)


def t_order(t: str) -> tuple[int, str] | None:
    m = T_CODE.match(t.strip())
    return (int(m.group(1)), m.group(2).lower()) if m else None


def _rule_entry(kg: KnowledgeGraph, facts: CaseFacts, lesion: LesionFacts, organ_key: str) -> dict | None:
    return kg.t_band(organ_key, greatest_dimension_cm(lesion), solitary=len(facts.lesions_in(lesion.organ)) == 1,
                     vascular_contact=any(d > 0 for d in lesion.vessel_contact_deg.values()))


def size_t_for(kg: KnowledgeGraph, facts: CaseFacts, lesion: LesionFacts, organ_key: str) -> str | None:
    band = _rule_entry(kg, facts, lesion, organ_key)
    return band["t"] if band else None


def band_of(kg: KnowledgeGraph, facts: CaseFacts, lesion: LesionFacts, organ_key: str) -> dict | None:
    """The size rule's entry the lesion's greatest dimension falls in, for a rule entry that is
    size alone (a band of the liver rule also depends on solitary / vascular invasion: None)."""
    band = _rule_entry(kg, facts, lesion, organ_key)
    return None if band is None or any(band.get(q) for q in QUALIFIERS) else band


def size_band(kg: KnowledgeGraph, facts: CaseFacts, lesion: LesionFacts, organ_key: str) -> dict:
    """``TCheck`` fields: the cut-offs around the greatest dimension and the gap to the upper one."""
    band = band_of(kg, facts, lesion, organ_key)
    if band is None:
        return {}
    high = band.get("max_cm")
    return {"band_low_cm": band.get("min_cm"), "band_high_cm": high,
            "below_high_cm": None if high is None else round(high - greatest_dimension_cm(lesion), 1)}


def borderline(kg: KnowledgeGraph, organ_key: str, lesion: LesionFacts, slice_mm: float) -> bool:
    """Whether the greatest dimension lies within one slice thickness of a T cut-off."""
    cm = lesion.max_diameter_3d_mm / 10
    return any(abs(cm - cut) <= slice_mm / 10 for cut in kg.t_thresholds_cm(organ_key))


def compare_t(kg: KnowledgeGraph, organ_key: str, given: str, size_t: str | None) -> bool | None:
    g, s = t_order(given), t_order(size_t) if size_t else None
    if g is None or s is None:
        return None
    if g[0] == s[0] and (not g[1] or not s[1] or g[1] == s[1]):
        return True
    if g < s:
        return False
    rule = kg.staging_rule(organ_key) or {}
    qualified = any(r.get(q) for r in rule.get("rules", []) for q in QUALIFIERS)
    size_defined = {r["t"].lower() for r in rule.get("rules", [])}
    return False if not qualified and given.strip().lstrip("ypcYPC").lower() in size_defined else None


def given_t_checks(facts: CaseFacts, kg: KnowledgeGraph) -> list[TCheck]:
    """One check per lesion with a given T whose organ has a size rule that applies to it. A lesion
    cut by the field of view is not checked: its greatest dimension is only a lower bound."""
    from tumorcot.scope import labels_for_lesion  # scope imports schemas only; avoids a cycle at import

    checks = []
    for lesion in facts.lesions:
        labels, _ = labels_for_lesion(facts, lesion)
        if labels is None or not labels.t or lesion.truncated:
            continue
        key = kg.organ_key(lesion.organ)
        hist = [h for h in (kg.match_histology(v) for v in (labels.histology, labels.diagnosis) if v) if h]
        if key is None or not kg.size_rule_applies(key, [], hist):
            continue
        size_t = size_t_for(kg, facts, lesion, key)
        cm = greatest_dimension_cm(lesion)
        checks.append(TCheck(lesion_id=lesion.id, organ=lesion.organ, given_t=labels.t, size_t=size_t,
                             greatest_dimension_cm=cm, agrees=compare_t(kg, key, labels.t, size_t),
                             rule=f"staging:{key}:T", **size_band(kg, facts, lesion, key)))
    return checks
