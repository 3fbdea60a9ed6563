"""A real ``tumorcot build`` killed (SIGKILL) after its manifest but before ``stats.json``: the next
build, although it has nothing to rebuild (``unchanged``), notices the stale stats and rewrites them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.dataset as pads
import pytest
from ops_helpers import read_rows, write_rows
from tumorcot.store.private import default_state_dir

from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.store.shards import read_manifest
from tumorcot.store.stats import stamp

pytestmark = pytest.mark.usefixtures("prefect_server")
SALT = "exports-crash-salt"
REPO = Path(__file__).resolve().parents[1]


def start_paused_build(manifest: Path, out: Path, tmp_path: Path) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, TUMORCOT_SALT=SALT, PREFECT_HOME=str(tmp_path / "prefect-home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return subprocess.Popen([sys.executable, str(REPO / "tests" / "crash_build.py"), str(manifest), str(out),
                             "summaries"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def test_stats_left_stale_by_a_killed_writer_are_rewritten_by_an_unchanged_build(tmp_path, monkeypatch):
    monkeypatch.setenv("TUMORCOT_SALT", SALT)
    phantoms = write_phantom_cases(tmp_path / "cases", 3, seed=7, scale=4)
    rows = read_rows(phantoms)
    out = tmp_path / "ds"
    run_build(write_rows(phantoms.parent / "a.csv", rows[:2]), out)
    old_stats = json.loads((out / "stats.json").read_text())
    second = write_rows(phantoms.parent / "b.csv", rows)             # one case added

    process = start_paused_build(second, out, tmp_path)
    paused = default_state_dir(out) / "paused-summaries"
    deadline = time.monotonic() + 180
    while not paused.exists():
        assert process.poll() is None, "the build ended before reaching its kill point"
        assert time.monotonic() < deadline, "kill point not reached"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    paused.unlink()

    manifest = read_manifest(out)
    assert len(manifest["cases"]) == 3                                # the manifest is the new one ...
    assert json.loads((out / "stats.json").read_text()) == old_stats  # ... the stats are not
    assert old_stats["manifest"] != stamp(manifest)

    again = run_build(second, out)
    assert again["assembly"] == "unchanged" and again["unchanged"] == 3
    stats = json.loads((out / "stats.json").read_text())
    assert stats["manifest"] == stamp(manifest)
    table = pads.dataset(out / "data", format="parquet").to_table(columns=["task"]).to_pylist()
    assert stats["records"] == len(table) and stats["by_task"] == dict(Counter(r["task"] for r in table))
    assert stats["patients"]["total"] == 3
    assert f"{len(table)} records" in (out / "README.md").read_text()
