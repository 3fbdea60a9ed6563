"""Resectability of a pancreatic lesion from its vessel contact (task ``spatial``, subtask
``resectability``), by the KG's NCCN rule (``knowledge_graph/resectability.py``).

A record only where the rule can be evaluated (every vessel it names segmented and measured,
the lesion's part of the pancreas known, the lesion not cut by the field of view) and the
lesion's kind licenses the criteria, which are written for pancreatic adenocarcinoma:

* a given pathology label whose histology the rule applies to: the status is stated as is, with
  the report as question context;
* no label, and the knowledge graph's decisive lead is pancreatic ductal adenocarcinoma: the
  question and the status are conditional ("if it is pancreatic ductal adenocarcinoma");
* otherwise (a label naming something else, an indeterminate or other lead): no record.

The chain: the kind -> every needed vessel segmented and the lesion's part of the pancreas ->
the untouched vessels (0 degrees: resectable by their rows) -> each touched vessel's contact
against the 180-degree threshold and the categories its row allows -> the most advanced
category, or "indeterminate" with the possible statuses where an unmeasured criterion (vein
contour, reconstructability, unsegmented branches) decides.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt, lesion_phrase, name_fact_ids
from tumorcot.agents.chains import given_labels_for, report_context
from tumorcot.agents.families.chain import Link, chain_record
from tumorcot.agents.families.staging import given_histologies
from tumorcot.knowledge_graph.features import features_for, lesion_organ_key
from tumorcot.knowledge_graph.resectability import INDETERMINATE, RULE, Resectability, evaluate
from tumorcot.schemas import CoTRecord
from tumorcot.vocabulary import display_name

TASK, SUBTASK = "spatial", "resectability"
THRESHOLD_ID = "case.threshold_vessel_encasement_deg"
PLACE = {"head": "the table's rows for the head of the pancreas apply",
         "body_tail": "the table's rows for the body and tail of the pancreas apply"}


def resectability_records(make: RecordFactory) -> list[CoTRecord]:
    out = []
    for lesion in make.facts.lesions:
        result = evaluate(make.kg, make.facts, lesion)
        licence = _licence(make, lesion) if result is not None else None
        if licence is not None:
            out.append(_record(make, lesion, result, *licence))
    return out


def _licence(make: RecordFactory, lesion) -> tuple[bool, Link] | None:
    """(conditional?, the step that states the kind), or None when the kind does not license it."""
    kg, facts = make.kg, make.facts
    rule, name = kg.node(RULE), f"the {' '.join(lesion_phrase(lesion, facts))}"
    given, subject = given_labels_for(facts, lesion)
    hists = given_histologies(kg, given)
    if given is not None and (given.diagnosis or given.histology):
        if not kg.applies_by_histology(rule, hists):
            return None   # labelled as another kind: the adenocarcinoma criteria do not apply
        what = given.diagnosis or given.histology
        ids = [f"{subject}.{k}" for k in ("diagnosis", "histology") if getattr(given, k)]
        return False, Link(f"The pathology report gives {what} for {name}, the kind the NCCN resectability "
                           f"criteria are written for.", [*name_fact_ids(lesion, facts), *ids], hists)
    key = lesion_organ_key(kg, lesion)
    features = features_for(facts, lesion)
    assessment = kg.assess(key, set(features)) if key else None
    if assessment is None or not assessment.decisive or not kg.applies_by_impression(rule, [assessment.leading.node_id]):
        return None
    lead = assessment.leading
    return True, Link(f"No pathology report is given; by the knowledge graph {name} is most consistent with "
                      f"{lead.label}, which needs pathological confirmation, so the NCCN resectability criteria "
                      f"apply only if it is confirmed.", name_fact_ids(lesion, facts), [lead.node_id])


def _record(make: RecordFactory, lesion, result: Resectability, conditional: bool, kind: Link) -> CoTRecord:
    kg, facts, lid = make.kg, make.facts, lesion.id
    label = lambda node: kg.label(node)   # noqa: E731
    contact_id = lambda v: f"lesion:{lid}.contact_{v}_deg"   # noqa: E731
    vessels = [c.vessel for c in result.calls]
    links = [kind, Link(f"Every vessel the criteria name is segmented ({_listing(vessels)}), and {PLACE[result.location]}.",
                        [*(f"organ:{v}.mean_hu" for v in vessels), f"lesion:{lid}.sub_location"], [RULE])]
    clear = [c for c in result.calls if c.band == "none"]
    if clear:
        links.append(Link(f"No contact with {_listing([c.vessel for c in clear])} (0 degrees each): by their rows, "
                          f"{label('resectability:resectable')}.", [contact_id(c.vessel) for c in clear],
                          ["resectability:resectable"]))
    threshold = fmt(make.table[THRESHOLD_ID].value)
    for call in (c for c in result.calls if c.band != "none"):
        side = "at most" if call.band == "le" else "more than"
        allowed = " or ".join(label(c) for c in call.categories)
        text = (f"The {display_name(call.vessel)}: contact over {fmt(call.degrees)} degrees, {side} the {threshold} "
                f"degrees that separate abutment from encasement, so its row gives {allowed}")
        links.append(Link(text + (f": {call.open}." if call.open else "."), [contact_id(call.vessel), THRESHOLD_ID],
                          list(call.categories)))
    cond = ", if it is pancreatic ductal adenocarcinoma" if conditional else ""
    touched = [c for c in result.calls if c.band != "none"]
    said = ("; ".join(f"{display_name(c.vessel)} contact {fmt(c.degrees)} degrees" for c in touched)
            or "no contact with any vessel the criteria name")
    options = " or ".join(label(s) for s in result.statuses)
    why = "; ".join(dict.fromkeys(c.open for c in touched if c.open and len(set(c.categories) & set(result.statuses)) > 1))
    ids = [contact_id(c.vessel) for c in touched]
    if result.decided:
        status = label(result.statuses[0])
        final = (f"The most advanced category over the vessels is {status}: by the NCCN vascular criteria the "
                 f"lesion is {status}{cond}. Disease beyond these vessels is not assessed.")
    else:
        status = None
        final = (f"The vessels leave {options} open and what decides between them is not measured, so the status "
                 f"is indeterminate{cond} (differential: {', '.join(label(s) for s in result.statuses)}).")
    links.append(Link(final, ids, list(result.statuses) + ([] if result.decided else [INDETERMINATE])))
    noun, where = lesion_phrase(lesion, facts)
    question = {"lesion": noun, "where": where, "assume": cond}
    record = chain_record(make, task=TASK, subtask=SUBTASK, subject=lid, organ=lesion.organ, links=links,
                          question=question, lesion_id=lid, roi=lesion.bbox.normalized,
                          answer={"status": status, "cond": cond, "said": said, "options": options, "why": why})
    context = "" if conditional else report_context(facts, [lesion])
    return record.model_copy(update={"question": context + record.question}) if context else record


def _listing(vessels: list[str]) -> str:
    names = [f"the {display_name(v)}" for v in vessels]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
