"""TNM staging, only where it can be licensed:

* T from the knowledge graph's size rule (``staging:<organ>:T``, AJCC 8th edition) for the organs
  whose rule is size-based, from the greatest dimension of the organ's index (largest) lesion --
  the same number its finding states -- with the slice thickness it was measured on, when the
  lesion is malignant by its labels or by its decisive KG impression (then the T is conditional
  on that impression being confirmed). The liver rule needs a solitary lesion without vessel
  contact; otherwise size does not decide T.
* A T given in the pathology report is question context; the target says whether it agrees with
  the size rule (``CaseFacts.t_checks``), and flags a disagreement.
* N and M are never staged from imaging; the target says so.

A case with neither a size-based T nor a given T gets no TNM record. Where a report gives a T
that the size rule can check (``CaseFacts.t_checks``: a complete lesion, a histology the rule
stages), two focused records follow (``size_records``): ``t_check`` (does the report's T agree with
the measured greatest dimension?) and, for a rule whose bands are size alone (not the liver's),
``t_band`` (which AJCC cut-offs bracket the size, and how far the next one is). Only the T the
size rule gives is ever stated; the cut-offs are facts of the check (``tcheck:<id>.band_*_cm``).
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt, lesion_name, name_fact_ids
from tumorcot.agents.chains import given_labels_for, lesion_chain, render_think, report_context
from tumorcot.knowledge_graph.staging import band_of, borderline, greatest_dimension_cm, size_t_for
from tumorcot.schemas import LesionFacts, TCheck
from tumorcot.vocabulary import display_name
from tumorcot.schemas import CoTRecord, Step
from tumorcot.scope import index_lesion


def given_histologies(kg, given) -> list[str]:
    if given is None:
        return []
    return [h for h in (kg.match_histology(v) for v in (given.histology, given.diagnosis) if v) if h]


def size_t_category(make: RecordFactory, organ: str, lesion, steps) -> str | None:
    """T by the KG size rule for the organ's index lesion, or None where size does not decide it
    (no size rule, a tumour type the rule does not stage, a case the rule leaves open, or a lesion
    cut by the field of view)."""
    if lesion.truncated:
        return None  # cut by the field of view: its greatest dimension is a lower bound, no T by size
    key = make.kg.organ_key(organ)
    impressions = [n for n in steps[1].kg_node_ids if n.startswith("impression:")]
    given, _ = given_labels_for(make.facts, lesion)
    if key is None or not make.kg.size_rule_applies(key, impressions, given_histologies(make.kg, given)):
        return None
    return size_t_for(make.kg, make.facts, lesion, key)


def _rule_subject(kg, key: str) -> str:
    """What the AJCC size rule stages, from its KG label ("AJCC 8 T category for kidney" -> "kidney")."""
    return kg.label(f"staging:{key}:T").split(" T category for ", 1)[-1]


def _borderline_clause(kg, key: str, lesion: LesionFacts, slice_mm: float) -> str:
    if not borderline(kg, key, lesion, slice_mm):
        return ""
    return "; the size lies within one slice thickness of a cut-off, so the category is borderline"


def _t_check_text(check) -> str:
    if check.agrees is True:
        return f"The pathology report's {check.given_t} agrees with the measured size."
    if check.agrees is False:
        return (f"The pathology report's {check.given_t} disagrees with the measured greatest dimension, "
                f"which gives {check.size_t}: flagged for review.")
    return f"The pathology report's {check.given_t} may rest on extent, which size does not measure."


def staging_records(make: RecordFactory) -> list[CoTRecord]:
    out = []
    facts, kg = make.facts, make.kg
    for organ in sorted({l.organ for l in facts.lesions}):
        lesion = index_lesion(facts, organ)
        given, _ = given_labels_for(facts, lesion)
        steps = lesion_chain(facts, lesion, kg)
        pathology = steps[-1]
        malignant = "pathology:malignant" in pathology.kg_node_ids or \
            (given is not None and (given.behavior == "malignant" or bool(given.t)))
        size_t = size_t_category(make, organ, lesion, steps) if malignant else None
        check = next((c for c in facts.t_checks if c.lesion_id == lesion.id
                      and given is not None and given.t == c.given_t), None)
        if size_t is None and check is None:
            continue
        key, name = kg.organ_key(organ), display_name(organ)
        parts, answer, fact_ids, kg_ids = [], [], [], []
        if size_t is not None:
            cm, slice_mm = greatest_dimension_cm(lesion), facts.ct.spacing_mm[2]
            condition = "" if given is not None else "If the leading impression is confirmed as malignant, "
            subject = _rule_subject(kg, key)
            text = (f"{condition}the AJCC eighth-edition size rule for {subject} gives {size_t} for a greatest "
                    f"dimension of {fmt(cm)} cm ({lesion_name(lesion, facts)}, measured on {fmt(slice_mm)} mm slices)")
            text += _borderline_clause(kg, key, lesion, slice_mm)
            parts.append(text + ".")
            fact_ids += [f"lesion:{lesion.id}.max_diameter_3d_cm", *name_fact_ids(lesion, facts), "case.slice_mm"]
            kg_ids.append(f"staging:{key}:T")
            answer.append(f"{size_t} by size{' (conditional)' if condition else ''}")
        if check is not None:
            parts.append(_t_check_text(check))
            fact_ids += [f"tcheck:{lesion.id}.{n}" for n in ("given_t", "size_t", "agrees")
                         if f"tcheck:{lesion.id}.{n}" in make.table]
            answer.append({True: f"report {check.given_t} agrees", False: f"report {check.given_t} disagrees (flagged)",
                           None: f"report {check.given_t} not decided by size"}[check.agrees])
        if given is not None:  # the report stands in the question: the staging step refers to it
            _, label_subject = given_labels_for(facts, lesion)
            fact_ids += [f"{label_subject}.{k}" for k in ("diagnosis", "histology", "behavior", "t", "n", "m")
                         if getattr(given, k)]
        parts.append("N and M are not staged from imaging measurements.")
        answer.append("N and M not assessed")
        steps.append(Step(index=len(steps), stage="pathology", organ=organ, text=" ".join(parts),
                          fact_ids=fact_ids, kg_node_ids=kg_ids, roi_box=list(lesion.bbox.normalized),
                          follows_from=[0, pathology.index]))
        q, tpl = make.question("tnm", organ, organ=name)
        text, form = make.answer("tnm", organ, parts="; ".join(answer))
        out.append(make.make(task="tnm_staging", subtask="tnm", subject=organ,
                             question=report_context(facts, [lesion], stage=True) + q, template=tpl,
                             answer=text, answer_template=form, conclusion=steps[-1].text, organ=organ,
                             lesion_id=lesion.id, roi_box=list(lesion.bbox.normalized), steps=steps,
                             think=render_think(steps)))
    return out + size_records(make)


def size_records(make: RecordFactory) -> list[CoTRecord]:
    """``t_check`` and ``t_band`` for each organ's index lesion with a given T the size rule checks."""
    out = []
    facts = make.facts
    for organ in sorted({l.organ for l in facts.lesions}):
        lesion = index_lesion(facts, organ)
        given, _ = given_labels_for(facts, lesion)
        check = next((c for c in facts.t_checks if c.lesion_id == lesion.id
                      and given is not None and given.t == c.given_t), None)
        if check is None or lesion.truncated:
            continue
        out.append(_t_check_record(make, lesion, check))
        if check.size_t and (check.band_low_cm is not None or check.band_high_cm is not None):
            out.append(_t_band_record(make, lesion, check))
    return out


