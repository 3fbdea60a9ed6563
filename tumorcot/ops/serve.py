"""``tumorcot serve``: a scheduled ``build_dataset`` deployment served by this process.

Scheduled runs need a real Prefect server (its scheduler service creates the runs; the temporary
server a plain command starts has none, so a deployment served against it never runs). ``serve``
therefore uses, in order: the server at ``PREFECT_API_URL`` (it must answer), a server already
answering on ``127.0.0.1:$TUMORCOT_PREFECT_PORT`` (default 4200: e.g. one an earlier ``serve``
or the user started), else it starts ``prefect server start`` there itself and stops it on exit.
A server that does not come up within ``TUMORCOT_PREFECT_STARTUP_S`` is one clear error.

The deployment passes only the manifest and the dataset (and a generator when given): each run
builds with the settings stored with the dataset (``flows/settings.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from tumorcot.errors import PrefectUnavailableError
from tumorcot.ops.preflight import check_api, configured_api_url, startup_timeout

PORT_ENV = "TUMORCOT_PREFECT_PORT"
DEFAULT_PORT = 4200


def build_parameters(manifest: Path, out: Path, generator: str | None = None) -> dict:
    parameters = {"manifest": str(Path(manifest).resolve()), "out": str(Path(out).resolve()), "force": False}
    if generator:
        parameters["generator"] = generator
    return parameters


def scheduled_flow(task_runner: str = "threads", concurrency: int = 2, dask_address: str | None = None):
    from tumorcot.flows.build import build_dataset
    from tumorcot.flows.runners import make_task_runner

    return build_dataset.with_options(
        task_runner=make_task_runner(task_runner, concurrency=concurrency, dask_address=dask_address))


def make_deployment(manifest: Path, out: Path, cron: str | None = "0 2 * * *", *, interval_s: float | None = None,
                    name: str = "tumorcot-scheduled", generator: str | None = None, task_runner: str = "threads",
                    concurrency: int = 2, dask_address: str | None = None):
    """The RunnerDeployment ``serve`` runs: incremental builds of ``out`` on ``cron`` (or every
    ``interval_s`` seconds)."""
    flow = scheduled_flow(task_runner, concurrency, dask_address)
    when = {"interval": timedelta(seconds=interval_s)} if interval_s else {"cron": cron}
    every = f"every {interval_s:g} s" if interval_s else f"on '{cron}'"
    return flow.to_deployment(name=name, parameters=build_parameters(manifest, out, generator),
                              tags=["tumorcot"], description=f"incremental tumorcot build {every}", **when)


def _healthy(url: str) -> bool:
    try:
        check_api(url, timeout_s=3.0)
        return True
    except PrefectUnavailableError:
        return False


@contextmanager
def prefect_server(say=print):
    """Yield the API URL of a Prefect server with a scheduler (see the module docstring)."""
    url = configured_api_url()
    if url:
        check_api(url)
        yield url
        return
    port = int(os.environ.get(PORT_ENV, DEFAULT_PORT))
    url = f"http://127.0.0.1:{port}/api"
    if _healthy(url):
        say(f"using the Prefect server already running at {url}")
        yield url
        return
    log = tempfile.NamedTemporaryFile(prefix="tumorcot-prefect-server-", suffix=".log", delete=False)
    say(f"starting a local Prefect server at {url} (log {log.name}); it stops with serve. To keep one: "
        f"`prefect server start` and PREFECT_API_URL={url}")
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout()
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = Path(log.name).read_text(errors="replace")[-600:].strip()
                raise PrefectUnavailableError(
                    f"`prefect server start` on 127.0.0.1:{port} did not come up (exit code {process.poll()}; "
                    f"log {log.name}: ...{tail[-300:]}). Start a server yourself and set PREFECT_API_URL, or "
                    f"choose another port with {PORT_ENV}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def serve(manifest: Path, out: Path, cron: str | None = "0 2 * * *", *, say=print, **options) -> None:
    """Block, starting a build run at every schedule tick (Ctrl-C stops; the deployment pauses)."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with prefect_server(say) as url:
        os.environ["PREFECT_API_URL"] = url   # flow-run subprocesses and anything reading the environment
        with temporary_settings(updates={PREFECT_API_URL: url}):
            prefect_serve(make_deployment(manifest, out, cron, **options))
