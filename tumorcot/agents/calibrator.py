"""Deterministic Logic Calibrator: a record reaches a shard only if every claim is licensed.

Checks, per record (reasons are short strings; an empty list means accepted):

* every cited fact id exists in the case's fact table; every cited KG node exists;
* every number in the question, answer, rationale, conclusion and steps equals a value of a fact
  the record cites, within max(2 % of the value, half a unit of the last stated decimal);
* laterality: a step saying "left"/"right" cites a fact of that side;
* organ names mentioned are the record's organ, an organ of a cited fact, or a vessel it cites;
* an impression step's impression nodes are licensed by the KG for the organ, given the feature
  nodes of the finding steps it follows from;
* a pathology step cites only pathology/histology nodes reachable from its impressions, or the
  given labels; T/N/M categories and histology appear only when given, except a T category in
  a TNM record that the calibrator recomputes itself from the KG size rule the record cites, the
  greatest-dimension fact it cites, and a malignant class established earlier in the chain;
* multiple choice: the answer is the option at ``answer_index``, options are distinct;
* turns: the first-pass text passes the same checks, the attend turn's box is the organ's box.
"""

from __future__ import annotations

import re

from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.labels import display_name, organ_family, side_of
from tumorcot.schemas import CaseFacts, CoTRecord, Fact

NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-+]?\d+(?:\.\d+)?(?![A-Za-z0-9_])")
TNM_TOKEN = re.compile(r"\b(?:y|p|c)?([TNM])(?:X|is|[0-4][a-c]?|1mi)\b")
SIDE_WORD = re.compile(r"\b(left|right)\b", re.I)
STEP_NUMBER = re.compile(r"(?m)^\d+\. (?=\[(?:finding|impression|pathology)\])")  # "2. [impression]"
RELATIVE_TOLERANCE = 0.02


def _organ_words() -> dict[str, str]:
    """Spoken organ word -> organ family, for organs the KG or the label table know."""
    words = {"liver": "liver", "pancreas": "pancreas", "pancreatic": "pancreas", "kidney": "kidney",
             "renal": "kidney", "spleen": "spleen", "splenic": "spleen", "stomach": "stomach",
             "gastric": "stomach", "colon": "colon", "colonic": "colon", "esophagus": "esophagus",
             "oesophageal": "esophagus", "lung": "lung", "pulmonary": "lung", "gallbladder": "gallbladder",
             "hepatic": "liver"}
    return words


ORGAN_WORDS = _organ_words()
ORGAN_WORD = re.compile(r"\b(" + "|".join(ORGAN_WORDS) + r")\b", re.I)


def _number_ok(text_value: str, allowed: list[float]) -> bool:
    value = float(text_value)
    decimals = len(text_value.split(".")[1]) if "." in text_value else 0
    half_unit = 0.5 * 10 ** (-decimals) + 1e-9
    return any(abs(value - v) <= max(RELATIVE_TOLERANCE * abs(v), half_unit) for v in allowed)


def check_record(record: CoTRecord, facts: CaseFacts, kg: KnowledgeGraph,
                 table: dict[str, Fact] | None = None) -> list[str]:
    table = table if table is not None else facts.fact_table()
    reasons: list[str] = []
    cited = {fid for step in record.steps for fid in step.fact_ids}
    for fid in sorted(cited - table.keys()):
        reasons.append(f"cites unknown fact {fid}")
    for step in record.steps:
        for node in step.kg_node_ids:
            if node not in kg:
                reasons.append(f"step {step.index} cites unknown KG node {node}")
    if reasons:
        return reasons

    numbers = [float(table[f].value) for f in cited if isinstance(table[f].value, (int, float))]
    texts = [("question", record.question), ("answer", record.answer), ("think", record.think),
             ("conclusion", record.conclusion)] + [(f"step {s.index}", s.text) for s in record.steps]
    texts += [(f"turn {i} ({t.kind})", t.content) for i, t in enumerate(record.turns) if t.kind == "first_pass"]
    reasons += _check_form(record) + _check_turns(record, facts)
    for where, text in texts:
        for match in NUMBER.finditer(STEP_NUMBER.sub("", text)):
            if not _number_ok(match.group(), numbers):
                reasons.append(f"{where}: number {match.group()} matches no cited fact")

    reasons += _check_names(record, facts, table, cited, texts)
    reasons += _check_reasoning(record, facts, kg)
    return reasons


def _subjects_of(cited: set[str], table: dict[str, Fact]) -> set[str]:
    return {table[f].subject for f in cited}


