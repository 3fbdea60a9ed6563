"""A whole ``tumorcot build --generator llm`` against an endpoint of fixed latency and capacity.

The endpoint: ``tests/llm_server.py`` in a subprocess (its own interpreter), answering every agent
correctly (``tests/llm_oracle.py``) after a fixed latency L, serving at most C requests at once
(more wait in its queue), so no client can exceed C / L requests/s. The build: the real CLI in
another subprocess (``python -m tumorcot.cli build --generator llm --llm-concurrency C``, cache on,
two case workers) over ``--cases`` phantom cases, measurement included.

Printed, per latency (default L = 200 ms and 2 s, C = 64):

- the LLM stage's rate over the whole stage (first request's arrival to last answer, as the
  server saw them) divided by C / L (target >= 0.8), and over its steady part (the window between
  the C-th and the (N - C)-th answer: no ramp-up, no drain), the figure ``bench_llm.py`` measures;
- mean requests in flight (server: time-weighted over the stage; client: the scheduler's own
  figure from the run record), the most at once, and requests per case;
- the CPU the build process used during the LLM stage (sampled from ``/proc`` on the server's
  clock): cores busy, CPU per request, and the rate this machine could feed at that CPU cost
  (``cores / CPU per request``, at most C / L). When that ceiling is below 0.8 of C / L, the
  stage is bound by the CPU per case, not by the scheduler: more cores or Dask workers raise it;
- a rerun with ``--force``: requests it made (target 0: all from the cache);
- the load average (``os.getloadavg``) at the end of each run.

    PYTHONPATH=. python benchmarks/bench_llm_build.py [--cases 160] [--latencies-ms 200,2000]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SALT = "bench-llm-build-salt"   # server and build must name the cases alike


def serve(manifest: Path, latency_ms: float, capacity: int) -> None:
    """Subprocess mode: the oracle endpoint for the phantom cases of ``manifest``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from llm_oracle import Oracle
    from llm_server import ScriptedLLMServer

    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.knowledge_graph import load_kg
    from tumorcot.pipeline import extract_facts

    facts = {f.case_id: f for f in (extract_facts(c, SALT.encode()) for c in read_case_manifest(manifest))}
    server = ScriptedLLMServer(Oracle(facts, load_kg()), latency_s=latency_ms / 1000, capacity=capacity).start()
    print(server.base_url, flush=True)
    threading.Event().wait()


def stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url + "/stats", timeout=30) as response:
        return json.loads(response.read())


def stage_figures(intervals: list, capacity: int, latency_s: float) -> dict:
    done = sorted(f for _, f, status in intervals if f is not None and status == 200)
    start, end = min(a for a, _, _ in intervals), max(f for _, f, _ in intervals if f is not None)
    n, span = len(intervals), end - start
    ideal = capacity / latency_s
    figures = {"requests": n, "span_s": span, "rate": n / span, "ratio": n / span / ideal, "start": start, "end": end,
               "mean_in_flight": sum(f - a for a, f, _ in intervals if f is not None) / span}
    if len(done) > 3 * capacity:
        first, last = done[capacity - 1], done[len(done) - capacity - 1]
        figures["steady_ratio"] = (len(done) - 2 * capacity) / (last - first) / ideal
    return figures


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (measurement workers, Dask workers), from ``/proc``."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except OSError:
                pass
    return found


def tree_cpu_s(pid: int, seen: dict[int, float]) -> float:
    """CPU seconds of ``pid`` and its descendants; ``seen`` keeps the last figure of processes
    that have exited, so the total never drops."""
    for member in descendants(pid):
        try:
            seen[member] = process_cpu_s(member)
        except (OSError, IndexError):
            pass
    return sum(seen.values())


def sample_cpu(process: subprocess.Popen, every_s: float = 0.05) -> list[tuple[float, float, float]]:
    """(monotonic time, CPU seconds of the build and its worker processes, of the build process
    alone) every ``every_s`` until it exits; the server stamps requests with the same clock."""
    samples, seen = [], {}
    while process.poll() is None:
        total = tree_cpu_s(process.pid, seen)
        samples.append((time.monotonic(), total, seen.get(process.pid, 0.0)))
        time.sleep(every_s)
    return samples


