"""Incremental, crash-safe dataset updates on top of ``assemble_dataset``.

The dataset manifest lists, per case, its *state*: the build key (input hashes + versions) and
the run that wrote its per-case results. An update compares those states with the previous
manifest and

- ``unchanged``: same states, same failures, same versions, every listed file present with
  its size: nothing is written at all;
- ``incremental``: only the streams (a split's record shards, the log, the facts) that hold a
  changed, new or removed case are rewritten, from the previous shards minus the affected
  cases plus their new per-case files; untouched splits keep their files;
- ``full``: every shard is reassembled from the per-case results.

``.tumorcot/assembling`` is written before the first shard and removed after the manifest and
the clean-up: if it is found, the previous writer was killed mid-way, the shards on disk may
mix two generations, and the next update is ``full``. Row order equals a full assembly's
(stable sort by ``case_id``), so every mode yields the same shards.

After the marker is gone, ``stats.json``, the dataset card and ``croissant.json`` are rewritten
(``tumorcot.store.stats.refresh_summaries``); an ``unchanged`` update rewrites them only when
``stats.json`` does not carry the manifest's stamp (its writer was killed before it).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tumorcot import __version__
from tumorcot.schemas import AgentTurn, CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.atomic import atomic_write_json
from tumorcot.store.cases import CaseStore
from tumorcot.store.shards import (FACTS_SCHEMA, FORMAT, SPLITS, _concat, _remove_unlisted, _write_parts,
                                   assemble_dataset, read_manifest, schema_version)
from tumorcot.store.stats import refresh_summaries

MARKER = Path(".tumorcot") / "assembling"
STATE_FIELDS = ("key", "written_by")


def case_entry(store: CaseStore, case_id: str) -> dict:
    """The manifest's view of one finished case, from its ``done.json``."""
    done = store.done(case_id) or {}
    return {"case_id": case_id, "patient_pseudo_id": done.get("patient_pseudo_id"),
            "key": done.get("key"), "written_by": done.get("run_id"),
            "records": done.get("records", 0), "input_sha256": done.get("input_sha256", {})}


def full_versions(versions: dict) -> dict:
    return {**versions, "record_schema": schema_version(arrow_schema(CoTRecord)),
            "log_schema": schema_version(arrow_schema(AgentTurn))}


def test_pause(point: str, dataset_dir: Path) -> None:
    """Crash-test hook: with ``TUMORCOT_TEST_PAUSE_BEFORE=point``, announce and sleep here."""
    if os.environ.get("TUMORCOT_TEST_PAUSE_BEFORE") == point:
        (dataset_dir / ".tumorcot" / f"paused-{point}").write_text(str(os.getpid()))
        time.sleep(float(os.environ.get("TUMORCOT_TEST_PAUSE_S", "600")))


def _files_intact(dataset_dir: Path, manifest: dict) -> bool:
    for entry in manifest.get("files", []):
        path = dataset_dir / entry["path"]
        if not path.exists() or ("bytes" in entry and path.stat().st_size != entry["bytes"]):
            return False
    return True


def plan_update(dataset_dir: Path, cases: list[dict], failures: list[dict], versions: dict
                ) -> tuple[str, set[str], dict | None]:
    """(mode, affected case ids, previous manifest)."""
    path = dataset_dir / "manifest.json"
    if not path.exists() or (dataset_dir / MARKER).exists():
        return "full", set(), None
    previous = read_manifest(dataset_dir)
    old = {c["case_id"]: c for c in previous.get("cases", [])}
    if (previous.get("format") != FORMAT or not _files_intact(dataset_dir, previous)
            or any(f not in c for c in old.values() for f in STATE_FIELDS)):
        return "full", set(), previous
    new_versions, old_versions = full_versions(versions), previous.get("versions", {})
    if any(new_versions[k] != old_versions.get(k) for k in ("record_schema", "log_schema")):
        return "full", set(), previous
    new = {c["case_id"]: c for c in cases}
    affected = set(old) ^ set(new)
    affected |= {cid for cid in set(old) & set(new)
                 if any(old[cid][f] != new[cid][f] for f in STATE_FIELDS)}
    if not affected and previous.get("failures") == failures and old_versions == new_versions:
        return "unchanged", set(), previous
    return "incremental", affected, previous


