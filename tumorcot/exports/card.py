"""The dataset card ``DIR/README.md`` (Hugging Face format) and ``DIR/LICENSE.md``, rebuilt from
manifest and stats.

The front matter is ``huggingface_hub.DatasetCardData`` (licence ``other`` with ``license_name``
and ``license_link`` to ``LICENSE.md``, which says whose terms apply); the body ends with a
BibTeX citation of this build (``citation``, also Croissant's ``citeAs``). Its ``configs`` lists each split's shards (``data/{split}-*.parquet``), so
``datasets.load_dataset(DIR)`` finds the splits by itself; only splits that hold records are
listed (a pattern matching no file is an error for ``datasets``). The body says how the records
were made and what they contain; it carries pseudonymous and aggregate content only.
"""

from __future__ import annotations

import json
from pathlib import Path

from tumorcot.schemas import BOX_CONVENTION, CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.atomic import atomic_write_bytes

LICENSE = "other"
LICENSE_FILE = "LICENSE.md"
LICENSE_NOTE = ("The records are derived from the source CT volumes and their labels: they inherit the terms "
                "of those sources (see each record's `source`). Set the licence here before publishing.")
TASK_CATEGORIES = ("visual-question-answering", "image-text-to-text")
TAGS = ("medical", "computed-tomography", "3d", "oncology", "chain-of-thought", "vqa", "tumorcot")

FIELD_DOCS = {
    "record_id": "stable id of the record (hash of case, task, subtask, subject)",
    "case_id": "pseudonymous case (one CT study): salted hash of patient and study ids",
    "patient_pseudo_id": "pseudonymous patient; splits are made per patient",
    "study_pseudo_id": "pseudonymous study",
    "split": "train / validation / test, by patient",
    "task": "family: localization, lesion_attribute, cot_report, tnm_staging, pathology",
    "subtask": "e.g. organ_box, lesion_box, presence, size, density, count, organ_report",
    "organ": "the organ the question is about (TotalSegmentator name)",
    "lesion_id": "the lesion it is about (L1, L2, ... by decreasing volume)",
    "question": "the question as asked",
    "form": "open or multiple_choice",
    "options": "multiple choice: the options, in the order shown",
    "answer_index": "multiple choice: index of the answer in options",
    "negative": "about an organ without lesions",
    "answer": "the short answer",
    "think": "the rationale, rendered from the steps",
    "conclusion": "the final statement",
    "steps": "ordered reasoning steps: stage, text, fact_ids, kg_node_ids, roi_box, follows_from",
    "turns": "conversation turns (question, first_pass, attend with roi_box/crop_ref, final)",
    "roi_box": "the region the record is about, six normalised numbers",
    "template": "question template and variant",
    "answer_template": "answer form (answers/<subtask>.j2#<form>)",
    "image_sha256": "content hash of the CT (records carry no file paths)",
    "generator": "offline-kg, or llm:MODEL",
    "synthetic": "made from a synthetic (phantom) case",
    "source": "where the case comes from",
    "kg_version": "knowledge-graph version",
    "prompt_version": "prompt/template version",
    "pipeline_version": "tumorcot pipeline version",
}


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def record_splits(manifest: dict) -> list[str]:
    """Splits with at least one record shard, in the manifest's order of first appearance."""
    return list(dict.fromkeys(f["split"] for f in manifest.get("files", []) if f["kind"] == "records"))


def card_data(manifest: dict, stats: dict):
    from huggingface_hub import DatasetCardData

    splits = record_splits(manifest)   # an empty data_files list is invalid: no records, no config
    configs = [{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits]}]
    return DatasetCardData(
        license=LICENSE, license_name="source-ct-terms", license_link=LICENSE_FILE,
        pretty_name="tumorcot CT chain-of-thought VQA", task_categories=list(TASK_CATEGORIES), language=["en"],
        tags=[*TAGS, *(["synthetic"] if stats["synthetic"]["records"] else [])],
        size_categories=[_size_category(stats["records"])], configs=configs if splits else None)


