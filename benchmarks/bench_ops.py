"""Operations benchmark: unchanged rebuild, single-patient regeneration, orchestration overhead,
memory flatness. Offline generator on small phantom cases; prints ratios, asserts nothing.

    python benchmarks/bench_ops.py [N]        (default N = 1000 manifest rows)

The N rows reuse 8 phantom file sets (scale 4: 40x40x20 voxels) under N distinct patient ids,
so per-case work is small (tens of ms) and the ratios are pessimistic for real CT.

Fairness (both sides of each ratio do the same work):

- orchestration: the plain loop runs exactly what the flow runs, minus Prefect: the same
  unchanged-case check, the same per-case function (``process_case.fn``: hashing, signature,
  measurement, generation, calibration, the per-case store with the manifest row), the same
  shard assembly and manifest (``write_shards.fn``) and the same run record. (Until this was
  fixed the loop skipped the manifest row, the input signature, the assembly and the run record,
  so the "overhead" charged the assembly of every shard to Prefect.) Artifacts are Prefect's and
  stay on the flow's side.
- memory: each child reports its own high-water mark (``VmHWM`` of /proc/self/status).
  ``ru_maxrss`` was wrong here: Linux carries the parent's peak RSS across ``exec`` into the
  child's ``ru_maxrss``, so both children reported the benchmark process's own peak (the same
  number for 1x and 10x).
- every ``run_build``/``regenerate`` runs in this one process after a warm-up build, as before:
  the API server start and first imports are outside every timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")   # a busy machine


def many_rows(folder: Path, n: int) -> Path:
    """A manifest of ``n`` rows over 8 phantom file sets, with distinct patient ids."""
    sys.path.insert(0, str(ROOT / "tests"))
    from ops_helpers import read_rows, write_rows

    from tumorcot.imaging.phantom import write_phantom_cases

    base = read_rows(write_phantom_cases(folder, 8, seed=1, scale=4))
    rows = [dict(base[i % 8], patient_id=f"bench-{i:05d}", study_id="1") for i in range(n)]
    return write_rows(folder / f"rows-{n}.csv", rows)


def timed(fn, *args, **kw):
    start = time.perf_counter()
    result = fn(*args, **kw)
    return time.perf_counter() - start, result


def plain_loop(manifest: Path, out: Path) -> None:
    """What ``build_dataset`` does, serially and without Prefect (same functions, same order)."""
    from datetime import datetime, timezone

    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.flows.build import pipeline_versions, process_cases, run_record_path, write_shards
    from tumorcot.flows.incremental import current_result
    from tumorcot.privacy import load_or_create_salt
    from tumorcot.store.atomic import atomic_write_json
    from tumorcot.store.cases import CaseStore
    from tumorcot.store.lock import dataset_lock

    out.mkdir(parents=True, exist_ok=True)
    run_id = datetime.now(timezone.utc).strftime("loop-%Y%m%dT%H%M%SZ")
    with dataset_lock(out):
        salt, versions, store = load_or_create_salt(out), pipeline_versions("offline"), CaseStore(out)
        cases = read_case_manifest(manifest)
        pending = [c for c in cases if current_result(c, store, salt, versions) is None]
        outcomes = process_cases.fn(pending, out, salt, run_id, "offline", versions=versions)
        shards = write_shards.fn(out, outcomes, run_id, versions)
        atomic_write_json(run_record_path(out, run_id), {**shards, "outcomes": [o.model_dump() for o in outcomes]})


MEMORY_CHILD = """
import sys
from pathlib import Path
from tumorcot.flows.build import run_build
run_build(Path(sys.argv[1]), Path(sys.argv[2]), concurrency=1)
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def peak_rss_kb(manifest: Path, out: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_HOME=str(out.parent / f"home-{out.name}"),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(manifest), str(out)], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"memory child failed: {done.stderr[-2000:]}")
    return int(done.stdout.strip().splitlines()[-1])


def main(n: int) -> None:
    from tumorcot.flows.build import run_build
    from tumorcot.ops.regenerate import regenerate

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["PREFECT_HOME"] = str(tmp / "prefect-home")
        manifest = many_rows(tmp / "cases", n)
        run_build(many_rows(tmp / "warm", 2), tmp / "warm-ds")          # start the API server once
        first_s, first = timed(run_build, manifest, tmp / "ds", concurrency=2)
        again_s, again = timed(run_build, manifest, tmp / "ds", concurrency=2)
        print(f"cases {n}: first build {first_s:.1f} s ({first['records']} records), unchanged rebuild "
              f"{again_s:.2f} s ({again['assembly']}) -> ratio {again_s / first_s:.3f} (target <= 0.05)")
        regen_s, regen = timed(regenerate, tmp / "ds", "bench-00042", reason="benchmark")
        print(f"regenerate 1 patient of {n}: {regen_s:.2f} s ({regen['assembly']}) -> ratio "
              f"{regen_s / first_s:.4f} of the full build (target <= 0.02)")
        serial_s, _ = timed(run_build, manifest, tmp / "serial", concurrency=1)
        loop_s, _ = timed(plain_loop, manifest, tmp / "loop")
        print(f"orchestration at {n} cases: flow (1 worker) {serial_s:.1f} s vs plain loop {loop_s:.1f} s -> "
              f"overhead {100 * (serial_s - loop_s) / loop_s:.1f} % (target <= 5 %)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small, large = max(1, n // 10), n
        rss_small = peak_rss_kb(many_rows(tmp / "s", small), tmp / "ds-small")
        rss_large = peak_rss_kb(many_rows(tmp / "l", large), tmp / "ds-large")
        print(f"peak RSS: {small} cases {rss_small / 1024:.0f} MB, {large} cases {rss_large / 1024:.0f} MB -> "
              f"ratio {rss_large / rss_small:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
