"""Recognise an unchanged case in the flow itself, without a task and without rereading its files.

A case's ``done.json`` keeps the content hashes of its input files together with their
*signature* (size and modification time in ns, per file of a DICOM folder), as git's index
does. When the signatures are unchanged the recorded hashes are reused; with the manifest
fields' hash and the run's versions they give the build key, compared with the stored one.
Any difference (or a missing file) sends the case to ``process_case``, which rehashes.

Per unchanged case this costs one small JSON read (``done.json``) and one ``stat`` per input
file (per file of a DICOM folder): no Parquet, no ``input.json`` read (its hash is in
``done.json``), and the versions are computed once per run, not per case.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tumorcot.privacy import case_id_for
from tumorcot.schemas import CaseInput
from tumorcot.store.cases import CaseStore



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


def current_result(case: CaseInput, store: CaseStore, salt: bytes, versions: dict) -> tuple[str, dict] | None:
    """(case id, its ``done.json``) when the case's stored result is current, else None."""
    from tumorcot.flows.build import build_key
    from tumorcot.pipeline import fields_sha256

    case_id = case_id_for(case.patient_id, case.study_id, salt)
    done = store.done(case_id)
    if not done or not done.get("input_signature"):
        return None
    signature = input_signature(case)
    if signature is None or signature != done["input_signature"]:
        return None
    hashes = {k: v for k, v in done.get("input_sha256", {}).items() if k in signature}
    hashes["fields"] = fields_sha256(case)
    if done.get("key") != build_key(hashes, versions):
        return None
    store.remember_input(case_id, case, done)
    return case_id, done
