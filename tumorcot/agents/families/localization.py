"""Localization: organ and lesion 3D boxes, answered as six normalised numbers.

The answer is ``[x0, y0, z0, x1, y1, z1]`` in the volume's field of view with LPS axes
(``tumorcot.schemas.facts.BOX_CONVENTION``); every number cites the box fact it states. Organs
and lesions touching the edge of the field of view (``truncated``) get no box record: their
complete extent is unknown. The rationale states the extent axis by axis
(``prompts/steps/<subtask>.j2``); the answer is one of the box answer forms, each holding the box
in the one format above.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, place_only
from tumorcot.agents.families.chain import Link, chain_record
from tumorcot.conversation import format_box
from tumorcot.vocabulary import display_name, organ_family
from tumorcot.schemas import CoTRecord

BOX_AXES = ("x0", "y0", "z0", "x1", "y1", "z1")
# Organs with a chain-of-thought report when present (TumorChain's five plus kidney and spleen).
REPORT_FAMILIES = ("liver", "pancreas", "kidney", "spleen", "stomach", "colon", "esophagus")
# Organs with localization records when present.
LOCALIZATION_FAMILIES = REPORT_FAMILIES + (
    "lung", "gallbladder", "duodenum", "aorta", "inferior_vena_cava", "urinary_bladder", "adrenal_gland",
)


def box_links(make: RecordFactory, subtask: str, subject: str, box, kg_ids=(), **context) -> list[Link]:
    """The box axis by axis (right-to-left, front-to-back, bottom-to-top), each step citing its two numbers."""
    values = {a: f"{v:.3f}" for a, v in zip(BOX_AXES, box)}
    return [Link(make.step(subtask, axis, subject, **values, **context),
                 [f"{subject_id(subtask, subject)}.box_{axis}0", f"{subject_id(subtask, subject)}.box_{axis}1"],
                 list(kg_ids) if axis == "x" else []) for axis in "xyz"]


def subject_id(subtask: str, subject: str) -> str:
    return f"organ:{subject}" if subtask == "organ_box" else f"lesion:{subject}"


def localization_records(make: RecordFactory) -> list[CoTRecord]:
    kg = make.kg
    out = []
    for organ in make.facts.organs:
        if organ_family(organ.name) not in LOCALIZATION_FAMILIES or organ.truncated:
            continue  # a truncated organ's box is of its visible part only: no complete box claimed
        name, box = display_name(organ.name), list(organ.bbox.normalized)
        links = box_links(make, "organ_box", organ.name, box, [f"organ:{kg.organ_key(organ.name)}"], organ=name)
        out.append(chain_record(make, task="localization", subtask="organ_box", subject=organ.name, organ=organ.name,
                                links=links, question={"organ": name}, answer={"organ": name, "box": format_box(box)},
                                roi=box))
    for lesion in make.facts.lesions:
        if lesion.truncated:
            continue
        where, name_ids = place_only(make.facts, lesion)
        box = list(lesion.bbox.normalized)
        links = box_links(make, "lesion_box", lesion.id, box, where=where)
        links[0].fact_ids[:0] = name_ids
        out.append(chain_record(make, task="localization", subtask="lesion_box", subject=lesion.id, organ=lesion.organ,
                                links=links, question={"lesion": "lesion", "where": where},
                                answer={"box": format_box(box)}, roi=box, lesion_id=lesion.id))
    return out
