"""What was claimed: every clinical term in a record's text is bound to a claim the record cites,
and the claim agrees with the facts.

A record's claims are data: each step cites fact ids (a quantity with its unit) and KG node ids.
``check_texts`` scans every text of the record with the closed-world lexicon (question, options,
answer, think, conclusion, steps, turns) and binds each term it finds:

* a step's text to the step's own citations and those of the steps it follows from; the other
  texts to all citations of the record;
* a number to a cited numeric fact of the same unit (mm and cm convert), of the quantity its
  words name ("slice 12" -> axial_slice, "volume" -> volume_ml, "2 lesions" -> lesion_count),
  of the lesion the sentence is about, within half a unit of its last decimal (or 1 %);
  "45.4 HU below the organ mean" is -45.4;
* an organ, side or lesion id to a cited subject (or a vessel it touches); a sub-region to a
  cited sub-location fact that names it; a feature word (or "not <feature>") to a cited fact or
  node of its attribute whose measured value agrees; an impression, histology or pathology class
  to a cited node (or a cited, in-scope label text);
* TNM components (any notation) to the given label of the same letter, cited by a record of the
  labels' organ, or a T the calibrator derives from the KG size rule; stage groups never;
* a term that looks clinical but is outside the lexicon is rejected.

Questions and multiple-choice options may name alternatives ("hypodense, isodense or
hyperdense?"): two or more terms of one attribute in a question, and option terms of the
answer's attribute, are not claims. Reasons read ``<where>: [<code>] <detail>``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from tumorcot.conversation import answer_text, question_text, without_answer_line
from tumorcot.agents.lexicon import ORGAN_FINDINGS, Hit, lexicon_for
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.knowledge_graph.features import features_for
from tumorcot.vocabulary import NO_HOST, SOFT_TISSUE, organ_family, side_of
from tumorcot.schemas import CaseFacts, CoTRecord, Fact

STEP_NUMBER = re.compile(r"(?<![\w.])\d+\. (?=\[(?:finding|impression|pathology)\])")  # "2. [impression]"
SENTENCE = re.compile(r"[.;:!?\n](?:\s|$)")
RELATIVE_TOLERANCE = 0.01
CONVERT = {("mm", "cm"): 10.0, ("cm", "mm"): 0.1}  # text unit, fact unit -> fact value factor


@dataclass
class Scope:
    """The claims a text may make: cited facts and nodes, and what they name."""

    facts: dict[str, Fact] = field(default_factory=dict)
    nodes: set[str] = field(default_factory=set)
    organ: str | None = None
    stage: str | None = None
    extra_numbers: list[float] = field(default_factory=list)  # an attend turn's box
    # facts a sentence about a lesion may cite, per lesion (filled by Binder._candidates once the
    # scope is built: a text has many numbers, each checked against the same candidates)
    candidates: dict[str | None, list[Fact]] = field(default_factory=dict, repr=False, compare=False)

    def lesions(self) -> set[str]:
        return {f.subject.split(":", 1)[1] for f in self.facts.values() if f.subject.startswith("lesion:")}


class Binder:
    """Binds the hits of one text to one scope; collects reasons."""

    def __init__(self, record: CoTRecord, facts: CaseFacts, kg: KnowledgeGraph, table: dict[str, Fact],
                 size_t: set[str]):
        self.record, self.facts, self.kg, self.table, self.size_t = record, facts, kg, table, size_t
        self.lexicon = lexicon_for(kg)
        self.by_lesion = {l.id: l for l in facts.lesions}
        from tumorcot.agents.chains import pathology_organ
        self.labels_organ = pathology_organ(facts)

    # -- scope helpers --------------------------------------------------------------------------
    def organs(self, scope: Scope) -> set[str]:
        names = {scope.organ} if scope.organ else set()
        for f in scope.facts.values():
            kind, _, name = f.subject.partition(":")
            if kind == "organ":
                names.add(name)
            elif kind == "lesion" and name in self.by_lesion:
                lesion = self.by_lesion[name]
                names |= {lesion.organ, *lesion.other_organs}
                names |= {v for v, d in lesion.vessel_contact_deg.items() if d > 0 and f"contact_{v}_deg" == f.name}
        out = set(names)
        for n in names:
            out |= {organ_family(n), re.sub(r"_(left|right)$", "", n), self.kg.organ_key(n) or n}
            if n in NO_HOST:
                out |= {*NO_HOST, SOFT_TISSUE}
        return out

    def sides(self, scope: Scope) -> set[str]:
        out = {s for s in (side_of(o) for o in self.organs(scope)) if s}
        for f in scope.facts.values():
            if f.name == "side" and isinstance(f.value, str):
                out.add(f.value)
            if isinstance(f.value, str):
                out |= {w for w in ("left", "right") if w in f.value.lower().split()}
        return out

    def label_organ(self, fact: Fact) -> str | None:
        """The organ a label fact describes: its lesion's ('pathology:L1') or the case labels'."""
        _, _, lesion = fact.subject.partition(":")
        return self.by_lesion[lesion].organ if lesion in self.by_lesion else self.labels_organ

    def labels(self, scope: Scope, lesion: str | None = None) -> list[Fact]:
        """Cited label facts that describe the scope's organ, and the sentence's lesion when it
        names one: labels count for their organ or lesion only."""
        organ = scope.organ or self.record.organ
        return [f for f in scope.facts.values() if f.subject.split(":")[0] == "pathology" and organ is not None
                and organ_family(self.label_organ(f) or "") == organ_family(organ)
                and (lesion is None or f.subject in ("pathology", f"pathology:{lesion}"))]

    def with_given_labels(self, scope: Scope) -> Scope:
        """A question may give the labels of its organ as context ("Pathology report: ...")."""
        organ = scope.organ or self.record.organ
        given = {f.id: f for f in self.table.values() if f.subject.split(":")[0] == "pathology" and organ
                 and organ_family(self.label_organ(f) or "") == organ_family(organ)}
        return Scope({**scope.facts, **given}, scope.nodes, scope.organ, scope.stage, scope.extra_numbers)

    # -- binding --------------------------------------------------------------------------------
    def check(self, where: str, text: str, scope: Scope, *, alternatives: bool = False,
              like: str | None = None) -> list[str]:
        """Reasons for the hits of ``text``; ``alternatives``: a question's enumerations are no
        claims; ``like``: options, where terms of the same kind as those of the answer ``like``
        are alternatives."""
        text = STEP_NUMBER.sub("   ", text)
        hits = self.lexicon.scan(text)
        masked = self._label_spans(text, scope)   # (start, end, lesion the label is given for)
        alt = self._alternatives(hits, text) if alternatives else set()
        if like is not None:
            kinds = {_kind(h) for h in self.lexicon.scan(like)}
            alt |= {i for i, h in enumerate(hits) if _kind(h) in kinds}
        reasons = []
        for i, hit in enumerate(hits):
            lesion = self._context(text, hits, i)
            if i in alt or any(a <= hit.span[0] and hit.span[1] <= b and (lesion is None or own in (None, lesion))
                               for a, b, own in masked):
                continue
            why = self.bind(hit, scope, lesion)
            if why:
                reasons.append(f"{where}: [{why[0]}] {why[1]}")
        return reasons

    def _label_spans(self, text: str, scope: Scope) -> list[tuple[int, int, str | None]]:
        """Spans of text equal to a cited, in-scope label text (a given diagnosis or histology)."""
        spans = []
        for f in self.labels(scope):
            if f.name in ("diagnosis", "histology") and isinstance(f.value, str):
                own = f.subject.partition(":")[2] or None
                spans += [(*m.span(), own) for m in re.finditer(re.escape(f.value), text, re.I)]
        return spans

    @staticmethod
    def _alternatives(hits: list[Hit], text: str) -> set[int]:
        """Indices of terms a question offers as alternatives: 2+ of one group in one sentence; an
        organ finding a question asks about ("Is there splenomegaly?")."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, h in enumerate(hits):
            if h.term is not None:
                g = h.term.group if h.term.kind == "feature" else h.term.kind
                groups.setdefault((h.term.kind, g), []).append(i)
        asked = {i for i, h in enumerate(hits) if h.term is not None and h.term.kind == "organ_finding"}
        return asked | {i for idx in groups.values() if len({hits[j].term.keys for j in idx}) > 1 for i in idx}

    def _context(self, text: str, hits: list[Hit], i: int) -> str | None:
        """The lesion the sentence around hit ``i`` is about (the last lesion id before it)."""
        start = max((m.end() for m in SENTENCE.finditer(text, 0, hits[i].span[0])), default=0)
        ids = [h.text for h in hits[:i] if h.kind == "lesion" and h.span[0] >= start and h.text in self.by_lesion]
        return ids[-1] if ids else None

    def bind(self, hit: Hit, scope: Scope, lesion: str | None) -> tuple[str, str] | None:
        if hit.kind == "number":
            return self._number(hit, scope, lesion)
        if hit.kind == "tnm":
            return self._tnm(hit, scope, lesion)
        if hit.kind == "slot":
            return "slot", f"reference {hit.text} names no fact or KG node"
        if hit.kind == "stage_group":
            return "stage-group", f"states stage group '{hit.text}', which no label gives"
        if hit.kind == "lesion":
            ok = hit.text in self.by_lesion and (hit.text in scope.lesions() or scope.organ is None
                                                  and not scope.facts)
            return None if ok else ("lesion-id", f"names {hit.text} but cites no fact of it")
        if hit.kind == "side":
            return None if hit.text in self.sides(scope) else ("side", f"says '{hit.text}' but cites no {hit.text}-sided fact")
        if hit.kind == "unknown":
            return "outside-lexicon", f"clinical term '{hit.text}' is outside the lexicon"
        term = hit.term
        if term.kind == "organ":
            return None if set(term.keys) & self.organs(scope) else ("organ", f"names the {hit.text} but cites no fact of it")
        if term.kind == "subregion":
            return self._subregion(hit, scope, lesion)
        if term.kind == "feature":
            return self._feature(hit, scope, lesion)
        if term.kind == "organ_finding":
            return self._organ_finding(hit, scope)
        if term.kind == "phase":
            ok = any(f.name == "contrast_phase" and f.value in term.keys for f in scope.facts.values())
            return None if ok else ("phase", f"says '{hit.text}' but cites no contrast-phase fact that says so")
        if term.kind == "kind":
            kinds = {self.by_lesion[l].kind for l in ([lesion] if lesion else scope.lesions()) if l in self.by_lesion}
            ok = any(k.split(":")[1] == kind for k in term.keys for kind in kinds)
            return None if ok else ("kind", f"calls a lesion '{hit.text}', a kind no cited lesion has")
        return self._node(hit, scope)

    def _candidates(self, scope: Scope, lesion: str | None) -> list[Fact]:
        if lesion not in scope.candidates:
            facts = list(scope.facts.values())
            scope.candidates[lesion] = facts if lesion is None else [
                f for f in facts if f.subject in (f"lesion:{lesion}", "pathology", f"pathology:{lesion}")
                or f.subject.startswith(("organ:", "case"))]
        return scope.candidates[lesion]

    def _number(self, hit: Hit, scope: Scope, lesion: str | None) -> tuple[str, str] | None:
        def close(value: float, target: float) -> bool:
            half = 0.5 * 10 ** (-hit.decimals) + 1e-9
            return abs(value - target) <= max(half, RELATIVE_TOLERANCE * abs(target))

        if hit.unit is None and any(close(hit.value, v) for v in scope.extra_numbers):
            return None
        same_unit, wrong_quantity = [], []
        for f in self._candidates(scope, lesion):
            if not isinstance(f.value, (int, float)) or f.name.startswith("box_") and hit.unit is not None:
                continue
            if hit.unit != f.unit and (hit.unit, f.unit) not in CONVERT:
                continue
            target = float(f.value) * CONVERT.get((hit.unit, f.unit), 1.0)
            if not hit.signed and f.name == "hu_difference":
                target = abs(target)
            if not close(hit.value, target):
                continue
            if hit.hint and not f.name.startswith(hit.hint):
                wrong_quantity.append(f.id)
                continue
            same_unit.append(f.id)
        if same_unit:
            return None
        unit = hit.unit or "no unit"
        if wrong_quantity:
            return "number-quantity", f"{hit.text!r} is cited as {wrong_quantity[0]}, not as the {hit.hint} the text names"
        return "number", f"number {hit.text!r} ({unit}) matches no cited fact of that unit" + (
            f" for {lesion}" if lesion else "")

    def _tnm(self, hit: Hit, scope: Scope, lesion: str | None) -> tuple[str, str] | None:
        bad = []
        labels = self.labels(scope, lesion)
        for part in hit.parts:
            m = re.fullmatch(r"(yp|yc|[ycpra])?([TNM])(.+)", part)
            prefix, letter, cat = m.group(1) or "", m.group(2), m.group(3)
            given = [re.fullmatch(r"(yp|yc|[ycpra])?([TNM])(.+)", str(f.value)) for f in labels if f.name == letter.lower()]
            if any(lm and lm.group(3).lower() == cat.lower() and (not prefix or prefix.lower() == (lm.group(1) or "").lower())
                   for lm in given):
                continue
            if letter == "T" and not prefix and part in self.size_t and any(n.startswith("staging:") for n in scope.nodes):
                continue
            bad.append(f"{letter} category '{part}'")
        if not bad:
            return None
        return "tnm", f"states {' and '.join(bad)} in '{hit.text}', not given for the {scope.organ or self.record.organ}"

    def _subregion(self, hit: Hit, scope: Scope, lesion: str | None) -> tuple[str, str] | None:
        key = hit.term.keys
        for f in self._candidates(scope, lesion):
            if f.name == "sub_location" and isinstance(f.value, str):
                named = {k for h in self.lexicon.scan(f.value) if h.term is not None for k in h.term.keys}
                if set(key) & named:
                    return None
        return "subregion", f"names sub-region '{hit.text}' but cites no sub-location fact that says so" + (
            f" for {lesion}" if lesion else "")

    def _organ_finding(self, hit: Hit, scope: Scope) -> tuple[str, str] | None:
        """'splenomegaly' / 'no hepatic steatosis' bound to the cited derived finding that decides it."""
        finding, name = ORGAN_FINDINGS[hit.text.lower()]
        values = [f.value for f in scope.facts.values() if f.name == name]
        if values and all((v != finding) if hit.negated else (v == finding) for v in values):
            return None
        return "organ-finding", f"says '{'not ' if hit.negated else ''}{hit.text}' but cites no {name} fact that says so"

    def _truth(self, scope: Scope, lesion: str | None) -> tuple[set[str], set[str]]:
        """(true feature nodes, feature nodes whose attribute the scope cites) of the subjects."""
        true, cited = set(), {n for n in scope.nodes if n.startswith("feature:")}
        subjects = [lesion] if lesion else sorted(scope.lesions())
        for lid in subjects:
            les = self.by_lesion.get(lid)
            if les is None:
                continue
            feats = features_for(self.facts, les)
            true |= set(feats)
            for node, ids in feats.items():
                if any(f in scope.facts for f in ids) or \
                        f"organ:{les.organ}.lesion_count" in scope.facts and node in ("feature:solitary", "feature:multiple"):
                    cited.add(node)
        for f in scope.facts.values():
            if f.name == "lesion_count" and not lesion:
                node = "feature:no_focal_lesion" if f.value == 0 else "feature:multiple" if f.value > 1 else "feature:solitary"
                true.add(node)
                cited.add(node)
        return true, cited

    def _feature(self, hit: Hit, scope: Scope, lesion: str | None) -> tuple[str, str] | None:
        node = next(k for k in hit.term.keys if k.startswith("feature:"))
        group = hit.term.group
        true, cited = self._truth(scope, lesion)
        same_group = {n for n in true | cited if self._group(n) == group}
        if not same_group & cited:
            return "feature", f"says '{hit.text}' but cites no fact of its attribute ({group})"
        holds = node in true
        if hit.negated and not holds and same_group & true:
            return None
        if holds and not hit.negated:
            return None
        return "feature", f"says '{'not ' if hit.negated else ''}{hit.text}' but the facts" + (
            f" of {lesion}" if lesion else "") + f" give {', '.join(sorted(n.split(':')[1] for n in same_group & true)) or 'no value'}"

    def _group(self, node: str) -> str:
        label = self.kg.graph.nodes[node].get("label", "") if node in self.kg else ""
        term = self.lexicon.term(label)
        return term.group if term is not None else node

    def _node(self, hit: Hit, scope: Scope) -> tuple[str, str] | None:
        term = hit.term
        labelled = bool(self.labels(scope))
        if scope.stage == "pathology" and not labelled and any(k.startswith("histology:") for k in term.keys):
            return "histology", f"states histology '{hit.text}' without a pathology label"
        if set(term.keys) & scope.nodes:
            return None
        if term.kind == "category":
            implied = {self.kg.pathology_of(n) for n in scope.nodes if n.startswith("impression:")}
            behaviors = {f"pathology:{f.value}" for f in self.labels(scope) if f.name == "behavior"}
            if set(term.keys) & (implied | behaviors):
                return None
        return term.kind, f"names {term.kind} '{hit.text}' but cites no node of it"


