"""``tumorcot audit``: per-run statistics, record lineage, failures; tables and JSON."""

from __future__ import annotations

import json

import pytest
from ops_helpers import read_rows, write_rows
from typer.testing import CliRunner

from tumorcot.cli import app
from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.ops.audit import failures_report, record_lineage, run_report
from tumorcot.store.log_stats import agent_stats, reason_kind, rejection_reasons
from tumorcot.ops.regenerate import regenerate
from tumorcot.schemas import AgentTurn
from tumorcot.store.shards import read_records


def turn(agent: str, **kw) -> dict:
    return AgentTurn(run_id="r1", case_id="c-1", agent=agent, timestamp="2026-01-01T00:00:00+00:00",
                     **kw).model_dump()


def test_agent_stats_count_llm_turns_tokens_retries_and_latency():
    rows = [turn("reasoner", prompt_tokens=100, completion_tokens=40, latency_ms=200.0, verdict="accepted"),
            turn("reasoner", prompt_tokens=120, completion_tokens=30, latency_ms=400.0, attempt=2,
                 error="invalid JSON", verdict="failed"),
            turn("reasoner", cached=True, latency_ms=0.0, verdict="accepted"),
            turn("judge", prompt_tokens=50, completion_tokens=5, latency_ms=100.0, verdict="rejected",
                 record_id="r-1", reasons=["step 3: number 12 matches no cited fact"])]
    by_agent = {a["agent"]: a for a in agent_stats(rows)}
    assert by_agent["reasoner"] == {
        "agent": "reasoner", "turns": 3, "accepted": 2, "rejected": 0, "failed": 2, "retries": 1, "cached": 1,
        "prompt_tokens": 220, "completion_tokens": 70, "latency_ms_mean": 300.0, "latency_ms_p95": 400.0}
    assert rejection_reasons(rows) == [{"agent": "judge", "reason": "number # matches no cited fact", "count": 1}]


@pytest.mark.parametrize("reason, kind", [
    ("step 3: number 12.5 matches no cited fact", "number # matches no cited fact"),
    ("cites unknown fact liver.L9.volume_ml", "cites unknown fact …"),
    ("states T category 'T3' that is not given", "states T category '…' that is not given"),
    ("question: says 'left' but cites no left-sided fact", "says '…' but cites no left-sided fact"),
    ("step 0: [number-quantity] '21.4 mL' is cited as lesion:L1.long_axis_mm", "number-quantity"),
    ("conclusion: [outside-lexicon] clinical term 'psoas' is outside the lexicon", "outside-lexicon"),
])
def test_reason_kinds_drop_particulars(reason, kind):
    assert reason_kind(reason) == kind


@pytest.fixture(scope="module")
def audited(tmp_path_factory, prefect_server):
    root = tmp_path_factory.mktemp("audit")
    phantoms = write_phantom_cases(root / "cases", 2, seed=11, scale=4)
    rows = read_rows(phantoms)
    bad = dict(rows[0], patient_id="BROKEN-1", ct="missing.nii.gz")
    manifest = write_rows(phantoms.parent / "m.csv", [*rows, bad])
    out = root / "ds"
    run_build(manifest, out)
    regenerate(out, rows[1]["patient_id"], reason="new prompt")
    return out


def test_run_report_lists_builds_and_regenerations(audited):
    report = run_report(audited)
    kinds = [r["kind"] for r in report["runs"]]
    assert kinds == ["build", "regenerate"]
    build, regen = report["runs"]
    assert build["ok"] == 2 and build["failed"] == 1 and build["records"] > 0
    assert regen["reason"] == "new prompt" and regen["assembly"] == "incremental"
    assert {a["agent"] for a in regen["agents"]} == {"offline-generator", "regenerate"}
    assert report["failing_cases"] == 1


def test_record_lineage_has_inputs_facts_versions_and_turns(audited):
    record = read_records(audited).to_pylist()[0]
    lineage = record_lineage(audited, record["record_id"])
    assert lineage["record"]["record_id"] == record["record_id"]
    assert {"ct", "organ_mask", "fields"} <= set(lineage["input_sha256"])
    assert lineage["versions"]["kg"].startswith("kg-") and lineage["segmentation"]["has_organ_mask"]
    assert lineage["facts"]["case_id"] == record["case_id"]
    assert lineage["turns"] and all(t["record_id"] in (None, record["record_id"]) for t in lineage["turns"])


def test_failures_report_and_cli_json(audited):
    failures = failures_report(audited)
    assert [f["error_type"] for f in failures["current"]] == ["CaseInputError"]
    assert len(failures["history"]) == 1
    runner = CliRunner()
    result = runner.invoke(app, ["audit", str(audited), "--json"])
    assert result.exit_code == 0, result.output
    assert [r["kind"] for r in json.loads(result.output)["runs"]] == ["build", "regenerate"]
    result = runner.invoke(app, ["audit", str(audited), "--failures", "--json"])
    assert json.loads(result.output)["current"][0]["case_label"] == "row 3"
    for args in (["audit", str(audited)], ["audit", str(audited), "--failures"],
                 ["audit", str(audited), "--record", read_records(audited)["record_id"][0].as_py()]):
        result = runner.invoke(app, args)   # the rich tables render
        assert result.exit_code == 0 and result.output.strip(), result.output
    assert runner.invoke(app, ["audit", str(audited), "--record", "no-such-record"]).exit_code == 1
    everything = json.dumps([run_report(audited), failures])
    assert "BROKEN-1" not in everything
