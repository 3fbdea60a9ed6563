"""Operations benchmark: rebuild after a knowledge-graph release and after a ``--splits`` change
on real-size CT, unchanged rebuild, single-patient regeneration, orchestration overhead, memory
flatness. Offline generator; prints ratios with the load average, asserts nothing.

    python benchmarks/bench_ops.py [N] [--ct-cases K]   (default N = 1000 rows, K = 8 real-size CTs)

Two keys (``tumorcot.store.keys``), on K cases (distinct patients) of one real-size phantom CT
(``make_phantom`` at 512x512x300 voxels of 0.625x0.625x0.8 mm: the phantom's anatomy, which
passes the input plausibility checks that ``bench_measure.py``'s block pattern does not): first build, then
the same build after a knowledge-graph release (the KG data file changed: records regenerated
from the stored facts), then after a ``--splits`` change (shards rewritten, nothing
regenerated). CT decodes are counted by wrapping ``tumorcot.pipeline.load_ct``. It runs in a
child process on a copy of the package, so that the release edits the copy's KG file and never
the repository's.

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
    from tumorcot.flows.build import run_record_path, write_shards
    from tumorcot.flows.cases import process_cases
    from tumorcot.flows.versions import pipeline_versions
    from tumorcot.privacy import load_or_create_salt
    from tumorcot.store.atomic import atomic_write_json
    from tumorcot.store.cases import CaseStore
    from tumorcot.store.keys import current_result
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


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"[load avg {one:.2f} / {five:.2f}]"


def two_keys_child(folder: Path, cases: int) -> None:
    """(in the child, on the package copy) first build, KG release, splits change; prints ratios."""
    import json

    import tumorcot.pipeline as pipeline
    from tumorcot.flows.build import run_build
    from tumorcot.knowledge_graph import graph
    from tumorcot.schemas import GenerationOptions

    import SimpleITK as sitk

    from tumorcot.imaging.phantom import LESION_VALUE, make_phantom

    sys.path.insert(0, str(ROOT / "tests"))
    from ops_helpers import write_rows

    decodes = []
    real_load_ct = pipeline.load_ct

    def counted_load_ct(*args, **kw):
        decodes.append(1)
        return real_load_ct(*args, **kw)

    pipeline.load_ct = counted_load_ct
    os.environ["PREFECT_HOME"] = str(folder / "prefect-home")
    ct, organs, lesions, truth = make_phantom(7, plan="random", shape=(512, 512, 300), spacing_mm=(0.625, 0.625, 0.8))
    paths = {}
    for name, image in (("ct", ct), ("organs", organs), ("lesions", lesions)):
        paths[name] = str(folder / f"{name}.nii.gz")
        sitk.WriteImage(image, paths[name], useCompression=True)
    labels = ";".join(f"{LESION_VALUE[k]}:{k}" for k in sorted({lesion.kind for lesion in truth.lesions}))
    rows = [{"patient_id": f"ct-{i}", "study_id": "1", "ct": paths["ct"], "organ_mask": paths["organs"],
             "lesion_mask": paths["lesions"], "lesion_labels": labels, "source": "synthetic-bench"}
            for i in range(cases)]
    manifest = write_rows(folder / "ct.csv", rows)
    run_build(write_rows(folder / "warm.csv", rows[:1]), folder / "warm-ds")   # API server, imports, page cache
    decodes.clear()
    first_s, first = timed(run_build, manifest, folder / "ds", concurrency=2)
    first_decodes = len(decodes)
    if first["ok"] != cases:
        raise RuntimeError(f"first build: {[o['reason'] for o in first['outcomes'] if o['status'] != 'ok']}")
    kg_file = Path(graph.__file__).parent / "data" / graph.DATA_FILE
    if ROOT in kg_file.parents:
        raise RuntimeError(f"refusing to edit the repository's KG file {kg_file}: run on the package copy")
    data = json.loads(kg_file.read_text(encoding="utf-8"))
    data["sources"]["bench_release"] = "bench_ops: a knowledge-graph release (one more source)"
    kg_file.write_text(json.dumps(data, indent=1), encoding="utf-8")
    graph.load_kg.cache_clear()
    decodes.clear()
    kg_s, kg = timed(run_build, manifest, folder / "ds", concurrency=2)
    print(f"KG release on {cases} real-size CTs (512x512x300): first build {first_s:.1f} s ({first_decodes} CT "
          f"decodes, {first['records']} records), rebuild {kg_s:.2f} s ({kg['ok']} cases regenerated, "
          f"{len(decodes)} CT decodes, {kg['measured']} measured) -> ratio {kg_s / first_s:.3f} "
          f"(target <= 0.10) {load()}", flush=True)
    decodes.clear()
    split_s, split = timed(run_build, manifest, folder / "ds", concurrency=2,
                           options=GenerationOptions(split_ratios=(0, 0, 1)))
    print(f"--splits change on {cases} real-size CTs: {split_s:.2f} s ({split['unchanged']} unchanged, "
          f"{split['ok']} regenerated, {len(decodes)} CT decodes, shards {split['assembly']}) -> ratio "
          f"{split_s / first_s:.3f} of the first build (target <= 0.05) {load()}", flush=True)


def two_keys(cases: int) -> None:
    """Run ``two_keys_child`` in a child process on a copy of the package."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copytree(ROOT / "tumorcot", tmp / "pkg" / "tumorcot", ignore=shutil.ignore_patterns("__pycache__"))
        env = dict(os.environ, PYTHONPATH=str(tmp / "pkg"))
        done = subprocess.run([sys.executable, __file__, "--two-keys-child", str(tmp), str(cases)], env=env)
        if done.returncode:
            raise RuntimeError("the two-keys benchmark child failed")