def front_matter(manifest: dict, stats: dict) -> str:
    return f"---\n{card_data(manifest, stats).to_yaml()}\n---\n"


def citation(name: str, manifest: dict) -> str:
    """BibTeX of this build of the dataset."""
    created = manifest.get("created") or ""
    key = "".join(c if c.isalnum() else "_" for c in name)
    return "\n".join([
        f"@misc{{{key}_{created[:4] or 'tumorcot'},",
        f"  title = {{{{{name}}}: CT chain-of-thought VQA records built with tumorcot}},",
        f"  year = {{{created[:4]}}},",
        f"  note = {{tumorcot {manifest.get('package_version')}, build run {manifest.get('run_id')}, knowledge graph "
        f"{manifest.get('versions', {}).get('kg')}; derived from the source CT collections named in each record's "
        "source field, whose own citations apply},",
        "}"])


def _table(header: tuple[str, ...], rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def _pct(share) -> str:
    return "n/a" if share is None else f"{100 * share:.1f} %"


def _counts_sections(stats: dict) -> list[str]:
    splits = sorted(stats["by_split"])
    out = ["## Contents", "", f"{stats['records']} records from {stats['patients']['total']} patients.", ""]
    out += ["### Per task and split", ""]
    out += _table(("task", *splits, "total"), [
        (task, *[stats["by_task_split"][task].get(s, 0) for s in splits], n) for task, n in stats["by_task"].items()])
    out += _mix_section(stats)
    out += ["### Per task and subtask", ""]
    out += _table(("task", "subtask", "records"), [
        (task, sub, n) for task, subs in stats["by_task_subtask"].items() for sub, n in subs.items()])
    out += ["### Per organ", ""]
    out += _table(("organ", "records"), stats["by_organ"].items())
    out += ["### Per split", ""]
    out += _table(("split", "records", "patients"),
                  [(s, n, stats["patients"].get(s, 0)) for s, n in stats["by_split"].items()])
    return out


def _mix_section(stats: dict) -> list[str]:
    """Family groups (TumorCoT's four) with target and achieved shares, overall and per split
    (the mix is applied per split)."""
    mix = stats.get("family_mix")
    if not mix:
        return []
    target = mix.get("target") or {}
    splits = mix.get("splits") or {}
    out = ["### Family mix (target vs achieved)", "",
           "Achieved share (records) overall and per split; " + (
               "the target is the build's `--mix`." if target else "built without a target mix (`--mix off`)."), ""]
    return out + _table(("group", "tasks", "target", "all", *splits), [
        (g, ", ".join(mix["groups"].get(g, ["other"])), _pct(target.get(g)) if target else "none",
         f"{_pct(mix['achieved'].get(g))} ({n})",
         *[f"{_pct(s['achieved'].get(g, 0.0))} ({s['records'].get(g, 0)})" for s in splits.values()])
        for g, n in mix["records"].items()])


def _quality_sections(stats: dict) -> list[str]:
    neg, syn = stats["negatives"], stats["synthetic"]
    out = ["### Answer-position balance (multiple choice)", ""]
    if stats["answer_positions"]:
        out += _table(("options", "records", "answers per position", "max deviation from uniform"), [
            (k, v["records"], " / ".join(map(str, v["counts"])), _pct(v["max_relative_deviation"]))
            for k, v in stats["answer_positions"].items()])
    else:
        out += ["No multiple-choice records.", ""]
    out += ["### Negatives and synthetic data", "",
            f"- negatives (about an organ without lesions): {neg['records']} of {neg['eligible']} records of the "
            f"subtasks that can be negative ({', '.join(neg['subtasks'])}): {_pct(neg['share'])}",
            f"- synthetic (phantom) records: {syn['records']} of {stats['records']}: {_pct(syn['share'])}",
            f"- families present: {', '.join(stats['families']) or 'none'}", ""]
    return out


def _short_type(arrow_type) -> str:
    """``list<struct>`` rather than the struct's full member list (given in the meaning column)."""
    text = str(arrow_type).replace("item: ", "")
    return "list<struct>" if text.startswith("list<struct<") else text


def _schema_section() -> list[str]:
    schema = arrow_schema(CoTRecord)
    rows = [(f"`{f.name}`", f"`{_short_type(f.type)}`",
             FIELD_DOCS.get(f.name) or CoTRecord.model_fields[f.name].description or "") for f in schema]
    return ["## Record schema", ""] + _table(("field", "Arrow type", "meaning"), rows)


def _build_section(manifest: dict) -> list[str]:
    versions = manifest.get("versions", {})
    rows = [(k, f"`{json.dumps(v) if isinstance(v, dict) else v}`") for k, v in sorted(versions.items())]
    return [
        "## How the records were made", "",
        "1. **Facts.** Each CT (NIfTI or DICOM) is loaded in HU, organ and lesion masks are put on its grid in "
        "physical space, and organs and lesions are measured (volumes, diameters, attenuation, boxes, "
        "sub-locations). Every number a record states is one of these facts, cited by id.",
        "2. **Knowledge graph.** A versioned tumour-ontology graph licenses each impression and pathology "
        "(differentials, sub-locations, size-based T rules); N, M and histology are only copied from given labels.",
        "3. **Generation and calibration.** The generator (offline KG-grounded templates, or an LLM multi-agent "
        "engine) writes the question, the step-aligned reasoning findings -> impression -> pathology and the "
        "answer; a deterministic calibrator checks every cited fact and KG node and rejects records that fail, "
        "so no unchecked record reaches a shard.", "",
        f"Build run `{manifest.get('run_id')}`, written {manifest.get('created')}, tumorcot "
        f"{manifest.get('package_version')}.", "",
    ] + _table(("version", "value"), rows) + [
        "Boxes: " + BOX_CONVENTION + ". Millimetre coordinates are DICOM LPS.", ""]


def dataset_card(dataset_dir: Path, manifest: dict, stats: dict) -> str:
    name = Path(dataset_dir).resolve().name
    body = [
        f"# {name}: tumorcot CT chain-of-thought VQA records", "",
        "Visual question answering records over 3D CT whose reasoning runs step by step from measured "
        "findings to an impression to pathology, each step citing the measured facts, knowledge-graph nodes "
        "and the region of the CT it rests on. Images are not included: each record names its CT by content "
        "hash (`image_sha256`).", "",
        f"Licence: {LICENSE_NOTE}", "",
        "## Load", "", "```python", "from datasets import load_dataset",
        f'ds = load_dataset("path/to/{name}")   # this folder; splits from the configs above',
        "```", "",
        "Records carry pseudonymous ids only (salted hashes); splits are by patient, so no patient spans "
        "two splits. Chat-format exports (`tumorcot export --format llava|sharegpt`) and a PyTorch dataset "
        "(`tumorcot.exports.torch_dataset.TumorCoTDataset`) add the CT itself.", "",
    ]
    sections = body + _counts_sections(stats) + _quality_sections(stats) + _build_section(manifest) + _schema_section()
    sections += ["## Citation", "", "```bibtex", citation(name, manifest), "```", "",
                 "Please also cite the collections the CT volumes come from (see `source`).", ""]
    from huggingface_hub import DatasetCard

    return DatasetCard(front_matter(manifest, stats) + "\n" + "\n".join(sections)).content


def licence_text(manifest: dict) -> str:
    return "\n".join(["# Licence", "", LICENSE_NOTE, "",
                      "These records contain no image data: each names its CT by content hash only. The terms "
                      "of the source CT collections, and of their labels, apply to any use of the records "
                      "together with those images.", ""])


def write_card(dataset_dir: Path, manifest: dict, stats: dict) -> None:
    atomic_write_bytes(Path(dataset_dir) / LICENSE_FILE, licence_text(manifest).encode())
    atomic_write_bytes(Path(dataset_dir) / "README.md", dataset_card(dataset_dir, manifest, stats).encode())
