"""Deterministic Logic Calibrator: a record reaches a shard only if every claim is licensed.

Checks, per record (reasons read ``<where>: [<code>] <detail>``; an empty list means accepted):

* every cited fact id exists in the case's fact table; every cited KG node exists;
* cited feature and sub-region nodes agree with the facts of the lesions the step cites;
  pathology labels are cited only by steps about the organ they describe;
* an impression step's impression nodes are licensed by the KG for the organ, given the feature
  nodes of the finding steps it follows from;
* a pathology step cites only pathology/histology nodes reachable from its impressions, or the
  nodes the given labels name (their histology, their behaviour);
* every clinical term of every text is bound to a cited claim and agrees with it
  (``claims.check_texts``, the closed-world lexicon); a T category in a TNM record may be one the
  calibrator recomputes itself from the KG size rule the record cites, the greatest-dimension fact
  it cites, and a malignant class established earlier in the chain (``size_based_t``);
* multiple choice: the answer is the option at ``answer_index``, options are distinct;
* turns: the attend turn's box is the organ's measured box; every turn's text passes the scan.
"""

from __future__ import annotations

from tumorcot.agents.claims import check_texts
from tumorcot.agents.lexicon import LESION_ID, lexicon_for
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.knowledge_graph.features import features_for, lesion_organ_key
from tumorcot.knowledge_graph.resectability import status_reasons
from tumorcot.schemas import CaseFacts, CoTRecord, Fact

LABEL_PREFIXES = ("pathology.", "pathology:")   # case-level and per-lesion label facts


def check_record(record: CoTRecord, facts: CaseFacts, kg: KnowledgeGraph,
                 table: dict[str, Fact] | None = None) -> list[str]:
    table = table if table is not None else facts.fact_table()
    reasons: list[str] = []
    cited = {fid for step in record.steps for fid in step.fact_ids}
    for fid in sorted(cited - table.keys()):
        reasons.append(f"[unknown-id] cites unknown fact {fid}")
    for step in record.steps:
        for node in step.kg_node_ids:
            if node not in kg:
                reasons.append(f"step {step.index}: [unknown-id] cites unknown KG node {node}")
    if reasons:
        return reasons
    reasons += _check_form(record) + _check_turns(record, facts)
    reasons += _check_nodes_agree(record, facts, kg, table)
    reasons += _check_reasoning(record, facts, kg) + status_reasons(record, facts, kg)
    size_t = size_based_t(record, facts, kg) if record.task == "tnm_staging" else set()
    # the size rule's T of a cited given-T check (CaseFacts.t_checks)
    size_t |= {str(table[f].value) for f in cited if f.startswith("tcheck:") and f.endswith(".size_t")}
    reasons += check_texts(record, facts, kg, table, size_t)
    return reasons


def _check_nodes_agree(record: CoTRecord, facts: CaseFacts, kg: KnowledgeGraph, table: dict[str, Fact]) -> list[str]:
    """Cited feature and sub-region nodes agree with the facts of the lesions the step cites;
    pathology labels are cited only for the organ they describe (scope)."""
    from tumorcot.agents.chains import pathology_organ

    reasons = []
    labels_organ = pathology_organ(facts)
    lexicon = lexicon_for(kg)
    for step in record.steps:
        lesions = {table[f].subject.split(":", 1)[1] for f in step.fact_ids if table[f].subject.startswith("lesion:")}
        lesions |= set(LESION_ID.findall(step.text)) & {l.id for l in facts.lesions}  # named, maybe not cited
        organ = step.organ or record.organ
        if any(f.startswith("pathology.") for f in step.fact_ids) and organ != labels_organ:
            reasons.append(f"step {step.index}: [label-scope] cites pathology labels of the {labels_organ} "
                           f"for the {organ}")
        for f in step.fact_ids:  # lesion-level labels ("pathology:L2.diagnosis") belong to that lesion's organ
            if f.startswith("pathology:"):
                owner = next((l for l in facts.lesions if l.id == table[f].subject.split(":", 1)[1]), None)
                if owner is None or owner.organ != organ:
                    reasons.append(f"step {step.index}: [label-scope] cites {f} for the {organ}")
        true, subs = set(), set()
        for lesion in facts.lesions:
            if lesion.id in lesions:
                true |= set(features_for(facts, lesion))
                if lesion.sub_location:
                    subs |= {k for h in lexicon.scan(lesion.sub_location) if h.term for k in h.term.keys}
        if not lesions:
            continue
        for node in step.kg_node_ids:
            if node.startswith("feature:") and node not in true:
                reasons.append(f"step {step.index}: [feature] cites {node}, which the facts of "
                               f"{', '.join(sorted(lesions))} do not establish")
            if node.startswith("subregion:"):
                term = lexicon.term(kg.label(node))
                if term is None or not set(term.keys) & subs:
                    reasons.append(f"step {step.index}: [subregion] cites {node}, which the sub-location "
                                   f"of {', '.join(sorted(lesions))} does not name")
    return reasons


