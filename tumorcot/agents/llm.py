"""The multi-agent LLM generator: same interface as ``OfflineGenerator`` (``name``, ``generate``).

Per case:

1. the deterministic records (boxes, sizes, densities, counts) come from the offline generator;
   only their questions are reworded by the LLM (one Question-writer call per case);
2. Extractor (only when report text is given): structured attributes, passed on as unverified;
3. CoT Reasoner, one call per reported organ: a finding -> impression chain. Each chain goes
   through the deterministic calibrator; on reject the Reasoner is asked again with the reasons;
4. Logic Calibrator (LLM judgement), one call over all chains of the case; a rejected chain is
   regenerated with the judge's reasons and hint and judged again;
5. Summarizer, one call per case: each organ's pathology step and conclusion, checked again.

At most ``max_rounds`` attempts per organ; then the organ's record is dropped and logged as
failed with its reasons. Whatever the agents write, a record is returned only if
``check_record`` accepts it, so no unlicensed number, side, organ, impression, histology or
T/N/M reaches a shard. One chain per organ feeds the report record; all other records cost one
shared rewording call, which keeps the calls per record well under one.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tumorcot.agents import roles
from tumorcot.agents.calibrator import calibrate, check_record
from tumorcot.agents.claims import claim_set
from tumorcot.agents.chains import conclusion_of, render_think
from tumorcot.agents.client import LLMCallError, LLMClient, LLMConfig, RequestDeferred
from tumorcot.agents.families.focus import with_turns
from tumorcot.agents.families.negatives import select_negatives
from tumorcot.agents.offline import OfflineGenerator
from tumorcot.knowledge_graph import KnowledgeGraph, load_kg
from tumorcot.schemas import AgentTurn, CaseFacts, CoTRecord, GenerationOptions, Step

LESION_ID = r"\bL\d+\b"


@dataclass
class LLMGeneration:
    """Outcome of one case: accepted records, every log row, failed record ids with reasons."""

    records: list[CoTRecord]
    log: list[AgentTurn]
    failed: dict[str, list[str]] = field(default_factory=dict)
    requests: int = 0
    cached: int = 0
    deferred: int = 0  # batch mode: requests queued for the batch file (then no records)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Case:
    """Mutable state of one case's generation (log, failures) shared by the steps below."""

    def __init__(self, facts: CaseFacts, client: LLMClient, run_id: str):
        self.facts, self.client, self.run_id = facts, client, run_id
        self.table = facts.fact_table()
        self.log: list[AgentTurn] = []
        self.failed: dict[str, list[str]] = {}
        self.deferred = 0  # batch mode: calls queued instead of answered
        self.originals: dict[str, CoTRecord] = {}  # reworded record id -> the record as drafted

    async def call(self, agent: str, p: roles.Prompt, schema, record_id: str | None = None):
        try:
            out, turns = await self.client.complete(agent, p.template, p.template_sha256, p.messages,
                                                    schema, case_id=self.facts.case_id, record_id=record_id)
        except RequestDeferred:
            self.deferred += 1
            return None, "deferred to the batch file"
        except LLMCallError as exc:
            for t in exc.turns:
                t.verdict = "failed"
            self.log += exc.turns
            return None, str(exc)
        self.log += turns
        return out, turns[-1]

    def verdict(self, agent: str, record_id: str | None, verdict: str, reasons: list[str], parsed=None):
        self.log.append(AgentTurn(run_id=self.run_id, case_id=self.facts.case_id, record_id=record_id,
                                  agent=agent, verdict=verdict, reasons=reasons, parsed_json=parsed,
                                  timestamp=datetime.now(timezone.utc).isoformat()))