def update_dataset(dataset_dir: Path, cases: list[dict], *, run_id: str, versions: dict,
                   failures: list[dict]) -> tuple[dict, str]:
    """Bring shards and manifest in line with ``cases`` (``case_entry`` dicts); (manifest, mode)."""
    cases = sorted(cases, key=lambda c: c["case_id"])
    mode, affected, previous = plan_update(dataset_dir, cases, failures, versions)
    if mode == "unchanged":
        refresh_summaries(dataset_dir, previous, only_if_stale=True)   # a writer killed before stats.json
        return previous, mode
    marker = dataset_dir / MARKER
    atomic_write_json(marker, {"run_id": run_id})
    if mode == "full":
        manifest = assemble_dataset(dataset_dir, [c["case_id"] for c in cases], run_id=run_id,
                                    versions=versions, cases=cases, failures=failures,
                                    pause=lambda point: test_pause(point, dataset_dir))
    else:
        manifest = _incremental(dataset_dir, previous, cases, affected, run_id=run_id,
                                versions=versions, failures=failures)
    test_pause("unmark", dataset_dir)
    marker.unlink()
    test_pause("summaries", dataset_dir)
    refresh_summaries(dataset_dir, manifest)
    return manifest, mode


def _replace_rows(old: pa.Table, fresh: pa.Table, affected: set[str]) -> pa.Table:
    """``old`` without the affected cases, plus ``fresh``, in stable ``case_id`` order."""
    gone = pc.is_in(old["case_id"], pa.array(sorted(affected), pa.string()))
    table = pa.concat_tables([old.filter(pc.invert(gone)), fresh.cast(old.schema)])
    return table.take(pc.sort_indices(table, sort_keys=[("case_id", "ascending")]))


def _incremental(dataset_dir: Path, previous: dict, cases: list[dict], affected: set[str], *,
                 run_id: str, versions: dict, failures: list[dict]) -> dict:
    store = CaseStore(dataset_dir)
    present = {c["case_id"] for c in cases}
    refreshed = sorted(affected & present)
    record_schema, log_schema = arrow_schema(CoTRecord), arrow_schema(AgentTurn)
    new_records = _concat([store.records_path(c) for c in refreshed], record_schema)
    by_kind: dict[tuple[str, str | None], list[dict]] = {}
    for entry in previous["files"]:
        by_kind.setdefault((entry["kind"], entry.get("split")), []).append(entry)
    files = []
    for split in SPLITS:
        entries = by_kind.get(("records", split), [])
        incoming = new_records.filter(pc.equal(new_records["split"], split))
        old_ids = pc.unique(_concat([dataset_dir / e["path"] for e in entries],
                                    pa.schema([record_schema.field("case_id")]))["case_id"])
        touched = incoming.num_rows or any(c in affected for c in old_ids.to_pylist())
        if not touched:
            files += entries
            continue
        part = _replace_rows(_concat([dataset_dir / e["path"] for e in entries], record_schema),
                             incoming, affected)
        if part.num_rows:
            files += [dict(e, kind="records", split=split)
                      for e in _write_parts(dataset_dir, "data", split, part)]
    test_pause("log", dataset_dir)
    old_log = _concat([dataset_dir / e["path"] for e in by_kind.get(("log", None), [])], log_schema)
    log = _replace_rows(old_log, _concat([store.log_path(c) for c in refreshed], log_schema), affected)
    files += [dict(e, kind="log") for e in _write_parts(dataset_dir, "logs", "log", log)]
    old_facts = _concat([dataset_dir / e["path"] for e in by_kind.get(("facts", None), [])], FACTS_SCHEMA)
    fresh = pa.Table.from_pylist(
        [{"case_id": c, "facts_json": (store.folder(c) / "facts.json").read_text()} for c in refreshed],
        schema=FACTS_SCHEMA)
    facts = _replace_rows(old_facts, fresh, affected)
    files += [dict(e, kind="facts") for e in _write_parts(dataset_dir, "facts", "facts", facts)]
    record_count = sum(f["rows"] for f in files if f["kind"] == "records")
    manifest = {
        "format": FORMAT, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id, "package_version": __version__, "versions": full_versions(versions),
        "files": files, "record_count": record_count, "cases": cases, "failures": failures,
    }
    test_pause("manifest", dataset_dir)
    atomic_write_json(dataset_dir / "manifest.json", manifest)
    test_pause("cleanup", dataset_dir)
    _remove_unlisted(dataset_dir, {f["path"] for f in files})
    return manifest
