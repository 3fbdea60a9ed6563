"""Rich tables for ``tumorcot audit`` (the data comes from ``tumorcot.ops.audit``)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tumorcot.review.tables import print_review

AGENT_COLUMNS = ("agent", "turns", "accepted", "rejected", "failed", "retries", "cached",
                 "prompt_tokens", "completion_tokens", "latency_ms_mean", "latency_ms_p95")
RUN_COLUMNS = ("run_id", "kind", "ok", "unchanged", "failed", "records", "rejected", "retries",
               "tokens", "llm_calls", "assembly")


def _table(title: str, columns, rows: list[dict]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="left" if col in ("agent", "run_id", "kind", "reason", "assembly",
                                                         "case_label", "case_id", "error_type") else "right",
                         overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(row.get(c, "") if row.get(c) is not None else "-")) for c in columns))
    return table


def print_runs(console: Console, report: dict) -> None:
    console.print(f"dataset {escape(report['dataset'])}: {report['record_count']} records, {report['cases']} cases, "
                  f"{report['failing_cases']} failing; KG {report['versions'].get('kg', '-')}, "
                  f"generator {report['versions'].get('generator', '-')}")
    console.print(_table("runs", RUN_COLUMNS, report["runs"]))
    for run in report["runs"]:
        if run["reason"]:
            console.print(f"{run['run_id']}: reason: {escape(run['reason'])}")
        if run["agents"]:
            console.print(_table(f"agents in {run['run_id']}", AGENT_COLUMNS, run["agents"]))
        if run["rejections"]:
            console.print(_table(f"rejections in {run['run_id']}", ("agent", "reason", "count"), run["rejections"]))
    if report.get("review"):
        print_review(console, report["review"])
    else:
        console.print("review: no clinician verdicts stored (tumorcot review pack, then tumorcot review ingest)")


def print_lineage(console: Console, lineage: dict) -> None:
    record = lineage["record"]
    console.rule(f"record {escape(record['record_id'])}")
    console.print(f"{record['task']}/{record['subtask']} organ={record['organ']} split={record['split']}")
    console.print(f"Q: {escape(record['question'])}\nA: {escape(record['answer'])}")
    console.print(_table("case", ("key", "value"), [{"key": k, "value": v} for k, v in lineage["case"].items()]))
    console.print(_table("input content hashes", ("key", "value"),
                         [{"key": k, "value": v} for k, v in lineage["input_sha256"].items()]))
    console.print(_table("segmentation", ("key", "value"),
                         [{"key": k, "value": json.dumps(v)} for k, v in lineage["segmentation"].items()]))
    versions = {k: v for k, v in lineage["versions"].items() if k != "dataset"}
    console.print(_table("versions", ("key", "value"), [{"key": k, "value": v} for k, v in versions.items()]))
    facts = lineage["facts"]
    console.print(f"facts: {len(facts.get('organs', []))} organs, {len(facts.get('lesions', []))} lesions "
                  f"(full facts with --json)")
    for v in lineage.get("review", []):
        steps = ", ".join(f"step {s['index']} {s['verdict']}" for s in v["steps"])
        console.print(f"review by {escape(v['reviewer'])}: {v['verdict'] or '-'} {escape(v['reason'])} {steps}")
    for turn in lineage["turns"]:
        console.rule(f"{turn['agent']} attempt {turn['attempt']} ({turn['run_id']}) verdict {turn['verdict']}")
        for key in ("template", "model", "messages_json", "raw_response", "parsed_json", "error"):
            if turn[key] not in (None, "", "[]"):
                console.print(f"[bold]{key}[/bold]: {escape(str(turn[key]))}")
        if turn["reasons"]:
            console.print("[bold]reasons[/bold]: " + escape("; ".join(turn["reasons"])))
        console.print(f"tokens {turn['prompt_tokens']}+{turn['completion_tokens']}, "
                      f"latency {turn['latency_ms']:.1f} ms, cached {turn['cached']}")


def print_failures(console: Console, report: dict) -> None:
    cols = ("case_label", "case_id", "error_type", "reason")
    console.print(_table("failing cases now", cols, report["current"]))
    console.print(_table("failed cases per run", ("run_id", *cols), report["history"]))
    if report["failed_turns"]:
        console.print(_table("failed agent turns", ("run_id", "case_id", "record_id", "agent", "attempt", "error"),
                             report["failed_turns"]))
