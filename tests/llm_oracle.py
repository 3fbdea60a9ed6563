"""A scripted 'LLM' for the agent tests: answers every agent correctly from the offline chains,
unless a tamper hook changes the answer (to play a hallucinating model)."""

from __future__ import annotations

import re
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

    def __init__(self, facts: CaseFacts | dict[str, CaseFacts], kg: KnowledgeGraph, tamper: Tamper | None = None):
        self.by_case = facts if isinstance(facts, dict) else {facts.case_id: facts}
        self.kg, self.tamper = kg, tamper
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
            answer = self.tamper(agent, answer, n)
        return Reply(content=answer, prompt_tokens=len(str(body)) // 4, completion_tokens=len(str(answer)) // 4)

    def reasoner(self, user: str) -> dict:
        organ = re.search(r"^Organ: .*?\[(\w+)\]", user, re.M).group(1)
        return reference_chain(self.facts, organ, self.kg).model_dump()

    def judge(self, user: str) -> dict:
        organs = re.findall(r"^Chain for organ (\w+):", user, re.M)
        return {"verdicts": [{"organ": o, "accept": True, "reasons": [], "hint": None} for o in organs]}

    def summarizer(self, user: str) -> dict:
        out = []
        for organ in re.findall(r"^Organ (\w+); reachable", user, re.M):
            steps = organ_chain(self.facts, organ, self.kg)
            last = steps[-1]
            out.append({"organ": organ, "pathology_text": last.text, "fact_ids": last.fact_ids,
                        "kg_node_ids": last.kg_node_ids, "conclusion": conclusion_of(steps)})
        return {"summaries": out}

    def questions(self, user: str) -> dict:
        items = re.findall(r"^- (r-[0-9a-f]+): (.*)$", user, re.M)
        return {"questions": [{"id": i, "question": f"Looking at this CT: {q}"} for i, q in items]}

    def extractor(self, user: str) -> dict:
        return {"lesions": [], "lesion_count": None, "diagnosis": None, "t": None, "n": None, "m": None}
