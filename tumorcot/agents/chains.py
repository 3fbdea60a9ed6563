"""Per-organ findings -> impression -> pathology chains, built from facts and KG paths only.

The offline generator renders these chains as text; the LLM engine uses the same chain as the
skeleton its agents must stay within. Every step cites the fact ids and KG node ids it rests on.
"""

from __future__ import annotations

from tumorcot.agents.base import fmt, lesion_name, name_fact_ids
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.knowledge_graph.features import case_phase, features_for, lesion_organ_key
from tumorcot.knowledge_graph.staging import greatest_dimension_cm
from tumorcot.vocabulary import HOLLOW_ORGANS, display_name, threshold
from tumorcot.schemas import CaseFacts, LesionFacts, Step
from tumorcot.scope import labels_for_lesion, pathology_organ

__all__ = ["pathology_organ", "organ_chain", "lesion_chain", "render_think", "conclusion_of", "given_labels_for",
           "phase_clause", "phase_sentence", "not_assessed_reason", "report_context"]

MAX_DIFFERENTIAL = 3


def phase_clause(facts: CaseFacts) -> tuple[str, list[str]]:
    """'on this non-contrast CT (phase estimated from measured HU)' and the fact it cites; the
    caveat every attenuation statement carries."""
    phase = case_phase(facts)
    if phase is None:
        return "(contrast phase not determined from the measured HU)", ["case.contrast_phase"]
    return f"on this {phase.replace('_', '-')} CT (phase estimated from measured HU)", ["case.contrast_phase"]


def phase_sentence(facts: CaseFacts) -> tuple[str, list[str]]:
    """'Contrast phase: non-contrast (estimated from measured HU).', opening each organ report's
    findings, and the fact it cites."""
    phase = case_phase(facts)
    if phase is None:
        return "Contrast phase: not determined from the measured HU.", ["case.contrast_phase"]
    return f"Contrast phase: {phase.replace('_', '-')} (estimated from measured HU).", ["case.contrast_phase"]


def not_assessed_reason(lesion: LesionFacts, attribute: str) -> str:
    """Why a lesion's margin is 'not assessable' (no surroundings; a contrast across the edge of
    at most ``isodense_hu``; or one below ``margin_min_cnr`` noise SD: ``imaging.texture.margin_of``)
    or its attenuation 'not assessed' (a host without a parenchymal reference: ``imaging.measure``)."""
    if attribute == "margin":
        if lesion.edge_contrast_hu is None:
            return "there is no surrounding tissue to compare its inside with"
        if lesion.edge_contrast_hu <= threshold("isodense_hu"):
            return "the lesion's inside looks like its surroundings"
        return "its difference from the surroundings is within the image noise"
    if lesion.organ in HOLLOW_ORGANS:
        return f"the {display_name(lesion.organ)} is a hollow organ with no parenchymal reference"
    return f"too little of the {display_name(lesion.organ)} remains around its lesions for a reference"


def _finding_text(facts: CaseFacts, lesion: LesionFacts) -> str:
    name = lesion_name(lesion, facts)
    least = "at least " if lesion.truncated else ""  # cut by the field of view: lower bounds only
    parts = [f"{name[0].upper()}{name[1:]}: {least}{fmt(lesion.long_axis_mm)} x {fmt(lesion.short_axis_mm)} mm on "
             f"axial slice {lesion.axial_slice}, greatest dimension {least}{fmt(greatest_dimension_cm(lesion))} cm, "
             f"volume {least}{fmt(lesion.volume_ml)} mL{' (cut by the field of view)' if least else ''}, "
             f"mean {fmt(lesion.mean_hu)} HU"]
    phase, _ = phase_clause(facts)
    if lesion.attenuation == "not assessed":
        parts.append(f"attenuation relative to the organ not assessed ({not_assessed_reason(lesion, 'attenuation')})")
    elif lesion.attenuation and lesion.hu_difference is not None:
        core = f"core median {fmt(lesion.core_median_hu)} HU, " if lesion.core_median_hu is not None else ""
        parts.append(f"{lesion.attenuation} relative to the organ ({core}difference {fmt(lesion.hu_difference)} HU) {phase}")
    for value in (lesion.shape, lesion.margin, lesion.content):
        if value == "not assessable":
            parts.append(f"margin not assessable ({not_assessed_reason(lesion, 'margin')})")
        elif value:
            parts.append(value)
    for vessel, deg in sorted(lesion.vessel_contact_deg.items()):
        if deg > 0:
            parts.append(f"contact with the {display_name(vessel)} over {fmt(deg)} degrees")
    return ", ".join(parts) + "."


