"""LLM stage throughput: achieved requests/s against the ideal C / L (prints ratios).

A fixed-latency OpenAI-compatible server (``tests/llm_server.py``, asyncio, no capacity limit)
runs in a subprocess so it does not share the client's interpreter lock. ``LLMClient`` sends
``--requests`` distinct structured-output requests at concurrency ``C``; with latency ``L`` the
ideal rate is C / L. Target: ratio >= 0.9.

    PYTHONPATH=. python benchmarks/bench_llm.py [--concurrency 64] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel

from tumorcot.agents.client import LLMClient, LLMConfig

ROOT = Path(__file__).resolve().parents[1]


class Ok(BaseModel):
    ok: bool


async def drive(base_url: str, concurrency: int, requests: int) -> float:
    config = LLMConfig(base_url=base_url, api_key="bench", model="bench", concurrency=concurrency,
                       timeout_s=30, max_attempts=1)
    async with LLMClient(config, run_id="bench") as client:
        async def one(i: int) -> None:
            await client.complete("bench", "bench", "0", [{"role": "user", "content": str(i)}], Ok,
                                  case_id="bench")

        await asyncio.gather(*(one(i) for i in range(concurrency)))  # warm the connection pool
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(concurrency, concurrency + requests)))
        return time.perf_counter() - started


def amortisation() -> None:
    """Calls and tokens per emitted record of the multi-agent generator on the unit-test case."""
    sys.path.insert(0, str(ROOT / "tests"))
    from factories import case_facts
    from llm_oracle import Oracle
    from llm_server import ScriptedLLMServer

    from tumorcot.agents.llm import LLMGenerator, summary_line
    from tumorcot.knowledge_graph import load_kg

    facts, kg = case_facts(), load_kg()
    with ScriptedLLMServer(Oracle(facts, kg)) as server:
        config = LLMConfig(base_url=server.base_url, api_key="bench", model="bench")
        generator = LLMGenerator(kg, config)
        generator.generate(facts)
        line = summary_line(generator.last)
    print(f"LLM calls per emitted record = {line['llm_requests']} / {line['records']} = "
          f"{line['requests_per_record']:.3f} (target <= 0.5); tokens per record = "
          f"{line['tokens_per_record']:.0f} (scripted server's token counts)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--requests", type=int, default=640)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "llm_server.py"), "--latency-ms", str(args.latency_ms)],
        stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        elapsed = asyncio.run(drive(base_url, args.concurrency, args.requests))
    finally:
        server.terminate()
        server.wait(10)
    achieved = args.requests / elapsed
    ideal = args.concurrency / (args.latency_ms / 1000)
    print(f"LLM throughput: {args.requests} requests in {elapsed:.2f} s at C={args.concurrency}, "
          f"L={args.latency_ms:.0f} ms")
    print(f"achieved_rps / (C/L) = {achieved:.1f} / {ideal:.1f} = {achieved / ideal:.3f} "
          f"(target >= 0.9)")
    amortisation()


if __name__ == "__main__":
    main()
