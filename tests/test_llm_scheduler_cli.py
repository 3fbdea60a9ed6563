"""``tumorcot build --generator llm`` at scale, through the CLI against a real local
OpenAI-compatible server: many cases in flight on one scheduler, adaptive concurrency on 429 with
Retry-After, a crash-safe response cache, 0 calls on rerun, batch and live requests alike."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from llm_fixtures import SECRET
from llm_oracle import Oracle
from llm_server import Reply, ScriptedLLMServer
from tumorcot.agents.cache import ResponseCache, request_key
from tumorcot.case_manifest import read_case_manifest
from tumorcot.cli import app
from tumorcot.knowledge_graph import load_kg
from tumorcot.ops.llm_batch import cache_dir
from tumorcot.pipeline import extract_facts
from tumorcot.privacy import load_or_create_salt

CASE = re.compile(r"^Case (\S+)\.$", re.M)


@pytest.fixture()
def phantom(tmp_path, monkeypatch):
    from tumorcot.imaging.phantom import write_phantom_cases

    monkeypatch.setenv("TUMORCOT_SALT", "scheduler-test-salt")   # same case ids in every dataset
    manifest = write_phantom_cases(tmp_path / "cases", 6, seed=3, scale=4)
    salt = load_or_create_salt(tmp_path / "ds")
    facts = {f.case_id: f for f in (extract_facts(c, salt) for c in read_case_manifest(manifest))}
    return manifest, tmp_path / "ds", facts


def use_server(monkeypatch, server: ScriptedLLMServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("TUMORCOT_MODEL", "scripted-model")


def build(manifest, out, *extra: str):
    result = CliRunner().invoke(app, ["build", "--manifest", str(manifest), "--out", str(out),
                                      "--generator", "llm", *extra])
    assert result.exit_code == 0, result.output
    return result


def case_of(body: dict) -> str | None:
    """The case a request is about (reasoner and summarizer prompts name it), else None."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    found = CASE.search(user)
    return found.group(1) if found else None


def max_cases_in_flight(server: ScriptedLLMServer) -> int:
    """The most distinct cases with a request in the server at one moment (from its records)."""
    spans = [(r.arrived, r.finished, case) for r in server.requests if (case := case_of(r.body))]
    return max(len({c for a, f, c in spans if a <= start < f}) for start, _, _ in spans)


def run_record(out) -> dict:
    return json.loads(max((out / "runs").glob("run-*.json"), key=lambda p: p.stat().st_mtime).read_text())


def test_one_case_worker_keeps_many_cases_in_flight_and_reruns_make_no_call(phantom, prefect_server, monkeypatch):
    manifest, out, facts = phantom
    # a case's agents take >= 4 rounds of 0.5 s: far longer than measuring the next phantom case
    with ScriptedLLMServer(Oracle(facts, load_kg()), latency_s=0.5) as srv:
        use_server(monkeypatch, srv)
        result = build(manifest, out, "--concurrency", "1", "--llm-concurrency", "32")
        first = srv.count
        assert first > 0 and "LLM: " in result.output and "start-up:" in result.output
        # one case worker, yet the agents of several cases were at the server together
        assert max_cases_in_flight(srv) >= 3
        assert srv.max_in_flight > 1 and srv.max_in_flight <= 32
        record = run_record(out)
        assert record["ok"] == len(facts) and record["llm"]["max_in_flight"] <= 32
        assert record["llm"]["requests"] == first == record["llm_calls"]
        assert record["llm"]["cache_writes"] == first and record["llm"]["cache_batches"] >= 1

        build(manifest, out)                               # unchanged: no case reprocessed
        build(manifest, out, "--force")                    # reprocessed: every answer from the cache
        assert srv.count == first and run_record(out)["llm_calls"] == 0


def test_429_with_retry_after_lowers_the_limit_and_pauses_sends(phantom, prefect_server, monkeypatch):
    manifest, out, facts = phantom
    oracle = Oracle(facts, load_kg())
    capacity = 3

    def script(body, number):   # a rate-limited endpoint: beyond 3 at once, 429 Retry-After: 1
        if srv.in_flight > capacity:
            return Reply(status=429, headers={"Retry-After": "1"})
        return oracle(body, number)

    with ScriptedLLMServer(script, latency_s=0.05) as srv:
        use_server(monkeypatch, srv)
        result = build(manifest, out, "--llm-concurrency", "16")
        record = run_record(out)
        assert record["ok"] == len(facts) and record["failed"] == 0, result.output
        throttled = [r for r in srv.requests if r.status == 429]
        assert throttled and record["llm"]["throttled"] == len(throttled)
        assert record["llm"]["min_limit"] <= 8 and record["llm"]["decreases"] >= 1
        for refused in throttled:   # the same request again, no earlier than Retry-After
            again = [r for r in srv.requests if r.number > refused.number and r.body == refused.body]
            assert again and again[0].arrived - refused.finished >= 1.0
        assert "throttled (429)" in result.output