def _lesion_fact_ids(facts: CaseFacts, lesion: LesionFacts) -> list[str]:
    names = ["organ", "long_axis_mm", "short_axis_mm", "axial_slice", "max_diameter_3d_cm", "volume_ml", "mean_hu",
             "core_median_hu",
             "attenuation", "hu_difference", "shape", "margin", "content", "sub_location"]
    names += [f"contact_{v}_deg" for v, d in lesion.vessel_contact_deg.items() if d > 0]
    values = lesion.model_dump()
    ids = [f"lesion:{lesion.id}.{n}" for n in names
           if n.startswith("contact_") or n in ("organ", "max_diameter_3d_cm") or values.get(n) is not None]
    if lesion.attenuation and lesion.attenuation != "not assessed" and lesion.hu_difference is not None:
        ids += phase_clause(facts)[1]
    if lesion.truncated:
        ids.append(f"lesion:{lesion.id}.truncated")
    return ids


class _Chain:
    """Steps under construction: ``add`` appends one and returns its index."""

    def __init__(self, organ: str):
        self.organ, self.steps = organ, []

    def add(self, stage, text, fact_ids=(), kg_ids=(), roi=None, follows=()) -> int:
        self.steps.append(Step(index=len(self.steps), stage=stage, organ=self.organ, text=text,
                               fact_ids=list(dict.fromkeys(fact_ids)), kg_node_ids=list(dict.fromkeys(kg_ids)),
                               roi_box=list(roi) if roi else None, follows_from=list(follows)))
        return len(self.steps) - 1


def given_labels_for(facts: CaseFacts, lesion: LesionFacts):
    """(labels, fact subject) given for this lesion, or (None, None): see ``scope.labels_for_lesion``."""
    return labels_for_lesion(facts, lesion)


def report_context(facts: CaseFacts, lesions: list[LesionFacts], *, stage: bool = False) -> str:
    """'Pathology report: ...' for the question of a record about ``lesions`` ('' without labels);
    T, N and M only for a staging question (``stage``). Given labels are context the model reads,
    never a claim in its target."""
    lines = []
    for lesion in lesions:
        labels, _ = given_labels_for(facts, lesion)
        if labels is not None and labels.summary(stage=stage):
            where = f" ({lesion_name(lesion, facts)})" if len(lesions) > 1 else ""
            lines.append(f"{labels.summary(stage=stage)}{where}")
    return "Pathology report: " + "; ".join(lines) + ". " if lines else ""


def _why_indeterminate(facts: CaseFacts) -> str:
    phase = case_phase(facts)
    if phase is None:
        return "the contrast phase is not determined and no clinical risk context is given"
    return f"the {phase.replace('_', '-')} phase alone, without clinical risk context, does not separate them"


def _lesion_steps(chain: _Chain, facts: CaseFacts, lesion: LesionFacts, kg: KnowledgeGraph) -> int:
    """A lesion's finding and its impression step; returns the impression's index."""
    organ = chain.organ
    organ_key, organ_facts, n = lesion_organ_key(kg, lesion), facts.organ(organ), len(facts.lesions_in(organ))
    features = features_for(facts, lesion)
    sub = kg.subregion_node(organ_key, lesion.sub_location) if lesion.sub_location and organ_key else None
    fact_ids = _lesion_fact_ids(facts, lesion) + [f for ids in features.values() for f in ids]
    if n > 1 and organ_facts is not None:
        fact_ids.append(f"organ:{organ}.lesion_count")
    f = chain.add("finding", _finding_text(facts, lesion), fact_ids,
                  [*features, *([sub] if sub else [])], lesion.bbox.normalized)
    name = lesion_name(lesion, facts)
    if organ_key is None:
        return chain.add("impression", f"{name[0].upper()}{name[1:]} lies in an organ the knowledge graph does not "
                         "cover: no impression is licensed.", name_fact_ids(lesion, facts), ["pathology:indeterminate"],
                         lesion.bbox.normalized, [f])
    assessment = kg.assess(organ_key, set(features))
    others = list(assessment.differential[:MAX_DIFFERENTIAL])
    if assessment.decisive:
        text = f"{name[0].upper()}{name[1:]} is most consistent with {assessment.leading.label}"
        if others:
            text += "; differential: " + ", ".join(m.label for m in others)
    else:
        text = f"{name[0].upper()}{name[1:]} is an {assessment.leading.label}"
        if others:
            text += f"; differential: {', '.join(m.label for m in others)} ({_why_indeterminate(facts)})"
    ids = [assessment.leading.node_id, *(m.node_id for m in others)]
    return chain.add("impression", text + ".", name_fact_ids(lesion, facts), ids, lesion.bbox.normalized, [f])


