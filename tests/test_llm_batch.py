"""Batch mode round trip: defer -> JSONL -> (server answers it) -> ingest -> 0 requests."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from llm_fixtures import make_config, run
from llm_server import Reply, ScriptedLLMServer, completion_json
from tumorcot.agents.batch import CHAT_URL, BatchWriter, ingest_results
from tumorcot.agents.cache import ResponseCache, request_key
from tumorcot.agents.client import LLMClient, RequestDeferred


class Answer(BaseModel):
    value: int


async def ask(config, cache, batch, i):
    async with LLMClient(config, cache=cache, batch=batch) as client:
        return await client.complete("reasoner", "t.j2", "h", [{"role": "user", "content": f"q{i}"}],
                                     Answer, case_id="c")


def test_batch_round_trip(tmp_path):
    cache = ResponseCache(tmp_path / "cache")
    batch = BatchWriter()
    with ScriptedLLMServer([Reply(content={"value": 1})]) as srv:
        config = make_config(srv)
        for i in range(3):
            with pytest.raises(RequestDeferred):
                run(ask(config, cache, batch, i))
        assert srv.count == 0 and len(batch) == 3
        assert batch.write(tmp_path / "in.jsonl") == 3
        lines = [json.loads(x) for x in (tmp_path / "in.jsonl").read_text().splitlines()]
        assert {x["url"] for x in lines} == {CHAT_URL} and {x["method"] for x in lines} == {"POST"}
        assert all(request_key(x["body"]) == x["custom_id"] for x in lines)

        # what the Batch API / vllm run-batch would return; line 3 failed
        out = []
        for n, x in enumerate(lines):
            ok = n < 2
            out.append({"id": f"b{n}", "custom_id": x["custom_id"], "error": None if ok else {"code": "x"},
                        "response": {"status_code": 200 if ok else 500, "request_id": str(n),
                                     "body": completion_json(Reply(content={"value": n}), "m", n)}})
        out.append({"custom_id": "../../etc", "response": {"status_code": 200, "body": {}}})
        (tmp_path / "out.jsonl").write_text("\n".join(json.dumps(x) for x in out) + "\n")
        report = ingest_results(tmp_path / "out.jsonl", cache, requests=tmp_path / "in.jsonl")
        assert (report.stored, report.failed) == (2, 2)

        answers = {}
        for i in range(3):
            try:
                answer, turns = run(ask(config, cache, None, i))
                answers[i] = (answer.value, turns[0].cached)
            except RequestDeferred:
                answers[i] = None
        assert srv.count == 1  # only the request whose batch line failed goes live
    cached = [v for v in answers.values() if v[1]]
    assert len(cached) == 2