class LLMGenerator:
    """KG-grounded multi-agent generation through any OpenAI-compatible endpoint."""

    def __init__(self, kg: KnowledgeGraph, config: LLMConfig, *, run_id: str = "", max_rounds: int = 3,
                 options: GenerationOptions | None = None):
        self.kg, self.config, self.run_id, self.max_rounds = kg, config, run_id, max_rounds
        self.options = options or GenerationOptions()
        self.name = f"llm:{config.model}"
        self.last: LLMGeneration | None = None
        self.check_pool = None   # worker processes for drafting and the last gate (kg must be load_kg())

    def generate(self, facts: CaseFacts, report: str | None = None) -> list[CoTRecord]:
        """Synchronous entry point (its own event loop); the full outcome is kept in ``last``."""
        self.last = asyncio.run(self.agenerate(facts, report=report))
        return self.last.records

    async def agenerate(self, facts: CaseFacts, report: str | None = None,
                        client: LLMClient | None = None) -> LLMGeneration:
        if client is None:
            async with LLMClient(self.config, run_id=self.run_id) as own:
                return await self.agenerate(facts, report, own)
        case = _Case(facts, client, self.run_id)
        # CPU-heavy steps (drafting, claim checks) run off the event loop, which is shared by every
        # case in flight and must stay free to send and receive their requests.
        base = await self._offload(drafted, facts, self.options, self.name)
        reports = {r.organ: r for r in base if r.subtask == "organ_report"}
        others = [r for r in base if r.subtask != "organ_report"]

        # Batch mode: a round whose requests were deferred ends the case here, so every queued
        # request is exactly the one the live run would send next (no fallbacks, no retries).
        # The question writer needs only the drafted questions, so it runs beside the report chain
        # (extractor -> reasoner -> judge -> summarizer): one latency round fewer per case.
        reworded, records = await asyncio.gather(self._reword(case, others + list(reports.values())),
                                                 self._report_chain(case, reports, report))
        if case.deferred:
            return self._deferred(case)
        records = [r for r in reworded if r.subtask != "organ_report"] + [
            self._with_question(case, r, reworded) for r in records]
        records = [with_turns(r, facts, self.options.interleave) for r in records]  # after every rewrite
        accepted, rejected = await self._gate(case, records)
        for record, reasons in rejected:
            case.failed[record.record_id] = reasons
            case.verdict("calibrator", record.record_id, "failed", reasons)
        result = LLMGeneration([self._labelled(r) for r in accepted], case.log, case.failed)
        # Counted from this case's own turns: the client is shared by every case in flight.
        for turn in case.log:
            if turn.model is None or not turn.template:   # verdict rows
                continue
            if turn.cached:
                result.cached += 1
            else:
                result.requests += 1
                result.prompt_tokens += turn.prompt_tokens or 0
                result.completion_tokens += turn.completion_tokens or 0
        return result

    @staticmethod
    def _with_question(case: _Case, record: CoTRecord, reworded: list[CoTRecord]) -> CoTRecord:
        """An organ report (its chain written) with the question writer's wording of its question;
        should the last gate reject that wording, the report falls back to its drafted question."""
        wording = next((r for r in reworded if r.record_id == record.record_id), None)
        if wording is None or record.record_id not in case.originals:
            return record
        case.originals[record.record_id] = record
        return record.model_copy(update={"question": wording.question, "template": wording.template})

    async def _report_chain(self, case: _Case, reports: dict[str, CoTRecord], report: str | None) -> list[CoTRecord]:
        """Extractor (report text only) -> reasoner -> judge -> summarizer: the organ reports."""
        findings = await self._extract(case, report) if report else None
        if case.deferred:
            return []
        chains = await self._reason(case, reports, findings)
        if case.deferred:
            return []
        return await self._summarize(case, reports, chains)

    # -- agents ----------------------------------------------------------------------------------

    async def _extract(self, case: _Case, report: str) -> str | None:
        out, _ = await case.call("extractor", roles.extractor_prompt(case.facts, report), roles.ReportExtraction)
        return roles.dumps(out) if out is not None else None

    def _provisional(self, template: CoTRecord, steps: list[Step]) -> CoTRecord:
        return template.model_copy(update={"steps": steps, "think": render_think(steps),
                                           "answer": conclusion_of(steps), "conclusion": conclusion_of(steps)})

    async def _chain(self, case: _Case, organ: str, template: CoTRecord, findings: str | None,
                     hint: str | None, rounds: int) -> tuple[list[Step] | None, list[str], int]:
        """Reasoner with deterministic checks; (steps or None, last reasons, rounds used)."""
        boxes = roles.roi_boxes(case.facts)
        reasons: list[str] = []
        for used in range(1, rounds + 1):
            p = roles.reasoner_prompt(case.facts, organ, self.kg, case.table, hint=hint, report_findings=findings)
            out, last = await case.call("reasoner", p, roles.OrganChain, template.record_id)
            if out is None:
                return None, [last], used
            steps = roles.chain_steps(organ, out, boxes, case.table, self.kg)
            reasons = await asyncio.to_thread(check_record, self._provisional(template, steps), case.facts,
                                              self.kg, case.table)   # CPU work: off the shared loop
            last.verdict, last.reasons = ("rejected", reasons) if reasons else ("accepted", [])
            if not reasons:
                return steps, [], used
            hint = "; ".join(reasons)
        return None, reasons, rounds

    async def _reason(self, case: _Case, reports: dict[str, CoTRecord], findings: str | None):
        organs = list(reports)
        results = await asyncio.gather(*(self._chain(case, o, reports[o], findings, None, self.max_rounds)
                                         for o in organs))
        if case.deferred:
            return {}
        chains, used = {}, {}
        for organ, (steps, reasons, n) in zip(organs, results):
            used[organ] = n
            if steps is None:
                self._fail(case, reports[organ], reasons)
            else:
                chains[organ] = steps
        pending = dict(chains)
        while pending:
            out, _ = await case.call("judge", roles.judge_prompt(pending, case.facts, case.table, self.kg), roles.JudgeVerdicts)
            if case.deferred:
                return {}
            if out is None:  # no judgement, no record
                for organ in pending:
                    chains.pop(organ)
                    self._fail(case, reports[organ], ["the LLM judgement could not be obtained"])
                break
            verdicts = {v.organ: v for v in out.verdicts}
            retry = {}
            for organ in pending:
                v = verdicts.get(organ) or verdicts.get(reports[organ].organ or "")
                if v is not None and v.accept:
                    case.verdict("judge", reports[organ].record_id, "accepted", [])
                    continue
                why = v.reasons + ([f"hint: {v.hint}"] if v.hint else []) if v else ["no verdict returned"]
                case.verdict("judge", reports[organ].record_id, "rejected", why)
                left = self.max_rounds - used[organ]
                steps, reasons, n = (await self._chain(case, organ, reports[organ], findings, "; ".join(why), left)
                                     if left > 0 else (None, why, 0))
                used[organ] += n
                if case.deferred:
                    return {}
                if steps is None:
                    chains.pop(organ)
                    self._fail(case, reports[organ], reasons)
                else:
                    chains[organ] = retry[organ] = steps
            pending = retry
        return chains

    async def _summarize(self, case: _Case, reports: dict[str, CoTRecord], chains: dict[str, list[Step]]):
        records, hint_reasons = {}, {}
        pending = dict(chains)
        for _ in range(self.max_rounds):
            if not pending:
                break
            p = roles.summarizer_prompt(case.facts, pending, self.kg)
            if hint_reasons:
                p.messages[-1]["content"] += "\n\nRejected before, fix exactly this:\n" + "\n".join(
                    f"- {o}: {'; '.join(r)}" for o, r in hint_reasons.items())
            out, _ = await case.call("summarizer", p, roles.CaseSummary)
            if case.deferred:
                return []
            if out is None:
                break
            by_organ = {s.organ: s for s in out.summaries}
            hint_reasons = {}
            for organ, steps in list(pending.items()):
                summary = by_organ.get(organ)
                if summary is None:
                    hint_reasons[organ] = ["no summary returned"]
                    continue
                template = reports[organ]
                last, conclusion = roles.pathology_step(organ, steps, summary, template.roi_box, case.table, self.kg)
                full = steps + [last]
                record = template.model_copy(update={"steps": full, "think": render_think(full),
                                                     "answer": conclusion, "conclusion": conclusion})
                reasons = await asyncio.to_thread(check_record, record, case.facts, self.kg, case.table)
                if reasons:
                    hint_reasons[organ] = reasons
                    case.verdict("summarizer", record.record_id, "rejected", reasons)  # its answer, rejected
                else:
                    records[organ] = record
                    pending.pop(organ)
        for organ in pending:
            self._fail(case, reports[organ], hint_reasons.get(organ, ["no usable summary"]))
        return list(records.values())

    async def _reword(self, case: _Case, records: list[CoTRecord]) -> list[CoTRecord]:
        if not records:
            return records
        p = roles.questions_prompt({r.record_id: r.question for r in records}, case.facts.case_id)
        out, _ = await case.call("questions", p, roles.QuestionSet)
        if out is None:
            return records
        new = {q.id: q.question.strip() for q in out.questions}

        def apply() -> list[CoTRecord]:   # in a worker thread (claim checks are CPU work)
            result = []
            for record in records:
                text = new.get(record.record_id)
                if text and claim_set(record.question, self.kg) == claim_set(text, self.kg) \
                        and set(re.findall(LESION_ID, record.question)) == set(re.findall(LESION_ID, text)):
                    # checked once, by the last gate; rejected there, the drafted wording is used
                    case.originals[record.record_id] = record
                    record = record.model_copy(update={"question": text, "template": record.template + "+llm"})
                elif text:   # the original wording is kept; the rejection is counted for the agent
                    case.verdict("questions", record.record_id, "rejected",
                                 ["question: [question-claims] the rewording does not carry exactly the original's claims"])
                result.append(record)
            return result

        return await asyncio.to_thread(apply)

    async def _offload(self, function, *args):
        """``function(*args, kg=...)`` off the shared loop: in the build's worker processes when it
        has them (``check_pool``, whose processes use their own ``load_kg()``), else in a thread."""
        if self.check_pool is not None:
            try:
                return await asyncio.wrap_future(self.check_pool.submit(function, *args))
            except BrokenProcessPool:   # a worker died: this process does the work from now on
                self.check_pool = None
        return await asyncio.to_thread(function, *args, kg=self.kg)

    async def _gate(self, case: _Case, records: list[CoTRecord]):
        """``last_gate`` off the shared loop, its rejected rewordings logged."""
        accepted, rejected, reworded = await self._offload(last_gate, records, case.originals, case.facts,
                                                           self.options.interleave)
        for record_id, why in reworded:
            case.verdict("questions", record_id, "rejected", why)
        return accepted, rejected

    def _labelled(self, record: CoTRecord) -> CoTRecord:
        """A record carries the generator that wrote its text: the LLM for organ reports (its
        chains) and reworded questions, the offline generator for a drafted record the LLM did
        not touch (rewording rejected, or the endpoint down: then the case is degraded)."""
        written = record.subtask == "organ_report" or record.template.endswith("+llm")
        return record if written else record.model_copy(update={"generator": OfflineGenerator.name})

    def _deferred(self, case: _Case) -> LLMGeneration:
        return LLMGeneration([], case.log, {}, deferred=case.deferred)

    def _fail(self, case: _Case, record: CoTRecord, reasons: list[str]) -> None:
        case.failed[record.record_id] = reasons
        case.verdict("calibrator", record.record_id, "failed", reasons)