def _check_names(record, facts, table, cited, texts) -> list[str]:
    reasons = []
    subjects = _subjects_of(cited, table)
    organs = {record.organ} if record.organ else set()
    sides = set()
    vessels = set()
    for subject in subjects:
        kind, _, name = subject.partition(":")
        if kind == "organ":
            organs.add(name)
        elif kind == "lesion":
            lesion = next(l for l in facts.lesions if l.id == name)
            organs.add(lesion.organ)
            organs.update(lesion.other_organs)
            if lesion.side:
                sides.add(lesion.side)
            vessels.update(v for v, d in lesion.vessel_contact_deg.items() if d > 0)
    sides.update(s for s in (side_of(o) for o in organs) if s)
    for fid in cited:  # a cited measured value may itself name a side ("right lobe", "left lower lobe")
        value = table[fid].value
        if isinstance(value, str):
            sides.update(m.group(1).lower() for m in SIDE_WORD.finditer(value))
    families = {organ_family(o) for o in organs | vessels}
    if record.organ in ("outside_organs", "unknown_organ"):
        families.add("soft_tissue")
    for where, text in texts:
        if where in ("question",):
            continue
        for vessel in vessels:  # "portal vein and splenic vein" names a vessel, not the spleen
            text = text.replace(display_name(vessel), "vessel")
        for m in SIDE_WORD.finditer(text):
            if m.group(1).lower() not in sides:
                reasons.append(f"{where}: says '{m.group(1)}' but cites no {m.group(1).lower()}-sided fact")
        for m in ORGAN_WORD.finditer(text):
            family = ORGAN_WORDS[m.group(1).lower()]
            if family not in families:
                reasons.append(f"{where}: names the {m.group(1)} but cites no fact of it")
    return reasons


def _check_reasoning(record: CoTRecord, facts: CaseFacts, kg: KnowledgeGraph) -> list[str]:
    reasons = []
    given = facts.pathology
    by_index = {s.index: s for s in record.steps}
    for step in record.steps:
        earlier = [by_index[i] for i in step.follows_from if i in by_index and i < step.index]
        if len(earlier) != len(step.follows_from):
            reasons.append(f"step {step.index} follows a missing or later step")
        if step.stage == "impression":
            if not any(s.stage == "finding" for s in earlier):
                reasons.append(f"step {step.index}: impression follows no finding")
            organ_key = kg.organ_key(step.organ or record.organ or "")
            features = {n for s in earlier for n in s.kg_node_ids if n.startswith("feature:")}
            for node in step.kg_node_ids:
                if node.startswith("impression:") and (organ_key is None or not kg.is_licensed(organ_key, node, features)):
                    reasons.append(f"step {step.index}: {node} is not licensed for {step.organ} by {sorted(features)}")
        if step.stage == "pathology":
            impressions = [n for s in earlier for n in s.kg_node_ids if n.startswith("impression:")]
            reachable = {"pathology:none", "pathology:indeterminate"} if not impressions else set()
            for n in impressions:
                reachable |= kg.reachable_pathologies(n)
            uses_labels = any(f.startswith(("pathology.", "pathology:")) for f in step.fact_ids)
            staging_node = f"staging:{kg.organ_key(step.organ or record.organ or '')}:T"
            for node in step.kg_node_ids:
                if record.task == "tnm_staging" and node == staging_node:
                    continue  # the T it licenses is recomputed below
                if node not in reachable and not uses_labels:
                    reasons.append(f"step {step.index}: {node} is not reachable from its impressions")
            if not uses_labels:
                for hist, data in kg.graph.nodes(data=True):
                    if data["type"] == "histology" and data["label"].lower() in step.text.lower():
                        reasons.append(f"step {step.index}: states histology '{data['label']}' without a pathology label")
    all_text = " ".join([record.answer, record.think, record.conclusion] + [s.text for s in record.steps]
                        + [t.content for t in record.turns if t.role == "assistant"])
    size_t = size_based_t(record, facts, kg) if record.task == "tnm_staging" else set()
    table = facts.fact_table()
    # T categories of a cited given-T check (CaseFacts.t_checks: the size rule's T for the lesion)
    size_t |= {str(table[f].value) for s in record.steps for f in s.fact_ids
               if f.startswith("tcheck:") and f.endswith(".size_t") and f in table}
    labelled = [given, *facts.lesion_pathology.values()] if given else list(facts.lesion_pathology.values())
    for m in TNM_TOKEN.finditer(all_text):
        letter, token = m.group(1), m.group(0)
        labels = [getattr(g, letter.lower(), None) for g in labelled]
        if any(label is not None and label.lower() == token.lower() for label in labels):
            continue
        if letter == "T" and token in size_t:
            continue
        reasons.append(f"states {letter} category '{token}' that is not given")
    return reasons


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
        histologies = [n for s in earlier if any(f.startswith(("pathology.", "pathology:")) for f in s.fact_ids)
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
