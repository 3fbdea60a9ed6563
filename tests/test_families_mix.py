"""The family mix through the CLI: TumorCoT's published mix by default on a 64-case phantom
build, per split; target vs achieved in stats.json, the card and ``tumorcot stats``; ``--mix off``
and a custom mix rewrite the shards only; multiple-choice letters stay balanced; a bad ``--mix``
fails before anything starts."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ops_helpers import copy_dataset
from typer.testing import CliRunner

from tumorcot.agents.families.mix import Candidate, select
from tumorcot.cli import app
from tumorcot.flows.settings import resolve_settings
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.store.shards import read_manifest

pytestmark = pytest.mark.usefixtures("prefect_server")

# TumorCoT's published mix, typed here: attributes 60 %, report 19 %, localization 11 %, TNM 10 %
PUBLISHED = {"attributes": 0.60, "report": 0.19, "localization": 0.11, "tnm": 0.10}
GROUP = {"lesion_attribute": "attributes", "organ_measure": "attributes", "tumor_burden": "attributes",
         "spatial": "attributes", "cot_report": "report", "pathology": "report", "localization": "localization",
         "tnm_staging": "tnm"}
ENV = {"COLUMNS": "400", "TUMORCOT_SALT": "mix-test-salt"}   # a fixed salt: the same patients in each split


def cli(*args: str):
    result = CliRunner().invoke(app, list(args), env=ENV)
    return result


def shard_rows(dataset: Path) -> list[dict]:
    """Every published record's few columns, read from the shards the manifest lists."""
    rows = []
    for entry in read_manifest(dataset)["files"]:
        if entry["kind"] == "records":
            rows += pq.read_table(dataset / entry["path"], columns=[
                "record_id", "case_id", "split", "task", "subtask", "form", "options", "answer_index"]).to_pylist()
    return rows


def shares_by_split(rows: list[dict]) -> dict[str, dict[str, float]]:
    out = {}
    for split in {r["split"] for r in rows}:
        counts = Counter(GROUP[r["task"]] for r in rows if r["split"] == split)
        total = sum(counts.values())
        out[split] = {g: counts[g] / total for g in PUBLISHED}
    return out


