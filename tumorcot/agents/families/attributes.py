"""Lesion attributes: presence, count, size, density, shape, margin, content, sub-location.

Closed-answer subtasks (presence, count, density, shape, margin, content, sub-location) are asked
as multiple choice for a share of records (``GenerationOptions.mc_share``); the options come from
``choice`` and the answer's position is balanced by ``RecordFactory.place``. The answer of a
multiple-choice record is the option text; its conclusion is the full sentence.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt, lesion_phrase, lesion_where, name_fact_ids, place_only
from tumorcot.agents.chains import not_assessed_reason, phase_clause
from tumorcot.agents.families.choice import (count_pool, distractors,
                                             sub_location_pool)
from tumorcot.agents.families.localization import REPORT_FAMILIES
from tumorcot.vocabulary import ATTRIBUTE_VALUES, display_name, organ_family
from tumorcot.schemas import CoTRecord, LesionFacts, Step


def _record(make: RecordFactory, *, subtask: str, subject: str, sentence: str, fact_ids: list[str],
            kg_ids=(), organ: str, roi, question_ctx: dict, lesion_id: str | None = None,
            closed: tuple[str, tuple[str, ...] | None] | None = None, negative: bool = False) -> CoTRecord:
    """One attribute record; ``closed=(answer, pool)`` makes it multiple choice when drawn so."""
    q, tpl = make.question(subtask, subject, **question_ctx)
    step = Step(index=0, stage="finding", organ=organ, text=sentence, fact_ids=fact_ids,
                kg_node_ids=[k for k in kg_ids if k in make.kg], roi_box=list(roi) if roi else None)
    fields = dict(task="lesion_attribute", subtask=subtask, subject=subject, question=q, template=tpl,
                  organ=organ, lesion_id=lesion_id, roi_box=step.roi_box, steps=[step], think=sentence,
                  negative=negative)
    if closed and closed[1] and make.wants_choice(subtask, subject):
        answer, pool = closed
        options, index = make.place(answer, distractors(answer, pool, f"{make.facts.case_id}\x1f{subject}"))
        return make.make(**fields, answer=answer, conclusion=sentence, form="multiple_choice",
                         options=options, answer_index=index)
    return make.make(**fields, answer=sentence)


def organ_presence_records(make: RecordFactory) -> list[CoTRecord]:
    """Presence and count per report organ: negatives are the organs without lesions."""
    out = []
    for organ in make.facts.organs:
        if organ_family(organ.name) not in REPORT_FAMILIES:
            continue
        if organ.lesion_count == 0 and not make.facts.is_annotated(organ.name):
            continue  # nobody annotated lesions in this organ: no negative claim
        name, n = display_name(organ.name), organ.lesion_count
        count_text = f"{n} focal lesion{'s' if n > 1 else ''} in the {name}"
        feature = "feature:no_focal_lesion" if n == 0 else ("feature:multiple" if n > 1 else "feature:solitary")
        common = dict(fact_ids=[f"organ:{organ.name}.lesion_count"], kg_ids=[feature], organ=organ.name,
                      roi=organ.bbox.normalized, question_ctx={"organ": name}, negative=n == 0)
        presence = f"No focal lesion in the {name}." if n == 0 else f"Yes: {count_text}."
        out.append(_record(make, subtask="presence", subject=organ.name, sentence=presence,
                           closed=("No" if n == 0 else "Yes", ATTRIBUTE_VALUES["presence"]), **common))
        count = f"No focal lesion in the {name}." if n == 0 else f"{count_text[0].upper()}{count_text[1:]}."
        out.append(_record(make, subtask="count", subject=organ.name, sentence=count,
                           closed=(str(n), count_pool(n)), **common))
    return out


def lesion_attribute_records(make: RecordFactory, lesion: LesionFacts) -> list[CoTRecord]:
    """One record per measured attribute. The question names the lesion by size and place
    (``lesion_phrase``), except where that would give the answer away: the size question names
    it by place (and axial slice when another lesion shares the place), the sub-location question
    by size and organ."""
    noun, where = lesion_phrase(lesion, make.facts)
    organ_name = display_name(lesion.organ)
    name = f"the {noun} {where}"
    name_ids = [n.split(".", 1)[1] for n in name_fact_ids(lesion, make.facts)]

    def attribute(subtask, sentence, fact_names, kg_ids=(), closed=None, **ctx):
        ctx = {"lesion": noun, "where": where, **ctx}
        return _record(make, subtask=subtask, subject=lesion.id, sentence=sentence,
                       fact_ids=[f"lesion:{lesion.id}.{n}" for n in dict.fromkeys(fact_names)], kg_ids=kg_ids,
                       organ=lesion.organ, roi=lesion.bbox.normalized, lesion_id=lesion.id, closed=closed,
                       question_ctx=dict(organ=organ_name, **ctx))

    out = []
    if not lesion.truncated:  # cut by the field of view: no complete size or volume is claimed
        size_where, size_ids = place_only(make.facts, lesion)
        out.append(attribute(
            "size",
            f"The lesion {size_where} measures {fmt(lesion.long_axis_mm)} x {fmt(lesion.short_axis_mm)} mm in the "
            f"axial plane (greatest dimension {fmt(lesion.max_diameter_3d_mm)} mm in 3D, volume "
            f"{fmt(lesion.volume_ml)} mL).",
            [*(i.split(".", 1)[1] for i in size_ids), "long_axis_mm", "short_axis_mm", "max_diameter_3d_mm",
             "volume_ml"],
            lesion="lesion", where=size_where))
    if lesion.attenuation == "not assessed":
        out.append(attribute(
            "density", f"The attenuation of {name} relative to its organ is not assessed: "
            f"{not_assessed_reason(lesion, 'attenuation')}.", [*name_ids, "attenuation"]))
    elif lesion.attenuation and lesion.hu_difference is not None and lesion.core_median_hu is not None:
        phase, phase_ids = phase_clause(make.facts)
        out.append(_with_facts(attribute(
            "density",
            f"{name[0].upper()}{name[1:]} is {lesion.attenuation} relative to the surrounding organ {phase}: "
            f"core median {fmt(lesion.core_median_hu)} HU, {fmt(lesion.hu_difference)} HU from the organ's reference.",
            [*name_ids, "attenuation", "core_median_hu", "hu_difference"], [f"feature:{lesion.attenuation}"],
            closed=(lesion.attenuation, ATTRIBUTE_VALUES["density"])), phase_ids))
    for subtask, value in (("shape", lesion.shape), ("margin", lesion.margin), ("content", lesion.content)):
        if value in ATTRIBUTE_VALUES[subtask]:
            out.append(attribute(subtask, f"{name[0].upper()}{name[1:]} is {value}.", [*name_ids, subtask],
                                 [f"feature:{value.replace('-', '_')}"], closed=(value, ATTRIBUTE_VALUES[subtask])))
        elif value == "not assessable":  # open answer with its reason: no closed set holds it
            out.append(attribute(subtask, f"The {subtask} of {name} is not assessable: "
                                 f"{not_assessed_reason(lesion, subtask)}.", [*name_ids, subtask]))
    if lesion.sub_location:
        key = make.kg.organ_key(lesion.organ)
        sub = make.kg.subregion_node(key, lesion.sub_location) if key else None
        same_size = [o for o in make.facts.lesions_in(lesion.organ) if o is not lesion and
                     round(o.long_axis_mm) == round(lesion.long_axis_mm)]
        sub_noun, extra = noun, []
        if same_size and all(o.axial_slice != lesion.axial_slice for o in same_size):
            sub_noun, extra = f"{noun} centred on axial slice {lesion.axial_slice}", ["axial_slice"]
        place = lesion_where(lesion).removeprefix("in ").replace(f" of the {organ_name}", "")
        out.append(attribute("sub_location", f"The {sub_noun} in the {organ_name} lies in {place}.",
                             ["organ", "long_axis_mm", "sub_location", *extra], [sub] if sub else [],
                             closed=(lesion.sub_location, sub_location_pool(lesion.sub_location)),
                             lesion=sub_noun, where=f"in the {organ_name}"))
    return out


def _with_facts(record: CoTRecord, fact_ids: list[str]) -> CoTRecord:
    """The record with ``fact_ids`` added to its single step (facts of the case, not the lesion)."""
    if not fact_ids:
        return record
    step = record.steps[0]
    return record.model_copy(update={"steps": [step.model_copy(update={"fact_ids": [*step.fact_ids, *fact_ids]})]})
