"""Per-organ findings -> impression -> pathology chains, built from facts and KG paths only.

The offline generator renders these chains as text; the LLM engine uses the same chain as the
skeleton its agents must stay within. Every step cites the fact ids and KG node ids it rests on.
"""

from __future__ import annotations

from tumorcot.agents.base import fmt
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.knowledge_graph.features import lesion_features
from tumorcot.vocabulary import OUTSIDE_ORGANS, display_name
from tumorcot.schemas import CaseFacts, LesionFacts, Step

MAX_DIFFERENTIAL = 3


def pathology_organ(facts: CaseFacts) -> str | None:
    """The organ the given pathology labels describe: stated, named in the diagnosis, or the
    host of the largest lesion."""
    p = facts.pathology
    if p is None:
        return None
    if p.organ:
        return p.organ
    text = " ".join(filter(None, [p.diagnosis, p.histology])).lower()
    for lesion in facts.lesions:
        if lesion.organ.split("_")[0] in text:
            return lesion.organ
    for word, organ in (("hepat", "liver"), ("liver", "liver"), ("pancrea", "pancreas"), ("renal", "kidney"),
                        ("gastric", "stomach"), ("colo", "colon"), ("oesophag", "esophagus"), ("esophag", "esophagus"),
                        ("lung", "lung"), ("splen", "spleen"), ("sarcoma", OUTSIDE_ORGANS)):
        if word in text:
            hit = next((l.organ for l in facts.lesions if l.organ.startswith(organ)), None)
            if hit:
                return hit
    return facts.lesions[0].organ if facts.lesions else None


def _finding_text(lesion: LesionFacts, organ_name: str) -> str:
    parts = [f"{lesion.id} in the {lesion.sub_location + ' of the ' if lesion.sub_location else ''}{organ_name}: "
             f"{fmt(lesion.long_axis_mm)} x {fmt(lesion.short_axis_mm)} mm on axial slice {lesion.axial_slice}, "
             f"volume {fmt(lesion.volume_ml)} mL, mean {fmt(lesion.mean_hu)} HU"]
    if lesion.attenuation and lesion.hu_difference is not None:
        parts.append(f"{lesion.attenuation} relative to the organ (difference {fmt(lesion.hu_difference)} HU)")
    for value in (lesion.shape, lesion.margin, lesion.content):
        if value:
            parts.append("margin not assessable" if value == "not assessable" else value)
    for vessel, deg in sorted(lesion.vessel_contact_deg.items()):
        if deg > 0:
            parts.append(f"contact with the {display_name(vessel)} over {fmt(deg)} degrees")
    return ", ".join(parts) + "."


def _lesion_fact_ids(lesion: LesionFacts) -> list[str]:
    names = ["organ", "long_axis_mm", "short_axis_mm", "axial_slice", "volume_ml", "mean_hu",
             "attenuation", "hu_difference", "shape", "margin", "content", "sub_location"]
    names += [f"contact_{v}_deg" for v, d in lesion.vessel_contact_deg.items() if d > 0]
    values = lesion.model_dump()
    return [f"lesion:{lesion.id}.{n}" for n in names
            if n.startswith("contact_") or n == "organ" or values.get(n) is not None]


class _Chain:
    """Steps under construction: ``add`` appends one and returns its index."""

    def __init__(self, organ: str):
        self.organ, self.steps = organ, []

    def add(self, stage, text, fact_ids=(), kg_ids=(), roi=None, follows=()) -> int:
        self.steps.append(Step(index=len(self.steps), stage=stage, organ=self.organ, text=text,
                               fact_ids=list(fact_ids), kg_node_ids=list(kg_ids),
                               roi_box=list(roi) if roi else None, follows_from=list(follows)))
        return len(self.steps) - 1


def given_pathology(facts: CaseFacts, organ: str):
    """The pathology labels when they describe ``organ``, else None."""
    return facts.pathology if facts.pathology is not None and pathology_organ(facts) == organ else None


