"""Dataset shards and the dataset manifest.

Layout (Hugging Face convention, so ``datasets.load_dataset("parquet", data_dir=DIR/data)`` and
``pyarrow.dataset`` both read it)::

    DIR/data/{split}-{i:05d}-of-{n:05d}.parquet   records (CoTRecord rows), zstd
    DIR/logs/log-{i:05d}-of-{n:05d}.parquet       generation log (AgentTurn rows)
    DIR/facts/facts-00000-of-00001.parquet        one row per case: case_id, facts_json
    DIR/manifest.json                             every file's rows + sha256, versions, cases

Shards are assembled from the per-case results (``CaseStore``), streaming: one case's tables at
a time go through a ``PartWriter`` per stream (``streams.py``), so memory does not grow with the
dataset (with a family mix, the ids of the chosen records are held: ``mixing.py``). Parts are written atomically; the manifest is written last, then files no longer listed
are removed.
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
from tumorcot.errors import NotADatasetError
from tumorcot.privacy import assign_split
from tumorcot.schemas import AgentTurn, CoTRecord
from tumorcot.schemas.options import resolve_options
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.atomic import atomic_write_json, remove_stale_temporaries
from tumorcot.store.cases import CaseStore, read_table
from tumorcot.store.mixing import chosen_records, keep_rows
from tumorcot.store.redact import needs_redaction, publishable_log
from tumorcot.store.streams import MAX_ROWS_PER_SHARD, PartWriter, one_split, sha256_file

__all__ = ["FACTS_SCHEMA", "FORMAT", "MAX_ROWS_PER_SHARD", "SPLITS", "assemble_dataset", "read_log",
           "read_manifest", "read_records", "scan_records", "schema_version", "sha256_file"]

FORMAT = "tumorcot-dataset/1"
SPLITS = ("train", "validation", "test")
FACTS_SCHEMA = pa.schema([("case_id", pa.string()), ("facts_json", pa.string())])
FACTS_BATCH = 256


def schema_version(schema: pa.Schema) -> str:
    return "schema-" + hashlib.sha256(schema.to_string().encode()).hexdigest()[:16]


def case_tables(store: CaseStore, case_ids: list[str], kind: str, schema: pa.Schema):
    """Each case's per-case table of ``kind`` (records or log), one at a time; a log as it may be
    published (``redact.publishable_log``: prompts hashed, report text never)."""
    for case_id in case_ids:
        path = store.records_path(case_id) if kind == "records" else store.log_path(case_id)
        if path.exists():
            table = read_table(path, schema)
            if kind == "log" and needs_redaction(table):
                case = store.recall_input(case_id)
                table = publishable_log(table, case.report if case is not None else None)
            yield table


def facts_tables(store: CaseStore, case_ids: list[str]):
    """The cases' ``facts.json`` as facts rows, ``FACTS_BATCH`` cases per table."""
    for i in range(0, len(case_ids), FACTS_BATCH):
        chunk = case_ids[i:i + FACTS_BATCH]
        yield pa.table({"case_id": chunk,
                        "facts_json": [(store.folder(c) / "facts.json").read_text() for c in chunk]},
                       schema=FACTS_SCHEMA)


def write_stream(dataset_dir: Path, folder: str, stem: str, schema: pa.Schema, tables) -> list[dict]:
    """One stream (log or facts) from ``tables`` in order; at least one (maybe empty) part."""
    writer = PartWriter(dataset_dir, folder, stem, schema, allow_empty=True)
    try:
        for table in tables:
            writer.write(table)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def split_ratios(versions: dict) -> tuple[float, float, float]:
    """The run's train/validation/test shares (its generation options')."""
    return resolve_options(versions.get("options")).split_ratios


def with_splits(table: pa.Table, ratios) -> pa.Table:
    """``table``'s records with their split assigned from the patient pseudonym (``assign_split``):
    the one place a record gets its split, so a change of ratios rewrites shards, not records."""
    if table.num_rows == 0:
        return table
    named = tuple(zip(SPLITS, ratios))
    patients = pc.unique(table["patient_pseudo_id"]).to_pylist()
    if len(patients) == 1:   # a case's records: one patient
        splits = pa.array([assign_split(patients[0], named)] * table.num_rows, pa.string())
    else:
        by_patient = {p: assign_split(p, named) for p in patients}
        splits = pa.array([by_patient[p] for p in table["patient_pseudo_id"].to_pylist()], pa.string())
    return table.set_column(table.schema.get_field_index("split"), "split", splits)