def _check_reasoning(record: CoTRecord, facts: CaseFacts, kg: KnowledgeGraph) -> list[str]:
    reasons = []
    by_index = {s.index: s for s in record.steps}
    for step in record.steps:
        earlier = [by_index[i] for i in step.follows_from if i in by_index and i < step.index]
        if len(earlier) != len(step.follows_from):
            reasons.append(f"step {step.index}: [licensing] follows a missing or later step")
        if step.stage == "impression":
            if not any(s.stage == "finding" for s in earlier):
                reasons.append(f"step {step.index}: [licensing] impression follows no finding")
            features = {n for s in earlier for n in s.kg_node_ids if n.startswith("feature:")}
            # a lymph-node lesion (by kind) is reasoned about in the KG's lymph_node organ
            nodes = {f.split(".")[0].split(":", 1)[1] for s in earlier for f in s.fact_ids if f.startswith("lesion:")}
            keys = {kg.organ_key(step.organ or record.organ or "")}
            keys |= {lesion_organ_key(kg, l) for l in facts.lesions if l.id in nodes}
            for node in step.kg_node_ids:
                if node.startswith("impression:") and not any(
                        k is not None and node.split(":")[1] == k and kg.is_licensed(k, node, features) for k in keys):
                    reasons.append(f"step {step.index}: [licensing] {node} is not licensed for {step.organ} by {sorted(features)}")
        if step.stage == "pathology":
            impressions = [n for s in earlier for n in s.kg_node_ids if n.startswith("impression:")]
            reachable = {"pathology:none", "pathology:indeterminate"} if not impressions else set()
            for n in impressions:
                reachable |= kg.reachable_pathologies(n)
            labelled = any(f.startswith(LABEL_PREFIXES) for f in step.fact_ids)
            if labelled:
                reachable |= _label_nodes(facts, kg)
            staging_node = f"staging:{kg.organ_key(step.organ or record.organ or '')}:T"
            for node in step.kg_node_ids:
                if node.startswith("histology:") and not labelled:
                    reasons.append(f"step {step.index}: [histology] cites {node} without a pathology label")
                if record.task == "tnm_staging" and node == staging_node:
                    continue  # the T it licenses is recomputed below
                if node not in reachable:
                    reasons.append(f"step {step.index}: [licensing] {node} is not reachable from its impressions")
    return reasons


def _label_nodes(facts: CaseFacts, kg: KnowledgeGraph) -> set[str]:
    """KG nodes the given pathology labels (case and per lesion) name: behaviour and histology."""
    out = set()
    for p in [facts.pathology, *facts.lesion_pathology.values()]:
        if p is None:
            continue
        if p.behavior:
            out.add(f"pathology:{p.behavior}")
        for text in (p.diagnosis, p.histology):
            node = kg.match_histology(text) if text else None
            if node:
                out.add(node)
    return out


def size_based_t(record: CoTRecord, facts: CaseFacts, kg: KnowledgeGraph) -> set[str]:
    """T categories the calibrator itself derives for a TNM record: for each step citing a KG
    size rule and a lesion's greatest dimension, the rule's T for that size, provided an earlier
    step of the chain classes the lesion malignant (labels or a reachable KG class)."""
    table = facts.fact_table()
    out = set()
    for step in record.steps:
        rules = [n for n in step.kg_node_ids if n.startswith("staging:")]
        sizes = [f for f in step.fact_ids if f.endswith(".max_diameter_3d_cm") and f in table]
        earlier = [s for s in record.steps if s.index < step.index]
        malignant = any("pathology:malignant" in s.kg_node_ids for s in earlier)
        impressions = [n for s in earlier if s.stage == "impression" for n in s.kg_node_ids[:1]
                       if n.startswith("impression:")]
        histologies = [n for s in earlier if any(f.startswith(LABEL_PREFIXES) for f in s.fact_ids)
                       for n in s.kg_node_ids if n.startswith("histology:")]
        for rule in rules:
            organ_key = rule.split(":")[1]
            if not malignant or not kg.size_rule_applies(organ_key, impressions, histologies):
                continue
            for fid in sizes:
                lesion = next(l for l in facts.lesions if l.id == table[fid].subject.split(":", 1)[1])
                others = facts.lesions_in(lesion.organ)
                if kg.organ_key(lesion.organ) != organ_key or \
                        lesion.max_diameter_3d_mm < max(l.max_diameter_3d_mm for l in others):
                    continue  # the rule stages by the organ's largest lesion
                t = kg.t_category_by_size(organ_key, float(table[fid].value),
                                          solitary=len(facts.lesions_in(lesion.organ)) == 1,
                                          vascular_contact=any(d > 0 for d in lesion.vessel_contact_deg.values()))
                if t:
                    out.add(t)
    return out


def _check_form(record: CoTRecord) -> list[str]:
    if record.form == "open":
        return ["open question carries options"] if record.options or record.answer_index is not None else []
    if len(record.options) < 2 or len(set(record.options)) != len(record.options):
        return ["multiple choice needs two or more distinct options"]
    if record.answer_index is None or not 0 <= record.answer_index < len(record.options):
        return ["multiple choice answer_index is missing or out of range"]
    if record.options[record.answer_index] != record.answer:
        return [f"multiple choice answer {record.answer!r} is not option {record.answer_index}"]
    return []


def _check_turns(record: CoTRecord, facts: CaseFacts) -> list[str]:
    reasons = []
    for i, turn in enumerate(record.turns):
        if turn.kind != "attend":
            continue
        organ = facts.organ(turn.focus_organ) if turn.focus_organ else None
        expected = list(organ.bbox.normalized) if organ is not None else record.roi_box
        if turn.focus_organ != record.organ:
            reasons.append(f"turn {i}: attends to {turn.focus_organ}, not the record's organ {record.organ}")
        elif turn.roi_box is None or expected is None or any(
                abs(a - b) > 1e-6 for a, b in zip(turn.roi_box, expected)):
            reasons.append(f"turn {i}: attend box is not the measured box of {turn.focus_organ}")
    return reasons


def calibrate(records: list[CoTRecord], facts: CaseFacts, kg: KnowledgeGraph):
    """Split records into (accepted, [(rejected record, reasons)])."""
    table = facts.fact_table()
    accepted, rejected = [], []
    for record in records:
        reasons = check_record(record, facts, kg, table)
        (rejected.append((record, reasons)) if reasons else accepted.append(record))
    return accepted, rejected
