"""``--generator llm`` end to end: phantom cases -> scripted LLM -> validated shards and log shards."""

from __future__ import annotations

import pytest

from llm_fixtures import SECRET
from llm_oracle import Oracle
from llm_server import ScriptedLLMServer
from tumorcot.case_manifest import read_case_manifest
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import extract_facts
from tumorcot.privacy import load_or_create_salt


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from tumorcot.imaging.phantom import write_phantom_cases

    out = tmp_path_factory.mktemp("llm-demo")
    manifest = write_phantom_cases(out / "cases", 2, seed=0)
    salt = load_or_create_salt(out / "ds")
    facts = {f.case_id: f for f in (extract_facts(c, salt) for c in read_case_manifest(manifest))}
    return manifest, out / "ds", facts


def test_llm_build_writes_validated_shards_and_reruns_with_zero_requests(phantom, prefect_server, monkeypatch):
    from tumorcot.flows.build import run_build
    from tumorcot.store.shards import read_log, read_records
    from tumorcot.ops.validate import validate_dataset

    manifest, out, facts = phantom
    with ScriptedLLMServer(Oracle(facts, load_kg())) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("TUMORCOT_MODEL", "scripted-model")
        summary = run_build(manifest, out, generator="llm")
        first = srv.count
        assert summary["ok"] == 2 and summary["failed"] == 0 and first > 0
        assert summary["llm_calls"] == first and first / summary["records"] <= 0.5
        records = read_records(out).to_pylist()
        assert records and all(r["generator"] == "llm:scripted-model" for r in records)
        log = read_log(out).to_pylist()
        assert {"reasoner", "judge", "summarizer", "questions"} <= {r["agent"] for r in log}
        assert not any(SECRET in str(r) for r in log)
        problems, _ = validate_dataset(out)
        assert problems == []
        again = run_build(manifest, out, generator="llm", force=True)
        assert srv.count == first and again["llm_calls"] == 0   # everything from the cache
