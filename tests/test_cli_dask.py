"""``tumorcot build --task-runner dask`` from the command line: against a real ``dask scheduler``
with two ``dask worker`` processes on 127.0.0.1, and with a local cluster; the records equal the
default (threads) runner's. The CLI runs as a subprocess reusing the session's Prefect API
(``PREFECT_API_URL``), from another working folder than the workers' (a relative ``--out``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ops_helpers import records_by_id

from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.ops.validate import validate_dataset

SALT = "dask-cli-salt"
BIN = Path(sys.executable).parent


def _env() -> dict:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, TUMORCOT_SALT=SALT, PREFECT_API_URL=PREFECT_API_URL.value(),
               PYTHONPATH=os.pathsep.join(p for p in [str(Path(__file__).resolve().parents[1]),
                                                      os.environ.get("PYTHONPATH", "")] if p))
    env.pop("TUMORCOT_STATE_DIR", None)
    return env


@pytest.fixture(scope="module")
def cases_and_reference(tmp_path_factory, prefect_server):
    root = tmp_path_factory.mktemp("dask-cli")
    manifest = write_phantom_cases(root / "cases", 2, seed=11, scale=4)
    os.environ["TUMORCOT_SALT"] = SALT
    try:
        summary = run_build(manifest, root / "threads")
    finally:
        del os.environ["TUMORCOT_SALT"]
    assert summary["ok"] == 2
    return root, manifest, records_by_id(root / "threads")


def _tumorcot(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "tumorcot"), *args], cwd=cwd, env=_env(), capture_output=True,
                          encoding="utf-8", errors="replace", timeout=300)


@pytest.fixture
def dask_cluster(tmp_path):
    """``dask scheduler`` + two ``dask worker`` processes on 127.0.0.1, started in their own folder."""
    from distributed import Client

    workdir = tmp_path / "worker-cwd"
    workdir.mkdir()
    scheduler_file = tmp_path / "scheduler.json"
    common = dict(cwd=workdir, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--no-dashboard", "--scheduler-file", str(scheduler_file)], **common)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert processes[0].poll() is None and time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        for _ in range(2):
            processes.append(subprocess.Popen([str(BIN / "dask"), "worker", "--scheduler-file", str(scheduler_file),
                                               "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
                                               "--no-dashboard"], **common))
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
            address = client.scheduler.address
        yield address, workdir
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_cli_build_on_an_external_scheduler_with_two_workers(cases_and_reference, dask_cluster, tmp_path):
    root, manifest, reference = cases_and_reference
    address, worker_cwd = dask_cluster
    shutil.copytree(root / "cases", tmp_path / "cases")
    result = _tumorcot(["build", "-m", "cases/manifest.csv", "-o", "ds", "--task-runner", "dask",
                        "--dask-address", address], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PicklingError" not in result.stdout + result.stderr
    assert records_by_id(tmp_path / "ds") == reference
    assert validate_dataset(tmp_path / "ds")[0] == []
    assert not any(worker_cwd.iterdir()), list(worker_cwd.iterdir())   # nothing written where workers run


def test_cli_build_on_a_local_dask_cluster(cases_and_reference, tmp_path):
    root, manifest, reference = cases_and_reference
    result = _tumorcot(["build", "-m", str(manifest), "-o", "ds", "--task-runner", "dask", "--concurrency", "2"],
                       cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert records_by_id(tmp_path / "ds") == reference
