"""Per-case results of a build, kept between runs: the unit of incremental and crash-safe work.

``STATE/cases/<case_id>/`` (the dataset's private state folder, ``store/private.py``) holds
``records.arrow``, ``log.arrow`` (Arrow IPC, lz4), ``facts.json`` (the facts of those records),
``measured.json`` (the last measured facts with their facts key, reused while the key holds),
``input.json`` and, written last, ``done.json`` with the case's keys (``store/keys.py``). A case
whose ``done.json`` carries the current records key is not reprocessed; a killed run leaves no ``done.json`` for the case it was
working on. The data files are fsynced one by one, the folder once, then ``done.json`` is
written atomically: a ``done.json`` is never seen before the files it vouches for.

Datasets written before the Arrow IPC files keep ``records.parquet``/``log.parquet`` for their
unchanged cases; ``read_table`` reads either.

``input.json`` keeps the case's manifest row (raw ids and input paths) so that
``tumorcot regenerate`` can re-run one patient without the original case manifest; ``done.json``
keeps its hash (``input_row_sha256``), so an unchanged rebuild compares without reading it. Like
the salt, it stays in the private state folder, outside the published dataset folder: shards, logs,
facts, the dataset manifest and run records only carry pseudonyms.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tumorcot.schemas import AgentTurn, CaseFacts, CaseInput, CoTRecord
from tumorcot.schemas.arrow import to_table
from tumorcot.store.private import state_dir
from tumorcot.store.atomic import atomic_write_arrow, atomic_write_bytes, atomic_write_json, fsync_dir, read_arrow

LEGACY_SUFFIX = ".parquet"


def input_row(case: CaseInput) -> tuple[str, str]:
    """(text of ``input.json``, its sha256)."""
    text = case.model_dump_json(indent=1)
    return text, hashlib.sha256(text.encode()).hexdigest()


def read_table(path: Path, schema: pa.Schema) -> pa.Table:
    """A per-case table: Arrow IPC, or Parquet in datasets written before it."""
    table = pq.read_table(path, schema=schema) if path.suffix == LEGACY_SUFFIX else read_arrow(path)
    return table if table.schema.equals(schema) else table.cast(schema)


class CaseStore:
    def __init__(self, dataset_dir: Path):
        self.root = state_dir(dataset_dir) / "cases"

    def folder(self, case_id: str) -> Path:
        return self.root / case_id

    def done(self, case_id: str) -> dict | None:
        try:
            return json.loads((self.folder(case_id) / "done.json").read_bytes())
        except FileNotFoundError:
            return None

    def is_current(self, case_id: str, key: str) -> bool:
        done = self.done(case_id)
        return done is not None and done.get("key") == key

    def write(self, case_id: str, key: str, facts: CaseFacts, records: list[CoTRecord],
              log: list[AgentTurn], summary: dict, case: CaseInput | None = None) -> dict:
        """Store one case's results (and its manifest row, when given); returns ``done.json``."""
        folder = self.folder(case_id)
        (folder / "done.json").unlink(missing_ok=True)
        atomic_write_arrow(folder / "records.arrow", to_table(CoTRecord, records), sync_dir=False)
        atomic_write_arrow(folder / "log.arrow", to_table(AgentTurn, log), sync_dir=False)
        atomic_write_json(folder / "facts.json", facts.model_dump(mode="json"), sync_dir=False)
        done = {"key": key, "patient_pseudo_id": facts.patient_pseudo_id, **summary}
        if case is not None:
            text, digest = input_row(case)
            if self._input_text(case_id) != text:
                atomic_write_bytes(folder / "input.json", text.encode(), sync_dir=False)
            done["input_row_sha256"] = digest
        for legacy in ("records.parquet", "log.parquet"):
            (folder / legacy).unlink(missing_ok=True)
        fsync_dir(folder)
        atomic_write_json(folder / "done.json", done)
        return done

    def write_done(self, case_id: str, done: dict) -> None:
        """Rewrite ``done.json`` (e.g. a new input signature after a touch with the same content)."""
        atomic_write_json(self.folder(case_id) / "done.json", done)

    def _input_text(self, case_id: str) -> str | None:
        path = self.folder(case_id) / "input.json"
        return path.read_text() if path.exists() else None

    def remember_input(self, case_id: str, case: CaseInput, done: dict | None = None) -> None:
        """Keep the manifest row for regeneration; rewritten only when it differs.

        With the case's ``done`` the comparison is against its recorded hash (no read); a
        rewrite then also records the new hash in ``done.json``."""
        text, digest = input_row(case)
        if done is not None and done.get("input_row_sha256") == digest:
            return
        if self._input_text(case_id) != text:
            atomic_write_bytes(self.folder(case_id) / "input.json", text.encode())
        if done is not None:
            done["input_row_sha256"] = digest
            self.write_done(case_id, done)

    def recall_input(self, case_id: str) -> CaseInput | None:
        path = self.folder(case_id) / "input.json"
        return CaseInput.model_validate_json(path.read_text()) if path.exists() else None

    def append_log(self, case_id: str, log: list[AgentTurn]) -> None:
        """Add log rows (e.g. of a failed attempt) without touching the records."""
        path = self.log_path(case_id)
        table = to_table(AgentTurn, log)
        if path.exists():
            table = pa.concat_tables([read_table(path, table.schema), table])
        atomic_write_arrow(self.folder(case_id) / "log.arrow", table)
        if path.suffix == LEGACY_SUFFIX:
            path.unlink()

    def _table_path(self, case_id: str, stem: str) -> Path:
        path = self.folder(case_id) / f"{stem}.arrow"
        legacy = path.with_suffix(LEGACY_SUFFIX)
        return legacy if not path.exists() and legacy.exists() else path

    def records_path(self, case_id: str) -> Path:
        return self._table_path(case_id, "records")

    def log_path(self, case_id: str) -> Path:
        return self._table_path(case_id, "log")

    def facts(self, case_id: str) -> CaseFacts:
        return CaseFacts.model_validate_json((self.folder(case_id) / "facts.json").read_text())

    def keep_measured(self, case_id: str, facts_key: str, facts_hash: str, facts: CaseFacts) -> None:
        """Keep freshly measured facts under their facts key (``measured.json``, one atomic file),
        before any record is made from them: a case whose generation fails, or a batch round,
        measures once. ``facts.json`` stays the facts of the case's stored records."""
        atomic_write_json(self.folder(case_id) / "measured.json",
                          {"facts_key": facts_key, "facts_sha256": facts_hash, "facts": facts.model_dump(mode="json")})

    def measured(self, case_id: str, facts_key: str) -> tuple[CaseFacts, str] | None:
        """(facts, their hash) measured under ``facts_key``, if kept; else None."""
        try:
            kept = json.loads((self.folder(case_id) / "measured.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        if kept.get("facts_key") != facts_key:
            return None
        return CaseFacts.model_validate(kept["facts"]), kept["facts_sha256"]

    def case_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()) if self.root.exists() else []

    def remove(self, case_id: str) -> None:
        shutil.rmtree(self.folder(case_id), ignore_errors=True)
