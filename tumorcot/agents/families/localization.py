"""Localization: organ and lesion 3D boxes, answered as six normalised numbers.

The answer is ``[x0, y0, z0, x1, y1, z1]`` in the volume's field of view with LPS axes
(``tumorcot.schemas.facts.BOX_CONVENTION``); every number cites the box fact it states. Organs
and lesions touching the edge of the field of view (``truncated``) get no box record: their
complete extent is unknown.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, place_only
from tumorcot.conversation import format_box
from tumorcot.vocabulary import display_name, organ_family
from tumorcot.schemas import CoTRecord, Step

BOX_AXES = ("x0", "y0", "z0", "x1", "y1", "z1")
# Organs with a chain-of-thought report when present (TumorChain's five plus kidney and spleen).
REPORT_FAMILIES = ("liver", "pancreas", "kidney", "spleen", "stomach", "colon", "esophagus")
# Organs with localization records when present.
LOCALIZATION_FAMILIES = REPORT_FAMILIES + (
    "lung", "gallbladder", "duodenum", "aorta", "inferior_vena_cava", "urinary_bladder", "adrenal_gland",
)


def box_fact_ids(subject: str) -> list[str]:
    return [f"{subject}.box_{a}" for a in BOX_AXES]


def localization_records(make: RecordFactory) -> list[CoTRecord]:
    kg = make.kg
    out = []
    for organ in make.facts.organs:
        if organ_family(organ.name) not in LOCALIZATION_FAMILIES or organ.truncated:
            continue  # a truncated organ's box is of its visible part only: no complete box claimed
        name = display_name(organ.name)
        q, tpl = make.question("organ_box", organ.name, organ=name)
        box = list(organ.bbox.normalized)
        step = Step(index=0, stage="finding", organ=organ.name,
                    text=f"The {name} spans the normalised box {format_box(box)}.",
                    fact_ids=box_fact_ids(f"organ:{organ.name}"),
                    kg_node_ids=[n for n in [f"organ:{kg.organ_key(organ.name)}"] if n in kg], roi_box=box)
        out.append(make.make(task="localization", subtask="organ_box", subject=organ.name, question=q,
                             template=tpl, answer=format_box(box), organ=organ.name, roi_box=box,
                             steps=[step], think=step.text))
    for lesion in make.facts.lesions:
        if lesion.truncated:
            continue
        where, name_ids = place_only(make.facts, lesion)
        q, tpl = make.question("lesion_box", lesion.id, lesion="lesion", where=where)
        box = list(lesion.bbox.normalized)
        step = Step(index=0, stage="finding", organ=lesion.organ,
                    text=f"The lesion {where} spans the normalised box {format_box(box)}.",
                    fact_ids=[*name_ids, *box_fact_ids(f"lesion:{lesion.id}")], roi_box=box)
        out.append(make.make(task="localization", subtask="lesion_box", subject=lesion.id, question=q,
                             template=tpl, answer=format_box(box), organ=lesion.organ, lesion_id=lesion.id,
                             roi_box=box, steps=[step], think=step.text))
    return out