def _size_steps(make: RecordFactory, lesion: LesionFacts, check: TCheck) -> list[Step]:
    """The measured greatest dimension, then the rule's T for it (labels say which rule applies)."""
    facts, kg = make.facts, make.kg
    key, slice_mm = kg.organ_key(lesion.organ), facts.ct.spacing_mm[2]
    name = lesion_name(lesion, facts)
    steps = [Step(index=0, stage="finding", organ=lesion.organ, roi_box=list(lesion.bbox.normalized),
                  text=f"Measured on {fmt(slice_mm)} mm slices, {name} has a greatest dimension of "
                       f"{fmt(check.greatest_dimension_cm)} cm.",
                  fact_ids=[f"lesion:{lesion.id}.max_diameter_3d_cm", *name_fact_ids(lesion, facts), "case.slice_mm"])]
    if check.size_t is None:
        return steps
    _, subject = given_labels_for(facts, lesion)
    given = [f"{subject}.{k}" for k in ("diagnosis", "histology", "behavior") if f"{subject}.{k}" in make.table]
    rule = _rule_subject(kg, key)
    text = f"The AJCC eighth-edition size rule for {rule} gives {check.size_t} for {fmt(check.greatest_dimension_cm)} cm"
    text += _borderline_clause(kg, key, lesion, slice_mm)
    steps.append(Step(index=1, stage="pathology", organ=lesion.organ, text=text + ".", follows_from=[0],
                      fact_ids=[f"tcheck:{lesion.id}.size_t", f"tcheck:{lesion.id}.greatest_dimension_cm", *given],
                      kg_node_ids=[f"staging:{key}:T"], roi_box=list(lesion.bbox.normalized)))
    return steps


