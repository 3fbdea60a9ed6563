"""``tumorcot validate``: re-check a dataset folder against its manifest and schemas, the review
verdict file against the manifest, and the splits for leakage (``tumorcot.review.leakage``)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import ValidationError

from tumorcot.store.lock import reads_dataset
from tumorcot.review.leakage import dataset_leaks, describe_leak
from tumorcot.review.verdicts import review_problems
from tumorcot.schemas import AgentTurn, CaseFacts, CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.shards import FACTS_SCHEMA, FORMAT, sha256_file

MODELS = {"records": CoTRecord, "log": AgentTurn}


@reads_dataset   # a concurrent build's update is seen whole or not at all
def validate_dataset(dataset_dir: Path) -> tuple[list[str], dict]:
    dataset_dir = Path(dataset_dir)
    problems: list[str] = []
    counts = {"files": 0, "records": 0, "log": 0, "facts": 0}
    manifest_path = dataset_dir / "manifest.json"
    if not manifest_path.exists():
        return [f"{manifest_path}: missing (not a tumorcot dataset, or its build never finished)"], counts
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        return [f"{manifest_path}: not valid JSON ({exc})"], counts
    if manifest.get("format") != FORMAT:
        problems.append(f"manifest.json: format {manifest.get('format')!r}, expected {FORMAT!r}")
    record_ids: set[str] = set()
    for entry in manifest.get("files", []):
        path = dataset_dir / entry["path"]
        if not path.exists():
            problems.append(f"{entry['path']}: listed in the manifest but missing")
            continue
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 {digest[:12]}... does not match the manifest's {entry['sha256'][:12]}...")
            continue
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            problems.append(f"{entry['path']}: unreadable Parquet ({exc})")
            continue
        counts["files"] += 1
        if table.num_rows != entry["rows"]:
            problems.append(f"{entry['path']}: {table.num_rows} rows, manifest says {entry['rows']}")
        kind = entry["kind"]
        expected = FACTS_SCHEMA if kind == "facts" else arrow_schema(MODELS[kind])
        if not table.schema.equals(expected, check_metadata=False):
            problems.append(f"{entry['path']}: schema differs from the {kind} schema")
            continue
        counts[kind] += table.num_rows
        problems += _check_rows(entry, table, record_ids)
    if counts["records"] != manifest.get("record_count", counts["records"]):
        problems.append(f"manifest.json: record_count {manifest.get('record_count')} but shards hold {counts['records']}")
    if not problems:   # checks across shards, on intact ones
        problems += review_problems(dataset_dir, manifest)
        problems += [describe_leak(leak) for leak in dataset_leaks(dataset_dir)]
    return problems, counts


def _check_rows(entry: dict, table, record_ids: set[str]) -> list[str]:
    problems = []
    for i, row in enumerate(table.to_pylist()):
        try:
            if entry["kind"] == "facts":
                CaseFacts.model_validate_json(row["facts_json"])
                continue
            item = MODELS[entry["kind"]].model_validate(row)
        except ValidationError as exc:
            problems.append(f"{entry['path']} row {i}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
            continue
        if entry["kind"] == "records":
            if item.record_id in record_ids:
                problems.append(f"{entry['path']} row {i}: duplicate record_id {item.record_id}")
            record_ids.add(item.record_id)
            if entry.get("split") and item.split != entry["split"]:
                problems.append(f"{entry['path']} row {i}: split {item.split} in a {entry['split']} shard")
    return problems
