"""Facts once, records many, through the CLI: after a first ``tumorcot build``,

- a knowledge-graph release regenerates every record from the stored facts without decoding (or
  even reading) a CT: the inputs are overwritten with garbage of the same size and mtime, which
  any decode or hash would notice; the run counts 0 measured CTs and the records carry the new
  KG version;
- a ``--splits`` change regenerates nothing: every case is unchanged, the shards are rewritten
  with the new split, the records are otherwise identical.

The new KG release is a copy of the package whose KG data file differs (its version is the
file's hash), run through the same CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ops_helpers import read_rows

from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.knowledge_graph import load_kg
from tumorcot.store.shards import read_manifest, read_records

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("prefect_server")


def cli(args: list[str], tmp_path: Path, package_root: Path = REPO) -> dict:
    """Run ``tumorcot ARGS`` with ``package_root`` first on the path; the run record it wrote."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, TUMORCOT_SALT="two-keys", PREFECT_HOME=str(tmp_path / "prefect-home"),
               PYTHONPATH=os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")]))
    if PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    done = subprocess.run([sys.executable, "-m", "tumorcot.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = Path(args[args.index("-o") + 1])
    latest = max((out / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(latest.read_text(encoding="utf-8"))


def kg_release(tmp_path: Path) -> Path:
    """A copy of the package whose knowledge graph file has one more (harmless) source."""
    root = tmp_path / "release"
    shutil.copytree(REPO / "tumorcot", root / "tumorcot", ignore=shutil.ignore_patterns("__pycache__"))
    path = next((root / "tumorcot" / "knowledge_graph" / "data").glob("*.json"))
    data = json.loads(path.read_text(encoding="utf-8"))
    data["sources"]["release_note"] = "tumorcot test: a knowledge-graph release with one more source"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return root


def garble_keeping_signature(path: Path) -> None:
    """Same size and modification time, other bytes: a decode fails, a hash differs."""
    info = path.stat()
    path.write_bytes(b"\x5a" * info.st_size)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_kg_release_decodes_no_ct_and_splits_change_regenerates_nothing(tmp_path):
    manifest = write_phantom_cases(tmp_path / "cases", 3, seed=11, scale=4)
    out = tmp_path / "ds"
    # every record (--mix off; a family mix is chosen per split): a re-split then moves the same records
    first = cli(["build", "-m", str(manifest), "-o", str(out), "--concurrency", "1", "--mix", "off"], tmp_path)
    assert first["ok"] == 3 and first["measured"] == 3 and first["failed"] == 0
    before = {r["record_id"]: r for r in read_records(out).to_pylist()}
    assert {r["kg_version"] for r in before.values()} == {load_kg().version}

    for row in read_rows(manifest):
        for field in ("ct", "organ_mask", "lesion_mask"):
            if row.get(field):
                garble_keeping_signature(manifest.parent / row[field])

    release = kg_release(tmp_path)
    rebuilt = cli(["build", "-m", str(manifest), "-o", str(out), "--concurrency", "1"], tmp_path, release)
    assert rebuilt["failed"] == 0 and rebuilt["ok"] == 3 and rebuilt["measured"] == 0
    after = {r["record_id"]: r for r in read_records(out).to_pylist()}
    new_kg = {r["kg_version"] for r in after.values()}
    assert len(new_kg) == 1 and new_kg != {load_kg().version}
    assert read_manifest(out)["versions"]["kg"] in new_kg

    resplit = cli(["build", "-m", str(manifest), "-o", str(out), "--concurrency", "1", "--splits", "0,0,1"],
                  tmp_path, release)
    assert resplit["unchanged"] == 3 and resplit["ok"] == 0 and resplit["measured"] == 0
    assert resplit["assembly"] == "full"   # every shard rewritten with the new split
    moved = {r["record_id"]: r for r in read_records(out).to_pylist()}
    assert {r["split"] for r in moved.values()} == {"test"}
    assert {k: dict(r, split=None) for k, r in moved.items()} == {k: dict(r, split=None) for k, r in after.items()}


def test_facts_are_kept_as_soon_as_measured_so_a_case_lost_before_its_records_is_not_measured_again(tmp_path,
                                                                                                   monkeypatch):
    import tumorcot.pipeline as pipeline
    from tumorcot.flows.build import run_build
    from tumorcot.store.private import default_state_dir

    decodes = []   # every CT the build decodes goes through pipeline.load_ct
    real = pipeline.load_ct
    monkeypatch.setattr(pipeline, "load_ct", lambda *a, **k: decodes.append(a[0]) or real(*a, **k))
    monkeypatch.setenv("TUMORCOT_SALT", "two-keys")
    manifest = write_phantom_cases(tmp_path / "cases", 2, seed=12, scale=4)
    out = tmp_path / "ds"
    first = run_build(manifest, out, concurrency=1)
    assert first["ok"] == 2 and first["measured"] == 2 and len(decodes) == 2
    before = {r["record_id"]: r for r in read_records(out).to_pylist()}
    cases = sorted((default_state_dir(out) / "cases").iterdir())
    for folder in cases:   # as if killed after measuring, before its records were stored
        (folder / "done.json").unlink()
        (folder / "records.arrow").unlink()
    decodes.clear()
    again = run_build(manifest, out, concurrency=1)
    assert again["failed"] == 0 and again["ok"] == 2 and again["measured"] == 0 and decodes == []
    after = {r["record_id"]: r for r in read_records(out).to_pylist()}
    assert after.keys() == before.keys()