@pytest.fixture(scope="module")
def build64(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix64")
    manifest = write_phantom_cases(root / "cases", 64, seed=0, scale=4)
    out = root / "ds"
    result = cli("build", "--manifest", str(manifest), "--out", str(out))   # the default mix
    assert result.exit_code == 0, result.output
    return manifest, out


def test_default_mix_is_tumorcots_within_5_points_in_every_split(build64):
    _, out = build64
    rows = shard_rows(out)
    by_split = shares_by_split(rows)
    assert set(by_split) == {"train", "validation", "test"}
    for split, shares in by_split.items():
        for group, target in PUBLISHED.items():
            assert abs(shares[group] - target) <= 0.05, (split, group, shares)
    # every TNM record is about a lesion whose labels license it; the TNM family asks three things of it
    assert {r["subtask"] for r in rows if r["task"] == "tnm_staging"} == {"tnm", "t_check", "t_band"}
    # organ boxes capped at 4 per case
    assert max(Counter(r["case_id"] for r in rows if r["subtask"] == "organ_box").values()) <= 4
    # a sensible dataset: hundreds of records, every split holding some of every group
    assert len(rows) >= 600 and all(min(Counter(GROUP[r["task"]] for r in rows if r["split"] == s).values()) > 0
                                    for s in by_split)


def test_stats_card_and_cli_show_target_vs_achieved_per_split(build64):
    _, out = build64
    rows = shard_rows(out)
    stats = json.loads((out / "stats.json").read_text())
    mix = stats["family_mix"]
    assert mix["target"] == PUBLISHED
    for split, shares in shares_by_split(rows).items():
        assert mix["splits"][split]["achieved"] == {g: round(v, 4) for g, v in shares.items()}
        assert sum(mix["splits"][split]["records"].values()) == sum(r["split"] == split for r in rows)
    card = (out / "README.md").read_text()
    section = card.split("### Family mix (target vs achieved)", 1)[1].split("###", 1)[0]
    assert "| group | tasks | target | all | test | train | validation |" in section
    assert "| tnm | tnm_staging | 10.0 % |" in section and "60.0 %" in section
    shown = cli("stats", str(out))
    text = " ".join(shown.output.split())
    assert shown.exit_code == 0 and "family mix (achieved / target)" in text and "validation: attributes" in text


def test_multiple_choice_letters_balanced_after_the_mix(build64):
    """Options are placed per case, before the mix drops records; the mix then re-chooses each
    multiple-choice stratum's records so every pick takes the split's least-used letter
    (agents/families/mix.py). So in each split the letters of k-option questions differ by at most
    one wherever the split's records offer every letter (a small split may hold none at some
    letter), and over the build by at most the number of splits. (A uniform random placement
    would leave a spread of about sqrt(n / k) each way: 4 or more records here.)"""
    _, out = build64
    choice = [r for r in shard_rows(out) if r["form"] == "multiple_choice"]
    assert len(choice) >= 60
    for k in {len(r["options"]) for r in choice}:
        these = [r for r in choice if len(r["options"]) == k]
        overall = Counter(r["answer_index"] for r in these)
        assert set(overall) == set(range(k))
        assert max(overall.values()) - min(overall.values()) <= 3, (k, overall)
        train = Counter(r["answer_index"] for r in these if r["split"] == "train")   # the large split
        assert max(train.values()) - min(train.get(p, 0) for p in range(k)) <= 1, (k, train)


def test_unchanged_rerun_publishes_the_same_records(build64):
    manifest, out = build64
    before = sorted(r["record_id"] for r in shard_rows(out))
    again = cli("build", "--manifest", str(manifest), "--out", str(out))
    assert again.exit_code == 0, again.output
    assert sorted(r["record_id"] for r in shard_rows(out)) == before


def test_mix_off_and_a_custom_mix_rewrite_shards_only(build64, tmp_path):
    manifest, out = build64
    copy = copy_dataset(out, tmp_path / "copy")
    written_by = {c["case_id"]: c["written_by"] for c in read_manifest(copy)["cases"]}
    default_records = len(shard_rows(copy))

    off = cli("build", "--manifest", str(manifest), "--out", str(copy), "--mix", "off")
    assert off.exit_code == 0, off.output
    every = shard_rows(copy)
    assert len(every) > default_records
    assert {c["case_id"]: c["written_by"] for c in read_manifest(copy)["cases"]} == written_by   # none regenerated
    stats = json.loads((copy / "stats.json").read_text())
    assert stats["family_mix"]["target"] is None and "built without a target mix" in (copy / "README.md").read_text()

    custom = {"attributes": 0.5, "report": 0.2, "localization": 0.2, "tnm": 0.1}
    mixed = cli("build", "--manifest", str(manifest), "--out", str(copy),
                "--mix", "attributes=50,report=20,localization=20,tnm=10")
    assert mixed.exit_code == 0, mixed.output
    rows = shard_rows(copy)
    for split, shares in shares_by_split(rows).items():
        for group, target in custom.items():
            assert abs(shares[group] - target) <= 0.05, (split, group, shares)
    assert json.loads((copy / "stats.json").read_text())["family_mix"]["target"] == custom
    assert {c["case_id"]: c["written_by"] for c in read_manifest(copy)["cases"]} == written_by
    # the dataset remembers its mix: a rerun without --mix keeps the custom one
    cli("build", "--manifest", str(manifest), "--out", str(copy))
    assert sorted(r["record_id"] for r in shard_rows(copy)) == sorted(r["record_id"] for r in rows)


def test_bad_mix_fails_before_anything_starts(tmp_path):
    manifest = tmp_path / "none.csv"   # never read: the option is checked first
    for args in (["build", "--manifest", str(manifest), "--out", str(tmp_path / "ds")],
                 ["demo", "--out", str(tmp_path / "demo"), "--cases", "2"]):
        for bad in ("attributes=x", "colour=10", "attributes=-5,tnm=10", "attributes=0"):
            result = cli(*args, "--mix", bad)
            assert result.exit_code == 2 and "--mix" in result.output, (args, bad, result.output)
    assert not (tmp_path / "ds").exists() and not (tmp_path / "demo.inputs").exists()


def test_selection_is_deterministic_and_independent_of_order():
    rng = random.Random(4)
    candidates = [Candidate(record_id=f"r{i}", case_id=f"c{i % 9}", task=task, subtask=f"{task}-{i % 3}",
                            split=("train", "test")[i % 2], negative=i % 4 == 0,
                            choices=4 if i % 5 == 0 else 0, answer_index=i % 4 if i % 5 == 0 else None)
                  for i, task in enumerate(rng.choice(list(GROUP)) for _ in range(400))]
    first = select(candidates, PUBLISHED, 4)
    shuffled = candidates[:]
    rng.shuffle(shuffled)
    assert select(shuffled, PUBLISHED, 4) == first and 0 < len(first) < len(candidates)
    assert select(candidates, None, 4) == {c.record_id for c in candidates}


def test_a_dataset_built_before_the_mix_keeps_every_record(tmp_path):
    """Options stored without ``family_mix`` (manifests written before it existed): built without
    a mix, so a rerun that gives no --mix stays without one; a new dataset gets the default."""
    (tmp_path / "manifest.json").write_text(json.dumps({"versions": {"options": {"negative_share": 0.5}}}))
    assert resolve_settings(tmp_path).options.family_mix is None
    assert resolve_settings(tmp_path / "new").options.family_mix == PUBLISHED


def test_a_scarce_group_keeps_what_it_has_instead_of_shrinking_the_split():
    """Two TNM records among hundreds (a few labelled cases): following 10 % exactly would keep
    20 records; TNM keeps its two and the other groups keep TumorCoT's proportions among themselves."""
    def rows(task, n):
        return [Candidate(record_id=f"{task}{i}", case_id=f"c{i % 30}", task=task, subtask=f"{task}-{i % 4}",
                          split="train") for i in range(n)]
    candidates = rows("tnm_staging", 2) + rows("lesion_attribute", 600) + rows("cot_report", 190) + rows("localization", 110)
    kept = select(candidates, PUBLISHED, 4)
    counts = Counter(GROUP[c.task] for c in candidates if c.record_id in kept)
    assert counts["tnm"] == 2 and len(kept) > 800
    others = sum(counts[g] for g in ("attributes", "report", "localization"))
    for group in ("attributes", "report", "localization"):
        assert abs(counts[group] / others - PUBLISHED[group] / 0.9) <= 0.01, counts
    # TNM at half of what the others allow still binds: the split follows the target exactly
    richer = rows("tnm_staging", 60) + candidates[2:]
    kept = select(richer, PUBLISHED, 4)
    counts = Counter(GROUP[c.task] for c in richer if c.record_id in kept)
    assert counts["tnm"] == 60 and abs(counts["tnm"] / sum(counts.values()) - 0.10) <= 0.01, counts


def test_a_changed_case_rewrites_only_its_splits_records(build64, tmp_path):
    """Under a mix an incremental update chooses again only the split the changed case is in:
    the other splits' parts keep their files; the result equals a build from scratch."""
    from ops_helpers import read_rows, write_rows

    manifest, out = build64
    copy = copy_dataset(out, tmp_path / "copy")
    before = {e["path"]: e["sha256"] for e in read_manifest(copy)["files"] if e["kind"] == "records"}
    rows = read_rows(manifest)
    rows[5]["pathology"] = "behavior=benign; diagnosis=hepatic cyst; organ=liver"
    edited = write_rows(manifest.parent / "edited.csv", rows)
    result = cli("build", "--manifest", str(edited), "--out", str(copy))
    assert result.exit_code == 0, result.output
    changed = next(c for c in read_manifest(copy)["cases"] if c["written_by"] != read_manifest(out)["cases"][0]["written_by"])
    split = next(r["split"] for r in shard_rows(copy) if r["case_id"] == changed["case_id"])
    run = json.loads((copy / "runs" / f"{read_manifest(copy)['run_id']}.json").read_text())
    assert run["assembly"] == "incremental" and run["ok"] == 1
    after = {e["path"]: e["sha256"] for e in read_manifest(copy)["files"] if e["kind"] == "records"}
    assert any(not p.startswith(f"data/{split}-") for p in before)
    for path, sha in before.items():
        if not path.startswith(f"data/{split}-"):
            assert after.get(path) == sha, path               # another split: the same file
    fresh = cli("build", "--manifest", str(edited), "--out", str(tmp_path / "fresh"))
    assert fresh.exit_code == 0, fresh.output
    assert sorted(r["record_id"] for r in shard_rows(copy)) == sorted(r["record_id"] for r in shard_rows(tmp_path / "fresh"))


def test_a_downsampled_subtask_keeps_as_many_wordings_as_its_sample_allows():
    """Twelve records of one subtask, nine drawn with question form 0 and one each with forms 1-3,
    and a mix that keeps six of them: the six hold all four forms (a pick in hash order alone
    would most likely miss some), and the choice is the same in any input order."""
    from tumorcot.agents.families.mix import Candidate, select

    rows = [Candidate(record_id=f"r{i}", case_id=f"c{i}", task="lesion_attribute", subtask="size", split="train",
                      question_form=f"questions/size.j2#{0 if i < 9 else i - 8}", answer_form="answers/size.j2#0")
            for i in range(12)]
    rows += [Candidate(record_id=f"t{i}", case_id=f"c{i}", task="tnm_staging", subtask="tnm", split="train")
             for i in range(6)]
    mix = {"attributes": 1.0, "tnm": 1.0}   # six TNM records allow six attribute records
    kept = select(rows, mix, organ_box_cap=4)
    size = [r for r in rows if r.record_id in kept and r.subtask == "size"]
    assert len(size) == 6
    assert {r.question_form for r in size} == {f"questions/size.j2#{k}" for k in range(4)}
    assert select(list(reversed(rows)), mix, organ_box_cap=4) == kept
