"""Prefect's temporary API server is never left behind by a killed ``tumorcot`` command.

Without ``PREFECT_API_URL`` each command starts Prefect's temporary server as a child process;
Prefect stops it at exit, but a command killed with SIGKILL cannot, and the server lives on. So
every temporary server started here is registered (``<tmp>/tumorcot-prefect-<uid>/<pid>.json``:
its pid, port and the command's pid), and each command first reaps the servers whose command is
gone: a process still holding that pid is stopped only if it is that Prefect server (its command
line names ``prefect.server.api.server``), and every stale entry is removed.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path

SERVER_MARK = "prefect.server.api.server"


def registry() -> Path:
    return Path(tempfile.gettempdir()) / f"tumorcot-prefect-{os.getuid()}"


def register(server_pid: int, port: int | None) -> Path:
    folder = registry()
    folder.mkdir(mode=0o700, exist_ok=True)
    entry = folder / f"{server_pid}.json"
    entry.write_text(json.dumps({"server_pid": server_pid, "port": port, "owner_pid": os.getpid(),
                                 "started": time.time()}))
    return entry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_prefect_server(pid: int) -> bool:
    try:
        return SERVER_MARK in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def reap_orphans(grace_s: float = 5.0) -> int:
    """Stop the registered temporary servers whose command is gone; how many were stopped."""
    folder = registry()
    stopped = 0
    for entry in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(entry.read_text())
        except (OSError, ValueError):
            entry.unlink(missing_ok=True)
            continue
        if _alive(data.get("owner_pid", -1)):
            continue   # its command still runs (and stops it at exit)
        pid = data.get("server_pid", -1)
        if _alive(pid) and _is_prefect_server(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            stopped += 1
        entry.unlink(missing_ok=True)
    return stopped
