"""Statistics of the generation log (``AgentTurn`` rows), read by the flows (a run's Prefect
artifacts), ``tumorcot audit`` and the review QC report alike: below all of them, so none
reaches into another."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tumorcot.schemas import AgentTurn
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.cases import CaseStore
from tumorcot.store.shards import case_tables, read_manifest

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")
_WHERE = re.compile(r"^(step #|question|answer|conclusion|think|turn #)[^:]*:\s*")


_CODE = re.compile(r"\[([a-z][a-z-]*)\]")


def reason_kind(reason: str) -> str:
    """A rejection reason without its particulars: "step 3: says '12 mm' ..." -> "says '…' ...";
    a claim-check reason is its code: "step 0: [number-quantity] '21.4 mL' ..." -> "number-quantity"."""
    code = _CODE.search(reason)
    if code:
        return code.group(1)
    text = _NUMBER.sub("#", _QUOTED.sub("'…'", reason.strip()))
    text = _WHERE.sub("", text)
    text = re.sub(r"\b(fact|node) \S+", r"\1 …", text)
    return text[:100]


def rejection_reasons(rows: list[dict]) -> list[dict]:
    """Rejections of record-level turns (calibrator, LLM judge) counted by kind of reason."""
    counts: Counter = Counter()
    for row in rows:
        if row["verdict"] == "rejected" and row["record_id"] is not None:
            for reason in row["reasons"] or ["(no reason given)"]:
                counts[(row["agent"], reason_kind(reason))] += 1
    return [{"agent": a, "reason": r, "count": n} for (a, r), n in counts.most_common()]


PER_CASE_LOG_LIMIT = 100
STAT_COLUMNS = ["run_id", "agent", "verdict", "error", "attempt", "cached", "prompt_tokens", "completion_tokens",
                "latency_ms"]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def agent_stats(rows: list[dict]) -> list[dict]:
    """Per agent: turns, verdicts, retries, cache hits, tokens, latency (mean, p95)."""
    by_agent: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_agent[row["agent"]].append(row)
    out = []
    for agent, turns in sorted(by_agent.items()):
        latencies = [t["latency_ms"] for t in turns if not t["cached"]]
        verdicts = Counter(t["verdict"] for t in turns)
        out.append({
            "agent": agent, "turns": len(turns), "accepted": verdicts["accepted"],
            "rejected": verdicts["rejected"], "failed": verdicts["failed"] + sum(1 for t in turns if t["error"]),
            "retries": sum(1 for t in turns if t["attempt"] > 1), "cached": sum(1 for t in turns if t["cached"]),
            "prompt_tokens": sum(t["prompt_tokens"] for t in turns),
            "completion_tokens": sum(t["completion_tokens"] for t in turns),
            "latency_ms_mean": round(sum(latencies) / len(latencies), 2) if latencies else 0.0,
            "latency_ms_p95": round(percentile(latencies, 0.95), 2),
        })
    return out


def run_log(dataset_dir: Path, run_id: str, written: list[str]) -> list[dict]:
    """A run's log rows (the columns ``agent_stats`` reads): from the written cases' own logs
    when they are few, else from the log shards filtered on ``run_id``."""
    if len(written) <= PER_CASE_LOG_LIMIT:
        schema = arrow_schema(AgentTurn)
        tables = [t.select(STAT_COLUMNS) for t in case_tables(CaseStore(dataset_dir), sorted(written), "log", schema)]
    else:
        tables = [pq.read_table(dataset_dir / f["path"], columns=STAT_COLUMNS, filters=[("run_id", "=", run_id)])
                  for f in read_manifest(dataset_dir)["files"] if f["kind"] == "log"]
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    return [r for r in rows if r["run_id"] == run_id]
