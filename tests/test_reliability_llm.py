"""Degraded is not ok, through ``tumorcot build --generator llm``: with the endpoint down the cases
are reported degraded (exit 3), no record the LLM did not write is labelled as LLM-made, and the
next build with the endpoint back retries exactly the missing work and heals the dataset."""

from __future__ import annotations

import socket

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
from tumorcot.store.shards import read_records

pytestmark = pytest.mark.usefixtures("prefect_server")
runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_llm_outage_is_degraded_and_heals_in_one_rerun(tmp_path, monkeypatch):
    from tumorcot.imaging.phantom import write_phantom_cases

    manifest = write_phantom_cases(tmp_path / "cases", 2, seed=0)
    out = tmp_path / "ds"
    salt = load_or_create_salt(out)
    facts = {f.case_id: f for f in (extract_facts(c, salt) for c in read_case_manifest(manifest))}
    port = free_port()   # nothing listens here yet: the endpoint is down
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("TUMORCOT_MODEL", "scripted-model")
    build = ["build", "-m", str(manifest), "-o", str(out), "--generator", "llm", "--llm-attempts", "2",
             "--llm-timeout", "5"]

    down = runner.invoke(app, build)
    assert down.exit_code == 3, down.output
    assert "degraded 2" in down.output and "ok 0" in down.output
    shipped = read_records(out).to_pylist()
    assert shipped and not any(r["generator"].startswith("llm:") for r in shipped)   # nothing the LLM wrote
    assert not any(r["subtask"] == "organ_report" for r in shipped)

    with ScriptedLLMServer(Oracle(facts, load_kg()), port=port) as srv:
        healed = runner.invoke(app, build)
        assert healed.exit_code == 0, healed.output
        assert "ok 2" in healed.output and "degraded" not in healed.output.split("cases ok")[1].split("\n")[0]
        assert srv.count > 0
        records = read_records(out).to_pylist()
        assert any(r["subtask"] == "organ_report" and r["generator"] == "llm:scripted-model" for r in records)
        calls = srv.count
        again = runner.invoke(app, build)
        assert again.exit_code == 0 and "unchanged 2" in again.output and srv.count == calls
