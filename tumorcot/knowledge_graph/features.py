"""Measured facts -> knowledge-graph feature nodes (rules: ``tumorcot.vocabulary.attribute_rules``)."""

from __future__ import annotations

from tumorcot.schemas.facts import LesionFacts
from tumorcot.vocabulary import threshold

SMALL_MM = threshold("small_mm")
LARGE_MM = threshold("large_mm")


def lesion_features(lesion: LesionFacts, lesions_in_organ: int) -> dict[str, list[str]]:
    """Feature node id -> the fact ids (without the ``lesion:<id>.`` prefix) that establish it."""
    out: dict[str, list[str]] = {}
    if lesion.attenuation and lesion.attenuation != "not assessed":
        out[f"feature:{lesion.attenuation}"] = ["attenuation", "hu_difference"]
    if lesion.content:
        out[f"feature:{lesion.content}"] = ["content"]
    if lesion.shape:
        out[f"feature:{lesion.shape}"] = ["shape"]
    if lesion.margin and lesion.margin != "not assessable":
        out[f"feature:{lesion.margin.replace('-', '_')}"] = ["margin"]
    if lesion.long_axis_mm < SMALL_MM:
        out["feature:small"] = ["long_axis_mm"]
    elif lesion.long_axis_mm > LARGE_MM:
        out["feature:large"] = ["long_axis_mm"]
    if any(deg > 0 for deg in lesion.vessel_contact_deg.values()):
        out["feature:vascular_contact"] = [f"contact_{v}_deg" for v, d in lesion.vessel_contact_deg.items() if d > 0]
    out["feature:multiple" if lesions_in_organ > 1 else "feature:solitary"] = []
    return out
