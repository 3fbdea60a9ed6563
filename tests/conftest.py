"""Shared fixtures. ``shared_data``: the real CT folder (../shared/data or $TUMORCOT_SHARED_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real test data; skipped when absent unless TUMORCOT_REQUIRE_SHARED_DATA=1 (then fails)."""
    env = os.environ.get("TUMORCOT_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not (path / "totalseg").is_dir():
        reason = f"shared real-CT data not found at {path} (set TUMORCOT_SHARED_DATA)"
        if os.environ.get("TUMORCOT_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect ephemeral API server for the whole test session (it takes ~5 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    # a task waiting for a tag concurrency slot (tumorcot-gpu) retries after this many seconds
    os.environ.setdefault("PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS", "1")

    with prefect_test_harness(server_startup_timeout=60):
        yield
