"""LLMClient through the real openai SDK against a real local HTTP server."""

from __future__ import annotations

import json
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import BaseModel

from llm_fixtures import SECRET, call, make_config, run
from llm_server import Reply, ScriptedLLMServer
from tumorcot.agents.client import LLMCallError, LLMConfig, retry_after_s
from tumorcot.agents.structured import strict_schema
from tumorcot.errors import LLMOutputError


class Answer(BaseModel):
    size_mm: float
    side: str | None = None
    tags: list[str] = []


GOOD = {"size_mm": 23.5, "side": "left", "tags": ["a"]}


def test_happy_path_sends_strict_json_schema_and_logs_one_turn():
    with ScriptedLLMServer([Reply(content=GOOD, prompt_tokens=40, completion_tokens=9)]) as srv:
        clients = []
        answer, turns = run(call(make_config(srv), Answer, client_out=clients))
    assert answer == Answer(**GOOD)
    assert srv.count == 1
    fmt = srv.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["required"] == ["size_mm", "side", "tags"]
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    assert [t.attempt for t in turns] == [1] and turns[0].error is None
    assert json.loads(turns[0].parsed_json) == GOOD
    assert (turns[0].prompt_tokens, turns[0].completion_tokens) == (40, 9)
    usage = clients[0].usage["extractor"]
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens) == (1, 40, 9)


@pytest.mark.parametrize("header", [
    {"Retry-After": "0.6"},                                  # delta-seconds
    {"retry-after-ms": "600"},                               # OpenAI's millisecond variant
])
def test_429_waits_for_retry_after(header):
    script = [Reply(status=429, headers=header), Reply(content=GOOD)]
    with ScriptedLLMServer(script) as srv:
        answer, turns = run(call(make_config(srv), Answer))
    assert answer.size_mm == 23.5
    gap = srv.requests[1].arrived - srv.requests[0].arrived
    assert gap >= 0.55, gap  # backoff alone would be <= 0.05 s
    assert "HTTP 429" in turns[0].error and turns[1].error is None


def test_retry_after_http_date():
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 <= retry_after_s({"retry-after": format_datetime(when, usegmt=True)}) <= 30.5
    assert retry_after_s({"retry-after": "garbage"}) is None
    assert retry_after_s({}) is None


def test_500_then_success():
    with ScriptedLLMServer([Reply(status=500), Reply(status=503), Reply(content=GOOD)]) as srv:
        answer, turns = run(call(make_config(srv), Answer))
    assert srv.count == 3 and [t.attempt for t in turns] == [1, 2, 3]
    assert turns[0].error.startswith("HTTP 500") and turns[1].error.startswith("HTTP 503")


def test_timeout_then_success():
    with ScriptedLLMServer([Reply(content=GOOD, delay_s=2.0), Reply(content=GOOD)]) as srv:
        answer, turns = run(call(make_config(srv, timeout_s=0.4), Answer))
    assert answer.size_mm == 23.5 and srv.count == 2
    assert "Timeout" in turns[0].error and turns[0].latency_ms < 1500


def test_persistent_5xx_fails_with_every_attempt_logged():
    with ScriptedLLMServer([Reply(status=502)]) as srv:
        with pytest.raises(LLMCallError) as info:
            run(call(make_config(srv, max_attempts=3), Answer))
    assert srv.count == 3 and len(info.value.turns) == 3
    assert info.value.case == "case-1"


def test_non_retryable_4xx_fails_at_once():
    with ScriptedLLMServer([Reply(status=404)]) as srv:
        with pytest.raises(LLMOutputError):
            run(call(make_config(srv), Answer))
    assert srv.count == 1


