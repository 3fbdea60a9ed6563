"""Checks before any Prefect start: the case manifest, paths, options, and the Prefect API itself.

``build_problems`` returns one line per problem that stops a build before anything is written
(a manifest that is missing, a folder, unreadable or without columns; no usable row; an output
path that is a file; an LLM generator without endpoint; a Dask address that is not one; a
TotalSegmentator plan without executable or weights) and one line per row that will fail on its
own (a bad field, a missing input file): those are reported and the other rows are built.

``prefect_api`` makes sure an API is there before a flow runs: the server at ``PREFECT_API_URL``
when one is configured (it must answer), else Prefect's temporary server started here with a
start-up timeout that survives a loaded machine (``TUMORCOT_PREFECT_STARTUP_S``, default 180 s);
a failure is one ``PrefectUnavailableError`` saying what to start.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tumorcot.errors import ManifestError, PrefectUnavailableError, TumorcotError

STARTUP_ENV = "TUMORCOT_PREFECT_STARTUP_S"
DEFAULT_STARTUP_S = 180


@dataclass
class Preflight:
    errors: list[str] = field(default_factory=list)      # stop before anything starts
    row_problems: list[str] = field(default_factory=list)  # these rows will fail; the others are built
    cases: int = 0
    valid: list = field(default_factory=list)  # the rows that parsed (CaseInput), missing inputs or not


def manifest_check(manifest: Path, result: Preflight) -> None:
    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.store.removal import inputs_missing

    try:
        entries = read_case_manifest(manifest)
    except ManifestError as exc:
        result.errors.append(str(exc))
        return
    for entry in entries:
        if isinstance(entry, ManifestError):
            result.row_problems.append(str(entry))
            continue
        result.valid.append(entry)
        missing = [f"{name} not found: {getattr(entry, name)}" for name in inputs_missing(entry)]
        if missing:
            result.row_problems.append(f"[{entry.label}] " + "; ".join(missing))
        else:
            result.cases += 1
    if not entries:
        result.errors.append(f"case manifest {manifest} has no data row")
    elif result.cases == 0:
        result.errors.append(f"no usable row in {manifest}: every row has a problem (listed above)")


def output_check(out: Path, result: Preflight) -> None:
    from tumorcot.privacy import load_or_create_salt
    from tumorcot.store.private import state_dir

    if out.exists() and not out.is_dir():
        result.errors.append(f"--out {out} is a file; give a folder for the dataset")
        return
    try:
        state = state_dir(out, create=False)
    except TumorcotError as exc:
        result.errors.append(str(exc))
        return
    if (out / "manifest.json").exists() and load_or_create_salt(out, create=False) is None:
        result.errors.append(f"{out} is an existing dataset but its private state folder {state} has no salt: "
                             "a rebuild would give every patient new pseudonyms. Give its state folder with "
                             "--state-dir, or build into a new folder")


def generator_check(generator: str, result: Preflight) -> None:
    if generator not in ("offline", "llm"):
        result.errors.append(f"--generator must be 'offline' or 'llm', not {generator!r}")
    elif generator == "llm":
        missing = [v for v in ("OPENAI_BASE_URL", "TUMORCOT_MODEL") if not os.environ.get(v)]
        if missing:
            result.errors.append(f"--generator llm needs {' and '.join(missing)} (an OpenAI-compatible endpoint "
                                 "and a model name)")


def runner_check(task_runner: str, dask_address: str | None, result: Preflight) -> None:
    if task_runner not in ("threads", "dask"):
        result.errors.append(f"--task-runner must be 'threads' or 'dask', not {task_runner!r}")
    elif task_runner == "threads" and dask_address:
        result.errors.append("--dask-address needs --task-runner dask")
    elif dask_address and "://" not in dask_address:
        result.errors.append(f"--dask-address {dask_address!r} is not a scheduler address such as tcp://host:8786")


def segmentation_check(plan, result: Preflight) -> None:
    if plan.backend != "totalsegmentator":
        return
    from tumorcot.imaging.segment import check_weights, totalseg_executable

    executable = totalseg_executable()
    if shutil.which(executable) is None:
        result.errors.append(f"TotalSegmentator executable {executable!r} not found (set TUMORCOT_TOTALSEG_BIN)")
    try:
        check_weights()
    except TumorcotError as exc:
        result.errors.append(str(exc))


def removal_check(out: Path, allow_removal: bool, result: Preflight) -> None:
    """After ``manifest_check``: would the manifest's rows remove most published cases?"""
    from tumorcot.privacy import load_or_create_salt
    from tumorcot.store.removal import removal_problem

    if result.errors or not Path(out).is_dir():
        return
    problem = removal_problem(out, result.valid, load_or_create_salt(out, create=False),
                              allow_removal=allow_removal)
    if problem:
        result.errors.append(problem)


def build_problems(manifest: Path, out: Path, *, generator: str, task_runner: str = "threads",
                   dask_address: str | None = None, segmentation=None, allow_removal: bool = False) -> Preflight:
    result = Preflight()
    manifest_check(Path(manifest), result)
    removal_check(Path(out), allow_removal, result)
    output_check(Path(out), result)
    generator_check(generator, result)
    runner_check(task_runner, dask_address, result)
    if segmentation is not None:
        segmentation_check(segmentation, result)
    return result


def startup_timeout() -> int:
    try:
        return max(1, int(float(os.environ.get(STARTUP_ENV, DEFAULT_STARTUP_S))))
    except ValueError:
        return DEFAULT_STARTUP_S


def configured_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def check_api(url: str, timeout_s: float = 10.0) -> None:
    """Raise ``PrefectUnavailableError`` unless ``url``/health answers 200."""
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s)
        ok = response.status_code == 200
    except httpx.HTTPError as exc:
        ok, response = False, exc
    if not ok:
        raise PrefectUnavailableError(
            f"the Prefect API at PREFECT_API_URL={url} does not answer ({response}): start it with "
            "`prefect server start` (or unset PREFECT_API_URL to use a temporary server)")


def server_log_path() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / f"tumorcot-prefect-server-{os.getuid()}-{os.getpid()}.log"


@contextmanager
def output_to(path: Path):
    """Point this process's stdout and stderr (file descriptors 1 and 2) at ``path`` for the block;
    a child started inside keeps them for its whole life."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


def prefect_api() -> str:
    """The Prefect API this process will use, started (temporary server) or checked (configured)."""
    from tumorcot.ops.orphans import reap_orphans, register

    reap_orphans()   # temporary servers of earlier commands that were killed
    url = configured_api_url()
    if url:
        check_api(url)
        return url
    from prefect.server.api.server import SubprocessASGIServer

    timeout = startup_timeout()
    server = SubprocessASGIServer()
    log = server_log_path()
    try:
        with output_to(log):   # the server process inherits these: its tracebacks go to the log
            server.start(timeout=timeout)
    except Exception as exc:  # Prefect raises RuntimeError with the server's whole output
        first = str(exc).split(" stdout:", 1)[0].strip()
        raise PrefectUnavailableError(
            f"Prefect's temporary API server did not start within {timeout} s ({first}; its output: {log}). "
            f"On a busy machine raise {STARTUP_ENV}, or start a server once with `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api: every tumorcot command then reuses it") from None
    if server.server_process is not None:
        register(server.server_process.pid, server.port)
    return server.api_url
