"""Per-case results of a build, kept between runs: the unit of incremental and crash-safe work.

``DIR/.tumorcot/cases/<case_id>/`` holds ``records.parquet``, ``log.parquet``, ``facts.json``
and, written last, ``done.json`` with the case's build key (input content hashes + pipeline,
KG, prompt and generator versions). A case whose ``done.json`` carries the current key is not
reprocessed; a killed run leaves no ``done.json`` for the case it was working on.

``input.json`` keeps the case's manifest row (raw ids and input paths) so that
``tumorcot regenerate`` can re-run one patient without the original case manifest. Like the
salt, it stays in the private ``.tumorcot/`` folder, which is never published: shards, logs,
facts, the dataset manifest and run records only carry pseudonyms.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from tumorcot.schemas import AgentTurn, CaseFacts, CaseInput, CoTRecord
from tumorcot.schemas.arrow import to_table
from tumorcot.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_table


class CaseStore:
    def __init__(self, dataset_dir: Path):
        self.root = dataset_dir / ".tumorcot" / "cases"

    def folder(self, case_id: str) -> Path:
        return self.root / case_id

    def done(self, case_id: str) -> dict | None:
        path = self.folder(case_id) / "done.json"
        return json.loads(path.read_text()) if path.exists() else None

    def is_current(self, case_id: str, key: str) -> bool:
        done = self.done(case_id)
        return done is not None and done.get("key") == key

    def write(self, case_id: str, key: str, facts: CaseFacts, records: list[CoTRecord],
              log: list[AgentTurn], summary: dict) -> None:
        folder = self.folder(case_id)
        (folder / "done.json").unlink(missing_ok=True)
        atomic_write_table(folder / "records.parquet", to_table(CoTRecord, records))
        atomic_write_table(folder / "log.parquet", to_table(AgentTurn, log))
        atomic_write_json(folder / "facts.json", facts.model_dump(mode="json"))
        atomic_write_json(folder / "done.json",
                          {"key": key, "patient_pseudo_id": facts.patient_pseudo_id, **summary})

    def remember_input(self, case_id: str, case: CaseInput) -> None:
        """Keep the manifest row for regeneration; rewritten only when it differs."""
        path = self.folder(case_id) / "input.json"
        text = case.model_dump_json(indent=1)
        if not path.exists() or path.read_text() != text:
            atomic_write_bytes(path, text.encode())

    def recall_input(self, case_id: str) -> CaseInput | None:
        path = self.folder(case_id) / "input.json"
        return CaseInput.model_validate_json(path.read_text()) if path.exists() else None

    def append_log(self, case_id: str, log: list[AgentTurn]) -> None:
        """Add log rows (e.g. of a failed attempt) without touching the records."""
        path = self.folder(case_id) / "log.parquet"
        table = to_table(AgentTurn, log)
        if path.exists():
            import pyarrow as pa
            table = pa.concat_tables([pq.read_table(path), table])
        atomic_write_table(path, table)

    def records_path(self, case_id: str) -> Path:
        return self.folder(case_id) / "records.parquet"

    def log_path(self, case_id: str) -> Path:
        return self.folder(case_id) / "log.parquet"

    def facts(self, case_id: str) -> CaseFacts:
        return CaseFacts.model_validate_json((self.folder(case_id) / "facts.json").read_text())

    def case_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir()) if self.root.exists() else []

    def remove(self, case_id: str) -> None:
        shutil.rmtree(self.folder(case_id), ignore_errors=True)