def _t_check_record(make: RecordFactory, lesion: LesionFacts, check: TCheck) -> CoTRecord:
    facts = make.facts
    steps = _size_steps(make, lesion, check)
    verdict = {True: "agrees", False: "disagrees", None: "undecided"}[check.agrees]
    _, subject = given_labels_for(facts, lesion)
    steps.append(Step(index=len(steps), stage="pathology", organ=lesion.organ, text=_t_check_text(check),
                      follows_from=[s.index for s in steps], roi_box=list(lesion.bbox.normalized),
                      fact_ids=[f"tcheck:{lesion.id}.{n}" for n in ("given_t", "size_t", "agrees")
                                if f"tcheck:{lesion.id}.{n}" in make.table] + [f"{subject}.t"],
                      kg_node_ids=[check.rule] if check.size_t else []))
    name = lesion_name(lesion, facts)
    q, tpl = make.question("t_check", lesion.organ, lesion=name, given_t=check.given_t)
    answer, form = make.answer("t_check", lesion.organ, verdict=verdict, given_t=check.given_t,
                               size_t=check.size_t, cm=fmt(check.greatest_dimension_cm))
    return make.make(task="tnm_staging", subtask="t_check", subject=lesion.organ,
                     question=report_context(facts, [lesion], stage=True) + q, template=tpl, answer=answer,
                     answer_template=form,
                     conclusion=answer, organ=lesion.organ, lesion_id=lesion.id,
                     roi_box=list(lesion.bbox.normalized), steps=steps, think=render_think(steps))


def _band_text(make: RecordFactory, lesion: LesionFacts, check: TCheck) -> tuple[str, list[str]]:
    """'more than 2.0 cm and up to 4.0 cm' with the rule's own inclusive / exclusive ends (worded
    without 'above' / 'below', which the claim gate reads as an attenuation difference)."""
    band = band_of(make.kg, make.facts, lesion, make.kg.organ_key(lesion.organ)) or {}
    parts, ids = [], []
    if check.band_low_cm is not None:
        parts.append(f"{'at least' if band.get('min_inclusive') else 'more than'} {fmt(check.band_low_cm)} cm")
        ids.append(f"tcheck:{lesion.id}.band_low_cm")
    if check.band_high_cm is not None:
        parts.append(f"{'under' if band.get('max_exclusive') else 'up to'} {fmt(check.band_high_cm)} cm")
        ids.append(f"tcheck:{lesion.id}.band_high_cm")
    return " and ".join(parts), ids


def _t_band_record(make: RecordFactory, lesion: LesionFacts, check: TCheck) -> CoTRecord:
    facts = make.facts
    steps = _size_steps(make, lesion, check)
    band, band_ids = _band_text(make, lesion, check)
    if check.band_high_cm is None:
        text = f"{check.size_t} is the band of {band}, the highest size band of the rule: no larger size changes it."
        ids = band_ids
    else:
        text = (f"{check.size_t} covers {band}; {fmt(check.greatest_dimension_cm)} cm leaves "
                f"{fmt(check.below_high_cm)} cm to the next cut-off, {fmt(check.band_high_cm)} cm.")
        ids = [*band_ids, f"tcheck:{lesion.id}.below_high_cm"]
    steps.append(Step(index=len(steps), stage="pathology", organ=lesion.organ, text=text,
                      fact_ids=[*ids, f"tcheck:{lesion.id}.size_t", f"tcheck:{lesion.id}.greatest_dimension_cm"],
                      kg_node_ids=[check.rule], follows_from=[s.index for s in steps],
                      roi_box=list(lesion.bbox.normalized)))
    name = lesion_name(lesion, facts)
    q, tpl = make.question("t_band", lesion.organ, lesion=name)
    answer, form = make.answer("t_band", lesion.organ, size_t=check.size_t, band=band,
                               cm=fmt(check.greatest_dimension_cm),
                               high=None if check.band_high_cm is None else fmt(check.band_high_cm),
                               gap=None if check.below_high_cm is None else fmt(check.below_high_cm))
    return make.make(task="tnm_staging", subtask="t_band", subject=lesion.organ,
                     question=report_context(facts, [lesion]) + q, template=tpl, answer=answer,
                     answer_template=form,
                     conclusion=answer, organ=lesion.organ, lesion_id=lesion.id,
                     roi_box=list(lesion.bbox.normalized), steps=steps, think=render_think(steps))