@pytest.mark.parametrize("bad", [
    '{"size_mm": 23.5, "side": "left", ',            # malformed JSON
    '{"size_mm": "big", "side": "left", "tags": []}',  # violates the schema
    'Sure! Here is the JSON you asked for.',          # prose
])
def test_invalid_output_gets_one_repair_turn_quoting_the_error(bad):
    with ScriptedLLMServer([Reply(content=bad), Reply(content=GOOD)]) as srv:
        answer, turns = run(call(make_config(srv), Answer))
    assert answer == Answer(**GOOD) and srv.count == 2
    repair = srv.requests[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": bad}
    assert "rejected" in repair[-1]["content"] and turns[0].error in repair[-1]["content"]


def test_fenced_json_is_accepted():
    with ScriptedLLMServer([Reply(content="```json\n" + json.dumps(GOOD) + "\n```")]) as srv:
        answer, _ = run(call(make_config(srv), Answer))
    assert answer.side == "left"


def test_persistent_garbage_raises_with_every_attempt_logged():
    with ScriptedLLMServer([Reply(content="not json at all")]) as srv:
        with pytest.raises(LLMCallError) as info:
            run(call(make_config(srv), Answer))
    turns = info.value.turns
    assert srv.count == 2 and [t.attempt for t in turns] == [1, 2]
    assert all(t.error and t.raw_response for t in turns)


def test_length_retries_once_with_a_bigger_budget_then_fails():
    with ScriptedLLMServer([Reply(content='{"size', finish_reason="length"), Reply(content=GOOD)]) as srv:
        answer, turns = run(call(make_config(srv, max_tokens=100), Answer))
    assert [r.body["max_tokens"] for r in srv.requests] == [100, 200]
    assert "truncated" in turns[0].error
    with ScriptedLLMServer([Reply(content='{"size', finish_reason="length")]) as srv:
        with pytest.raises(LLMCallError, match="truncated"):
            run(call(make_config(srv), Answer))
    assert srv.count == 2


@pytest.mark.parametrize("reply", [
    Reply(content=None, refusal="I can't help with that."),   # explicit refusal
    Reply(content=""),                                         # empty content
])
def test_refusal_is_retried_like_a_fault_then_given_up(reply):
    with ScriptedLLMServer([reply]) as srv:   # the same reply to every attempt
        with pytest.raises(LLMCallError) as info:
            run(call(make_config(srv), Answer))
    assert srv.count == make_config(srv).max_attempts and all(t.error for t in info.value.turns)


def test_a_refusal_then_an_answer_succeeds():
    with ScriptedLLMServer([Reply(content=None, refusal="I can't help with that."), Reply(content=GOOD)]) as srv:
        answer, turns = run(call(make_config(srv), Answer))
    assert srv.count == 2 and answer.size_mm == GOOD["size_mm"]


def test_json_schema_rejected_falls_back_to_json_object_mode():
    def script(body, n):
        if body["response_format"]["type"] == "json_schema":
            return Reply(status=400, error_body={"error": {"message": "response_format unsupported"}})
        return Reply(content=GOOD)

    with ScriptedLLMServer(script) as srv:
        answer, turns = run(call(make_config(srv), Answer))
    assert answer.size_mm == 23.5 and srv.count == 2
    second = srv.requests[1].body
    assert second["response_format"] == {"type": "json_object"}
    assert second["messages"][0]["role"] == "system" and "JSON schema" in second["messages"][0]["content"]


def test_cache_hit_makes_no_request(tmp_path):
    with ScriptedLLMServer([Reply(content="garbage"), Reply(content=GOOD)]) as srv:
        first, _ = run(call(make_config(srv), Answer, cache_dir=tmp_path))
        assert srv.count == 2
        second, turns = run(call(make_config(srv), Answer, cache_dir=tmp_path))
        assert srv.count == 2  # the repaired exchange is cached under its first request
        assert second == first and len(turns) == 1 and turns[0].cached
        run(call(make_config(srv), Answer, cache_dir=tmp_path, bypass_cache=True))
        assert srv.count == 3
        run(call(make_config(srv, temperature=0.9), Answer, cache_dir=tmp_path))
        assert srv.count == 4  # generation parameters are part of the key


def test_concurrency_is_bounded():
    import asyncio

    from tumorcot.agents.client import LLMClient

    async def many(config):
        async with LLMClient(config) as client:
            return await asyncio.gather(*(client.complete(
                "x", "t", "h", [{"role": "user", "content": str(i)}], Answer, case_id="c")
                for i in range(12)))

    with ScriptedLLMServer(lambda body, n: Reply(content=GOOD, delay_s=0.2)) as srv:
        run(many(make_config(srv, concurrency=3)))
    arrivals = sorted(r.arrived for r in srv.requests)
    assert srv.count == 12
    assert arrivals[3] - arrivals[0] >= 0.15  # the 4th waits for a slot


def test_api_key_never_reaches_the_log(tmp_path):
    script = [Reply(status=429, headers={"Retry-After": "0"}), Reply(content="{bad"),
              Reply(content=GOOD)]
    with ScriptedLLMServer(script) as srv:
        config = make_config(srv)
        _, turns = run(call(config, Answer, cache_dir=tmp_path))
        _, cached = run(call(config, Answer, cache_dir=tmp_path))
        assert srv.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    dumped = "".join(t.model_dump_json() for t in turns + cached)
    assert SECRET not in dumped and len(turns) == 3
    assert SECRET not in "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert SECRET not in repr(config) and SECRET not in config.model_dump_json()


def test_config_from_env():
    env = {"OPENAI_BASE_URL": "http://x/v1", "OPENAI_API_KEY": SECRET, "TUMORCOT_MODEL": "m",
           "TUMORCOT_MODEL_CALIBRATOR": "judge"}
    config = LLMConfig.from_env(env, concurrency=8)
    assert config.configured and config.concurrency == 8
    assert config.model_for("calibrator") == "judge" and config.model_for("reasoner") == "m"
    assert config.api_key.get_secret_value() == SECRET
    assert not LLMConfig.from_env({}).configured


def test_strict_schema_nested_models_close_every_object():
    class Inner(BaseModel):
        a: int
        b: str = "x"

    class Outer(BaseModel):
        inner: Inner
        items: list[Inner] = []

    schema = strict_schema(Outer)
    inner = schema["$defs"]["Inner"]
    assert inner["required"] == ["a", "b"] and inner["additionalProperties"] is False
    assert "default" not in json.dumps(schema)