def test_a_truncated_cache_segment_costs_only_its_lost_answers(phantom, prefect_server, monkeypatch):
    manifest, out, facts = phantom
    with ScriptedLLMServer(Oracle(facts, load_kg())) as srv:
        use_server(monkeypatch, srv)
        build(manifest, out)
        first = srv.count
        folder = cache_dir(out)
        stored = len(ResponseCache(folder))
        segment = max((folder / "segments").glob("*.seg"), key=lambda p: p.stat().st_size)
        data = segment.read_bytes()
        segment.write_bytes(data[:-40])             # a crash while the last batch was written
        (folder / "segments" / "torn.seg").write_bytes(data[:100])   # and a torn copy of its start
        left = len(ResponseCache(folder))
        assert left == stored - 1

        build(manifest, out, "--force")              # not fatal: the lost answer is asked again
        assert srv.count == first + 1 and run_record(out)["ok"] == len(facts)
        build(manifest, out, "--force")
        assert srv.count == first + 1


def test_batch_prepare_and_live_build_send_the_same_requests(phantom, tmp_path, prefect_server, monkeypatch):
    manifest, out, facts = phantom
    monkeypatch.setenv("TUMORCOT_MODEL", "scripted-model")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    requests = tmp_path / "requests.jsonl"
    prepared = CliRunner().invoke(app, ["batch", "prepare", "--manifest", str(manifest), "--out", str(out),
                                        "--requests", str(requests)])
    assert prepared.exit_code == 0, prepared.output
    lines = [json.loads(x) for x in requests.read_text().splitlines()]
    batch = {line["custom_id"]: line["body"] for line in lines}
    assert batch and all(request_key(body) == key for key, body in batch.items())

    with ScriptedLLMServer(Oracle(facts, load_kg())) as srv:   # a fresh dataset, live
        use_server(monkeypatch, srv)
        build(manifest, tmp_path / "live")
        live = {request_key(r.body): r.body for r in srv.requests}
    assert set(batch) <= set(live)                 # every batch line is a request the live run sent
    assert all(live[key] == body for key, body in batch.items())


def test_dask_workers_share_out_the_build_wide_limit(phantom, tmp_path, prefect_server):
    """``--task-runner dask``: each local worker process runs its own scheduler with its share of
    ``--llm-concurrency``; the endpoint never sees more than the build-wide limit at once."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prefect.settings import PREFECT_API_URL

    manifest, _, facts = phantom
    with ScriptedLLMServer(Oracle(facts, load_kg()), latency_s=0.2) as srv:
        env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), OPENAI_BASE_URL=srv.base_url,
                   OPENAI_API_KEY=SECRET, TUMORCOT_MODEL="scripted-model",
                   PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        done = subprocess.run([str(Path(sys.executable).parent / "tumorcot"), "build", "-m", str(manifest),
                               "-o", str(tmp_path / "dask"), "--generator", "llm", "--task-runner", "dask",
                               "--concurrency", "2", "--llm-concurrency", "4"],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert run_record(tmp_path / "dask")["ok"] == len(facts)
        assert 1 < srv.max_in_flight <= 4 and srv.count > 0


def test_measurement_in_worker_processes_gives_the_same_records(tmp_path, prefect_server, monkeypatch):
    """A threads build of >= POOLED_CASES cases measures and runs its last gate in worker processes
    (``flows/measure_pool.py``); the records are those of a build that does both in its own threads."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prefect.settings import PREFECT_API_URL

    from tumorcot.flows.measure_pool import POOLED_CASES
    from tumorcot.imaging.phantom import write_phantom_cases
    from tumorcot.store.shards import read_records

    monkeypatch.setenv("TUMORCOT_SALT", "pool-test-salt")
    manifest = write_phantom_cases(tmp_path / "cases", POOLED_CASES, seed=5, scale=4)
    salt = load_or_create_salt(tmp_path / "first")
    facts = {f.case_id: f for f in (extract_facts(c, salt) for c in read_case_manifest(manifest))}
    built = {}
    with ScriptedLLMServer(Oracle(facts, load_kg())) as srv:
        for name, processes in (("pooled", "2"), ("threads", "0")):
            env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), OPENAI_BASE_URL=srv.base_url,
                       OPENAI_API_KEY=SECRET, TUMORCOT_MODEL="scripted-model", TUMORCOT_MEASURE_PROCESSES=processes,
                       PYTHONPATH=str(Path(__file__).resolve().parents[1]))
            done = subprocess.run([str(Path(sys.executable).parent / "tumorcot"), "build", "-m", str(manifest),
                                   "-o", str(tmp_path / name), "--generator", "llm"],
                                  env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stdout + done.stderr
            record = run_record(tmp_path / name)
            assert record["ok"] == POOLED_CASES
            assert record["llm"]["worker_processes"] == int(processes)
            assert ("worker processes" in done.stdout) == (processes != "0")
            table = read_records(tmp_path / name).to_pylist()
            built[name] = sorted((r["record_id"], r["question"], r["think"], r["answer"]) for r in table)
    assert built["pooled"] and built["pooled"] == built["threads"]


def test_a_bad_measurement_process_count_is_refused_before_start_up(phantom, monkeypatch):
    manifest, out, _ = phantom
    monkeypatch.setenv("TUMORCOT_MEASURE_PROCESSES", "two")
    with ScriptedLLMServer(Oracle({}, load_kg())) as srv:
        use_server(monkeypatch, srv)
        result = CliRunner().invoke(app, ["build", "--manifest", str(manifest), "--out", str(out), "--generator", "llm"])
    assert result.exit_code != 0 and "TUMORCOT_MEASURE_PROCESSES" in result.output and srv.count == 0
