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

from tumorcot.agents.chains import organ_chain, pathology_organ
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.knowledge_graph.features import features_for
from tumorcot.labels import display_name
from tumorcot.prompts import render, template_sha256
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
    text: str
    fact_ids: list[str]
    kg_node_ids: list[str]
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
    pathology_text: str
    fact_ids: list[str]
    kg_node_ids: list[str]
    conclusion: str


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
    return [f for f in table.values() if f.subject in subjects and "box_" not in f.name]


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
                  facts=organ_facts(facts, organ, table), skeleton=skeleton(facts, organ, kg),
                  hint=hint, report_findings=report_findings)


def chain_steps(organ: str, chain: OrganChain, roi: dict[str, list[float] | None]) -> list[Step]:
    """The Reasoner's chain as tumorcot ``Step``s (indices renumbered in order)."""
    return [Step(index=i, stage=s.stage, organ=organ, text=s.text, fact_ids=s.fact_ids,
                 kg_node_ids=s.kg_node_ids, follows_from=s.follows_from,
                 roi_box=_roi(s.fact_ids, roi) or roi.get(f"organ:{organ}"))
            for i, s in enumerate(chain.steps)]


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


def judge_prompt(chains: dict[str, list[Step]]) -> Prompt:
    return prompt("judge", chains=[{"organ": o, "steps": s} for o, s in chains.items()])


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


def pathology_step(organ: str, steps: list[Step], summary: OrganSummary, box) -> Step:
    impressions = [s.index for s in steps if s.stage == "impression"]
    return Step(index=len(steps), stage="pathology", organ=organ, text=summary.pathology_text,
                fact_ids=summary.fact_ids, kg_node_ids=summary.kg_node_ids, roi_box=box,
                follows_from=impressions)


def questions_prompt(questions: dict[str, str]) -> Prompt:
    return prompt("questions", questions=[{"id": k, "text": v} for k, v in questions.items()])


def reference_chain(facts: CaseFacts, organ: str, kg: KnowledgeGraph) -> OrganChain:
    """The offline chain (findings and impressions) in the Reasoner's output format."""
    return OrganChain(steps=[ChainStep(stage=s.stage, text=s.text, fact_ids=s.fact_ids,
                                       kg_node_ids=s.kg_node_ids, follows_from=s.follows_from)
                             for s in organ_chain(facts, organ, kg) if s.stage != "pathology"])


def dumps(model: BaseModel) -> str:
    return json.dumps(model.model_dump(), ensure_ascii=False)
