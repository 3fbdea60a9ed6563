"""Errors arrive early and quietly: the manifest, paths and options are checked before Prefect
starts (one line per problem, exit 1, nothing written); failed cases give exit 3 unless
--allow-failures; reading commands refuse a folder that is not a dataset; Prefect that cannot be
reached or started is one clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ops_helpers import read_rows, write_rows
from typer.testing import CliRunner

from tumorcot.cli import EXIT_CASES_FAILED, app
from tumorcot.imaging.phantom import write_phantom_cases

runner = CliRunner()
TUMORCOT = str(Path(sys.executable).parent / "tumorcot")


def _subprocess(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    environ = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), **env)
    environ.pop("PREFECT_API_URL", None)
    environ.update(env)
    return subprocess.run([TUMORCOT, *args], cwd=cwd, env=environ, capture_output=True, encoding="utf-8",
                          errors="replace", timeout=240)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    return write_phantom_cases(tmp_path_factory.mktemp("errors") / "cases", 2, seed=5, scale=4)


@pytest.mark.parametrize("what, expected", [
    ("missing", "does not exist"),
    ("folder", "is a folder"),
    ("no-columns", "lacks the column(s) ct, patient_id, study_id"),
])
def test_bad_manifest_is_one_line_before_prefect_and_writes_nothing(tmp_path, what, expected):
    manifest = {"missing": tmp_path / "nope.csv", "folder": tmp_path}[what] if what != "no-columns" else \
        tmp_path / "m.csv"
    if what == "no-columns":
        manifest.write_text("a,b\n1,2\n")
    result = _subprocess(["build", "-m", str(manifest), "-o", "ds"], cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [l for l in (result.stdout + result.stderr).splitlines() if l.strip()]
    assert len(lines) == 1 and expected in lines[0], lines
    assert "Traceback" not in result.stderr and "prefect" not in (result.stdout + result.stderr).lower()
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.private").exists()


def test_every_problem_is_listed_before_anything_starts(tmp_path, phantoms, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    rows = read_rows(phantoms)
    manifest = write_rows(phantoms.parent / "broken.csv", [dict(rows[0], ct="gone.nii.gz"),
                                                           dict(rows[1], pathology="T=T9")])
    result = runner.invoke(app, ["build", "-m", str(manifest), "-o", str(tmp_path / "ds"), "--generator", "llm",
                                 "--task-runner", "threads", "--dask-address", "tcp://127.0.0.1:1"])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    for expected in ("[row 1] ct not found", "[row 2] field", "no usable row", "--generator llm needs OPENAI_BASE_URL",
                     "--dask-address needs --task-runner dask"):
        assert expected in out, result.output
    assert not (tmp_path / "ds").exists()


def test_failed_cases_give_exit_3_unless_allowed(tmp_path, phantoms, prefect_server):
    rows = read_rows(phantoms)
    manifest = write_rows(phantoms.parent / "one-bad.csv", [rows[0], dict(rows[1], ct="gone.nii.gz")])
    result = runner.invoke(app, ["build", "-m", str(manifest), "-o", str(tmp_path / "ds")])
    assert result.exit_code == EXIT_CASES_FAILED == 3, result.output
    assert "1 case(s) failed" in " ".join(result.output.split())
    again = runner.invoke(app, ["build", "-m", str(manifest), "-o", str(tmp_path / "ds"), "--allow-failures"])
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("command", [["audit"], ["audit", "--failures"], ["stats"], ["export", "-f", "llava"]])
def test_reading_commands_refuse_a_folder_that_is_not_a_dataset(tmp_path, command):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hello")
    args = [command[0], str(tmp_path / "stuff"), *([str(tmp_path / "x.jsonl")] if command[0] == "export" else []),
            *command[1:]]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "not a tumorcot dataset" in " ".join(result.output.split())


def test_unreachable_prefect_api_is_one_clear_message(tmp_path, phantoms):
    result = _subprocess(["build", "-m", str(phantoms), "-o", "ds"], cwd=tmp_path,
                         PREFECT_API_URL="http://127.0.0.1:9/api")
    assert result.returncode == 1
    text = " ".join((result.stdout + result.stderr).split())
    assert "PREFECT_API_URL=http://127.0.0.1:9/api does not answer" in text and "prefect server start" in text
    assert "Traceback" not in text


def test_temporary_server_that_cannot_start_is_one_clear_message(tmp_path, phantoms):
    broken_db = f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/prefect.db"
    result = _subprocess(["build", "-m", str(phantoms), "-o", "ds"], cwd=tmp_path,
                         TUMORCOT_PREFECT_STARTUP_S="5", PREFECT_API_DATABASE_CONNECTION_URL=broken_db,
                         PREFECT_HOME=str(tmp_path / "prefect-home"))
    assert result.returncode == 1
    text = " ".join((result.stdout + result.stderr).split())
    assert "temporary API server did not start within 5 s" in text and "prefect server start" in text, text
    assert "Traceback" not in text


def test_serve_with_an_unreachable_configured_server_fails_at_once(tmp_path, phantoms):
    result = _subprocess(["serve", "-m", str(phantoms), "-o", "ds", "--interval", "5"], cwd=tmp_path,
                         PREFECT_API_URL="http://127.0.0.1:9/api")
    assert result.returncode == 1
    text = " ".join((result.stdout + result.stderr).split())
    assert "does not answer" in text and "prefect server start" in text and "Traceback" not in text