def cpu_between(samples: list[tuple[float, float, float]], start: float, end: float, column: int = 1) -> float:
    """CPU seconds used between ``start`` and ``end`` (nearest samples): column 1 the build and its
    workers, 2 the build process alone."""
    inside = [sample[column] for sample in samples if start <= sample[0] <= end]
    return inside[-1] - inside[0] if len(inside) > 1 else float("nan")


def build(manifest: Path, out: Path, base_url: str, capacity: int, force: bool = False,
          runner: str = "threads", processes: str = "") -> dict:
    env = dict(os.environ, OPENAI_BASE_URL=base_url, OPENAI_API_KEY="bench", TUMORCOT_MODEL="bench-model",
               TUMORCOT_SALT=SALT, PYTHONPATH=str(ROOT), PREFECT_LOGGING_LEVEL="WARNING",
               TUMORCOT_MEASURE_PROCESSES=processes)
    command = [sys.executable, "-m", "tumorcot.cli", "build", "--manifest", str(manifest), "--out", str(out),
               "--generator", "llm", "--llm-concurrency", str(capacity), "--concurrency", "2",
               "--task-runner", runner]
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command + (["--force"] if force else []), env=env, stdout=stdout, stderr=stderr,
                                   text=True)
        samples = sample_cpu(process)
        stdout.seek(0), stderr.seek(0)
        done = subprocess.CompletedProcess(command, process.returncode, stdout.read(), stderr.read())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"build failed:\n{done.stdout}\n{done.stderr}")
    record = max((out / "runs").glob("run-*.json"), key=lambda p: p.stat().st_mtime)
    startup = re.search(r"start-up: Prefect API ([\d.]+) s", done.stdout)
    return {**json.loads(record.read_text()), "wall_s": time.perf_counter() - started,
            "startup_s": float(startup.group(1)) if startup else float("nan"), "cpu_samples": samples,
            "cpu_s": after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime}


