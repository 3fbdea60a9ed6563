"""LLM stage throughput: achieved requests/s against the ideal C / L (prints ratios).

A fixed-latency OpenAI-compatible server (``tests/llm_server.py``, asyncio, no capacity limit)
runs in a subprocess so it shares neither the client's event loop nor its interpreter lock.
``C`` workers drive ``LLMClient`` in a closed loop with distinct structured-output requests
(no cache); with latency ``L`` the ideal rate is C / L. Target: ratio >= 0.9.

The rate is measured in steady state: the clock starts at the ``--warmup``-th completion
(default 2 C, after the connection pool has filled) and stops at the completion ``--requests``
later, and the workers keep C requests in flight through that whole window (the last C issued
finish after it). An earlier version timed one ``gather`` from a burst of C simultaneous sends
to the last completion, so its result depended on the window length: the one-off start burst
(C sends queued behind each other in the loop) and the drain were charged to only 10 rounds.

Also printed: client and server CPU per request over the same window. The client is
CPU-bound when its CPU per request approaches 1 / (C / L); on a shared 2-core machine other
processes take CPU too, so the load average is printed alongside.

    PYTHONPATH=. python benchmarks/bench_llm.py [--concurrency 64] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from tumorcot.agents.client import LLMClient, LLMConfig

ROOT = Path(__file__).resolve().parents[1]


class Ok(BaseModel):
    ok: bool


@dataclass
class Window:
    """What happened between the two completions that bound the measurement."""

    elapsed_s: float
    client_cpu_s: float
    server_cpu_s: float


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(base_url: str, concurrency: int, warmup: int, requests: int,
                server_pid: int) -> Window:
    config = LLMConfig(base_url=base_url, api_key="bench", model="bench", concurrency=concurrency,
                       timeout_s=30, max_attempts=1)
    total = warmup + requests + concurrency  # C stay in flight until the window closes
    numbers = itertools.count()
    marks: dict[int, tuple[float, float, float]] = {}
    completed = 0

    async with LLMClient(config, run_id="bench") as client:
        async def worker() -> None:
            nonlocal completed
            while (i := next(numbers)) < total:
                await client.complete("bench", "bench", "0", [{"role": "user", "content": str(i)}],
                                      Ok, case_id="bench")
                completed += 1
                if completed in (warmup, warmup + requests):
                    marks[completed] = (time.perf_counter(), time.process_time(),
                                        process_cpu_s(server_pid))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    (t0, c0, s0), (t1, c1, s1) = marks[warmup], marks[warmup + requests]
    return Window(t1 - t0, c1 - c0, s1 - s0)


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
    parser.add_argument("--requests", type=int, default=640, help="completions in the window")
    parser.add_argument("--warmup", type=int, default=None, help="completions before it (2 C)")
    args = parser.parse_args()
    warmup = 2 * args.concurrency if args.warmup is None else args.warmup
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "llm_server.py"), "--latency-ms", str(args.latency_ms)],
        stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        window = asyncio.run(drive(base_url, args.concurrency, max(warmup, 1), args.requests,
                                   server.pid))
    finally:
        server.terminate()
        server.wait(10)
    achieved = args.requests / window.elapsed_s
    ideal = args.concurrency / (args.latency_ms / 1000)
    print(f"LLM throughput: {args.requests} requests in {window.elapsed_s:.2f} s at "
          f"C={args.concurrency}, L={args.latency_ms:.0f} ms (steady state, after {warmup})")
    print(f"achieved_rps / (C/L) = {achieved:.1f} / {ideal:.1f} = {achieved / ideal:.3f} "
          f"(target >= 0.9)")
    print(f"CPU per request: client {1000 * window.client_cpu_s / args.requests:.2f} ms, server "
          f"{1000 * window.server_cpu_s / args.requests:.2f} ms (the client saturates one core at "
          f"{1000 / ideal:.2f} ms); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    amortisation()


if __name__ == "__main__":
    main()
