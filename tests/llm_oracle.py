"""A scripted 'LLM' for the agent tests: answers every agent correctly from the offline chains,
unless a tamper hook changes the answer (to play a hallucinating model).

``Oracle(..., phrasing="varied")`` answers faithfully in the way the prompts ask (slots such as
``{L1.long_axis_mm}``) mixed with free wordings a model might use instead ("segment 8", a Unicode
minus, "1,369 mL", "45.4 HU below the organ mean"); ``llm_inject.Injector`` is a tamper hook that
slips one wrong claim of a given kind into a share of the answers."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Callable

from llm_server import Reply
from tumorcot.agents.chains import conclusion_of, organ_chain
from tumorcot.agents.roles import reference_chain
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.schemas import CaseFacts

Tamper = Callable[[str, dict[str, Any], int], dict[str, Any]]  # (agent, answer, call number of agent)


def agent_of(body: dict[str, Any]) -> str:
    fmt = body.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name")
    if name is None:  # json_object mode: the schema is in the first system message
        name = next(n for n in ("OrganChain", "JudgeVerdicts", "CaseSummary", "QuestionSet", "ReportExtraction")
                    if n in body["messages"][0]["content"] or n in str(body["messages"]))
    return {"OrganChain": "reasoner", "JudgeVerdicts": "judge", "CaseSummary": "summarizer",
            "QuestionSet": "questions", "ReportExtraction": "extractor"}[name]


class Oracle:
    """``script(body, n)`` for ``ScriptedLLMServer``; counts calls per agent."""

    def __init__(self, facts: CaseFacts | dict[str, CaseFacts], kg: KnowledgeGraph, tamper: Tamper | None = None,
                 phrasing: str = "offline"):
        self.by_case = facts if isinstance(facts, dict) else {facts.case_id: facts}
        self.kg, self.tamper, self.phrasing = kg, tamper, phrasing
        self.calls: dict[str, int] = {}

    def __call__(self, body: dict[str, Any], number: int) -> Reply:
        agent = agent_of(body)
        n = self.calls.get(agent, 0)
        self.calls[agent] = n + 1
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        case = re.search(r"^Case (\S+)\.$", user, re.M)
        self.facts = self.by_case[case.group(1)] if case else None
        answer = getattr(self, agent)(user)
        if self.tamper is not None:
            answer = self.tamper(agent, answer, n, self.facts) if getattr(self.tamper, "wants_facts", False) \
                else self.tamper(agent, answer, n)
        return Reply(content=answer, prompt_tokens=len(str(body)) // 4, completion_tokens=len(str(answer)) // 4)

    def reasoner(self, user: str) -> dict:
        organ = re.search(r"^Organ: .*?\[(\w+)\]", user, re.M).group(1)
        chain = reference_chain(self.facts, organ, self.kg).model_dump()
        if self.phrasing == "varied":
            for i, step in enumerate(chain["steps"]):
                if step["stage"] == "finding":
                    step["text"], extra = varied_finding(self.facts, organ, step, 0)
                    step["fact_ids"] = [f for f in step["fact_ids"] if f.split(".")[-1] in ("organ", "lesion_count")
                                        or not f.startswith("lesion:")] + extra
        return chain

    def judge(self, user: str) -> dict:
        organs = re.findall(r"^Chain for organ (\w+):", user, re.M)
        return {"verdicts": [{"organ": o, "accept": True, "reasons": [], "hint": None} for o in organs]}

    def summarizer(self, user: str) -> dict:
        out = []
        for organ in re.findall(r"^Organ (\w+); reachable", user, re.M):
            steps = organ_chain(self.facts, organ, self.kg)
            last = steps[-1]
            if self.phrasing == "varied":
                out.append(varied_summary(self.facts, organ, last, user))
                continue
            out.append({"organ": organ, "pathology_text": last.text, "fact_ids": last.fact_ids,
                        "kg_node_ids": last.kg_node_ids, "conclusion": conclusion_of(steps)})
        return {"summaries": out}

    def questions(self, user: str) -> dict:
        items = re.findall(r"^- (r-[0-9a-f]+): (.*)$", user, re.M)
        if self.phrasing == "varied":
            return {"questions": [{"id": i, "question": reword(q, k)} for k, (i, q) in enumerate(items)]}
        return {"questions": [{"id": i, "question": f"Looking at this CT: {q}"} for i, q in items]}

    def extractor(self, user: str) -> dict:
        return {"lesions": [], "lesion_count": None, "diagnosis": None, "t": None, "n": None, "m": None}


# -- faithful answers in varied phrasing --------------------------------------------------------

def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}"


def varied_finding(facts: CaseFacts, organ: str, step: dict, k: int) -> tuple[str, list[str]]:
    """A faithful finding in one of several phrasings: slots, or free words a model might use."""
    lesion_ids = {f.split(".")[0].split(":")[1] for f in step["fact_ids"] if f.startswith("lesion:")}
    o = f"organ:{organ}"
    if not lesion_ids:
        forms = [("The {%s.volume_ml} %s shows {feature:no_focal_lesion}." % (organ, organ.replace("_", " ")), []),
                 (f"No focal lesion is seen; the organ measures {_num(facts.organ(organ).volume_ml)} mL.",
                  [f"{o}.volume_ml"])]
        return forms[k % len(forms)]
    lesion = next(l for l in facts.lesions if l.id in lesion_ids)
    L, s = lesion.id, f"lesion:{lesion.id}"
    forms = [(f"{L} measures {{{L}.long_axis_mm}} by {{{L}.short_axis_mm}} on axial slice {{{L}.axial_slice}}, with a "
              f"volume of {{{L}.volume_ml}} and a mean of {{{L}.mean_hu}}.", [])]
    ids = [f"{s}.long_axis_mm", f"{s}.short_axis_mm", f"{s}.volume_ml"] + ([f"{o}.volume_ml"] if facts.organ(organ) else [])
    host = facts.organ(organ)
    free = (f"{L} is {lesion.long_axis_mm:.0f} x {lesion.short_axis_mm:.1f} mm ({lesion.long_axis_mm / 10:.1f} cm), "
            f"volume {_num(lesion.volume_ml)} mL" + (f", in a {organ.replace('_', ' ')} of {_num(host.volume_ml)} mL"
                                                      if host else ""))
    if lesion.attenuation and lesion.hu_difference is not None:
        diff = lesion.hu_difference
        free += (f"; it is {'hypoattenuating' if lesion.attenuation == 'hypodense' else lesion.attenuation}, "
                 f"{abs(diff):.1f} HU {'below' if diff < 0 else 'above'} the organ mean")
        ids += [f"{s}.attenuation", f"{s}.hu_difference"]
        sign = "\u2212" if diff < 0 else "+"
        forms.append((f"{L} is {{{L}.attenuation}} (difference {sign}{abs(diff):.1f} HU "
                      f"against the {{{organ}.mean_hu}} organ mean).", [f"{s}.attenuation", f"{s}.hu_difference"]))
    if lesion.sub_location:
        where = re.sub(r"segment (I|II|III|IV|V|VI|VII|VIII)\b",
                       lambda m: f"segment {('I','II','III','IV','V','VI','VII','VIII').index(m.group(1)) + 1}",
                       lesion.sub_location)
        free += f", located in the {where}"
        ids.append(f"{s}.sub_location")
    forms.append((free + ".", ids))
    for attr in ("shape", "margin", "content"):
        if getattr(lesion, attr):
            forms.append((f"{L} appears {{{L}.{attr}}} on this series.", []))
    order = [forms[0], *[f for f in forms[1:] if f[1] and f[0].startswith(f"{L} is {lesion.long_axis_mm:.0f}")],
             *[f for f in forms[1:] if not f[0].startswith(f"{L} is {lesion.long_axis_mm:.0f}")]]
    text, extra = order[(int(L[1:]) + k) % len(order)]
    return text, list(dict.fromkeys(extra))


def varied_summary(facts: CaseFacts, organ: str, last, user: str) -> dict:
    """Pathology step and conclusion with slots; the conclusion repeats the chain in other words."""
    lines = re.search(rf"^Organ {organ}; reachable.*?\n((?:\d+\. .*\n?)+)", user, re.M).group(1)
    chain = " ".join(re.sub(r"^\d+\. \[\w+\] ", "", line) for line in lines.strip().splitlines())
    labelled = any(f.startswith("pathology.") for f in last.fact_ids)
    if labelled:
        keys = [f.split(".")[1] for f in last.fact_ids if f.startswith("pathology.")]
        text = ("The pathology report's " + ", ".join("{pathology.%s}" % k for k in keys if k not in "tnm")
                + " is read against the imaging impressions above.")
        ids, nodes = [], last.kg_node_ids
    else:
        classes = " or ".join("{%s}" % n for n in last.kg_node_ids)
        text = f"Without pathology labels, the knowledge graph classes the leading impression as {classes}; histology needs confirmation."
        ids, nodes = [], []
    return {"organ": organ, "pathology_text": text, "fact_ids": ids, "kg_node_ids": nodes,
            "conclusion": f"In summary: {chain} {text}"}


def reword(question: str, k: int) -> str:
    forms = [f"On this CT, {question[0].lower()}{question[1:]}", f"Please answer: {question}", f"Looking at this CT: {question}"]
    return forms[k % len(forms)]


# -- injected errors ----------------------------------------------------------------------------

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
OPPOSITE = {"hypodense": "hyperdense", "hyperdense": "hypodense", "isodense": "hyperdense", "round": "irregular",
            "oval": "irregular", "lobulated": "round", "irregular": "round", "well-defined": "ill-defined",
            "ill-defined": "well-defined", "solid": "cystic", "cystic": "solid", "calcified": "fatty", "fatty": "solid"}
OTHER_PLACE = {"head": "tail", "body": "tail", "tail": "head", "upper pole": "lower pole", "lower pole": "upper pole",
               "interpolar": "upper pole"}
ORGANS_ELSEWHERE = ("duodenum", "small bowel", "bladder", "psoas")
STAGING = ("T3N1M1", "N1M1", "ypT3")
# The kinds of issue 11, and the agents whose answers can carry each.
KINDS = {
    "feature_swap": ("reasoner", "summarizer"), "subregion_swap": ("reasoner", "summarizer"),
    "impression_text": ("reasoner", "summarizer"), "histology_text": ("summarizer",),
    "tnm_compact": ("reasoner", "summarizer"), "stage_group": ("reasoner", "summarizer"),
    "number_glued": ("reasoner", "summarizer"), "number_quantity": ("reasoner", "summarizer"),
    "number_unit": ("reasoner", "summarizer"), "slice_number": ("reasoner",), "count_word": ("reasoner", "summarizer"),
    "organ_outside": ("reasoner", "summarizer"), "label_scope": ("summarizer",),
    "question_presupposition": ("questions",),
}


def _unit_hash(*parts) -> float:
    import hashlib
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16) / 16**12


class Injector:
    """Tamper hook: a share ``rate`` of the answers of each agent gets one wrong claim of one of
    ``kinds`` (the least injected one that fits the answer), as a sentence starting "Notably," (or a reworded question). Each
    injection is recorded as ``(agent, kind, snippet)``: the snippet must never reach a shard."""

    wants_facts = True

    def __init__(self, rate: float, kinds=tuple(KINDS), seed: int = 0, limit: int | None = None):
        self.rate, self.kinds, self.seed, self.limit = rate, tuple(kinds), seed, limit  # limit: per agent
        self.injected: list[tuple[str, str, str]] = []
        self.faithful: dict[str, int] = {}

    def __call__(self, agent: str, answer: dict, n: int, facts: CaseFacts) -> dict:
        kinds = [k for k in self.kinds if agent in KINDS[k]]
        done = sum(1 for a, _, _ in self.injected if a == agent)
        if not kinds or _unit_hash(self.seed, agent, n) >= self.rate or self.limit is not None and done >= self.limit:
            self.faithful[agent] = self.faithful.get(agent, 0) + 1
            return answer
        used = Counter(k for _, k, _ in self.injected)
        for kind in sorted(kinds, key=lambda k: (used[k], len(KINDS[k]))):  # the least injected kind that fits
            snippet = self._inject(kind, agent, answer, facts)
            if snippet:
                self.injected.append((agent, kind, snippet))
                return answer
        self.faithful[agent] = self.faithful.get(agent, 0) + 1
        return answer

    def _inject(self, kind: str, agent: str, answer: dict, facts: CaseFacts) -> str | None:
        if agent == "questions":
            for q in answer["questions"]:
                m = re.search(r"\b(?:the|a) (\d+ mm )?(lesion|tumou?r|cyst)\b", q["question"])
                if m:   # a presupposition the original question does not make
                    q["question"] = q["question"].replace(m.group(), m.group().replace(m.group(2), "ill-defined " + m.group(2)), 1)
                    return q["question"]
            return None
        if agent == "reasoner":
            findings = [s for s in answer["steps"] if s["stage"] == "finding"]
            target = next((s for s in findings if any(f.startswith("lesion:") for f in s["fact_ids"])),
                          findings[0] if findings else None)
            organ = None
        else:
            target = answer["summaries"][0] if answer["summaries"] else None
            organ = target["organ"] if target else None
        if target is None:
            return None
        key = "text" if agent == "reasoner" else "conclusion"
        if agent == "reasoner":
            ids = [f.split(".")[0].split(":")[1] for f in target["fact_ids"] if f.startswith("lesion:")]
            organ = next((l.organ for l in facts.lesions if l.id in ids), None) or next(
                (f.split(".")[0].split(":")[1] for f in target["fact_ids"] if f.startswith("organ:")), None)
        lesions = facts.lesions_in(organ) if organ else []
        lesion = lesions[0] if lesions else None
        sentence = self._sentence(kind, organ, lesion, facts)
        if sentence is None:
            return None
        target[key] = target[key].rstrip() + " " + sentence
        return sentence

    @staticmethod
    def _sentence(kind: str, organ: str | None, lesion, facts: CaseFacts) -> str | None:
        L = lesion.id if lesion else None
        count = len(facts.lesions_in(organ)) if organ else 0
        if kind == "feature_swap" and lesion:
            attr = next((getattr(lesion, a) for a in ("attenuation", "shape", "margin", "content") if getattr(lesion, a)), None)
            return f"Notably, {L} is {OPPOSITE[attr]}." if attr else None
        if kind == "subregion_swap" and lesion and lesion.sub_location:
            place = lesion.sub_location
            if "segment" in place:
                wrong = "segment VII" if not place.endswith("segment VII") else "segment V"
            else:
                wrong = OTHER_PLACE.get(place, "tail")
            return f"Notably, {L} lies in the {wrong}."
        if kind == "impression_text" and organ:
            return ("Notably, this suggests pancreatic ductal adenocarcinoma." if organ == "liver"
                    else "Notably, this suggests hepatocellular carcinoma.")
        if kind == "histology_text" and organ:
            return "Notably, the histology is fibrolamellar carcinoma."
        if kind == "tnm_compact" and organ:
            return f"Notably, staged {STAGING[int(_unit_hash(organ, L) * len(STAGING))]}."
        if kind == "stage_group" and organ:
            return "Notably, this is AJCC stage IV disease."
        numbers = {   # a number of the lesion, wrong in value, quantity, unit or kind of count
            "number_glued": lambda: f"Notably, {L} has a volume of {lesion.volume_ml * 1.5 + 3:.0f}mL.",
            "number_quantity": lambda: f"Notably, {L} has a volume of {lesion.long_axis_mm:.1f} mL.",
            "number_unit": lambda: f"Notably, {L} measures {lesion.long_axis_mm:.1f} x {lesion.long_axis_mm:.1f} cm.",
            "slice_number": lambda: f"Notably, {L} is best seen on axial slice {lesion.axial_slice + 7}.",
        }
        if kind in numbers:
            return numbers[kind]() if lesion else None
        if kind == "count_word" and organ:
            return f"Notably, there are {WORDS[min(count + 1, 10)]} focal lesions here."
        if kind == "organ_outside" and organ:
            return f"Notably, it is abutting the {ORGANS_ELSEWHERE[int(_unit_hash(organ, L) * 4)]}."
        if kind == "label_scope" and facts.pathology is not None and facts.pathology.t:
            from tumorcot.agents.chains import pathology_organ
            if organ and organ != pathology_organ(facts):
                p = facts.pathology
                return f"Notably, stage {' '.join(x for x in (p.t, p.n, p.m) if x)}."
        return None


def shipped(injector: Injector, records: list[dict]) -> list[tuple[str, str, str]]:
    """The injections whose snippet is in a shipped record."""
    text = json.dumps(records, ensure_ascii=False)
    return [i for i in injector.injected if json.dumps(i[2], ensure_ascii=False)[1:-1] in text]