def _pathology_step(chain: _Chain, facts: CaseFacts, kg: KnowledgeGraph, lesions: list[LesionFacts],
                    impressions: list[int], box) -> int:
    """With labels given for the lesions (read from the question's pathology report): whether the
    imaging impressions include them. Otherwise the KG class of the leading impressions, said to be
    a differential that needs confirmation."""
    given = [(lesion, *given_labels_for(facts, lesion)) for lesion in lesions]
    given = [(lesion, labels, subject) for lesion, labels, subject in given if labels is not None]
    if given:
        parts, ids, kg_ids = [], [], []
        for lesion, labels, subject in given:
            i = impressions[lesions.index(lesion)]
            reachable = set()
            for node in chain.steps[i].kg_node_ids:
                if node.startswith("impression:"):
                    reachable |= kg.reachable_pathologies(node)
            hists = [h for h in (kg.match_histology(v) for v in (labels.diagnosis, labels.histology) if v) if h]
            named = next((v for v in (labels.diagnosis, labels.histology) if v), None)
            fields = [k for k in ("behavior", "diagnosis", "histology") if getattr(labels, k)]
            ids += [f"{subject}.{k}" for k in fields] + name_fact_ids(lesion, facts)
            kg_ids += hists + ([f"pathology:{labels.behavior}"] if labels.behavior else [])
            what = named or labels.behavior or "the report"
            if hists and any(h in reachable for h in hists):
                verdict = "is among the imaging impressions"
            elif hists:
                verdict = "was not predicted by the imaging impressions; the report takes precedence"
            else:
                verdict = "is not a class the knowledge graph can compare with the imaging impressions"
            parts.append(f"For {lesion_name(lesion, facts)}, the pathology report's {what} {verdict}.")
        return chain.add("pathology", " ".join(parts), ids, kg_ids or ["pathology:indeterminate"], box, impressions)
    top = [chain.steps[i].kg_node_ids[0] for i in impressions]
    cats = sorted({kg.pathology_of(n) if n.startswith("impression:") else n for n in top})
    words = " or ".join(kg.label(c) for c in cats)
    return chain.add("pathology", f"No pathology report is given; by the knowledge graph the leading impression is classed "
                     f"as {words}. Histology is not established and needs pathological confirmation.",
                     [], cats, box, impressions)


def organ_chain(facts: CaseFacts, organ: str, kg: KnowledgeGraph) -> list[Step]:
    """Ordered steps for one organ (a TotalSegmentator name, or 'outside_organs')."""
    organ_key, name = kg.organ_key(organ), display_name(organ)
    lesions, organ_facts = facts.lesions_in(organ), facts.organ(organ)
    chain = _Chain(organ)
    box = list(organ_facts.bbox.normalized) if organ_facts else None
    if not lesions:  # only organs the lesion mask covers (report_organs): a verified negative
        if organ_facts.truncated:  # cut by the field of view: its volume is of the visible part only
            text = (f"The {name} measures at least {fmt(organ_facts.volume_ml)} mL (cut by the field of view) "
                    "with no focal lesion in its visible part.")
            ids = [f"organ:{organ}.volume_ml", f"organ:{organ}.lesion_count", f"organ:{organ}.truncated"]
        else:
            text = f"The {name} measures {fmt(organ_facts.volume_ml)} mL with no focal lesion."
            ids = [f"organ:{organ}.volume_ml", f"organ:{organ}.lesion_count"]
        f = chain.add("finding", text, ids, ["feature:no_focal_lesion"], box)
        i = chain.add("impression", f"No focal lesion in the {name}.", [], [f"impression:{organ_key}:normal"], box, [f])
        chain.add("pathology", "No tumour pathology is suggested.", [], ["pathology:none"], box, [i])
        return _open_with_phase(chain.steps, facts)
    impressions = [_lesion_steps(chain, facts, lesion, kg) for lesion in lesions]
    _pathology_step(chain, facts, kg, lesions, impressions, box)
    return _open_with_phase(chain.steps, facts)


def _open_with_phase(steps: list[Step], facts: CaseFacts) -> list[Step]:
    """The steps with the contrast phase stated (and cited) at the start of the first finding."""
    sentence, ids = phase_sentence(facts)
    first = steps[0]
    steps[0] = first.model_copy(update={"text": f"{sentence} {first.text}",
                                        "fact_ids": list(dict.fromkeys([*ids, *first.fact_ids]))})
    return steps


def lesion_chain(facts: CaseFacts, lesion: LesionFacts, kg: KnowledgeGraph) -> list[Step]:
    """Finding -> impression -> pathology for one lesion (the pathology and staging families)."""
    chain = _Chain(lesion.organ)
    impression = _lesion_steps(chain, facts, lesion, kg)
    _pathology_step(chain, facts, kg, [lesion], [impression], lesion.bbox.normalized)
    return chain.steps


def render_think(steps: list[Step]) -> str:
    return "\n".join(f"{s.index + 1}. [{s.stage}] {s.text}" for s in steps)


def conclusion_of(steps: list[Step]) -> str:
    by_stage = {stage: " ".join(s.text for s in steps if s.stage == stage)
                for stage in ("finding", "impression", "pathology")}
    return f"Findings: {by_stage['finding']} Impression: {by_stage['impression']} Pathology: {by_stage['pathology']}"
