"""What a case's labels and lesion mask cover: labels resolved to lesions, annotated organs.

* ``lesion_pathology`` keys (lesion-mask values or lesion ids) -> lesion ids. A mask value names
  every lesion whose voxels carry it; a key that matches no lesion is an error on the row.
* Case-level ``pathology`` with ``organ=kidney`` (or ``adrenal_gland``, ``lung``) resolves to the
  structure that holds the lesions of that organ family; lesions on both sides make the label
  ambiguous, an error on the row (give per-lesion labels instead).
* Case-level labels describe the index (largest) lesion of their organ; the organ's other lesions
  are not covered by them (give ``lesion_pathology``).
"""

from __future__ import annotations

from tumorcot.errors import CaseInputError
from tumorcot.vocabulary import OUTSIDE_ORGANS, organ_family
from tumorcot.schemas import CaseFacts, CaseInput, LesionFacts, PathologyLabels

ORGAN_WORDS = (("hepat", "liver"), ("liver", "liver"), ("pancrea", "pancreas"), ("renal", "kidney"),
               ("kidney", "kidney"), ("gastric", "stomach"), ("colo", "colon"), ("oesophag", "esophagus"),
               ("esophag", "esophagus"), ("lung", "lung"), ("splen", "spleen"), ("adrenal", "adrenal_gland"),
               ("sarcoma", OUTSIDE_ORGANS))


def lesion_labels_by_id(case: CaseInput, lesions: list[LesionFacts]) -> dict[str, PathologyLabels]:
    """Per-lesion labels keyed by lesion id; lesion-id keys win over mask-value keys."""
    out: dict[str, PathologyLabels] = {}
    given = case.lesion_pathology or {}
    for key, labels in sorted(given.items(), key=lambda kv: kv[0].startswith("L")):
        if key.startswith("L"):
            hits = [l for l in lesions if l.id == key]
        else:
            hits = [l for l in lesions if int(key) in l.mask_values]
        if not hits:
            raise CaseInputError(f"lesion_pathology names {key!r} but no lesion has that "
                                 f"{'id' if key.startswith('L') else 'mask value'}", case=case.label)
        for lesion in hits:
            out[lesion.id] = _with_organ(labels, lesion, case)
    return out


def _with_organ(labels: PathologyLabels, lesion: LesionFacts, case: CaseInput) -> PathologyLabels:
    if labels.organ and labels.organ != lesion.organ and organ_family(labels.organ) != organ_family(lesion.organ):
        raise CaseInputError(f"lesion_pathology for {lesion.id} says organ={labels.organ} but the lesion "
                             f"lies in the {lesion.organ}", case=case.label)
    return labels.model_copy(update={"organ": lesion.organ})


def resolve_case_pathology(case: CaseInput, lesions: list[LesionFacts]) -> PathologyLabels | None:
    """Case-level labels with ``organ`` resolved to the structure holding its lesions."""
    labels = case.pathology
    if labels is None or not labels.organ:
        return labels
    hosts = sorted({l.organ for l in lesions if l.organ == labels.organ or organ_family(l.organ) == labels.organ})
    if len(hosts) > 1:
        raise CaseInputError(f"pathology organ={labels.organ} is ambiguous: lesions in {', '.join(hosts)}; "
                             "name the side (e.g. organ=kidney_left) or give lesion_pathology", case=case.label)
    if hosts:
        return labels.model_copy(update={"organ": hosts[0]})
    return labels


def pathology_organ(facts: CaseFacts) -> str | None:
    """The organ the case-level labels describe: stated (resolved at extraction), named in the
    diagnosis, or the host of the largest lesion."""
    p = facts.pathology
    if p is None:
        return None
    if p.organ:
        return p.organ
    text = " ".join(filter(None, [p.diagnosis, p.histology])).lower()
    for lesion in facts.lesions:
        if lesion.organ.split("_")[0] in text:
            return lesion.organ
    for word, organ in ORGAN_WORDS:
        if word in text:
            hit = next((l.organ for l in facts.lesions if l.organ.startswith(organ)), None)
            if hit:
                return hit
    return facts.lesions[0].organ if facts.lesions else None


def index_lesion(facts: CaseFacts, organ: str) -> LesionFacts | None:
    """The organ's largest lesion (greatest dimension, then id): what a case-level report and a
    size-based T describe."""
    lesions = facts.lesions_in(organ)
    return max(lesions, key=lambda l: (l.max_diameter_3d_mm, l.id)) if lesions else None


def labels_for_lesion(facts: CaseFacts, lesion: LesionFacts) -> tuple[PathologyLabels | None, str | None]:
    """(labels, fact subject) given for ``lesion``: its own ``lesion_pathology`` entry, else the
    case-level labels when they describe its organ and it is that organ's index lesion (other
    lesions of the organ are not covered by a case-level report)."""
    own = facts.given_labels(lesion.id)
    if own is not None:
        return own, f"pathology:{lesion.id}"
    if facts.pathology is not None and pathology_organ(facts) == lesion.organ \
            and index_lesion(facts, lesion.organ) is lesion:
        return facts.pathology, "pathology"
    return None, None