def _kind(hit: Hit) -> tuple[str, str]:
    if hit.term is not None:
        return hit.term.kind, hit.term.group if hit.term.kind == "feature" else ""
    return hit.kind, hit.unit or ""


def step_scopes(record: CoTRecord, table: dict[str, Fact]) -> dict[int, Scope]:
    """Each step's scope: its own citations plus those of the steps it follows from (transitively)."""
    by_index = {s.index: s for s in record.steps}
    scopes = {}
    for step in record.steps:
        seen, todo = set(), [step.index]
        while todo:
            i = todo.pop()
            if i in seen or i not in by_index:
                continue
            seen.add(i)
            todo += by_index[i].follows_from
        scope = Scope(organ=step.organ or record.organ, stage=step.stage)
        for i in seen:
            scope.facts.update({f: table[f] for f in by_index[i].fact_ids if f in table})
            scope.nodes.update(by_index[i].kg_node_ids)
        scopes[step.index] = scope
    return scopes


def record_scope(record: CoTRecord, table: dict[str, Fact]) -> Scope:
    scope = Scope(organ=record.organ)
    for step in record.steps:
        scope.facts.update({f: table[f] for f in step.fact_ids if f in table})
        scope.nodes.update(step.kg_node_ids)
    return scope


def check_texts(record: CoTRecord, facts: CaseFacts, kg: KnowledgeGraph, table: dict[str, Fact],
                size_t: set[str]) -> list[str]:
    """Every clinical term of every text of ``record`` bound and agreeing (reasons; [] = all)."""
    binder = Binder(record, facts, kg, table, size_t)
    reasons: list[str] = []
    scopes = step_scopes(record, table)
    for step in record.steps:
        reasons += binder.check(f"step {step.index}", step.text, scopes[step.index])
    whole = record_scope(record, table)
    reasons += binder.check("question", record.question, binder.with_given_labels(whole), alternatives=True)
    if record.options:
        reasons += binder.check("options", "\n".join(record.options), whole, like=record.answer)
    for where, text in (("answer", record.answer), ("think", record.think), ("conclusion", record.conclusion)):
        reasons += binder.check(where, text, whole)
    for i, turn in enumerate(record.turns):
        if turn.content == {"question": question_text, "answer": answer_text, "final": answer_text}.get(
                turn.kind, lambda r: None)(record):
            continue  # rendered from texts checked above
        scope = whole
        if turn.kind == "attend":
            scope = Scope(whole.facts, whole.nodes, whole.organ, extra_numbers=list(turn.roi_box or []))
        elif turn.kind == "first_pass" and record.organ and f"organ:{record.organ}.lesion_count" in table:
            scope = Scope({**whole.facts, f"organ:{record.organ}.lesion_count": table[f"organ:{record.organ}.lesion_count"]},
                          whole.nodes, whole.organ)
        text = turn.content
        if turn.kind in ("answer", "final") and record.form == "multiple_choice":
            text = without_answer_line(text)  # "Answer: B. hypodense" repeats the answer option
        if turn.kind == "question":
            scope = binder.with_given_labels(scope)
        reasons += binder.check(f"turn {i} ({turn.kind})", text, scope, alternatives=turn.kind == "question")
    return list(dict.fromkeys(reasons))


def claim_set(text: str, kg: KnowledgeGraph) -> Counter:
    """The clinical claims a text makes, counted, as comparable tuples (a question rewording keeps
    exactly these: "the ill-defined lesion" in "... well-defined or ill-defined?" adds one)."""
    out: Counter = Counter()
    for hit in lexicon_for(kg).scan(STEP_NUMBER.sub("", text)):
        if hit.kind == "number":
            out[("number", round(hit.value, 3), hit.unit)] += 1
        elif hit.kind == "term":
            out[(hit.term.kind, hit.term.keys, hit.negated)] += 1
        elif hit.kind == "tnm":
            out.update(("tnm", p.lower()) for p in hit.parts)
        else:
            out[(hit.kind, hit.text.lower())] += 1
    return out
