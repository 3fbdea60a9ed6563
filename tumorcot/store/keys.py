"""The two keys of a case: one decides re-measurement, the other regeneration.

- **facts key** = the input files' content hashes + the manifest fields' hash + the versions that
  decide measurement (``FACTS_VERSIONS``: imaging code and vocabulary, segmentation plan). When it
  is the one in the case's ``done.json``, the case's stored ``facts.json`` is reused: no CT is
  decoded, no segmentation runs.
- **records key** = the facts' hash + the manifest fields' hash (report, pathology) + every other
  version (knowledge graph, prompts, pipeline, generator and models, generation options except the
  split ratios and the family mix). When it is the stored one, the case is unchanged.

The split and the family mix are not in either key: they are applied when the shards are written
(``tumorcot.store.shards.with_splits``, ``tumorcot.store.mixing``), so changing ``--splits`` or
``--mix`` rewrites shards only.

Input hashes are reused without reading a file when the files' *signature* (size and
modification time in ns, per file of a DICOM folder, as git's index keeps them) is the one
recorded with them; any difference, or a missing file, means rehashing.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from tumorcot.errors import CaseInputError
from tumorcot.imaging.io import content_sha256
from tumorcot.privacy import case_id_for
from tumorcot.schemas import CaseFacts, CaseInput
from tumorcot.schemas.case import FILE_FIELDS
from tumorcot.store.cases import CaseStore

FACTS_VERSIONS = ("imaging", "segmentation")   # besides the inputs, what decides the measured facts
UNKEYED_OPTIONS = ("split_ratios", "family_mix", "organ_box_cap")   # applied when shards are written


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def fields_sha256(case: CaseInput) -> str:
    """Hash of a case's manifest fields other than its file paths (the files are hashed by content)."""
    return digest(case.model_dump(mode="json", exclude={"row", "predicted_masks", *FILE_FIELDS}))


def facts_sha256(facts: CaseFacts) -> str:
    return digest(facts.model_dump(mode="json"))


def facts_key(hashes: dict, versions: dict) -> str:
    return digest([hashes, {k: versions.get(k) for k in FACTS_VERSIONS}])


def records_versions(versions: dict) -> dict:
    """The run's versions that decide records (not facts), without the split ratios."""
    keyed = {k: v for k, v in versions.items() if k not in FACTS_VERSIONS}
    if isinstance(keyed.get("options"), dict):
        keyed["options"] = {k: v for k, v in keyed["options"].items() if k not in UNKEYED_OPTIONS}
    return keyed


def records_key(facts_hash: str, hashes: dict, versions: dict) -> str:
    return digest([facts_hash, hashes.get("fields"), records_versions(versions)])


def _folder_signature(path: Path) -> list:
    entries = []
    for p in sorted(path.rglob("*")):
        info = p.stat()
        if stat.S_ISREG(info.st_mode):
            entries.append([str(p.relative_to(path)), info.st_size, info.st_mtime_ns])
    return entries


def input_signature(case: CaseInput) -> dict | None:
    """Size and mtime of every input file; None when one is missing."""
    signature = {}
    for field, path in case.files().items():
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return None
        signature[field] = _folder_signature(path) if stat.S_ISDIR(info.st_mode) else [info.st_size, info.st_mtime_ns]
    return signature


def recorded_hashes(case: CaseInput, done: dict | None, signature: dict | None) -> dict | None:
    """The input hashes ``done.json`` records, when the files' signatures are unchanged (no file
    read), with the manifest fields hashed afresh; else None."""
    if not done or signature is None or signature != done.get("input_signature"):
        return None
    hashes = {k: v for k, v in done.get("input_sha256", {}).items() if k in signature}
    if set(hashes) != set(signature):
        return None
    hashes["fields"] = fields_sha256(case)
    return hashes


def stored_facts_current(done: dict | None, key: str) -> bool:
    """Whether the case's stored facts were measured under facts key ``key``."""
    return bool(done) and done.get("facts_key") == key and bool(done.get("facts_sha256"))


def current_result(case: CaseInput, store: CaseStore, salt: bytes, versions: dict) -> tuple[str, dict] | None:
    """(case id, its ``done.json``) when the case's stored result is current, judged from
    ``done.json`` and a ``stat`` per input file only; else None (the case goes to a task)."""
    case_id = case_id_for(case.patient_id, case.study_id, salt)
    done = store.done(case_id)
    hashes = recorded_hashes(case, done, input_signature(case))
    if hashes is None or not stored_facts_current(done, facts_key(hashes, versions)):
        return None
    if done.get("key") != records_key(done["facts_sha256"], hashes, versions):
        return None
    store.remember_input(case_id, case, done)
    return case_id, done


def input_hashes(case: CaseInput) -> dict[str, str]:
    """Content hashes of a case's input files and of its manifest fields (reads every file)."""
    hashes = {}
    for field, path in case.files().items():
        if not path.exists():
            raise CaseInputError(f"{field} file not found: {path}", case=case.label)
        hashes[field] = content_sha256(path)
    hashes["fields"] = fields_sha256(case)
    return hashes
