"""The LLM client: every call an agent makes goes through ``LLMClient.complete``.

Guarantees:

- HTTP goes through the client of one ``openai.AsyncOpenAI`` (the SDK's aiohttp transport),
  with the SDK's base URL and headers, as a prebuilt ``POST /chat/completions``.
- Requests in flight are bounded by one ``AdaptiveLimit`` (``LLMConfig.concurrency`` at most;
  ``agents/limiter.py``), held only while a request is in flight, never while backing off. The
  scheduler shares one client, hence one limit, between every case of a build process. A 429
  halves the limit and its ``Retry-After`` pauses every new send; successes grow it back.
- Retries happen here only (the SDK's are off). Transport failures (429, 408, 409, 5xx,
  timeouts, connection errors) are retried up to ``max_attempts`` times with exponential backoff
  and equal jitter; a ``Retry-After`` / ``retry-after-ms`` header (seconds or HTTP date) is
  honoured, capped at ``retry_after_max_s``. Each request has its own timeout (``timeout_s``).
- Output is requested as ``json_schema`` (strict). A server that rejects that with a 400 is
  asked again in ``json_object`` mode with the schema in a system message, and the client stays
  in that mode. Malformed or schema-violating JSON gets ``repair_turns`` repair turns quoting the
  validation error; ``finish_reason == "length"`` gets one retry with twice the token budget; a
  refusal or an empty reply is retried like a transport fault (backoff, up to ``max_attempts``). Exhausting any of these raises ``LLMCallError``
  (an ``LLMOutputError``) that carries every turn.
- Every HTTP attempt, failed or not, and every cache hit yields one ``AgentTurn``. The API key is
  never part of a turn (and is scrubbed from error texts as a second line of defence).
- Accepted answers are cached under the key of the *first* request of the exchange, so a rerun
  makes 0 requests even where the first answer needed a repair turn.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, TypeVar

import aiohttp
import httpx2
import openai
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tumorcot.agents.cache import ResponseCache, request_key
from tumorcot.agents.limiter import AdaptiveLimit
from tumorcot.agents.structured import (OutputInvalid, json_mode_instruction, json_schema_format,
                                        parse_output, repair_message)
from tumorcot.errors import LLMOutputError
from tumorcot.schemas import AgentTurn

M = TypeVar("M", bound=BaseModel)

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class LLMConfig(BaseModel):
    """Endpoint, model and call policy. ``api_key`` is a ``SecretStr``: it prints as ``**********``."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    api_key: SecretStr = SecretStr("")
    model: str = ""
    agent_models: dict[str, str] = Field(default_factory=dict, description="agent -> model")
    concurrency: int = Field(16, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1, description="HTTP attempts per request")
    repair_turns: int = Field(1, ge=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    retry_after_max_s: float = Field(120.0, ge=0)
    temperature: float = 0.2
    seed: int | None = 0
    max_tokens: int = Field(2048, ge=1)
    cache_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "LLMConfig":
        """From ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``TUMORCOT_MODEL``,
        ``TUMORCOT_MODEL_<AGENT>`` (e.g. ``TUMORCOT_MODEL_CALIBRATOR``), ``TUMORCOT_LLM_TIMEOUT_S``
        (per request) and ``TUMORCOT_LLM_MAX_ATTEMPTS`` (per request: faults, refusals, empty
        replies); ``overrides`` win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if env.get("OPENAI_BASE_URL"):
            values["base_url"] = env["OPENAI_BASE_URL"]
        if env.get("OPENAI_API_KEY"):
            values["api_key"] = SecretStr(env["OPENAI_API_KEY"])
        if env.get("TUMORCOT_MODEL"):
            values["model"] = env["TUMORCOT_MODEL"]
        values["agent_models"] = {k[len("TUMORCOT_MODEL_"):].lower(): v for k, v in env.items()
                                  if k.startswith("TUMORCOT_MODEL_") and v}
        for variable, name in (("TUMORCOT_LLM_TIMEOUT_S", "timeout_s"), ("TUMORCOT_LLM_MAX_ATTEMPTS", "max_attempts")):
            if env.get(variable):
                values[name] = env[variable]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def configured(self) -> bool:
        """True when an endpoint and a model are known (the key may be empty for local servers)."""
        return bool(self.base_url and self.model)

    def model_for(self, agent: str) -> str:
        return self.agent_models.get(agent.lower(), self.model)

    def generation_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "seed": self.seed, "max_tokens": self.max_tokens}


class AgentUsage(BaseModel):
    """Token accounting of one agent within one client's life."""

    requests: int = 0
    cached: int = 0
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMCallError(LLMOutputError):
    """``complete`` gave up; ``turns`` holds every attempt for the generation log."""

    def __init__(self, message: str, *, case: str | None, turns: list[AgentTurn]):
        self.turns = turns
        super().__init__(message, case=case)


class _SchemaRejected(Exception):
    """The server answered 400 to a ``json_schema`` request: switch to ``json_object`` mode."""


class RequestDeferred(Exception):
    """Batch mode: the request was queued for the Batch API instead of being sent."""

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"request {key[:12]} deferred to the batch file")


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (delta-seconds or HTTP date)."""
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class LLMClient:
    """Async, cached, retrying structured-output client over ``openai.AsyncOpenAI``.

    ``batch`` (a ``BatchWriter``) switches to batch mode: cache misses are queued and raise
    ``RequestDeferred`` instead of being sent. A cache the client opens itself (from
    ``config.cache_dir``) is closed with it; a cache passed in is only flushed.
    """

    def __init__(self, config: LLMConfig, *, run_id: str = "", cache: ResponseCache | None = None,
                 batch: Any | None = None, rng: random.Random | None = None):
        self.config = config
        self.run_id = run_id
        self._owns_cache = cache is None and config.cache_dir is not None
        self.cache = cache if cache is not None else (
            ResponseCache(config.cache_dir) if config.cache_dir else None)
        self.batch = batch
        self.usage: dict[str, AgentUsage] = defaultdict(AgentUsage)
        self.json_schema_supported = True
        self._rng = rng or random.Random()
        self.limit = AdaptiveLimit(config.concurrency)
        self._secret = config.api_key.get_secret_value()
        # The SDK owns the endpoint (base URL, auth and client headers) and the HTTP client, on
        # its aiohttp transport: httpcore2's pool and h11 framing led the profile at C = 64. Its
        # per-call pipeline (options model, copies, URL merge, header rebuild: ~40 % of the CPU
        # per request, benchmarks/bench_llm.py) is skipped: ``_post`` sends a prebuilt request.
        self._http = openai.DefaultAioHttpClient(timeout=config.timeout_s)
        self._sdk = openai.AsyncOpenAI(base_url=config.base_url, api_key=self._secret or "EMPTY",
                                       max_retries=0, timeout=config.timeout_s,
                                       http_client=self._http)
        self._url = httpx2.URL(str(self._sdk.base_url).rstrip("/") + "/chat/completions")
        self._headers: httpx2.Headers | None = None
        self._timeout = httpx2.Timeout(config.timeout_s).as_dict()

    async def aclose(self) -> None:
        await self._sdk.close()
        if self.cache is not None:   # the writer thread does the I/O; do not block the loop on it
            await asyncio.to_thread(self.cache.close if self._owns_cache else self.cache.flush)

    async def __aenter__(self) -> "LLMClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- public -----------------------------------------------------------------------------

    def request_body(self, agent: str, messages: list[dict[str, Any]], schema: type[BaseModel],
                     *, max_tokens: int | None = None) -> dict[str, Any]:
        """The ``/v1/chat/completions`` body of the first request for these messages."""
        return {"model": self.config.model_for(agent), "messages": list(messages),
                **self.config.generation_params(),
                **({"max_tokens": max_tokens} if max_tokens else {}),
                "response_format": json_schema_format(schema)}

    async def complete(self, agent: str, template: str, template_sha256: str,
                       messages: list[dict[str, Any]], schema: type[M], *, case_id: str,
                       record_id: str | None = None, bypass_cache: bool = False,
                       ) -> tuple[M, list[AgentTurn]]:
        """One validated ``schema`` object for ``messages``, and the log rows of the exchange."""
        body = self.request_body(agent, messages, schema)
        # The key (a canonical dump and a hash of the whole body) only serves the cache and batch.
        key = request_key(body) if self.cache is not None or self.batch is not None else ""
        base = dict(run_id=self.run_id, case_id=case_id, record_id=record_id, agent=agent,
                    template=template, template_sha256=template_sha256, model=body["model"])
        turns: list[AgentTurn] = []
        if self.cache is not None and not bypass_cache and (hit := self.cache.get(key)):
            turn = self._turn(base, body, 1, cached=True, response=hit["response"])
            try:
                parsed = parse_output(_content(hit["response"]) or "", schema)
            except OutputInvalid as exc:
                turn.error = f"cached answer no longer parses: {exc}"
                turns.append(turn)
            else:
                turn.parsed_json = parsed.model_dump_json()
                self.usage[agent].cached += 1
                return parsed, [turn]
        if self.batch is not None:
            self.batch.add(key, body)
            raise RequestDeferred(key)
        return await self._exchange(agent, body, key, schema, base, turns)

    # -- machinery ---------------------------------------------------------------------------

    async def _exchange(self, agent: str, body: dict[str, Any], key: str, schema: type[M],
                        base: dict[str, Any], turns: list[AgentTurn]) -> tuple[M, list[AgentTurn]]:
        conversation = list(body["messages"])
        max_tokens = body["max_tokens"]
        repairs = length_retries = soft_faults = 0
        while True:
            request = self._wire_body(body, conversation, max_tokens, schema)
            try:
                response, turn = await self._send(agent, request, base, turns)
            except _SchemaRejected:
                continue
            choice = (response.get("choices") or [{}])[0]
            message = choice.get("message") or {}
            content = message.get("content")
            if message.get("refusal") or not content or not content.strip():
                turn.error = f"refusal: {message['refusal']}" if message.get("refusal") else "empty reply"
                soft_faults += 1
                if soft_faults >= self.config.max_attempts:
                    raise self._fail(f"{agent}: {turn.error} ({soft_faults} attempts)", base, turns)
                await asyncio.sleep(min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** soft_faults))
                continue
            if choice.get("finish_reason") == "length":
                turn.error = f"truncated at max_tokens={max_tokens}"
                if length_retries >= 1:
                    raise self._fail(f"{agent}: reply truncated twice", base, turns)
                length_retries += 1
                max_tokens *= 2
                continue
            try:
                parsed = parse_output(content, schema)
            except OutputInvalid as exc:
                turn.error = str(exc)
                if repairs >= self.config.repair_turns:
                    raise self._fail(f"{agent}: invalid output after {repairs} repair turn(s): {exc}",
                                     base, turns) from None
                repairs += 1
                conversation += [{"role": "assistant", "content": content}, repair_message(str(exc))]
                continue
            turn.parsed_json = parsed.model_dump_json()
            if self.cache is not None:
                self.cache.put(key, body, response, agent=agent, attempts=len(turns))
            return parsed, turns

    def _wire_body(self, body: dict[str, Any], conversation: list[dict[str, Any]], max_tokens: int,
                   schema: type[BaseModel]) -> dict[str, Any]:
        request = {**body, "messages": conversation, "max_tokens": max_tokens}
        if not self.json_schema_supported:
            request["response_format"] = {"type": "json_object"}
            request["messages"] = [{"role": "system", "content": json_mode_instruction(schema)},
                                   *conversation]
        return request

    async def _send(self, agent: str, request: dict[str, Any], base: dict[str, Any],
                    turns: list[AgentTurn]) -> tuple[dict[str, Any], AgentTurn]:
        """POST with transport retries; returns the completion dict and its (last) turn."""
        usage = self.usage[agent]
        http_attempt = 0
        while True:
            http_attempt += 1
            turn = self._turn(base, request, len(turns) + 1)
            turns.append(turn)
            started = time.perf_counter()
            try:
                ticket, raw = await self.limit.acquire(), None
                try:
                    started = time.perf_counter()  # latency excludes the wait for a slot
                    raw = await self._post(request)
                finally:
                    if raw is not None and raw.status_code == 429:   # pause before the slot is free
                        delay = retry_after_s(raw.headers)
                        self.limit.throttled(ticket, None if delay is None
                                             else min(delay, self.config.retry_after_max_s))
                    self.limit.release()
                text = raw.text
                if raw.status_code < 400:
                    response = json.loads(text)
            except (httpx2.RequestError, aiohttp.ClientError, ValueError) as exc:
                turn.latency_ms = (time.perf_counter() - started) * 1000
                turn.error = self._scrub(_describe(exc))
                usage.failed_requests += 1
                if http_attempt >= self.config.max_attempts:
                    raise self._fail(f"{agent}: {turn.error}", base, turns) from None
                await asyncio.sleep(self._backoff(http_attempt))
                continue
            if raw.status_code >= 400:
                status = raw.status_code
                turn.latency_ms = (time.perf_counter() - started) * 1000
                turn.error = self._scrub(f"HTTP {status}: {_error_message(text)}")
                turn.raw_response = self._scrub(text[:4000])
                usage.failed_requests += 1
                if status == 400 and request["response_format"]["type"] == "json_schema":
                    self.json_schema_supported = False
                    raise _SchemaRejected()
                if status not in RETRYABLE_STATUS or http_attempt >= self.config.max_attempts:
                    raise self._fail(f"{agent}: {turn.error}", base, turns)
                delay = retry_after_s(raw.headers)
                await asyncio.sleep(self._backoff(http_attempt) if delay is None
                                    else min(delay, self.config.retry_after_max_s))
                continue
            turn.latency_ms = (time.perf_counter() - started) * 1000
            turn.raw_response = text
            self.limit.succeeded()
            tokens = response.get("usage") or {}
            turn.prompt_tokens = int(tokens.get("prompt_tokens") or 0)
            turn.completion_tokens = int(tokens.get("completion_tokens") or 0)
            usage.requests += 1
            usage.prompt_tokens += turn.prompt_tokens
            usage.completion_tokens += turn.completion_tokens
            return response, turn

    async def _post(self, request: dict[str, Any]) -> httpx2.Response:
        """One ``POST /chat/completions`` on the SDK's client, with the SDK's headers."""
        if self._headers is None:  # read inside the loop: the SDK names the async library
            self._headers = httpx2.Headers({
                k: v for k, v in {**self._sdk.default_headers, **self._sdk.auth_headers}.items()
                if isinstance(v, str)})  # drops the SDK's ``Omit`` markers
        content = json.dumps(request, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return await self._http.send(httpx2.Request(
            "POST", self._url, headers=self._headers, content=content.encode(),
            extensions={"timeout": self._timeout}))

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _turn(self, base: dict[str, Any], request: dict[str, Any], attempt: int, *,
              cached: bool = False, response: dict[str, Any] | None = None) -> AgentTurn:
        params = {k: request.get(k) for k in ("temperature", "seed", "max_tokens")}
        fmt = request.get("response_format") or {}
        params["response_format"] = fmt.get("type")
        params["schema"] = (fmt.get("json_schema") or {}).get("name")
        return AgentTurn(**base, params_json=json.dumps(params, sort_keys=True),
                         messages_json=self._scrub(json.dumps(request["messages"], ensure_ascii=False)),
                         raw_response=json.dumps(response, ensure_ascii=False) if response else None,
                         attempt=attempt, cached=cached, timestamp=_now())

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text

    def _fail(self, message: str, base: dict[str, Any], turns: list[AgentTurn]) -> LLMCallError:
        return LLMCallError(self._scrub(message), case=base["case_id"], turns=turns)


def _describe(exc: BaseException) -> str:
    """``Type: message``, plus the innermost cause: the SDK's aiohttp adapter maps every
    connection error, a refused connection included, to an httpx2 ``ConnectTimeout``."""
    text = f"{type(exc).__name__}: {exc}"
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    return text if root is exc else f"{text} ({type(root).__name__}: {root})"


def _error_message(text: str) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the start of the body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "(empty body)"
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    return str(message) if message else json.dumps(body, ensure_ascii=False)[:300]


def _content(response: dict[str, Any]) -> str | None:
    choices = response.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content")
