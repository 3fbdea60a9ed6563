"""``tumorcot serve`` on a machine without a Prefect server: it starts a real ``prefect server
start`` on 127.0.0.1, a scheduled run completes, and the run builds with the options stored with
the dataset (an unchanged dataset stays unchanged instead of being rebuilt with defaults)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.schemas import GenerationOptions
from tumorcot.store.shards import read_manifest

TUMORCOT = str(Path(sys.executable).parent / "tumorcot")


def log_text(folder: Path) -> str:
    return (folder / "serve.log").read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_starts_a_server_and_a_scheduled_run_uses_the_stored_options(tmp_path, prefect_server):
    manifest = write_phantom_cases(tmp_path / "cases", 2, seed=4, scale=4)
    ds = tmp_path / "ds"
    first = run_build(manifest, ds, options=GenerationOptions(mc_share=1.0, negative_share=0.2))
    assert first["ok"] == 2
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), PREFECT_HOME=str(tmp_path / "home"),
               TUMORCOT_PREFECT_PORT=str(_free_port()), PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1",
               PREFECT_RUNNER_POLL_FREQUENCY="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    log = open(tmp_path / "serve.log", "w")
    process = subprocess.Popen([TUMORCOT, "serve", "-m", str(manifest), "-o", str(ds), "--interval", "5"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(list((ds / "runs").glob("*.json"))) < 2:
            assert process.poll() is None, log_text(tmp_path)[-3000:]
            assert time.monotonic() < deadline, log_text(tmp_path)[-3000:]
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)   # serve, the server it started, any flow run in progress
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
    output = log_text(tmp_path)
    assert "starting a local Prefect server" in output
    runs = [json.loads(p.read_text()) for p in (ds / "runs").glob("*.json")]
    scheduled = next(r for r in runs if r["run_id"] != first["run_id"])
    assert (scheduled["ok"], scheduled["unchanged"], scheduled["failed"]) == (0, 2, 0), scheduled
    options = read_manifest(ds)["versions"]["options"]
    assert options["mc_share"] == 1.0 and options["negative_share"] == 0.2