def _lesion_steps(chain: _Chain, facts: CaseFacts, lesion: LesionFacts, kg: KnowledgeGraph) -> int:
    """A lesion's finding and its impression step; returns the impression's index."""
    organ = chain.organ
    organ_key, organ_facts, n = kg.organ_key(organ), facts.organ(organ), len(facts.lesions_in(organ))
    features = lesion_features(lesion, n)
    sub = kg.subregion_node(organ_key, lesion.sub_location) if lesion.sub_location else None
    fact_ids = _lesion_fact_ids(lesion)
    if n > 1 and organ_facts is not None:
        fact_ids.append(f"organ:{organ}.lesion_count")
    f = chain.add("finding", _finding_text(lesion, display_name(organ)), fact_ids,
                  [*features, *([sub] if sub else [])], lesion.bbox.normalized)
    matches = kg.impressions_for(organ_key, set(features))[:MAX_DIFFERENTIAL]
    if matches:
        text = f"{lesion.id} is most consistent with {matches[0].label}"
        if len(matches) > 1:
            text += "; differential: " + ", ".join(m.label for m in matches[1:])
        ids = [m.node_id for m in matches]
    else:
        text, ids = f"{lesion.id} is indeterminate: no specific impression is licensed by these findings", []
    return chain.add("impression", text + ".", [], ids or ["pathology:indeterminate"], lesion.bbox.normalized, [f])


def _pathology_step(chain: _Chain, facts: CaseFacts, kg: KnowledgeGraph, impressions: list[int], box) -> int:
    """Given labels when they describe the organ; otherwise the KG class of the leading impressions,
    said to be a differential that needs confirmation."""
    given = given_pathology(facts, chain.organ)
    if given is not None:
        parts, ids, kg_ids = [], [], []
        if given.behavior:
            parts.append(given.behavior); ids.append("pathology.behavior"); kg_ids.append(f"pathology:{given.behavior}")
        for field in ("diagnosis", "histology"):
            value = getattr(given, field)
            if value:
                parts.append(value); ids.append(f"pathology.{field}")
                hist = kg.match_histology(value)
                if hist:
                    kg_ids.append(hist)
        tnm = " ".join(getattr(given, k) for k in ("t", "n", "m") if getattr(given, k))
        if tnm:
            parts.append(f"stage {tnm}"); ids += [f"pathology.{k}" for k in ("t", "n", "m") if getattr(given, k)]
        return chain.add("pathology", "Given pathology: " + ", ".join(parts) + ".", ids,
                         kg_ids or ["pathology:indeterminate"], box, impressions)
    top = [chain.steps[i].kg_node_ids[0] for i in impressions]
    cats = sorted({kg.pathology_of(n) if n.startswith("impression:") else n for n in top})
    words = " or ".join(kg.label(c) for c in cats)
    return chain.add("pathology", f"No pathology is given; by the knowledge graph the leading impression is classed "
                     f"as {words}. Histology is not established and needs pathological confirmation.",
                     [], cats, box, impressions)


def organ_chain(facts: CaseFacts, organ: str, kg: KnowledgeGraph) -> list[Step]:
    """Ordered steps for one organ (a TotalSegmentator name, or 'outside_organs')."""
    organ_key, name = kg.organ_key(organ), display_name(organ)
    lesions, organ_facts = facts.lesions_in(organ), facts.organ(organ)
    chain = _Chain(organ)
    box = list(organ_facts.bbox.normalized) if organ_facts else None
    if not lesions:
        f = chain.add("finding", f"The {name} measures {fmt(organ_facts.volume_ml)} mL with no focal lesion.",
                      [f"organ:{organ}.volume_ml", f"organ:{organ}.lesion_count"], ["feature:no_focal_lesion"], box)
        i = chain.add("impression", f"No focal lesion in the {name}.", [], [f"impression:{organ_key}:normal"], box, [f])
        chain.add("pathology", "No tumour pathology is suggested.", [], ["pathology:none"], box, [i])
        return chain.steps
    impressions = [_lesion_steps(chain, facts, lesion, kg) for lesion in lesions]
    _pathology_step(chain, facts, kg, impressions, box)
    return chain.steps


def lesion_chain(facts: CaseFacts, lesion: LesionFacts, kg: KnowledgeGraph) -> list[Step]:
    """Finding -> impression -> pathology for one lesion (the pathology and staging families)."""
    chain = _Chain(lesion.organ)
    impression = _lesion_steps(chain, facts, lesion, kg)
    _pathology_step(chain, facts, kg, [impression], lesion.bbox.normalized)
    return chain.steps


def render_think(steps: list[Step]) -> str:
    return "\n".join(f"{s.index + 1}. [{s.stage}] {s.text}" for s in steps)


def conclusion_of(steps: list[Step]) -> str:
    by_stage = {stage: " ".join(s.text for s in steps if s.stage == stage)
                for stage in ("finding", "impression", "pathology")}
    return f"Findings: {by_stage['finding']} Impression: {by_stage['impression']} Pathology: {by_stage['pathology']}"
