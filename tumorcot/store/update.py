"""Incremental, crash-safe dataset updates on top of ``assemble_dataset``.

The dataset manifest lists, per case, its *state*: the records key (``tumorcot.store.keys``) and
the run that wrote its per-case results. An update compares those states with the previous
manifest and

- ``unchanged``: same states, same failures, same versions, every listed file present with
  its size: nothing is written at all;
- ``incremental``: only the shards (parts of a split's records, of the log, of the facts) whose
  ``case_id`` range holds a changed, new or removed case are rewritten, from the previous part
  minus the affected cases plus their new per-case rows; every other shard keeps its file.
  With a family mix the record stream of each split an affected case leaves or joins is chosen
  again and rewritten whole (the mix is a property of each split: one changed case may change
  what its split keeps); the other splits, the log and the facts stay incremental;
- ``full``: every shard is reassembled from the per-case results, streaming. Also chosen when
  the changed cases bring more than a shard's worth of records (``MAX_ROWS_PER_SHARD``): an
  incremental update holds its new rows in memory, a full one never holds more than a buffer,
  and when the split ratios or the family mix changed (every record may change split or be
  chosen otherwise; no record is regenerated).

``STATE/assembling`` (in the private state folder) is written before the first shard and removed after the manifest and
the clean-up: if it is found, the previous writer was killed mid-way, the shards on disk may
mix two generations, and the next update is ``full``. Row order equals a full assembly's
(stable sort by ``case_id``), so every mode yields the same rows in the same order; after an
in-place update a stream's parts may be cut at other rows than a full assembly would cut them.

After the marker is gone the caller publishes ``stats.json``, the dataset card and
``croissant.json`` (``tumorcot.exports.summaries.publish_summaries``); after an ``unchanged``
update only when ``stats.json`` does not carry the manifest's stamp (its writer was killed
before it).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tumorcot.schemas import AgentTurn, CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.atomic import atomic_write_json
from tumorcot.store.cases import CaseStore
from tumorcot.store.lock import publishing
from tumorcot.store.private import state_dir
from tumorcot.store.shards import (FACTS_SCHEMA, FORMAT, MAX_ROWS_PER_SHARD, SPLITS, _remove_unlisted,
                                   assemble_dataset, carried_sections, case_tables, dataset_manifest,
                                   facts_tables, read_manifest, schema_version, split_ratios, with_splits,
                                   write_record_streams)
from tumorcot.privacy import assign_split
from tumorcot.store.mixing import chosen_records, mix_settings
from tumorcot.store.streams import replace_cases

MARKER = "assembling"   # in the state folder
STATE_FIELDS = ("key", "written_by")


def case_entry(store: CaseStore, case_id: str, done: dict | None = None) -> dict:
    """The manifest's view of one finished case, from its ``done.json`` (read unless given)."""
    done = done or store.done(case_id) or {}
    return {"case_id": case_id, "patient_pseudo_id": done.get("patient_pseudo_id"),
            "key": done.get("key"), "written_by": done.get("run_id"),
            "records": done.get("records", 0), "input_sha256": done.get("input_sha256", {})}


def full_versions(versions: dict) -> dict:
    return {**versions, "record_schema": schema_version(arrow_schema(CoTRecord)),
            "log_schema": schema_version(arrow_schema(AgentTurn))}


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
    if not path.exists() or (state_dir(dataset_dir) / MARKER).exists():
        return "full", set(), None
    previous = read_manifest(dataset_dir)
    old = {c["case_id"]: c for c in previous.get("cases", [])}
    if (previous.get("format") != FORMAT or not _files_intact(dataset_dir, previous)
            or any(f not in c for c in old.values() for f in STATE_FIELDS)):
        return "full", set(), previous
    new_versions, old_versions = full_versions(versions), previous.get("versions", {})
    if any(new_versions[k] != old_versions.get(k) for k in ("record_schema", "log_schema")):
        return "full", set(), previous
    if split_ratios(new_versions) != split_ratios(old_versions):   # every record may move: re-split
        return "full", set(), previous
    if mix_settings(new_versions) != mix_settings(old_versions):   # every split's selection may change
        return "full", set(), previous
    new = {c["case_id"]: c for c in cases}
    affected = set(old) ^ set(new)
    affected |= {cid for cid in set(old) & set(new)
                 if any(old[cid][f] != new[cid][f] for f in STATE_FIELDS)}
    if not affected and previous.get("failures") == failures and old_versions == new_versions:
        return "unchanged", set(), previous
    if sum(new[cid].get("records", 0) for cid in affected & set(new)) > MAX_ROWS_PER_SHARD:
        return "full", set(), previous
    return "incremental", affected, previous


