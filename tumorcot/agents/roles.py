"""The five LLM agents: each is a jinja2 prompt (``prompts/agents/<name>.j2``), a pydantic output
model and a parse into tumorcot's own types. Retries, caching and logging live in the client.

A template's text before the line ``---USER---`` is the system message, the rest the user
message. Report text reaches only the Extractor, fenced between ``<<<REPORT`` / ``REPORT>>>``
markers from which any marker inside the text is removed; its output is fixed by the response
schema, so report text cannot change what comes back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tumorcot.agents import slots
from tumorcot.agents.chains import organ_chain, pathology_organ
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.knowledge_graph.features import features_for
from tumorcot.vocabulary import display_name
from tumorcot.prompts import render, template_sha256
from tumorcot.schemas.derived import derived_names
from tumorcot.schemas import CaseFacts, Fact, Step

SPLIT = "---USER---"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- output models ---------------------------------------------------------------------------

class ReportLesion(_Out):
    organ: str
    position: str | None
    density: str | None
    shape: str | None
    boundary: str | None
    size_text: str | None


class ReportExtraction(_Out):
    lesions: list[ReportLesion]
    lesion_count: int | None
    diagnosis: str | None
    t: str | None
    n: str | None
    m: str | None


class ChainStep(_Out):
    stage: Literal["finding", "impression"]
    text: str = Field(description="connective prose; every value and clinical term as a {slot}")
    fact_ids: list[str] = Field(description="facts the step rests on without stating them")
    kg_node_ids: list[str] = Field(description="KG nodes the step rests on (feature nodes of a finding)")
    follows_from: list[int]


class OrganChain(_Out):
    steps: list[ChainStep] = Field(min_length=1)


class Verdict(_Out):
    organ: str
    accept: bool
    reasons: list[str]
    hint: str | None


class JudgeVerdicts(_Out):
    verdicts: list[Verdict]


class OrganSummary(_Out):
    organ: str
    pathology_text: str = Field(description="the pathology step; labels, classes and values as {slots}")
    fact_ids: list[str]
    kg_node_ids: list[str]
    conclusion: str = Field(description="one paragraph; every value and clinical term as a {slot}")


class CaseSummary(_Out):
    summaries: list[OrganSummary]


class Rewording(_Out):
    id: str
    question: str


class QuestionSet(_Out):
    questions: list[Rewording]


# -- prompts -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    """Rendered messages of one agent call, with the template name and hash for the log."""

    template: str
    template_sha256: str
    messages: list[dict[str, str]]


def prompt(agent: str, **context) -> Prompt:
    name = f"agents/{agent}.j2"
    system, _, user = render(name, **context).partition(SPLIT)
    return Prompt(name, template_sha256(name), [{"role": "system", "content": system.strip()},
                                                {"role": "user", "content": user.strip()}])


def fence(text: str) -> str:
    """Report text as data: the fence markers cannot be forged from inside."""
    return text.replace("<<<REPORT", "").replace("REPORT>>>", "").strip()


def extractor_prompt(facts: CaseFacts, report: str, pathology_report: str | None = None) -> Prompt:
    return prompt("extractor", case_id=facts.case_id, organs=[o.name for o in facts.organs],
                  report=fence(report), pathology_report=fence(pathology_report or ""))


def organ_facts(facts: CaseFacts, organ: str, table: dict[str, Fact]) -> list[Fact]:
    subjects = {f"organ:{organ}"} | {f"lesion:{l.id}" for l in facts.lesions_in(organ)}
    derived = derived_names(facts)   # organ comparisons and relations: the organ families' own facts
    return [f for f in table.values() if f.subject in subjects and "box_" not in f.name and f.id not in derived]


def skeleton(facts: CaseFacts, organ: str, kg: KnowledgeGraph) -> str:
    """Per lesion: KG feature nodes (with the facts that establish them) and licensed impressions."""
    key = kg.organ_key(organ)
    lesions = facts.lesions_in(organ)
    if not lesions:
        return (f"- no focal lesion: feature:no_focal_lesion (facts organ:{organ}.lesion_count); "
                f"licensed impression: impression:{key}:normal")
    lines = []
    for lesion in lesions:
        features = features_for(facts, lesion)
        sub = kg.subregion_node(key, lesion.sub_location) if lesion.sub_location and key else None
        feats = "; ".join(f"{n} (facts {', '.join(ids) or '-'})" for n, ids in features.items())
        if key:
            assessment = kg.assess(key, set(features))
            matches = [assessment.leading, *assessment.differential]
        else:
            matches = []
        imps = ", ".join(f"{m.node_id} ({m.label})" for m in matches[:4]) or "none (indeterminate)"
        lines.append(f"- {lesion.id}: features {feats}{'; sub-region ' + sub if sub else ''}; "
                     f"licensed impressions: {imps}")
    return "\n".join(lines)


def reasoner_prompt(facts: CaseFacts, organ: str, kg: KnowledgeGraph, table: dict[str, Fact], *,
                    hint: str | None = None, report_findings: str | None = None) -> Prompt:
    return prompt("reasoner", case_id=facts.case_id, organ=display_name(organ), organ_id=organ, organ_node=f"organ:{kg.organ_key(organ)}",
                  facts=[{"slot": slot_name(f.id), "text": slots.fact_text(f)} for f in organ_facts(facts, organ, table)],
                  skeleton=skeleton(facts, organ, kg), hint=hint, report_findings=report_findings)


def slot_name(fact_id: str) -> str:
    """'lesion:L1.long_axis_mm' -> 'L1.long_axis_mm' (the reference an agent writes in braces)."""
    return fact_id.split(":", 1)[1] if fact_id.startswith(("lesion:", "organ:")) else fact_id


def chain_steps(organ: str, chain: OrganChain, roi: dict[str, list[float] | None],
                table: dict[str, Fact], kg: KnowledgeGraph) -> list[Step]:
    """The Reasoner's chain as tumorcot ``Step``s (indices renumbered in order), its slots
    rendered from the facts and the KG and cited by the step."""
    steps = []
    for i, s in enumerate(chain.steps):
        r = slots.render(s.text, table, kg)
        fact_ids = list(dict.fromkeys(s.fact_ids + r.fact_ids))
        steps.append(Step(index=i, stage=s.stage, organ=organ, text=r.text, fact_ids=fact_ids,
                          kg_node_ids=list(dict.fromkeys(s.kg_node_ids + r.kg_node_ids)), follows_from=s.follows_from,
                          roi_box=_roi(fact_ids, roi) or roi.get(f"organ:{organ}")))
    return steps


def _roi(fact_ids: list[str], roi: dict[str, list[float] | None]) -> list[float] | None:
    for fid in fact_ids:
        subject = fid.split(".", 1)[0]
        if subject.startswith("lesion:") and roi.get(subject):
            return roi[subject]
    return None


def roi_boxes(facts: CaseFacts) -> dict[str, list[float] | None]:
    out = {f"organ:{o.name}": list(o.bbox.normalized) for o in facts.organs}
    out.update({f"lesion:{l.id}": list(l.bbox.normalized) for l in facts.lesions})
    return out


def judge_prompt(chains: dict[str, list[Step]], facts: CaseFacts, table: dict[str, Fact], kg: KnowledgeGraph) -> Prompt:
    """The chains with the organ's fact table and, per step, the claims it is bound to (fact id =
    value unit, node id = label), so the judge can see a value bound to the wrong quantity."""
    def claims(step: Step) -> list[str]:
        return [f"{f} = {slots.fact_text(table[f])}" for f in step.fact_ids if f in table] + \
               [f"{n} = {kg.label(n)}" for n in step.kg_node_ids if n in kg]
    return prompt("judge", chains=[{"organ": o, "steps": [{"step": s, "claims": claims(s)} for s in st],
                                    "facts": organ_facts(facts, o, table)} for o, st in chains.items()])


def reachable(steps: list[Step], kg: KnowledgeGraph) -> list[str]:
    out: set[str] = set()
    for step in steps:
        for node in step.kg_node_ids:
            if node.startswith("impression:"):
                out |= kg.reachable_pathologies(node)
    return sorted(out) or ["pathology:none"]


def given_labels(facts: CaseFacts) -> dict[str, str]:
    p = facts.pathology
    return {k: v for k, v in (p.model_dump() if p else {}).items() if v and k != "organ"}


def summarizer_prompt(facts: CaseFacts, chains: dict[str, list[Step]], kg: KnowledgeGraph) -> Prompt:
    return prompt("summarizer", case_id=facts.case_id, labels=given_labels(facts), labels_organ=pathology_organ(facts),
                  chains=[{"organ": o, "steps": s, "reachable": reachable(s, kg)} for o, s in chains.items()])


def pathology_step(organ: str, steps: list[Step], summary: OrganSummary, box, table: dict[str, Fact],
                   kg: KnowledgeGraph) -> tuple[Step, str]:
    """The Summarizer's pathology step and conclusion, slots rendered; the step cites what both use."""
    impressions = [s.index for s in steps if s.stage == "impression"]
    text, conclusion = slots.render(summary.pathology_text, table, kg), slots.render(summary.conclusion, table, kg)
    step = Step(index=len(steps), stage="pathology", organ=organ, text=text.text,
                fact_ids=list(dict.fromkeys(summary.fact_ids + text.fact_ids + conclusion.fact_ids)),
                kg_node_ids=list(dict.fromkeys(summary.kg_node_ids + text.kg_node_ids + conclusion.kg_node_ids)),
                roi_box=box, follows_from=impressions)
    return step, conclusion.text


def questions_prompt(questions: dict[str, str], case_id: str = "") -> Prompt:
    return prompt("questions", case_id=case_id, questions=[{"id": k, "text": v} for k, v in questions.items()])


def reference_chain(facts: CaseFacts, organ: str, kg: KnowledgeGraph) -> OrganChain:
    """The offline chain (findings and impressions) in the Reasoner's output format."""
    return OrganChain(steps=[ChainStep(stage=s.stage, text=s.text, fact_ids=s.fact_ids,
                                       kg_node_ids=s.kg_node_ids, follows_from=s.follows_from)
                             for s in organ_chain(facts, organ, kg) if s.stage != "pathology"])


def dumps(model: BaseModel) -> str:
    return json.dumps(model.model_dump(), ensure_ascii=False)
