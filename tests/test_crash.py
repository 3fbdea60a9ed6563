"""A real ``tumorcot build`` killed with SIGKILL, then run again, ends like an uninterrupted build.

The killed build updates an existing dataset (one case changed, one removed, one added), the
hardest case for shard replacement. Kill points: fixed delays after start, the moment the first
case result lands, and deterministic pauses (``tests/crash_build.py``, through ``run_build``'s
``pause``) between the record shards and the log, before the manifest, and before the clean-up of
unlisted files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ops_helpers import copy_dataset, listed_and_present, read_rows, records_by_id, write_rows
from tumorcot.store.private import default_state_dir

from tumorcot.errors import DatasetLockedError
from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.ops.regenerate import regenerate
from tumorcot.store.atomic import is_temporary
from tumorcot.store.update import MARKER
from tumorcot.ops.validate import validate_dataset

pytestmark = pytest.mark.usefixtures("prefect_server")
SALT = "crash-test-salt"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, prefect_server):
    """(base dataset built from manifest A, manifest B, reference = base updated with B)."""
    root = tmp_path_factory.mktemp("crash")
    phantoms = write_phantom_cases(root / "cases", 6, seed=5, scale=4)
    rows = read_rows(phantoms)
    first = write_rows(phantoms.parent / "a.csv", rows[:5])
    changed = dict(rows[0], pathology="behavior=benign; diagnosis=hepatic cyst; organ=liver")
    second = write_rows(phantoms.parent / "b.csv", [changed, *rows[1:4], rows[5]])   # 4 out, 5 in
    os.environ["TUMORCOT_SALT"] = SALT
    try:
        run_build(first, root / "base")
        copy_dataset(root / "base", root / "reference")
        summary = run_build(second, root / "reference")
    finally:
        del os.environ["TUMORCOT_SALT"]
    assert summary["failed"] == 0 and summary["assembly"] == "incremental"
    return root / "base", second, records_by_id(root / "reference")


def _start_build(manifest: Path, out: Path, tmp_path: Path, pause: str | None) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, TUMORCOT_SALT=SALT, PREFECT_HOME=str(tmp_path / "prefect-home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if PREFECT_API_URL.value():   # reuse the session's API server instead of starting another
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    if pause:   # a build that stops at the pause point (run_build's pause parameter)
        command = [sys.executable, str(REPO / "tests" / "crash_build.py"), str(manifest), str(out), pause]
    else:
        command = [sys.executable, "-m", "tumorcot.cli", "build", "-m", str(manifest), "-o", str(out),
                   "--concurrency", "1"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _wait_for(condition, process: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, "the build ended before reaching its kill point"
        assert time.monotonic() < deadline, "kill point not reached"
        time.sleep(0.02)


def _new_case_result(out: Path, since: float):
    def seen() -> bool:
        return any(p.stat().st_mtime > since for p in (default_state_dir(out) / "cases").glob("*/done.json"))
    return seen


@pytest.mark.parametrize("kill_at", [
    "0.5s",            # still starting up: nothing of the new run is on disk
    "3s",              # a few seconds in: flow starting or cases being processed
    "first-case",      # the moment the first reprocessed case's results are complete
    "pause:log",       # record shards replaced, log and facts not yet: shards mix two generations
    "pause:manifest",  # every shard written, manifest still the old one (also: lock contention)
    "pause:cleanup",   # new manifest written, unlisted old shards not yet removed
])
def test_sigkilled_build_reruns_to_the_uninterrupted_result(scenario, tmp_path, kill_at, monkeypatch):
    base, manifest, reference = scenario
    out = tmp_path / "ds"
    copy_dataset(base, out)
    pause = kill_at.split(":", 1)[1] if kill_at.startswith("pause:") else None
    started = time.time()
    process = _start_build(manifest, out, tmp_path, pause)
    try:
        if pause:
            _wait_for(lambda: (default_state_dir(out) / f"paused-{pause}").exists(), process)
            if pause == "manifest":   # a real build holds the lock: a regenerate fails clearly
                monkeypatch.setenv("TUMORCOT_SALT", SALT)
                with pytest.raises(DatasetLockedError):
                    regenerate(out, read_rows(manifest)[1]["patient_id"], reason="during a build")
        elif kill_at == "first-case":
            _wait_for(_new_case_result(out, started), process)
        else:
            time.sleep(float(kill_at.rstrip("s")))
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    monkeypatch.setenv("TUMORCOT_SALT", SALT)
    summary = run_build(manifest, out)
    assert summary["failed"] == 0
    assert records_by_id(out) == reference
    assert validate_dataset(out)[0] == []
    listed, present = listed_and_present(out)
    assert listed == present, "orphaned, partial or missing shard"
    assert not (out / MARKER).exists()
    leftovers = [p for folder in (out, default_state_dir(out)) for p in folder.rglob(".*") if is_temporary(p)]
    assert leftovers == [], "a killed writer's temporary file survived the rerun"