def write_record_streams(dataset_dir: Path, tables, ratios, chosen: set[str] | None = None,
                         splits: tuple[str, ...] = SPLITS) -> list[dict]:
    """The record streams (``data/{split}-i-of-n``) of ``splits`` from per-case tables in order
    (the tables hold records of those splits only); with a family mix only the ``chosen``
    records (``store.mixing``)."""
    schema = arrow_schema(CoTRecord)
    writers = {split: PartWriter(dataset_dir, "data", split, schema) for split in splits}
    try:
        for table in tables:
            for split, part in one_split(with_splits(keep_rows(table, chosen), ratios), splits):
                writers[split].write(part)
        return [dict(e, kind="records", split=split) for split in splits for e in writers[split].close()]
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise


def carried_sections(dataset_dir: Path) -> dict:
    """Manifest sections a shard update keeps from the previous manifest: ``review`` (the
    verdict file written by ``tumorcot review ingest``)."""
    path = dataset_dir / "manifest.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    return {k: previous[k] for k in ("review",) if k in previous}


def dataset_manifest(*, run_id: str, versions: dict, files: list[dict], cases: list[dict],
                     failures: list[dict], carried: dict | None = None) -> dict:
    return {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id,
        "package_version": __version__,
        "versions": {**versions, "record_schema": schema_version(arrow_schema(CoTRecord)),
                     "log_schema": schema_version(arrow_schema(AgentTurn))},
        "files": files,
        "record_count": sum(f["rows"] for f in files if f["kind"] == "records"),
        "cases": cases,
        "failures": failures,
        **(carried or {}),
    }


def assemble_dataset(dataset_dir: Path, case_ids: list[str], *, run_id: str, versions: dict,
                     cases: list[dict], failures: list[dict], pause=None) -> dict:
    """Write shards for ``case_ids`` (sorted, so output is deterministic) and the manifest.

    ``pause(point)`` is a crash-test hook called before the log, the manifest and the clean-up.
    """
    pause = pause or (lambda point: None)
    store = CaseStore(dataset_dir)
    case_ids = sorted(case_ids)
    chosen = chosen_records(store, case_ids, versions, with_splits)
    files = write_record_streams(dataset_dir, case_tables(store, case_ids, "records", arrow_schema(CoTRecord)),
                                 split_ratios(versions), chosen)
    pause("log")
    files += [dict(e, kind="log") for e in write_stream(
        dataset_dir, "logs", "log", arrow_schema(AgentTurn), case_tables(store, case_ids, "log", arrow_schema(AgentTurn)))]
    files += [dict(e, kind="facts") for e in write_stream(
        dataset_dir, "facts", "facts", FACTS_SCHEMA, facts_tables(store, case_ids))]
    manifest = dataset_manifest(run_id=run_id, versions=versions, files=files, cases=cases, failures=failures,
                                carried=carried_sections(dataset_dir))
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


def _concat(paths: list[Path], schema: pa.Schema) -> pa.Table:
    tables = [pq.read_table(p, schema=schema) for p in paths if p.exists()]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def read_manifest(dataset_dir: Path) -> dict:
    """The dataset manifest; ``NotADatasetError`` when ``dataset_dir`` holds no dataset."""
    path = Path(dataset_dir) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise NotADatasetError(f"{dataset_dir} is not a tumorcot dataset (no manifest.json): give the folder "
                               "that `tumorcot build --out` wrote") from None


def read_records(dataset_dir: Path) -> pa.Table:
    manifest = read_manifest(dataset_dir)
    paths = [dataset_dir / f["path"] for f in manifest["files"] if f["kind"] == "records"]
    return _concat(paths, arrow_schema(CoTRecord))


def scan_records(dataset_dir: Path, columns: list[str], filter=None) -> pa.Table:
    """Only ``columns`` of the records (optionally the rows matching a ``pyarrow.compute``
    expression): reads just those column chunks, for audits of large datasets."""
    import pyarrow.dataset as pads

    manifest = read_manifest(dataset_dir)
    paths = [str(dataset_dir / f["path"]) for f in manifest["files"] if f["kind"] == "records"]
    schema = arrow_schema(CoTRecord)
    if not paths:
        return schema.empty_table().select(columns)
    return pads.dataset(paths, schema=schema, format="parquet").to_table(columns=columns, filter=filter)


def read_log(dataset_dir: Path) -> pa.Table:
    manifest = read_manifest(dataset_dir)
    paths = [dataset_dir / f["path"] for f in manifest["files"] if f["kind"] == "log"]
    return _concat(paths, arrow_schema(AgentTurn))
