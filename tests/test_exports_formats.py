"""What the training and catalogue tools read: ``--format llava`` as the JSON array LLaVA loads
(JSONL on request), output paths ending .json/.jsonl as files, the card parsed by
``huggingface_hub`` and ``datasets`` (licence link, citation), Croissant validated and read by
``mlcroissant`` (citeAs, version, responsible-AI fields)."""

from __future__ import annotations

import json
import re

import pyarrow.dataset as pads
import pytest
from typer.testing import CliRunner

from tumorcot.cli import app
from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.schemas import GenerationOptions

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, prefect_server):
    root = tmp_path_factory.mktemp("formats")
    manifest = write_phantom_cases(root / "cases", 3, seed=9, scale=4)
    summary = run_build(manifest, root / "ds", options=GenerationOptions(mc_share=1.0))
    assert summary["failed"] == 0
    rows = pads.dataset(root / "ds" / "data", format="parquet").to_table().to_pylist()
    return root / "ds", rows


def test_llava_json_is_one_array_and_jsonl_stays_available(dataset, tmp_path):
    ds, rows = dataset
    result = runner.invoke(app, ["export", str(ds), str(tmp_path / "llava.json"), "-f", "llava"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "llava.json").is_file()
    items = json.loads((tmp_path / "llava.json").read_text())   # what LLaVA's train.py does: json.load
    assert isinstance(items, list) and len(items) == len(rows)
    assert {i["id"] for i in items} == {r["record_id"] for r in rows}
    assert all(i["conversations"][0]["from"] == "human" and i["conversations"][0]["value"].startswith("<image>\n")
               for i in items)
    result = runner.invoke(app, ["export", str(ds), str(tmp_path / "llava.jsonl"), "-f", "llava"])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "llava.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [i["id"] for i in items]


def test_folder_export_writes_one_array_per_split(dataset, tmp_path):
    ds, rows = dataset
    result = runner.invoke(app, ["export", str(ds), str(tmp_path / "out"), "-f", "llava"])
    assert result.exit_code == 0, result.output
    splits = {r["split"] for r in rows}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{s}.json" for s in splits)
    for split in splits:
        items = json.loads((tmp_path / "out" / f"{split}.json").read_text())
        assert len(items) == sum(r["split"] == split for r in rows)


def test_multiple_choice_options_are_shown_once(dataset, tmp_path):
    ds, rows = dataset
    runner.invoke(app, ["export", str(ds), str(tmp_path / "l.json"), "-f", "llava"])
    by_id = {i["id"]: i for i in json.loads((tmp_path / "l.json").read_text())}
    choice = [r for r in rows if r["form"] == "multiple_choice"]
    assert choice
    for record in choice:
        asked = by_id[record["record_id"]]["conversations"][0]["value"]
        for letter, option in zip("ABCDEFGH", record["options"]):   # the lettered list, once
            assert len(re.findall(rf"(?<!\w){letter}\. {re.escape(option)}(?!\w)", asked)) == 1, asked
        assert "Options:" not in asked, asked


def test_card_parses_with_huggingface_hub_and_datasets(dataset, tmp_path):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    ds, rows = dataset
    card = DatasetCard.load(ds / "README.md")
    assert card.data.license == "other" and card.data.license_link == "LICENSE.md"
    assert (ds / "LICENSE.md").read_text().startswith("# Licence")
    bibtex = re.search(r"```bibtex\n(.*?)```", card.text, re.S).group(1)
    assert bibtex.startswith("@misc{") and bibtex.count("{") == bibtex.count("}")
    loaded = load_dataset(str(ds), cache_dir=str(tmp_path / "hf"))
    assert sum(split.num_rows for split in loaded.values()) == len(rows)


def test_croissant_validates_and_reads_with_mlcroissant(dataset):
    import mlcroissant as mlc

    ds, rows = dataset
    meta = json.loads((ds / "croissant.json").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]) and meta["citeAs"].startswith("@misc{")
    for field in ("rai:dataCollection", "rai:dataBiases", "rai:dataLimitations", "rai:personalSensitiveInformation",
                  "rai:dataUseCases", "rai:machineAnnotationTools"):
        assert meta[field], field
    dataset_ = mlc.Dataset(jsonld=str(ds / "croissant.json"))
    assert not dataset_.metadata.ctx.issues.errors and not dataset_.metadata.ctx.issues.warnings
    assert dataset_.metadata.cite_as == meta["citeAs"] and dataset_.metadata.version == meta["version"]
    for split in {r["split"] for r in rows}:
        read = list(dataset_.records(f"records_{split}"))
        assert len(read) == sum(r["split"] == split for r in rows)
