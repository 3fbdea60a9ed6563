"""Operations benchmark: unchanged rebuild, single-patient regeneration, orchestration overhead,
memory flatness. Offline generator on small phantom cases; prints ratios, asserts nothing.

    python benchmarks/bench_ops.py [N]        (default N = 1000 manifest rows)

The N rows reuse 8 phantom file sets (scale 4: 40x40x20 voxels) under N distinct patient ids,
so per-case work is small (tens of ms) and the ratios are pessimistic for real CT.
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
    """The per-case work of process_case, serially, without Prefect."""
    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.flows.build import build_key, pipeline_versions
    from tumorcot.knowledge_graph import load_kg
    from tumorcot.pipeline import extract_facts, input_hashes, offline_records
    from tumorcot.privacy import case_id_for
    from tumorcot.store.cases import CaseStore

    store, salt, kg = CaseStore(out), b"bench", load_kg()
    for case in read_case_manifest(manifest):
        case_id = case_id_for(case.patient_id, case.study_id, salt)
        hashes = input_hashes(case)
        facts = extract_facts(case, salt, hashes)
        records, log, rejected = offline_records(facts, kg, "loop")
        store.write(case_id, build_key(hashes, pipeline_versions("offline")), facts, records, log,
                    {"records": len(records), "rejected": rejected, "run_id": "loop", "input_sha256": hashes})


MEMORY_CHILD = """
import resource, sys
from pathlib import Path
from tumorcot.flows.build import run_build
run_build(Path(sys.argv[1]), Path(sys.argv[2]), concurrency=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
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
