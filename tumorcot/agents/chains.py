"""Per-organ findings -> impression -> pathology chains, built from facts and KG paths only.

The offline generator renders these chains as text; the LLM engine uses the same chain as the
skeleton its agents must stay within. Every step cites the fact ids and KG node ids it rests on.
"""

from __future__ import annotations

from tumorcot.agents.base import fmt
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.knowledge_graph.features import lesion_features
from tumorcot.labels import display_name
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
                        ("lung", "lung"), ("splen", "spleen"), ("sarcoma", "outside_organs")):
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
            parts.append(value)
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


def organ_chain(facts: CaseFacts, organ: str, kg: KnowledgeGraph) -> list[Step]:
    """Ordered steps for one organ (a TotalSegmentator name, or 'outside_organs')."""
    organ_key = kg.organ_key(organ)
    name = display_name(organ)
    lesions = facts.lesions_in(organ)
    organ_facts = facts.organ(organ)
    steps: list[Step] = []

    def add(stage, text, fact_ids=(), kg_ids=(), roi=None, follows=()):
        steps.append(Step(index=len(steps), stage=stage, organ=organ, text=text, fact_ids=list(fact_ids),
                          kg_node_ids=list(kg_ids), roi_box=list(roi) if roi else None,
                          follows_from=list(follows)))
        return len(steps) - 1

    box = list(organ_facts.bbox.normalized) if organ_facts else None
    if not lesions:
        f = add("finding", f"The {name} measures {fmt(organ_facts.volume_ml)} mL with no focal lesion.",
                [f"organ:{organ}.volume_ml", f"organ:{organ}.lesion_count"], ["feature:no_focal_lesion"], box)
        i = add("impression", f"No focal lesion in the {name}.", [], [f"impression:{organ_key}:normal"], box, [f])
        add("pathology", "No tumour pathology is suggested.", [], ["pathology:none"], box, [i])
        return steps

    impression_steps = []
    given = facts.pathology if pathology_organ(facts) == organ else None
    for lesion in lesions:
        features = lesion_features(lesion, len(lesions))
        sub = kg.subregion_node(organ_key, lesion.sub_location) if lesion.sub_location else None
        fact_ids = _lesion_fact_ids(lesion)
        if len(lesions) > 1 and organ_facts is not None:
            fact_ids.append(f"organ:{organ}.lesion_count")
        f = add("finding", _finding_text(lesion, name), fact_ids,
                [*features, *([sub] if sub else [])], lesion.bbox.normalized)
        matches = kg.impressions_for(organ_key, set(features))[:MAX_DIFFERENTIAL]
        if matches:
            text = f"{lesion.id} is most consistent with {matches[0].label}"
            if len(matches) > 1:
                text += "; differential: " + ", ".join(m.label for m in matches[1:])
            ids = [m.node_id for m in matches]
        else:
            text, ids = f"{lesion.id} is indeterminate: no specific impression is licensed by these findings", []
        impression_steps.append(add("impression", text + ".", [], ids or ["pathology:indeterminate"],
                                    lesion.bbox.normalized, [f]))
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
        add("pathology", "Given pathology: " + ", ".join(parts) + ".", ids, kg_ids or ["pathology:indeterminate"],
            box, impression_steps)
    else:
        top = [steps[i].kg_node_ids[0] for i in impression_steps]
        cats = sorted({kg.pathology_of(n) if n.startswith("impression:") else n for n in top})
        words = " or ".join(kg.label(c) for c in cats)
        add("pathology", f"No pathology is given; by the knowledge graph the leading impression is classed as {words}. "
            "Histology is not established and needs pathological confirmation.", [], cats, box, impression_steps)
    return steps


def render_think(steps: list[Step]) -> str:
    return "\n".join(f"{s.index + 1}. [{s.stage}] {s.text}" for s in steps)


def conclusion_of(steps: list[Step]) -> str:
    by_stage = {stage: " ".join(s.text for s in steps if s.stage == stage)
                for stage in ("finding", "impression", "pathology")}
    return f"Findings: {by_stage['finding']} Impression: {by_stage['impression']} Pathology: {by_stage['pathology']}"
