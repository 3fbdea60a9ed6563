"""Helpers for the operations tests: small phantom case sets and record comparisons."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from tumorcot.store.private import default_state_dir
from tumorcot.store.shards import read_manifest, read_records

FIELDS = ["patient_id", "study_id", "ct", "organ_mask", "lesion_mask", "lesion_labels", "report",
          "pathology", "source"]


def copy_dataset(source: Path, target: Path, **copytree) -> Path:
    """Copy a dataset folder and its private state folder (``DIR.private`` beside it)."""
    shutil.copytree(source, target, **copytree)
    if default_state_dir(source).exists():
        shutil.copytree(default_state_dir(source), default_state_dir(target))
    return target


def read_rows(manifest: Path) -> list[dict]:
    with open(manifest, newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def write_rows(path: Path, rows: list[dict]) -> Path:
    """A manifest next to the phantom files (relative paths resolve against its folder)."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in FIELDS} for r in rows)
    return path


def records_by_id(dataset: Path) -> dict[str, str]:
    """record_id -> the record's full content (JSON), for content comparisons."""
    return {r["record_id"]: json.dumps(r, sort_keys=True, default=str) for r in read_records(dataset).to_pylist()}


def listed_and_present(dataset: Path) -> tuple[set[str], set[str]]:
    listed = {f["path"] for f in read_manifest(dataset)["files"]}
    present = {str(p.relative_to(dataset)) for folder in ("data", "logs", "facts")
               for p in (dataset / folder).glob("*") if p.is_file()}
    return listed, present
