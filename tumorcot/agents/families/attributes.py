"""Lesion attributes: presence, count, size, density, shape, margin, content, sub-location.

Each record is a chain (``chain.chain_record``): its rationale walks from the measured value
through the rule's reference or threshold to the label (``attribute_links``), its answer is one
of the subtask's answer forms (``prompts/answers``), never the rationale word for word.

Closed-answer subtasks (presence, count, density, shape, margin, content, sub-location) are asked
as multiple choice for a share of records (``GenerationOptions.mc_share``); the options come from
``choice`` and the answer's position is balanced by ``RecordFactory.place``. The answer of a
multiple-choice record is the option text; its conclusion is the answer sentence.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt, lesion_phrase, lesion_where, name_fact_ids, place_only
from tumorcot.agents.chains import not_assessed_reason, phase_clause
from tumorcot.agents.families import attribute_links as links_of
from tumorcot.agents.families.chain import chain_record
from tumorcot.agents.families.choice import count_pool, sub_location_pool
from tumorcot.agents.families.localization import REPORT_FAMILIES
from tumorcot.vocabulary import ATTRIBUTE_VALUES, display_name, organ_family
from tumorcot.schemas import CoTRecord, LesionFacts

TASK = "lesion_attribute"


def organ_presence_records(make: RecordFactory) -> list[CoTRecord]:
    """Presence and count per report organ: negatives are the organs without lesions."""
    out = []
    for organ in make.facts.organs:
        if organ_family(organ.name) not in REPORT_FAMILIES:
            continue
        if organ.lesion_count == 0 and not make.facts.is_annotated(organ.name):
            continue  # nobody annotated lesions in this organ: no negative claim
        name, n = display_name(organ.name), organ.lesion_count
        common = dict(task=TASK, subject=organ.name, organ=organ.name, roi=organ.bbox.normalized,
                      question={"organ": name}, answer={"organ": name, "n": n}, negative=n == 0)
        out.append(chain_record(make, subtask="presence", links=links_of.count_links(make, organ, "presence"),
                                closed=("No" if n == 0 else "Yes", ATTRIBUTE_VALUES["presence"]), **common))
        out.append(chain_record(make, subtask="count", links=links_of.count_links(make, organ, "count"),
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
    name_ids = name_fact_ids(lesion, make.facts)

    def attribute(subtask, links, answer, closed=None, **question):
        return chain_record(make, task=TASK, subtask=subtask, subject=lesion.id, organ=lesion.organ, links=links,
                            question={"organ": organ_name, "lesion": noun, "where": where, **question},
                            answer={"name": name, "Name": name[0].upper() + name[1:], "organ": organ_name, **answer},
                            roi=lesion.bbox.normalized, lesion_id=lesion.id, closed=closed)

    out = []
    if not lesion.truncated:  # cut by the field of view: no complete size or volume is claimed
        size_where, size_ids = place_only(make.facts, lesion)
        out.append(attribute("size", links_of.size_links(make, lesion, size_where, size_ids),
                             {"where": size_where, "long": fmt(lesion.long_axis_mm), "short": fmt(lesion.short_axis_mm),
                              "d3": fmt(lesion.max_diameter_3d_mm)},
                             lesion="lesion", where=size_where))
    if lesion.attenuation == "not assessed" or (lesion.attenuation and lesion.hu_difference is not None
                                                and lesion.core_median_hu is not None):
        assessed = lesion.attenuation != "not assessed"
        out.append(attribute("density", links_of.density_links(make, lesion, name_ids),
                             {"label": lesion.attenuation, "assessed": assessed, "phase": phase_clause(make.facts)[0],
                              "reason": "" if assessed else not_assessed_reason(lesion, "attenuation")},
                             closed=(lesion.attenuation, ATTRIBUTE_VALUES["density"]) if assessed else None))
    for subtask, value, build in (("shape", lesion.shape, links_of.shape_links),
                                  ("margin", lesion.margin, links_of.margin_links),
                                  ("content", lesion.content, links_of.content_links)):
        if value in ATTRIBUTE_VALUES[subtask] or value == "not assessable":
            assessed = value != "not assessable"   # then an open answer with its reason: no closed set holds it
            out.append(attribute(subtask, build(make, lesion, name_ids),
                                 {"label": value, "assessed": assessed,
                                  "reason": "" if assessed else not_assessed_reason(lesion, subtask)},
                                 closed=(value, ATTRIBUTE_VALUES[subtask]) if assessed else None))
    if lesion.sub_location:
        out.append(_sub_location(make, lesion, noun, attribute))
    return out


def _sub_location(make: RecordFactory, lesion: LesionFacts, noun: str, attribute) -> CoTRecord:
    """Named by size and organ (the place is the answer); by its slice too when another lesion of
    the organ has the same size."""
    key = make.kg.organ_key(lesion.organ)
    sub = make.kg.subregion_node(key, lesion.sub_location) if key else None
    organ_name = display_name(lesion.organ)
    same_size = [o for o in make.facts.lesions_in(lesion.organ) if o is not lesion and
                 round(o.long_axis_mm) == round(lesion.long_axis_mm)]
    sub_noun, extra = noun, []
    if same_size and all(o.axial_slice != lesion.axial_slice for o in same_size):
        sub_noun, extra = f"{noun} centred on axial slice {lesion.axial_slice}", ["axial_slice"]
    place = lesion_where(lesion).removeprefix("in ").replace(f" of the {organ_name}", "")
    ids = [f"lesion:{lesion.id}.{n}" for n in ("organ", "long_axis_mm", *extra)]
    links = links_of.sub_location_links(make, lesion, sub_noun, place, [sub] if sub else [], ids)
    return attribute("sub_location", links, {"lesion": sub_noun, "place": place},
                     closed=(lesion.sub_location, sub_location_pool(lesion.sub_location)),
                     lesion=sub_noun, where=f"in the {organ_name}")