def main(n: int, ct_cases: int) -> None:
    from tumorcot.flows.build import run_build
    from tumorcot.ops.regenerate import regenerate

    if ct_cases:
        two_keys(ct_cases)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["PREFECT_HOME"] = str(tmp / "prefect-home")
        manifest = many_rows(tmp / "cases", n)
        run_build(many_rows(tmp / "warm", 2), tmp / "warm-ds")          # start the API server once
        first_s, first = timed(run_build, manifest, tmp / "ds", concurrency=2)
        again_s, again = timed(run_build, manifest, tmp / "ds", concurrency=2)
        print(f"cases {n}: first build {first_s:.1f} s ({first['records']} records), unchanged rebuild "
              f"{again_s:.2f} s ({again['assembly']}) -> ratio {again_s / first_s:.3f} (target <= 0.05) {load()}")
        regen_s, regen = timed(regenerate, tmp / "ds", "bench-00042", reason="benchmark")
        print(f"regenerate 1 patient of {n}: {regen_s:.2f} s ({regen['assembly']}) -> ratio "
              f"{regen_s / first_s:.4f} of the full build (target <= 0.02) {load()}")
        serial_s, _ = timed(run_build, manifest, tmp / "serial", concurrency=1)
        loop_s, _ = timed(plain_loop, manifest, tmp / "loop")
        print(f"orchestration at {n} cases: flow (1 worker) {serial_s:.1f} s vs plain loop {loop_s:.1f} s -> "
              f"overhead {100 * (serial_s - loop_s) / loop_s:.1f} % (target <= 5 %) {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small, large = max(1, n // 10), n
        rss_small = peak_rss_kb(many_rows(tmp / "s", small), tmp / "ds-small")
        rss_large = peak_rss_kb(many_rows(tmp / "l", large), tmp / "ds-large")
        print(f"peak RSS: {small} cases {rss_small / 1024:.0f} MB, {large} cases {rss_large / 1024:.0f} MB -> "
              f"ratio {rss_large / rss_small:.3f} (target <= 1.1) {load()}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--two-keys-child"]:
        sys.path.insert(0, str(Path(sys.argv[2]) / "pkg"))   # the copy, before the repository
        two_keys_child(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        args = [a for a in sys.argv[1:] if not a.startswith("--")]
        k = int(sys.argv[sys.argv.index("--ct-cases") + 1]) if "--ct-cases" in sys.argv else 8
        if "--ct-cases" in sys.argv:
            args.remove(str(k))
        main(int(args[0]) if args else 1000, k)