def drafted(facts: CaseFacts, options: GenerationOptions, name: str, kg: KnowledgeGraph | None = None):
    """The offline generator's records of a case, less the negatives the share drops (no calls
    are made for those); a plain function, so a worker process can run it."""
    offline = OfflineGenerator(kg if kg is not None else load_kg(), options)
    offline.name = name
    return select_negatives(offline.draft(facts), options.negative_share)


def last_gate(records: list[CoTRecord], originals: dict[str, CoTRecord], facts: CaseFacts, interleave: bool,
              kg: KnowledgeGraph | None = None):
    """``calibrate``, the last gate before a shard; a reworded record it rejects is replaced by
    its drafted wording (``originals``), which is checked in turn. Returns (accepted in order,
    [(rejected, reasons)], [(record id, reasons) of rejected rewordings]). A plain function of
    picklable values, so a worker process can run it (with ``kg`` None: that process's KG)."""
    kg = kg if kg is not None else load_kg()
    accepted, rejected = calibrate(records, facts, kg)
    redo = [with_turns(originals[r.record_id], facts, interleave) for r, _ in rejected if r.record_id in originals]
    if not redo:
        return accepted, rejected, []
    reworded = [(r.record_id, why) for r, why in rejected if r.record_id in originals]
    fine, still = calibrate(redo, facts, kg)
    kept = {r.record_id: r for r in accepted + fine}
    rejected = [(r, why) for r, why in rejected if r.record_id not in originals] + still
    return [kept[r.record_id] for r in records if r.record_id in kept], rejected, reworded


def summary_line(result: LLMGeneration) -> dict:
    """Calls and tokens per emitted record, for the build summary."""
    n = max(len(result.records), 1)
    return {"records": len(result.records), "llm_requests": result.requests, "cached": result.cached,
            "requests_per_record": result.requests / n,
            "tokens_per_record": (result.prompt_tokens + result.completion_tokens) / n,
            "failed": len(result.failed)}


__all__ = ["LLMGeneration", "LLMGenerator", "summary_line"]
