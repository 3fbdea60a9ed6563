"""Measured facts -> knowledge-graph feature nodes (rules: ``tumorcot.vocabulary.attribute_rules``).

``lesion_features`` maps one lesion's measured descriptors to feature ids; ``case_features``
adds what the case tells about every lesion (the estimated contrast phase, a pancreatitis
history named in the given report). ``features_for`` is both, as the chains use them.
"""

from __future__ import annotations

from tumorcot.schemas.facts import CaseFacts, LesionFacts
from tumorcot.vocabulary import threshold

SMALL_MM = threshold("small_mm")
LARGE_MM = threshold("large_mm")
ADRENAL_LARGE_MM = threshold("adrenal_large_mm")
ADENOMA_MAX_HU = threshold("adenoma_max_hu")
NODE_SHORT_AXIS_MM = threshold("node_short_axis_mm")
PHASES = ("non_contrast", "arterial", "portal_venous", "delayed")
NODE_KINDS = ("lymph_node", "lymph node", "node")


def is_lymph_node(lesion: LesionFacts) -> bool:
    return lesion.kind.lower() in NODE_KINDS


def lesion_organ_key(kg, lesion: LesionFacts) -> str | None:
    """The KG organ a lesion is reasoned about in: ``lymph_node`` for a lymph-node lesion (by its
    kind), else its host organ's family."""
    return "lymph_node" if is_lymph_node(lesion) and "organ:lymph_node" in kg else kg.organ_key(lesion.organ)


def lesion_features(lesion: LesionFacts, lesions_in_organ: int, *, phase: str | None = None) -> dict[str, list[str]]:
    """Feature node id -> the fact ids (without the ``lesion:<id>.`` prefix) that establish it."""
    out: dict[str, list[str]] = {}
    if lesion.attenuation and lesion.attenuation != "not assessed":
        out[f"feature:{lesion.attenuation}"] = ["attenuation", "hu_difference"]
    if lesion.content in ("cystic", "calcified", "solid", "fatty"):
        out[f"feature:{lesion.content}"] = ["content"]
    if lesion.shape in ("round", "oval", "lobulated", "irregular"):
        out[f"feature:{lesion.shape}"] = ["shape"]
    if lesion.margin in ("well-defined", "ill-defined"):
        out[f"feature:{lesion.margin.replace('-', '_')}"] = ["margin"]
    if lesion.long_axis_mm < SMALL_MM:
        out["feature:small"] = ["long_axis_mm"]
    elif lesion.long_axis_mm > LARGE_MM:
        out["feature:large"] = ["long_axis_mm"]
    if lesion.long_axis_mm >= ADRENAL_LARGE_MM:
        out["feature:size_ge_4cm"] = ["long_axis_mm"]
    if any(deg > 0 for deg in lesion.vessel_contact_deg.values()):
        out["feature:vascular_contact"] = [f"contact_{v}_deg" for v, d in lesion.vessel_contact_deg.items() if d > 0]
    out["feature:multiple" if lesions_in_organ > 1 else "feature:solitary"] = []
    if phase == "non_contrast" and lesion.mean_hu <= ADENOMA_MAX_HU:
        out["feature:unenhanced_le_10hu"] = ["mean_hu"]
    if is_lymph_node(lesion):
        small = lesion.short_axis_mm < NODE_SHORT_AXIS_MM
        out["feature:short_axis_lt_10mm" if small else "feature:short_axis_ge_10mm"] = ["short_axis_mm"]
    return out


def case_phase(facts: CaseFacts) -> str | None:
    """The estimated contrast phase when the imaging stage decided one, else None."""
    return facts.contrast_phase if facts.contrast_phase in PHASES else None


def case_features(facts: CaseFacts, lesion: LesionFacts | None = None) -> dict[str, list[str]]:
    """Case-level feature ids -> the fact ids (full ids) that establish them."""
    out: dict[str, list[str]] = {}
    phase = case_phase(facts)
    if phase:
        out[f"feature:phase_{phase}"] = ["case.contrast_phase"]
    texts = []
    for labels in (facts.pathology, facts.lesion_pathology.get(lesion.id) if lesion else None):
        if labels is not None:
            texts += [labels.diagnosis or "", labels.histology or ""]
    if any("pancreatitis" in t.lower() for t in texts):
        out["feature:history_pancreatitis"] = ["pathology.diagnosis"]
    return out


def features_for(facts: CaseFacts, lesion: LesionFacts) -> dict[str, list[str]]:
    """Every feature id of ``lesion`` in ``facts`` -> the full fact ids that establish it."""
    own = lesion_features(lesion, len(facts.lesions_in(lesion.organ)), phase=case_phase(facts))
    out = {k: [f"lesion:{lesion.id}.{n}" for n in v] for k, v in own.items()}
    out.update(case_features(facts, lesion))
    return out
