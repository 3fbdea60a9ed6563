"""Batch mode from the command line: ``tumorcot batch prepare`` / ``ingest`` rounds, the file run
the way ``vllm run-batch`` would (each line POSTed to a real local OpenAI-compatible server),
then ``tumorcot build --generator llm`` answers everything from the cache with 0 requests."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from llm_fixtures import SECRET
from llm_oracle import Oracle
from llm_server import ScriptedLLMServer
from tumorcot.case_manifest import read_case_manifest
from tumorcot.cli import app
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import extract_facts
from tumorcot.privacy import load_or_create_salt

MAX_ROUNDS = 8


def run_batch_file(server: ScriptedLLMServer, requests, results) -> int:
    """What ``vllm run-batch -i requests -o results`` does: one POST per line, one result line each."""
    lines = [json.loads(line) for line in requests.read_text().splitlines() if line.strip()]
    with httpx.Client(base_url=server.base_url, timeout=10) as http, open(results, "w") as out:
        for line in lines:
            response = http.post(line["url"].removeprefix("/v1"), json=line["body"])
            out.write(json.dumps({"id": f"batch-{line['custom_id'][:8]}", "custom_id": line["custom_id"],
                                  "response": {"status_code": response.status_code, "body": response.json()},
                                  "error": None}) + "\n")
    return len(lines)


@pytest.fixture()
def phantom(tmp_path):
    from tumorcot.imaging.phantom import write_phantom_cases

    manifest = write_phantom_cases(tmp_path / "cases", 2, seed=0, scale=4)
    salt = load_or_create_salt(tmp_path / "ds")
    facts = {f.case_id: f for f in (extract_facts(c, salt) for c in read_case_manifest(manifest))}
    return manifest, tmp_path / "ds", facts


def test_batch_rounds_then_build_makes_zero_requests(phantom, tmp_path, prefect_server, monkeypatch):
    manifest, out, facts = phantom
    runner = CliRunner()
    monkeypatch.setenv("TUMORCOT_MODEL", "scripted-model")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with ScriptedLLMServer(Oracle(facts, load_kg())) as srv:
        sent = []
        for round_no in range(MAX_ROUNDS):
            requests, results = tmp_path / f"requests-{round_no}.jsonl", tmp_path / f"results-{round_no}.jsonl"
            prepared = runner.invoke(app, ["batch", "prepare", "--manifest", str(manifest), "--out", str(out),
                                           "--requests", str(requests)])
            assert prepared.exit_code == 0, prepared.output
            if "no request left" in prepared.output:
                break
            assert srv.count == sum(sent)            # prepare itself never calls the server
            sent.append(run_batch_file(srv, requests, results))
            ingested = runner.invoke(app, ["batch", "ingest", "--out", str(out), "--results", str(results),
                                           "--requests", str(requests)])
            assert ingested.exit_code == 0 and f"stored {sent[-1]} answer(s)" in ingested.output, ingested.output
        else:
            pytest.fail(f"batch rounds did not converge in {MAX_ROUNDS}")
        assert len(sent) >= 2 and srv.count == sum(sent)   # agents depend on each other: several rounds
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        from tumorcot.flows.build import run_build
        from tumorcot.store.shards import read_records

        summary = run_build(manifest, out, generator="llm")
        assert summary["ok"] == 2 and summary["llm_calls"] == 0 and srv.count == sum(sent)
        records = read_records(out).to_pylist()
        assert records and {"cot_report"} <= {r["task"] for r in records}
        assert all(r["generator"] == "llm:scripted-model" for r in records)


def test_batch_prepare_without_a_model_fails_clearly(phantom, tmp_path, monkeypatch):
    manifest, out, _ = phantom
    monkeypatch.delenv("TUMORCOT_MODEL", raising=False)
    result = CliRunner().invoke(app, ["batch", "prepare", "--manifest", str(manifest), "--out", str(out),
                                      "--requests", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 1 and "TUMORCOT_MODEL" in result.output
    assert not (tmp_path / "r.jsonl").exists()
