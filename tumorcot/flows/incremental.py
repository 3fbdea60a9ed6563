"""Recognise an unchanged case in the flow itself, without a task and without rereading its files.

A case's ``done.json`` keeps the content hashes of its input files together with their
*signature* (size and modification time in ns, per file of a DICOM folder), as git's index
does. When the signatures are unchanged the recorded hashes are reused; with the manifest
fields' hash and the current versions they give the build key, compared with the stored one.
Any difference (or a missing file) sends the case to ``process_case``, which rehashes.
"""

from __future__ import annotations

from pathlib import Path

from tumorcot.privacy import case_id_for
from tumorcot.schemas import CaseInput, CaseOutcome
from tumorcot.store.cases import CaseStore

FILE_FIELDS = ("ct", "organ_mask", "lesion_mask", "liver_segments")


def _stat(path: Path) -> list:
    if path.is_dir():
        return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                for p in sorted(path.rglob("*")) if p.is_file()]
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def input_signature(case: CaseInput) -> dict | None:
    """Size and mtime of every input file; None when one is missing."""
    signature = {}
    for field in FILE_FIELDS:
        path = getattr(case, field)
        if path is not None:
            if not path.exists():
                return None
            signature[field] = _stat(path)
    return signature


def unchanged_outcome(case: CaseInput, dataset_dir: Path, salt: bytes, run_id: str,
                      generator: str, options: dict | None = None,
                      segmentation: dict | None = None) -> CaseOutcome | None:
    """An ``unchanged`` outcome when the case's stored result is current, else None."""
    from tumorcot.flows.build import build_key, pipeline_versions
    from tumorcot.pipeline import fields_sha256

    case_id = case_id_for(case.patient_id, case.study_id, salt)
    store = CaseStore(dataset_dir)
    done = store.done(case_id)
    if not done or not done.get("input_signature"):
        return None
    signature = input_signature(case)
    if signature is None or signature != done["input_signature"]:
        return None
    hashes = {k: v for k, v in done.get("input_sha256", {}).items() if k in signature}
    hashes["fields"] = fields_sha256(case)
    if not store.is_current(case_id, build_key(hashes, pipeline_versions(generator, options, segmentation))):
        return None
    store.remember_input(case_id, case)
    return CaseOutcome(run_id=run_id, case_label=case.label, case_id=case_id, status="unchanged",
                       records=done.get("records", 0), rejected=done.get("rejected", 0))
