"""Dataset shards and the dataset manifest.

Layout (Hugging Face convention, so ``datasets.load_dataset("parquet", data_dir=DIR/data)`` and
``pyarrow.dataset`` both read it)::

    DIR/data/{split}-{i:05d}-of-{n:05d}.parquet   records (CoTRecord rows), zstd
    DIR/logs/log-{i:05d}-of-{n:05d}.parquet       generation log (AgentTurn rows)
    DIR/facts/facts-00000-of-00001.parquet        one row per case: case_id, facts_json
    DIR/manifest.json                             every file's rows + sha256, versions, cases

Shards are assembled from the per-case results (``CaseStore``) and written atomically; the
manifest is written last, then files no longer listed are removed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tumorcot import __version__
from tumorcot.schemas import AgentTurn, CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.atomic import atomic_write_json, atomic_write_table, remove_stale_temporaries
from tumorcot.store.cases import CaseStore

FORMAT = "tumorcot-dataset/1"
MAX_ROWS_PER_SHARD = 50_000
SPLITS = ("train", "validation", "test")
FACTS_SCHEMA = pa.schema([("case_id", pa.string()), ("facts_json", pa.string())])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def schema_version(schema: pa.Schema) -> str:
    return "schema-" + hashlib.sha256(schema.to_string().encode()).hexdigest()[:16]


def _write_parts(dataset_dir: Path, folder: str, stem: str, table: pa.Table) -> list[dict]:
    n = max(1, -(-table.num_rows // MAX_ROWS_PER_SHARD))
    entries = []
    for i in range(n):
        part = table.slice(i * MAX_ROWS_PER_SHARD, MAX_ROWS_PER_SHARD)
        rel = f"{folder}/{stem}-{i:05d}-of-{n:05d}.parquet"
        atomic_write_table(dataset_dir / rel, part)
        entries.append({"path": rel, "rows": part.num_rows, "bytes": (dataset_dir / rel).stat().st_size,
                        "sha256": sha256_file(dataset_dir / rel)})
    return entries


def _concat(paths: list[Path], schema: pa.Schema) -> pa.Table:
    tables = [pq.read_table(p, schema=schema) for p in paths if p.exists()]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def assemble_dataset(dataset_dir: Path, case_ids: list[str], *, run_id: str, versions: dict,
                     cases: list[dict], failures: list[dict], pause=None) -> dict:
    """Write shards for ``case_ids`` (sorted, so output is deterministic) and the manifest.

    ``pause(point)`` is a crash-test hook called before the log, the manifest and the clean-up.
    """
    pause = pause or (lambda point: None)
    store = CaseStore(dataset_dir)
    case_ids = sorted(case_ids)
    records = _concat([store.records_path(c) for c in case_ids], arrow_schema(CoTRecord))
    files = []
    for split in SPLITS:
        part = records.filter(pc.equal(records["split"], split))
        if part.num_rows:
            files += [dict(e, kind="records", split=split) for e in _write_parts(dataset_dir, "data", split, part)]
    pause("log")
    log = _concat([store.log_path(c) for c in case_ids], arrow_schema(AgentTurn))
    files += [dict(e, kind="log") for e in _write_parts(dataset_dir, "logs", "log", log)]
    facts = pa.Table.from_pylist(
        [{"case_id": c, "facts_json": (store.folder(c) / "facts.json").read_text()} for c in case_ids],
        schema=FACTS_SCHEMA)
    files += [dict(e, kind="facts") for e in _write_parts(dataset_dir, "facts", "facts", facts)]

    manifest = {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id,
        "package_version": __version__,
        "versions": {**versions, "record_schema": schema_version(arrow_schema(CoTRecord)),
                     "log_schema": schema_version(arrow_schema(AgentTurn))},
        "files": files,
        "record_count": records.num_rows,
        "cases": cases,
        "failures": failures,
    }
    pause("manifest")
    atomic_write_json(dataset_dir / "manifest.json", manifest)
    pause("cleanup")
    _remove_unlisted(dataset_dir, {f["path"] for f in files})
    return manifest


def _remove_unlisted(dataset_dir: Path, listed: set[str]) -> None:
    for folder in ("data", "logs", "facts"):
        remove_stale_temporaries(dataset_dir / folder)
        for path in (dataset_dir / folder).glob("*.parquet"):
            if f"{folder}/{path.name}" not in listed:
                path.unlink()


def read_manifest(dataset_dir: Path) -> dict:
    return json.loads((dataset_dir / "manifest.json").read_text())


def read_records(dataset_dir: Path) -> pa.Table:
    manifest = read_manifest(dataset_dir)
    paths = [dataset_dir / f["path"] for f in manifest["files"] if f["kind"] == "records"]
    return _concat(paths, arrow_schema(CoTRecord))


def read_log(dataset_dir: Path) -> pa.Table:
    manifest = read_manifest(dataset_dir)
    paths = [dataset_dir / f["path"] for f in manifest["files"] if f["kind"] == "log"]
    return _concat(paths, arrow_schema(AgentTurn))
