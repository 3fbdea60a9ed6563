"""No destructive surprise, through ``tumorcot build``: a header-only or mostly-emptied manifest
is refused before anything is written, and a case whose input files are missing (an unmounted
share) keeps its published records, reported missing, until removal is asked for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops_helpers import read_rows, write_rows
from tumorcot.cli import app
from tumorcot.errors import RemovalRefusedError
from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.store.private import default_state_dir
from tumorcot.store.shards import read_manifest, read_records
from tumorcot.ops.validate import validate_dataset

pytestmark = pytest.mark.usefixtures("prefect_server")
runner = CliRunner()


def build(manifest: Path, out: Path, *extra: str):
    return runner.invoke(app, ["build", "-m", str(manifest), "-o", str(out), *extra])


@pytest.fixture
def dataset(tmp_path):
    cases = write_phantom_cases(tmp_path / "cases", 4, seed=5, scale=4)
    out = tmp_path / "ds"
    result = build(cases, out)
    assert result.exit_code == 0, result.output
    return cases, out


def snapshot(out: Path) -> tuple[bytes, list[str]]:
    return (out / "manifest.json").read_bytes(), sorted(p.name for p in (default_state_dir(out) / "cases").iterdir())


def test_header_only_manifest_removes_nothing(dataset, tmp_path):
    cases, out = dataset
    before = snapshot(out)
    header_only = tmp_path / "empty.csv"
    header_only.write_text(cases.read_text().splitlines()[0] + "\n")
    result = build(header_only, out)
    assert result.exit_code == 1 and "no data row" in result.output
    assert snapshot(out) == before
    # the flow itself refuses too (scheduled runs and deployments do not go through the CLI)
    with pytest.raises(RemovalRefusedError, match="remove 4 of the dataset's 4"):
        run_build(header_only, out)
    assert snapshot(out) == before


def test_removing_most_cases_needs_allow_removal(dataset, tmp_path):
    cases, out = dataset
    before = snapshot(out)
    one = write_rows(cases.parent / "one.csv", read_rows(cases)[:1])
    refused = build(one, out)
    assert refused.exit_code == 1
    assert "would remove 3 of the dataset's 4 published cases" in " ".join(refused.output.split())
    assert snapshot(out) == before
    allowed = build(one, out, "--allow-removal")
    assert allowed.exit_code == 0, allowed.output
    assert len(read_manifest(out)["cases"]) == 1 and len(snapshot(out)[1]) == 1


def test_missing_inputs_keep_published_records(dataset, tmp_path):
    cases, out = dataset
    rows = read_rows(cases)
    before = read_records(out).to_pylist()
    gone = Path(cases.parent / rows[1]["ct"])
    moved = tmp_path / "unmounted.nii.gz"
    shutil.move(gone, moved)                           # the share holding one CT is not mounted
    result = build(cases, out)
    assert result.exit_code == 3, result.output
    assert "missing" in result.output and "InputsMissing" in result.output
    after = read_records(out).to_pylist()
    assert sorted(r["record_id"] for r in after) == sorted(r["record_id"] for r in before)
    assert validate_dataset(out)[0] == []

    removed = build(cases, out, "--allow-removal", "--allow-failures")   # now asked for: the case fails, leaves
    assert removed.exit_code == 0, removed.output
    assert len(read_manifest(out)["cases"]) == 3
    shutil.move(moved, gone)
    back = build(cases, out)
    assert back.exit_code == 0 and len(read_manifest(out)["cases"]) == 4
