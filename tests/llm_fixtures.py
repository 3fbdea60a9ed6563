"""Helpers shared by the LLM tests: a client pointed at a scripted server, run synchronously."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tumorcot.agents.cache import ResponseCache
from tumorcot.agents.client import LLMClient, LLMConfig

SECRET = "sk-test-0123456789abcdefSECRET"


def make_config(server, **overrides: Any) -> LLMConfig:
    values = dict(base_url=server.base_url, api_key=SECRET, model="scripted-model",
                  timeout_s=5.0, max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05)
    values.update(overrides)
    return LLMConfig(**values)


def run(coro):
    return asyncio.run(coro)


async def call(config: LLMConfig, schema, *, cache_dir: Path | None = None, messages=None,
               client_out: list | None = None, **kwargs):
    """One ``complete`` call on a fresh client; returns what it returns (or raises)."""
    cache = ResponseCache(cache_dir) if cache_dir else None
    async with LLMClient(config, run_id="run-test", cache=cache) as client:
        if client_out is not None:
            client_out.append(client)
        return await client.complete(
            "extractor", "agents/test.j2", "0" * 64,
            messages or [{"role": "user", "content": "give me the answer"}], schema,
            case_id="case-1", **kwargs)
