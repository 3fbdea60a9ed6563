"""The private state folder: outside the dataset, placeable, owner-only, migrated from old layouts;
published logs carry prompts as hashes and no report text."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from tumorcot.cli import app
from tumorcot.errors import StateDirError
from tumorcot.schemas import AgentTurn
from tumorcot.schemas.arrow import to_table
from tumorcot.store.private import default_state_dir, state_dir
from tumorcot.store.redact import publishable_log

runner = CliRunner()
NAME = "Zebulon Quackenbush"


def test_default_state_folder_is_a_sibling_and_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv("TUMORCOT_STATE_DIR", raising=False)
    ds = tmp_path / "my-dataset"
    state = state_dir(ds)
    assert state == tmp_path / "my-dataset.private" and state.parent == ds.parent
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert not ds.exists()   # resolving the state folder does not create the dataset


def test_state_folder_inside_the_dataset_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TUMORCOT_STATE_DIR", str(tmp_path / "ds" / "secret"))
    with pytest.raises(StateDirError, match="inside the dataset folder"):
        state_dir(tmp_path / "ds")


def test_legacy_private_folders_are_moved_out_of_the_dataset(tmp_path, monkeypatch):
    monkeypatch.delenv("TUMORCOT_STATE_DIR", raising=False)
    ds = tmp_path / "old"
    (ds / ".tumorcot" / "cases" / "c-1").mkdir(parents=True)
    (ds / ".tumorcot" / "salt").write_text("legacy-salt")
    (ds / ".tumorcot" / "cases" / "c-1" / "input.json").write_text('{"patient_id": "RAW-1"}')
    (ds / "llm-cache" / "ab").mkdir(parents=True)
    (ds / "llm-cache" / "ab" / "abcd.json").write_text("{}")
    (ds / "manifest.json").write_text("{}")
    state = state_dir(ds)
    assert (state / "salt").read_text() == "legacy-salt"
    assert (state / "cases" / "c-1" / "input.json").exists()
    assert (state / "llm-cache" / "ab" / "abcd.json").exists()
    assert sorted(p.name for p in ds.iterdir()) == ["manifest.json"]


def test_cli_state_dir_option_places_all_private_files(tmp_path, monkeypatch, prefect_server):
    from tumorcot.imaging.phantom import write_phantom_cases

    manifest = write_phantom_cases(tmp_path / "cases", 1, seed=3, scale=4)
    state = tmp_path / "vault" / "state"
    monkeypatch.setenv("TUMORCOT_STATE_DIR", str(state))   # restored after the test (the option sets it)
    result = runner.invoke(app, ["--state-dir", str(state), "build", "-m", str(manifest), "-o", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert (state / "salt").exists() and list(state.glob("cases/*/input.json")) and (state / "lock").exists()
    assert not default_state_dir(tmp_path / "ds").exists()
    names = {p.name for p in (tmp_path / "ds").iterdir()}
    assert not names & {".tumorcot", "llm-cache", "salt", "cases"}, names


def _turn(agent: str, messages: list, raw: str | None = None, parsed: str | None = None) -> AgentTurn:
    return AgentTurn(run_id="r", case_id="c", agent=agent, template=f"agents/{agent}.j2", model="m",
                     messages_json=json.dumps(messages), raw_response=raw, parsed_json=parsed,
                     timestamp="2026-01-01T00:00:00")


def test_published_log_hashes_prompts_and_drops_report_text():
    report = (f"Referring physician: Dr. {NAME}. Liver: a 23 mm hypodense lesion in segment VII.\n"
              "Impression: likely a simple cyst.")
    turns = [
        _turn("extractor", [{"role": "system", "content": "extract"}, {"role": "user", "content": report}],
              raw=json.dumps({"content": f"seen by {NAME}"}), parsed=json.dumps({"diagnosis": NAME})),
        _turn("reasoner", [{"role": "user", "content": f"findings: {NAME}"}],
              raw=json.dumps({"content": f"copied: Referring physician: Dr. {NAME}."})),
        AgentTurn(run_id="r", case_id="c", agent="offline-generator", timestamp="t"),
    ]
    table = publishable_log(to_table(AgentTurn, turns), report)
    text = json.dumps(table.to_pylist())
    assert NAME not in text and "segment VII" not in text
    rows = table.to_pylist()
    assert [m["role"] for m in json.loads(rows[0]["messages_json"])] == ["system", "user"]
    assert json.loads(rows[0]["messages_json"])[1]["chars"] == len(report)
    assert json.loads(rows[0]["parsed_json"])["redacted"]
    assert "[report span sha256:" in rows[1]["raw_response"]
    assert rows[2] == turns[2].model_dump()   # a turn without prompt or response passes untouched


def test_published_files_follow_the_umask_and_private_ones_stay_owner_only(tmp_path, prefect_server):
    """Another user reads what is published (group only under umask 027); private files are 0600."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prefect.settings import PREFECT_API_URL

    from tumorcot.imaging.phantom import write_phantom_cases

    manifest = write_phantom_cases(tmp_path / "cases", 1, seed=6, scale=4)
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.pop("TUMORCOT_STATE_DIR", None)
    result = subprocess.run([str(Path(sys.executable).parent / "tumorcot"), "build", "-m", str(manifest), "-o", "ds"],
                            cwd=tmp_path, env=env, capture_output=True, encoding="utf-8", errors="replace",
                            timeout=300,
                            preexec_fn=lambda: os.umask(0o027))
    assert result.returncode == 0, result.stdout + result.stderr
    ds, private = tmp_path / "ds", tmp_path / "ds.private"
    published = [p for p in ds.rglob("*") if p.is_file()]
    assert len(published) >= 8
    assert {stat.S_IMODE(p.stat().st_mode) for p in published} == {0o640}, published
    kept = [p for p in private.rglob("*") if p.is_file()]
    assert kept and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in kept), kept
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_one_placed_state_folder_serves_one_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("TUMORCOT_STATE_DIR", str(tmp_path / "shared-state"))
    first = tmp_path / "first"
    state_dir(first)
    first.mkdir()
    (first / "manifest.json").write_text("{}")
    with pytest.raises(StateDirError, match="belongs to the dataset"):
        state_dir(tmp_path / "second")


def test_rebuilding_an_existing_dataset_without_its_state_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("TUMORCOT_STATE_DIR", raising=False)
    monkeypatch.delenv("TUMORCOT_SALT", raising=False)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text("{}")
    (tmp_path / "m.csv").write_text("patient_id,study_id,ct\nP1,S1,ct.nii.gz\n")
    result = runner.invoke(app, ["build", "-m", str(tmp_path / "m.csv"), "-o", str(tmp_path / "ds")])
    assert result.exit_code == 1 and "new pseudonyms" in " ".join(result.output.split())
    assert not default_state_dir(tmp_path / "ds").exists()