def update_dataset(dataset_dir: Path, cases: list[dict], *, run_id: str, versions: dict,
                   failures: list[dict], pause=None) -> tuple[dict, str]:
    """Bring shards and manifest in line with ``cases`` (``case_entry`` dicts); (manifest, mode).

    ``pause(point)`` is called before the log, the manifest, the clean-up and the marker's removal
    (crash tests stop the writer there); the caller publishes the summaries afterwards
    (``tumorcot.exports.summaries.publish_summaries``; with ``only_if_stale`` when ``unchanged``)."""
    pause = pause or (lambda point: None)
    cases = sorted(cases, key=lambda c: c["case_id"])
    mode, affected, previous = plan_update(dataset_dir, cases, failures, versions)
    if mode == "unchanged":
        return previous, mode
    marker = state_dir(dataset_dir) / MARKER
    with publishing(dataset_dir):   # readers wait: they see the old dataset or the new one
        atomic_write_json(marker, {"run_id": run_id})
        if mode == "full":
            manifest = assemble_dataset(dataset_dir, [c["case_id"] for c in cases], run_id=run_id,
                                        versions=versions, cases=cases, failures=failures, pause=pause)
        else:
            manifest = _incremental(dataset_dir, previous, cases, affected, run_id=run_id,
                                    versions=versions, failures=failures, pause=pause)
        pause("unmark")
        marker.unlink()
    return manifest, mode


def _fresh(tables, schema: pa.Schema) -> pa.Table:
    tables = list(tables)
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _replace_records(dataset_dir: Path, store: CaseStore, refreshed: list[str], affected: set[str],
                     by_kind: dict, versions: dict) -> list[dict]:
    """Each split's record parts with the affected cases' rows replaced (no family mix)."""
    record_schema = arrow_schema(CoTRecord)
    new_records = with_splits(_fresh(case_tables(store, refreshed, "records", record_schema), record_schema),
                              split_ratios(versions))
    files = []
    for split in SPLITS:
        incoming = new_records.filter(pc.equal(new_records["split"], split))
        files += [dict(e, kind="records", split=split) for e in replace_cases(
            dataset_dir, "data", split, record_schema, by_kind.get(("records", split), []), affected, incoming)]
    return files


def _rechoose_records(dataset_dir: Path, store: CaseStore, previous: dict, cases: list[dict], affected: set[str],
                      by_kind: dict, versions: dict) -> list[dict]:
    """Under a family mix: the record streams of the splits an affected case leaves or joins,
    chosen again and rewritten whole (the mix is a property of each split); the other splits'
    selection cannot change, so their parts keep their files."""
    ratios = split_ratios(versions)
    named = tuple(zip(SPLITS, ratios))
    def splits_of(entries: list[dict]) -> dict[str, str | None]:
        return {c["case_id"]: assign_split(c["patient_pseudo_id"], named) if c.get("patient_pseudo_id") else None
                for c in entries}

    split_of, old_split = splits_of(cases), splits_of(previous["cases"])
    touched = {m[c] for m in (split_of, old_split) for c in affected if c in m}
    if None in touched:   # a case without its pseudonym: its split is unknown, choose every split again
        touched = set(SPLITS)
    kept = [e for s in SPLITS if s not in touched for e in by_kind.get(("records", s), [])]
    rewritten = tuple(s for s in SPLITS if s in touched)
    members = sorted(c for c, s in split_of.items() if s in touched or s is None)
    chosen = chosen_records(store, members, versions, with_splits)
    return kept + write_record_streams(dataset_dir, case_tables(store, members, "records", arrow_schema(CoTRecord)),
                                       ratios, chosen, splits=rewritten)


def _incremental(dataset_dir: Path, previous: dict, cases: list[dict], affected: set[str], *,
                 run_id: str, versions: dict, failures: list[dict], pause) -> dict:
    """Replace the affected cases' rows shard by shard; ``plan_update`` bounds the new rows."""
    store = CaseStore(dataset_dir)
    present = {c["case_id"] for c in cases}
    refreshed = sorted(affected & present)
    record_schema, log_schema = arrow_schema(CoTRecord), arrow_schema(AgentTurn)
    by_kind: dict[tuple[str, str | None], list[dict]] = {}
    for entry in previous["files"]:
        by_kind.setdefault((entry["kind"], entry.get("split")), []).append(entry)
    if mix_settings(versions)[0]:
        files = _rechoose_records(dataset_dir, store, previous, cases, affected, by_kind, versions)
    else:
        files = _replace_records(dataset_dir, store, refreshed, affected, by_kind, versions)
    pause("log")
    log = _fresh(case_tables(store, refreshed, "log", log_schema), log_schema)
    files += [dict(e, kind="log") for e in replace_cases(
        dataset_dir, "logs", "log", log_schema, by_kind.get(("log", None), []), affected, log, allow_empty=True)]
    facts = _fresh(facts_tables(store, refreshed), FACTS_SCHEMA)
    files += [dict(e, kind="facts") for e in replace_cases(
        dataset_dir, "facts", "facts", FACTS_SCHEMA, by_kind.get(("facts", None), []), affected, facts,
        allow_empty=True)]
    manifest = dataset_manifest(run_id=run_id, versions=versions, files=files, cases=cases, failures=failures,
                                carried=carried_sections(dataset_dir))
    pause("manifest")
    atomic_write_json(dataset_dir / "manifest.json", manifest)
    pause("cleanup")
    _remove_unlisted(dataset_dir, {f["path"] for f in files})
    return manifest
