"""Issue 11 against a local OpenAI-compatible server: each kind of injected wrong claim, in each
agent's answer that can carry it, never reaches a record; faithful answers in varied phrasing
(slots, "segment 8", a Unicode minus, "1,369 mL", "HU below the organ mean") are never rejected;
and the same through ``tumorcot build --generator llm``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llm_fixtures import SECRET
from llm_oracle import KINDS, Injector, Oracle, shipped
from llm_server import ScriptedLLMServer
from test_claims import facts_with_places
from test_llm_agents import KG, generate


def test_faithful_varied_answers_are_never_rejected():
    facts = facts_with_places()
    result, _ = generate(facts, Oracle(facts, KG, phrasing="varied"))
    assert not result.failed
    assert [t.reasons for t in result.log if t.verdict in ("rejected", "failed")] == []
    text = json.dumps([r.model_dump() for r in result.records], ensure_ascii=False)
    for phrase in ("segment 8", "(difference \u2212", "1,369 mL", "40.0 HU below the organ mean",
                   "The pathology report's malignant",
                   "On this CT, "):
        assert phrase in text, phrase
    judge = next(t for t in result.log if t.agent == "judge" and t.messages_json)
    assert "lesion:L1.long_axis_mm = 34.0 mm" in judge.messages_json   # the judge sees values and bindings


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_injected_kind_is_kept_out(kind):
    facts = facts_with_places()
    injector = Injector(1.0, kinds=(kind,), limit=2)   # the first two answers of each agent err
    result, _ = generate(facts, Oracle(facts, KG, injector, phrasing="varied"))
    assert {a for a, k, _ in injector.injected} == set(KINDS[kind])   # every agent that can carry it did
    assert shipped(injector, [r.model_dump() for r in result.records]) == []
    rejected = [r for t in result.log if t.verdict in ("rejected", "failed") for r in t.reasons]
    assert rejected or kind == "question_presupposition"   # a bad rewording keeps the original question
    if kind == "question_presupposition":
        assert not any("ill-defined lesion" in r.question for r in result.records)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.imaging.phantom import write_phantom_cases
    from tumorcot.pipeline import extract_facts
    from tumorcot.privacy import load_or_create_salt

    out = tmp_path_factory.mktemp("claims-cli")
    manifest = write_phantom_cases(out / "cases", 2, seed=3)
    facts = {}
    for name in ("clean", "half"):   # each dataset has its own salt, so its own case ids
        salt = load_or_create_salt(out / name)
        facts.update({f.case_id: f for f in (extract_facts(c, salt) for c in read_case_manifest(manifest))})
    return manifest, out, facts


def cli_build(manifest, out, facts, injector, monkeypatch):
    from tumorcot.cli import app
    from tumorcot.store.shards import read_log, read_records

    with ScriptedLLMServer(Oracle(facts, KG, injector, phrasing="varied")) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("TUMORCOT_MODEL", "scripted-model")
        # every record (--mix off): the family mix re-samples what the gate lets through, so
        # "an injected build ships no more than the clean one" holds only before sampling
        result = CliRunner().invoke(app, ["build", "--manifest", str(manifest), "--out", str(out),
                                          "--generator", "llm", "--mix", "off"])
    assert result.exit_code == 0, result.output
    return read_records(out).to_pylist(), read_log(out).to_pylist()


def test_cli_build_at_half_injection_ships_no_injected_claim(phantom, prefect_server, monkeypatch):
    from tumorcot.ops.audit import run_report

    manifest, out, facts = phantom
    clean, log = cli_build(manifest, out / "clean", facts, Injector(0.0), monkeypatch)
    assert clean and [(r["agent"], r["error"], r["reasons"]) for r in log if r["verdict"] in ("rejected", "failed")] == []
    injector = Injector(0.5, seed=1)
    records, log = cli_build(manifest, out / "half", facts, injector, monkeypatch)
    assert len(injector.injected) >= 5 and shipped(injector, records) == []
    assert records and len(records) <= len(clean)
    report = run_report(out / "half")
    counted = {(r["agent"], r["reason"]) for run in report["runs"] for r in run["rejections"]}
    assert counted and all(not reason.startswith("step") for _, reason in counted)   # counted by reason code
    assert {a for a, _, _ in injector.injected} <= {a for a, _ in counted}          # and by the agent that erred
