"""Stats, dataset card, Croissant metadata and chat exports of a real (phantom) dataset built by the flow."""

from __future__ import annotations

import csv
import json
import typing
import os
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.dataset as pads
import pytest
import SimpleITK as sitk
import yaml
from typer.testing import CliRunner

from tumorcot.schemas.records import Task
from tumorcot.cli import app
from tumorcot.errors import ExportError
from tumorcot.exports.chat import export_chat
from tumorcot.flows.build import run_build
from tumorcot.imaging.io import content_sha256
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.schemas import CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.private import default_state_dir
from tumorcot.store.shards import read_manifest
from tumorcot.store.stats import stamp

from ops_helpers import copy_dataset

SALT = "exports-test-salt"   # with phantom seed 5, the six patients fall in all three splits
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_server):
    """(dataset folder, phantom case manifest)."""
    root = tmp_path_factory.mktemp("exports")
    manifest = write_phantom_cases(root / "cases", 6, seed=5, scale=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUMORCOT_SALT", SALT)
        summary = run_build(manifest, root / "ds")
    assert summary["failed"] == 0 and summary["assembly"] == "full"
    return root / "ds", manifest


@pytest.fixture(scope="module")
def rows(built) -> list[dict]:
    """Every record, counted independently of tumorcot: pyarrow over the Parquet files."""
    return pads.dataset(built[0] / "data", format="parquet").to_table().to_pylist()


def raw_ids(manifest: Path) -> set[str]:
    with open(manifest, newline="") as fh:
        return {r[k] for r in csv.DictReader(fh) for k in ("patient_id", "study_id")}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- stats.json -------------------------------------------------------------------------------

def test_stats_json_counts_equal_the_parquet_rows(built, rows):
    ds, _ = built
    stats = json.loads((ds / "stats.json").read_text())
    assert stats["manifest"] == stamp(read_manifest(ds))
    assert stats["records"] == len(rows) > 0
    assert stats["by_task"] == dict(Counter(r["task"] for r in rows))
    assert stats["by_split"] == dict(Counter(r["split"] for r in rows))
    assert set(stats["by_split"]) == {"train", "validation", "test"}
    assert stats["by_organ"] == dict(Counter(r["organ"] or "(none)" for r in rows))
    subtasks = Counter((r["task"], r["subtask"]) for r in rows)
    assert {(t, s): n for t, subs in stats["by_task_subtask"].items() for s, n in subs.items()} == subtasks
    task_split = Counter((r["task"], r["split"]) for r in rows)
    assert {(t, s): n for t, per in stats["by_task_split"].items() for s, n in per.items()} == task_split
    for split in ("train", "validation", "test"):
        assert stats["patients"][split] == len({r["patient_pseudo_id"] for r in rows if r["split"] == split})
    assert stats["patients"]["total"] == 6
    eligible = [r for r in rows if r["subtask"] in ("presence", "count", "organ_report")]
    assert stats["negatives"]["eligible"] == len(eligible)
    assert stats["negatives"]["records"] == sum(r["negative"] for r in rows)
    assert stats["synthetic"] == {"records": len(rows), "share": 1.0}
    assert stats["families"] == [f for f in typing.get_args(Task) if f in {r["task"] for r in rows}]
    choice = [r for r in rows if r["form"] == "multiple_choice"]
    assert sum(e["records"] for e in stats["answer_positions"].values()) == len(choice)


def test_unchanged_rebuild_keeps_current_stats_and_repairs_stale_ones(built, tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    copy_dataset(built[0], ds)
    monkeypatch.setenv("TUMORCOT_SALT", SALT)
    before = (ds / "stats.json").stat().st_mtime_ns
    again = run_build(built[1], ds)
    assert again["assembly"] == "unchanged"
    assert (ds / "stats.json").stat().st_mtime_ns == before          # current: not rewritten
    good = json.loads((ds / "stats.json").read_text())
    stale = dict(good, manifest={"run_id": "run-killed", "created": "then"}, records=-1)
    (ds / "stats.json").write_text(json.dumps(stale))
    (ds / "README.md").unlink()
    assert run_build(built[1], ds)["assembly"] == "unchanged"
    assert json.loads((ds / "stats.json").read_text()) == good       # stale stamp: recomputed
    assert (ds / "README.md").exists()


def test_regenerating_a_patient_rewrites_the_stats(built, tmp_path, monkeypatch):
    from tumorcot.ops.regenerate import regenerate

    ds = tmp_path / "ds"
    copy_dataset(built[0], ds)
    monkeypatch.setenv("TUMORCOT_SALT", SALT)
    summary = regenerate(ds, "phantom-5-000", reason="exports test")
    assert summary["assembly"] == "incremental"
    stats = json.loads((ds / "stats.json").read_text())
    assert stats["manifest"] == stamp(read_manifest(ds)) and stats["manifest"]["run_id"] == summary["run_id"]
    assert summary["run_id"] in (ds / "README.md").read_text()


# ---- dataset card and Croissant ---------------------------------------------------------------

def front_matter(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_front_matter_lets_datasets_load_each_split(built, rows, tmp_path):
    ds, _ = built
    meta = front_matter(ds / "README.md")
    assert meta["license"] and "visual-question-answering" in meta["task_categories"] and "medical" in meta["tags"]
    [config] = meta["configs"]
    assert {f["split"]: f["path"] for f in config["data_files"]} == {
        s: f"data/{s}-*.parquet" for s in ("train", "validation", "test")}
    from datasets import load_dataset

    per_split = Counter(r["split"] for r in rows)
    loaded = load_dataset(str(ds), cache_dir=str(tmp_path / "hf1"))
    assert {s: d.num_rows for s, d in loaded.items()} == per_split
    assert loaded["train"].column_names == arrow_schema(CoTRecord).names
    plain = load_dataset("parquet", data_dir=str(ds / "data"), cache_dir=str(tmp_path / "hf2"))
    assert plain["train"].num_rows == per_split["train"]


def test_card_describes_the_build(built, rows):
    ds, _ = built
    text = (ds / "README.md").read_text()
    versions = read_manifest(ds)["versions"]
    for key in ("kg", "prompts", "pipeline", "generator"):
        assert str(versions[key]) in text
    assert "LPS" in text and "calibrator" in text.lower()
    for field in arrow_schema(CoTRecord).names:
        assert f"`{field}`" in text
    assert f"{len(rows)} records" in text
    assert "synthetic (phantom) records" in text and "negatives" in text


def test_croissant_is_jsonld_with_a_fileset_per_split_and_the_schema_fields(built):
    ds, _ = built
    meta = json.loads((ds / "croissant.json").read_text())
    assert meta["@type"] == "sc:Dataset" and meta["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert meta["@context"]["cr"] == "http://mlcommons.org/croissant/" and meta["@context"]["@vocab"] == "https://schema.org/"
    for key in ("name", "description", "license", "distribution", "recordSet"):
        assert meta[key]
    filesets = {d["@id"]: d for d in meta["distribution"]}
    assert set(filesets) == {"train-files", "validation-files", "test-files"}
    for split in ("train", "validation", "test"):
        fs = filesets[f"{split}-files"]
        assert fs["@type"] == "cr:FileSet" and fs["encodingFormat"] == "application/x-parquet"
        listed = {f["path"] for f in read_manifest(ds)["files"] if f.get("split") == split}
        assert {str(p.relative_to(ds)) for p in ds.glob(fs["includes"])} == listed
    schema = arrow_schema(CoTRecord)
    record_sets = {r["@id"]: r for r in meta["recordSet"]}
    assert record_sets["splits"]["dataType"] == "cr:Split"
    fields = {f["name"]: f for f in record_sets["records_train"]["field"]}
    assert list(fields) == schema.names
    assert fields["question"]["dataType"] == "sc:Text" and fields["answer_index"]["dataType"] == "sc:Integer"
    assert fields["negative"]["dataType"] == "sc:Boolean"
    assert fields["roi_box"] == {**fields["roi_box"], "repeated": True, "dataType": "sc:Float"}
    assert fields["options"]["repeated"] and fields["options"]["dataType"] == "sc:Text"
    steps = {f["name"]: f for f in fields["steps"]["subField"]}
    assert fields["steps"]["repeated"] and set(steps) == set(schema.field("steps").type.value_type.names)
    assert steps["text"]["source"]["transform"] == {"jsonPath": "text"}
    assert steps["fact_ids"]["repeated"] and steps["index"]["dataType"] == "sc:Integer"
    for f in fields.values():
        assert f["source"] == {**f["source"], "fileSet": {"@id": "train-files"}, "extract": {"column": f["name"]}}


# ---- chat exports -----------------------------------------------------------------------------

def check_image(path: str, record_sha: str, cache: dict) -> None:
    if path not in cache:
        assert Path(path).is_absolute() and Path(path).exists()
        image = sitk.ReadImage(path)
        assert image.GetDimension() == 3
        cache[path] = content_sha256(Path(path))
    assert cache[path] == record_sha    # the very CT the record was built from


def test_llava_export_round_trip(built, rows, tmp_path):
    ds, _ = built
    summary = export_chat(ds, tmp_path / "all.jsonl", "llava")
    items = read_jsonl(tmp_path / "all.jsonl")
    assert summary["written"] == len(items) == len(rows) and summary["skipped"] == 0
    by_id = {r["record_id"]: r for r in rows}
    in_order = [r["record_id"] for split in ("train", "validation", "test") for r in rows if r["split"] == split]
    assert [i["id"] for i in items] == in_order        # split by split, each in shard order
    cache: dict = {}
    for item in items:
        record = by_id[item["id"]]
        check_image(item["image"], record["image_sha256"], cache)
        turns = item["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2) and len(turns) % 2 == 0
        assert turns[0]["value"].startswith("<image>\n")
        assert turns[0]["value"].removeprefix("<image>\n").startswith(record["question"])
        assert turns[-1]["value"] == record["turns"][-1]["content"]     # the stored final answer
        assert record["conclusion"] in turns[-1]["value"]
        assert item["roi"] == record["roi_box"] and item["meta"]["split"] == record["split"]


def test_sharegpt_export_per_split_folder_with_llama_factory_registry(built, rows, tmp_path):
    ds, _ = built
    out = tmp_path / "sg"
    export_chat(ds, out, "sharegpt", splits=["train", "test"])
    assert sorted(p.name for p in out.iterdir()) == ["dataset_info.json", "test.jsonl", "train.jsonl"]
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["tumorcot_train"]["file_name"] == "train.jsonl"
    assert info["tumorcot_train"]["columns"] == {"messages": "messages", "images": "images"}
    assert info["tumorcot_train"]["tags"]["role_tag"] == "role"
    cache: dict = {}
    for split in ("train", "test"):
        items = read_jsonl(out / f"{split}.jsonl")
        expected = [r for r in rows if r["split"] == split]
        assert [i["id"] for i in items] == [r["record_id"] for r in expected]
        for item, record in zip(items, expected):
            roles = [m["role"] for m in item["messages"]]
            assert roles == ["user", "assistant"] * (len(roles) // 2)
            first = item["messages"][0]["content"]
            assert first.startswith("<image>") and first.count("<image>") == len(item["images"]) == 1
            check_image(item["images"][0], record["image_sha256"], cache)


def test_image_root_writes_relative_paths_and_refuses_outside_ones(built, tmp_path):
    ds, manifest = built
    items = read_jsonl(Path(export_chat(ds, tmp_path / "rel.jsonl", "llava", image_root=manifest.parent)
                            ["files"].popitem()[0]))
    assert all(not Path(i["image"]).is_absolute() and (manifest.parent / i["image"]).exists() for i in items)
    with pytest.raises(ExportError, match="not under --image-root"):
        export_chat(ds, tmp_path / "bad.jsonl", "llava", image_root=tmp_path)
    assert not (tmp_path / "bad.jsonl").exists()      # no partial file


def test_no_raw_identifier_in_exports_card_stats_or_croissant(built, tmp_path):
    ds, manifest = built
    ids = raw_ids(manifest)
    assert ids and all(len(i) >= 3 for i in ids)
    export_chat(ds, tmp_path / "l.jsonl", "llava")
    export_chat(ds, tmp_path / "s", "sharegpt")
    texts = {p: p.read_text() for p in [tmp_path / "l.jsonl", *sorted((tmp_path / "s").iterdir()),
                                        ds / "README.md", ds / "stats.json", ds / "croissant.json"]}
    for path, text in texts.items():
        assert not [i for i in ids if i in text], path


# ---- missing cases, raw ids in paths ----------------------------------------------------------

@pytest.fixture
def copied(built, tmp_path) -> Path:
    copy_dataset(built[0], tmp_path / "ds")
    return tmp_path / "ds"


def first_case(ds: Path) -> str:
    return read_manifest(ds)["cases"][0]["case_id"]


def test_missing_case_row_is_an_error_naming_the_case_or_skipped(copied, rows, tmp_path):
    case = first_case(copied)
    (default_state_dir(copied) / "cases" / case / "input.json").unlink()
    with pytest.raises(ExportError, match=f"record r-.*case {case}.*--skip-missing"):
        export_chat(copied, tmp_path / "x.jsonl", "llava")
    assert not (tmp_path / "x.jsonl").exists()
    summary = export_chat(copied, tmp_path / "x.jsonl", "llava", skip_missing=True)
    lost = sum(r["case_id"] == case for r in rows)
    assert summary["skipped"] == lost > 0 and summary["skipped_cases"] == [case]
    assert len(read_jsonl(tmp_path / "x.jsonl")) == len(rows) - lost


def test_ct_path_with_a_raw_id_is_refused_unless_linked(copied, built, tmp_path):
    """A CT kept under a folder named after the patient (as many archives do)."""
    case = first_case(copied)
    path = default_state_dir(copied) / "cases" / case / "input.json"
    row = json.loads(path.read_text())
    folder = tmp_path / "archive" / row["patient_id"]
    folder.mkdir(parents=True)
    shutil.copy(row["ct"], folder / "ct.nii.gz")
    path.write_text(json.dumps(dict(row, ct=str(folder / "ct.nii.gz"))))
    for skip in (False, True):    # not a missing CT: --skip-missing does not hide it
        with pytest.raises(ExportError, match="raw patient or study id") as err:
            export_chat(copied, tmp_path / "x.jsonl", "llava", skip_missing=skip)
        assert row["patient_id"] not in str(err.value)
    links = tmp_path / "links"
    export_chat(copied, tmp_path / "x.jsonl", "llava", link_dir=links)
    images = {i["image"] for i in read_jsonl(tmp_path / "x.jsonl") if i["meta"]["case_id"] == case}
    assert images == {str(links / f"{case}.nii.gz")}
    assert os.path.realpath(links / f"{case}.nii.gz") == str(folder / "ct.nii.gz")
    assert row["patient_id"] not in (tmp_path / "x.jsonl").read_text()


# ---- CLI --------------------------------------------------------------------------------------

def test_cli_export_and_stats(built, rows, tmp_path):
    ds, _ = built
    result = runner.invoke(app, ["export", str(ds), str(tmp_path / "v.jsonl"), "--format", "llava",
                                 "--split", "validation"])
    assert result.exit_code == 0, result.output
    expected = sum(r["split"] == "validation" for r in rows)
    assert f"wrote {expected} llava records" in result.output
    assert len(read_jsonl(tmp_path / "v.jsonl")) == expected
    result = runner.invoke(app, ["export", str(ds), str(tmp_path / "o"), "-f", "sharegpt"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "o").glob("*.jsonl")} == {"train.jsonl", "validation.jsonl", "test.jsonl"}
    result = runner.invoke(app, ["export", str(ds), str(tmp_path / "z.jsonl"), "-f", "alpaca"])
    assert result.exit_code != 0 and "llava, sharegpt" in result.output
    result = runner.invoke(app, ["stats", str(ds)])
    assert result.exit_code == 0, result.output
    for word in ("records per task and split", "records per organ", "negatives", *Counter(r["task"] for r in rows)):
        assert word in result.output
    result = runner.invoke(app, ["stats", str(ds), "--json"])
    assert json.loads(result.output)["records"] == len(rows)
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0 and "llava" in result.output and "--image-root" in result.output


def test_cli_export_error_names_the_case(copied, tmp_path):
    case = first_case(copied)
    (default_state_dir(copied) / "cases" / case / "input.json").unlink()
    result = runner.invoke(app, ["export", str(copied), str(tmp_path / "x.jsonl"), "-f", "llava"])
    assert result.exit_code == 1 and case in result.output
    result = runner.invoke(app, ["export", str(copied), str(tmp_path / "x.jsonl"), "-f", "llava", "--skip-missing"])
    assert result.exit_code == 0 and "skipped" in result.output and case in result.output


# ---- torch ------------------------------------------------------------------------------------

def test_torch_dataset_yields_roi_crops_and_whole_volumes(built, rows):
    pytest.importorskip("torch")
    from tumorcot.exports.crop import crop_to_box
    from tumorcot.exports.torch_dataset import TumorCoTDataset
    from tumorcot.store.cases import CaseStore

    ds, _ = built
    train = [r for r in rows if r["split"] == "train"]
    dataset = TumorCoTDataset(ds, "train")
    assert len(dataset) == len(train)
    store = CaseStore(ds)
    for index in (0, len(dataset) - 1):
        item = dataset[index]
        record = item["record"]
        assert record["record_id"] == train[index]["record_id"]
        ct = sitk.ReadImage(str(store.recall_input(record["case_id"]).ct))
        crop = crop_to_box(ct, record["roi_box"])
        assert tuple(item["image"].shape) == (1, *reversed(crop.GetSize()))   # [1, z, y, x]
        assert str(item["image"].dtype) == "torch.float32"
        assert item["conversation"][0]["role"] == "user"
        whole = TumorCoTDataset(ds, "train", roi=False)[index]["image"]
        assert tuple(whole.shape) == (1, *reversed(ct.GetSize()))
        assert float(whole.min()) == float(sitk.GetArrayViewFromImage(ct).min())   # HU, not rescaled
    assert tuple(TumorCoTDataset(ds, "test", size=(8, 16, 16))[0]["image"].shape) == (1, 8, 16, 16)
