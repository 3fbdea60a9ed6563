"""The family mix: target shares as a generation option, organ boxes capped, target vs achieved in
the stats, the card and ``tumorcot stats``; through the CLI (``tumorcot build --mix tumorcot``)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from tumorcot.agents.offline import OfflineGenerator
from tumorcot.case_manifest import read_case_manifest
from tumorcot.cli import app
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import extract_facts
from tumorcot.schemas import GenerationOptions
from tumorcot.store.keys import input_hashes

KG = load_kg()
# TumorCoT's published mix, typed here: attributes 60 %, report 19 %, localization 11 %, TNM 10 %
PUBLISHED = {"attributes": 0.60, "report": 0.19, "localization": 0.11, "tnm": 0.10}
GROUP = {"lesion_attribute": "attributes", "organ_measure": "attributes", "tumor_burden": "attributes",
         "spatial": "attributes", "cot_report": "report", "pathology": "report", "localization": "localization",
         "tnm_staging": "tnm"}


@pytest.fixture(scope="module")
def phantom_facts(tmp_path_factory):
    manifest = write_phantom_cases(tmp_path_factory.mktemp("mix") / "cases", 32, seed=3, scale=4)
    return [extract_facts(c, b"t" * 32, input_hashes(c)) for c in read_case_manifest(manifest)]


def shares(records) -> dict[str, float]:
    counts = Counter(GROUP[r.task] for r in records)
    return {g: counts[g] / len(records) for g in PUBLISHED}


def test_mix_moves_the_shares_towards_the_target_and_caps_organ_boxes(phantom_facts):
    every = [OfflineGenerator(KG).generate(f) for f in phantom_facts]
    mixed = [OfflineGenerator(KG, GenerationOptions(family_mix=PUBLISHED)).generate(f) for f in phantom_facts]
    before, after = shares([r for rs in every for r in rs]), shares([r for rs in mixed for r in rs])
    for group in ("report", "localization"):   # groups every case has: within 5 points of the target
        assert abs(after[group] - PUBLISHED[group]) <= 0.05, (group, after)
        assert abs(after[group] - PUBLISHED[group]) < abs(before[group] - PUBLISHED[group])
    # TNM exists only where labels license it: the mix cannot create it, only stop diluting it
    assert after["tnm"] > before["tnm"]
    for records in mixed:
        assert sum(r.subtask == "organ_box" for r in records) <= 4
    # round-robin over subtasks: the mix thins every subtask, it drops none from the dataset
    assert {r.subtask for rs in mixed for r in rs} == {r.subtask for rs in every for r in rs}


def test_cli_build_with_mix_reports_target_and_achieved(tmp_path, prefect_server):
    manifest = write_phantom_cases(tmp_path / "cases", 4, seed=3, scale=4)
    runner = CliRunner()
    out = tmp_path / "ds"
    result = runner.invoke(app, ["build", "--manifest", str(manifest), "--out", str(out), "--mix", "tumorcot"],
                           env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    mix = stats["family_mix"]
    assert mix["target"] == PUBLISHED
    assert sum(mix["records"].values()) == stats["records"]
    card = (out / "README.md").read_text()
    assert "Family mix (target vs achieved)" in card and "60.0 %" in card
    shown = runner.invoke(app, ["stats", str(out)], env={"COLUMNS": "400"})
    assert shown.exit_code == 0 and "family mix (achieved / target)" in " ".join(shown.output.split())
    bad = runner.invoke(app, ["build", "--manifest", str(manifest), "--out", str(out), "--mix", "attributes=x"])
    assert bad.exit_code != 0 and "--mix" in bad.output
