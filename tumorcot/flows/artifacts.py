"""A run's Prefect artifacts: the per-case outcome table, the per-agent log table and a summary."""

from __future__ import annotations

from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tumorcot.schemas import CaseOutcome
from tumorcot.store.log_stats import agent_stats, run_log

OUTCOME_COLUMNS = {"case_label", "case_id", "status", "measured", "records", "rejected", "error_type", "reason"}


def run_artifacts(summary: dict, outcomes: list[CaseOutcome]) -> list[tuple[str, dict]]:
    """The run's Prefect artifacts as (``table`` | ``markdown``, keyword arguments)."""
    artifacts = [("table", {
        "key": "tumorcot-cases", "description": "Per-case outcome of this build",
        "table": [o.model_dump(include=OUTCOME_COLUMNS) for o in outcomes]})]
    written = [o.case_id for o in outcomes if o.status == "ok"]
    turns = run_log(Path(summary["dataset"]), summary["run_id"], written) if written else []
    if turns:
        artifacts.append(("table", {"key": "tumorcot-agents", "description": "Generation log of this run, per agent",
                                    "table": agent_stats(turns)}))
    lines = [f"# tumorcot {summary.get('kind', 'build')} {summary['run_id']}", "",
             f"- cases ok: {summary['ok']}, unchanged: {summary['unchanged']}, failed: {summary['failed']}",
             f"- CTs measured: {summary.get('measured', 0)} (the others' facts were reused)",
             f"- records in dataset: {summary['records']}", f"- rejected by the calibrator: {summary['rejected']}",
             f"- shard update: {summary.get('assembly')}"]
    artifacts.append(("markdown", {"key": "tumorcot-summary", "markdown": "\n".join(lines)}))
    return artifacts


def publish_artifacts(summary: dict, outcomes: list[CaseOutcome]) -> None:
    for kind, fields in run_artifacts(summary, outcomes):
        (create_table_artifact if kind == "table" else create_markdown_artifact)(**fields)