def run(cases: int, latency_ms: float, capacity: int, work: Path, manifest: Path, runner: str,
        processes: str = "") -> dict:
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(manifest), "--latency-ms", str(latency_ms),
                               "--capacity", str(capacity)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        base_url = server.stdout.readline().strip()
        out = work / f"ds-{latency_ms:.0f}-{processes or 'default'}"
        server_cpu = process_cpu_s(server.pid)
        summary = build(manifest, out, base_url, capacity, runner=runner, processes=processes)
        server_cpu = process_cpu_s(server.pid) - server_cpu
        first = stats(base_url)   # every request and body so far: fetched once
        figures = stage_figures(first["intervals"], capacity, latency_ms / 1000)
        load = os.getloadavg()[0]
        before = first["count"]
        again = build(manifest, out, base_url, capacity, force=True, runner=runner, processes=processes)
        rerun = stats(base_url)
        if rerun["count"] > before:   # what the rerun asked (should be nothing): name the schemas
            names = [json.loads(b)["response_format"].get("json_schema", {}).get("name", "?")
                     for b in rerun.get("bodies", [])[before:]]
            print(f"  rerun asked: {dict(collections.Counter(names))}")
        figures.update(rerun_requests=rerun["count"] - before, rerun_calls=again["llm_calls"],
                       max_in_flight=rerun["max_in_flight"], load=load, summary=summary)
    finally:
        server.terminate()
        server.wait(10)
    ideal = capacity / (latency_ms / 1000)
    llm = summary.get("llm", {})
    where = {"": "default", "0": "in the build's own threads"}.get(processes, f"in {processes} worker processes")
    print(f"\nL = {latency_ms:.0f} ms, C = {capacity}, measurement and claim checks {where}: build of {cases} "
          f"phantom cases, {summary['ok']} ok, "
          f"{summary['failed']} failed, {summary['records']} records; wall {summary['wall_s']:.1f} s "
          f"(Prefect start-up {summary.get('startup_s', float('nan')):.1f} s)")
    print(f"  LLM stage: {figures['requests']} requests ({figures['requests'] / cases:.1f} per case) in "
          f"{figures['span_s']:.2f} s = {figures['rate']:.1f} requests/s")
    print(f"  whole LLM stage  requests/s / (C/L) = {figures['rate']:.1f} / {ideal:.1f} = {figures['ratio']:.3f} "
          f"(target >= 0.8)")
    if "steady_ratio" in figures:
        print(f"  steady part      requests/s / (C/L) = {figures['steady_ratio']:.3f} (between the C-th and the "
              f"(N-C)-th answer; bench_llm.py's measure)")
    print(f"  requests in flight: mean {figures['mean_in_flight']:.1f} (server), "
          f"{llm.get('mean_in_flight', float('nan'))} (scheduler), max {figures['max_in_flight']} of {capacity}; "
          f"cache: {llm.get('cache_writes')} answers in {llm.get('cache_batches')} fsynced batches")
    n = figures["requests"]
    print(f"  CPU: build {summary['cpu_s']:.1f} s ({1000 * summary['cpu_s'] / n:.0f} ms per request, Prefect "
          f"start-up and measurement included), oracle server {1000 * server_cpu / n:.1f} ms per request; "
          f"at C/L the build alone needs {summary['cpu_s'] / n * ideal:.1f} cores")
    stage_cpu = cpu_between(summary["cpu_samples"], figures["start"], figures["end"])
    main_cpu = cpu_between(summary["cpu_samples"], figures["start"], figures["end"], column=2)
    cores = os.cpu_count() or 1
    per_request = stage_cpu / n
    ceiling = min(ideal, cores / per_request) if per_request > 0 else ideal
    print(f"  CPU during the LLM stage: build and its workers {stage_cpu:.1f} s = {stage_cpu / figures['span_s']:.2f} cores "
          f"busy (the build process itself {main_cpu / figures['span_s']:.2f}: one interpreter lock), "
          f"{1000 * per_request:.1f} ms per request (measurement, drafting, claim checks, storing of the cases "
          f"in flight); so this machine ({cores} CPUs) can feed at most {ceiling:.1f} requests/s = "
          f"{ceiling / ideal:.3f} of C/L; achieved / that ceiling = {figures['rate'] / ceiling:.3f}")
    figures.update(stage_cpu_s=stage_cpu, ceiling_ratio=ceiling / ideal)
    print(f"  rerun with --force: {figures['rerun_requests']} requests (target 0); "
          f"load average {figures['load']:.1f} on {os.cpu_count()} CPUs")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=160, help="phantom cases (>= 40); the whole-stage ratio "
                        "includes one ramp-up and one drain of ~3 latency rounds, so more cases approach the steady ratio")
    parser.add_argument("--latencies-ms", default="200,2000")
    parser.add_argument("--capacity", type=int, default=64)
    parser.add_argument("--scale", type=int, default=4, help="phantom voxel coarsening (1 = full phantom)")
    parser.add_argument("--task-runner", default="threads", help="threads (one LLM scheduler) or dask (one per "
                        "worker process, two local workers)")
    parser.add_argument("--compare-threads", action="store_true", help="also build with measurement and claim "
                        "checks in the build's own threads (TUMORCOT_MEASURE_PROCESSES=0) and print the ratio")
    parser.add_argument("--work", type=Path, help="keep the cases and datasets in this folder (default: a "
                        "temporary one, removed at the end)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--latency-ms", type=float, default=200.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.latency_ms, args.capacity)
        return
    if args.cases < 40:
        sys.exit("the benchmark builds at least 40 cases")
    from tumorcot.imaging.phantom import write_phantom_cases

    with tempfile.TemporaryDirectory(prefix="bench-llm-build-") as tmp:
        work = args.work or Path(tmp)
        manifest = write_phantom_cases(work / "cases", args.cases, seed=7, scale=args.scale)
        for latency in (float(x) for x in args.latencies_ms.split(",")):
            pooled = run(args.cases, latency, args.capacity, work, manifest, args.task_runner)
            if args.compare_threads:
                inline = run(args.cases, latency, args.capacity, work, manifest, args.task_runner, processes="0")
                print(f"  L = {latency:.0f} ms: worker processes / own threads: whole-stage rate "
                      f"{pooled['ratio'] / inline['ratio']:.2f}x, steady rate "
                      f"{pooled.get('steady_ratio', float('nan')) / inline.get('steady_ratio', float('nan')):.2f}x "
                      f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
