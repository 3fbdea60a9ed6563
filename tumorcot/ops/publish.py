"""``tumorcot publish``: scan every file of a dataset folder for private data, then upload it.

What a file must not contain (``scan_dataset``):

- a raw patient or study id, or an input path, of any case (from the case rows kept in the
  private state folder, and from ``--manifest`` when given);
- the radiology report text of any case (each sentence of it, as ``store/redact.py`` cuts it);
- the value of a DICOM identifying tag (``IDENTIFYING_TAGS``) of any case's CT series;
- a key-like string (``KEY_PATTERNS``) or the value of a secret environment variable
  (``SECRET_ENV``);
- private files: a ``.tumorcot``/``llm-cache`` folder, a salt, a DICOM file.

Parquet files are scanned decoded (every row as JSON) and raw; other files as bytes. Nothing is
uploaded when anything is found. The upload is ``huggingface_hub``'s ``upload_folder`` of the
dataset folder restricted to exactly the scanned files (``allow_patterns``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from tumorcot.errors import TumorcotError

IDENTIFYING_TAGS = {
    "0010|0010": "PatientName", "0010|0020": "PatientID", "0010|0030": "PatientBirthDate",
    "0010|1000": "OtherPatientIDs", "0010|1001": "OtherPatientNames", "0010|1040": "PatientAddress",
    "0010|2154": "PatientTelephoneNumbers", "0008|0050": "AccessionNumber", "0008|0080": "InstitutionName",
    "0008|0081": "InstitutionAddress", "0008|0090": "ReferringPhysicianName", "0008|1010": "StationName",
    "0008|1048": "PhysiciansOfRecord", "0008|1050": "PerformingPhysicianName", "0008|1070": "OperatorsName",
    "0020|000d": "StudyInstanceUID", "0020|000e": "SeriesInstanceUID", "0020|0010": "StudyID",
}
PERSON_NAME_TAGS = {"PatientName", "OtherPatientNames", "ReferringPhysicianName", "PhysiciansOfRecord",
                    "PerformingPhysicianName", "OperatorsName"}
KEY_PATTERNS = {
    "OpenAI-style API key": r"sk-[A-Za-z0-9_\-]{16,}",
    "Hugging Face token": r"hf_[A-Za-z0-9]{20,}",
    "AWS access key id": r"AKIA[0-9A-Z]{16}",
    "private key block": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "bearer token": r"Bearer [A-Za-z0-9._\-]{20,}",
}
SECRET_ENV = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TUMORCOT_SALT")
PRIVATE_NAMES = {".tumorcot", "llm-cache", "salt", "input.json"}
MIN_NEEDLE = 4


class PublishError(TumorcotError):
    """The dataset cannot be published: it is not one, or a file holds private data."""


@dataclass
class Scan:
    files: list[Path] = field(default_factory=list)       # relative to the dataset folder
    findings: list[str] = field(default_factory=list)
    needles: int = 0
    notes: list[str] = field(default_factory=list)


def _dicom_values(ct: Path) -> dict[str, str]:
    """Identifying tag values of a DICOM series folder (one file's header is enough)."""
    import SimpleITK as sitk

    if not ct.is_dir():
        return {}
    for path in sorted(ct.iterdir()):
        if not path.is_file():
            continue
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            continue
        return {name: reader.GetMetaData(tag).strip() for tag, name in IDENTIFYING_TAGS.items()
                if reader.HasMetaDataKey(tag) and reader.GetMetaData(tag).strip()}
    return {}


def private_needles(dataset_dir: Path, manifest: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """What must not appear (text -> what it is), from the private case rows (and a manifest)."""
    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.store.cases import CaseStore
    from tumorcot.store.redact import report_spans

    from tumorcot.store.private import state_dir

    notes: list[str] = []
    cases = []
    if state_dir(dataset_dir, create=False).exists():
        store = CaseStore(dataset_dir)
        cases = [store.recall_input(c) for c in store.case_ids()]
    if manifest is not None:
        cases += [e for e in read_case_manifest(manifest) if not isinstance(e, TumorcotError)]
    needles: dict[str, str] = {}
    for case in filter(None, cases):
        what = f"case row {case.row}"
        needles[case.patient_id] = f"raw patient id ({what})"
        needles[case.study_id] = f"raw study id ({what})"
        for name, path in case.files().items():
            needles[str(path)] = f"input path {name} ({what})"
        for span in report_spans(case.report):
            needles[span] = f"report text ({what})"
        for tag, value in _dicom_values(Path(case.ct)).items():
            needles[value] = f"DICOM {tag} ({what})"
            if tag in PERSON_NAME_TAGS:   # Family^Given^Middle: each part alone too
                needles.update({part: f"DICOM {tag} part ({what})" for part in re.split(r"[\^=]", value)
                                if part != value})
    parent = str(Path(dataset_dir).resolve().parent)
    if len(parent) >= 8:   # a short one ("/data") is too common to search
        needles[parent] = "local path of the dataset's folder"
    for var in SECRET_ENV:
        if os.environ.get(var):
            needles[os.environ[var]] = f"value of ${var}"
    short = sorted(n for n in needles if 0 < len(n.strip()) < MIN_NEEDLE)
    if short:
        notes.append(f"{len(short)} value(s) shorter than {MIN_NEEDLE} characters not searched (too common)")
    if not cases:
        notes.append("no case rows found in the private state folder (give --manifest to check raw ids)")
    return {n: w for n, w in needles.items() if len(n.strip()) >= MIN_NEEDLE}, notes


def _texts(path: Path):
    """A file's content to search: its bytes as text, and for Parquet every row as JSON."""
    data = path.read_bytes()
    yield data.decode("utf-8", errors="replace")
    if path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=2000):
            yield json.dumps(batch.to_pylist(), ensure_ascii=False, default=str)


def scan_dataset(dataset_dir: Path, manifest: Path | None = None) -> Scan:
    """Every file under ``dataset_dir`` and every private thing found in one."""
    from tumorcot.store.shards import read_manifest

    dataset_dir = Path(dataset_dir)
    read_manifest(dataset_dir)   # NotADatasetError otherwise
    needles, notes = private_needles(dataset_dir, manifest)
    scan = Scan(needles=len(needles), notes=notes)
    pattern = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True))) if needles else None
    keys = re.compile("|".join(f"(?P<k{i}>{p})" for i, p in enumerate(KEY_PATTERNS.values())))
    key_names = list(KEY_PATTERNS)
    for path in sorted(p for p in dataset_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(dataset_dir)
        scan.files.append(rel)
        if PRIVATE_NAMES & set(rel.parts):
            scan.findings.append(f"{rel}: a private file (belongs in the state folder)")
        head = path.read_bytes()[:132]
        if head[128:132] == b"DICM":
            scan.findings.append(f"{rel}: a DICOM file (its header holds identifying tags)")
            continue
        found: set[str] = set()
        for text in _texts(path):
            if pattern is not None:
                found |= {needles[m.group(0)] for m in pattern.finditer(text)}
            found |= {key_names[int(m.lastgroup[1:])] for m in keys.finditer(text)}
        scan.findings += [f"{rel}: {what}" for what in sorted(found)]
    return scan


def upload(dataset_dir: Path, repo_id: str, files: list[Path], *, private: bool, token: str | None = None) -> str:
    """Create the Hub dataset repo (if needed) and upload exactly ``files``; the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(dataset_dir), repo_id=repo_id, repo_type="dataset",
                             allow_patterns=[str(f) for f in files],
                             commit_message="tumorcot publish")
    return str(getattr(info, "commit_url", info))
