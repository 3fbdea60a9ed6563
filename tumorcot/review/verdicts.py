"""Verdicts kept with the dataset: ``DIR/review/verdicts.json``, vouched for by the manifest.

The file holds the verdicts and the quarantine list (records or cases removed after a ``wrong``
judgement, with the reasons); the manifest's ``review`` section names it with its sha256 and
size, and counts verdicts, reviewers and quarantined items.
The file is written atomically first, then the manifest (atomically, under the dataset lock),
so a manifest never vouches for a file that is not there; builds carry the section forward.
One verdict per (record, reviewer): a later file's verdict replaces an earlier one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from tumorcot.errors import ReviewError
from tumorcot.schemas.review import VERDICT_FORMAT, RecordVerdict, VerdictFile
from tumorcot.store.atomic import atomic_write_bytes, atomic_write_json
from tumorcot.store.shards import read_manifest

VERDICTS_PATH = "review/verdicts.json"


def read_verdict_file(path: Path) -> VerdictFile:
    """A verdict file exported by a review pack; ``ReviewError`` naming the file and the problem."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReviewError(f"{path}: no such verdict file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReviewError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != VERDICT_FORMAT:
        raise ReviewError(f"{path}: not a tumorcot verdict file (expected \"format\": \"{VERDICT_FORMAT}\", "
                          "as exported by a review pack)")
    try:
        return VerdictFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ReviewError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def review_section(dataset_dir: Path) -> dict:
    path = dataset_dir / "manifest.json"
    return read_manifest(dataset_dir).get("review", {}) if path.exists() else {}


def stored_review(dataset_dir: Path) -> dict:
    """``{"verdicts": [...], "records": {id: record_info}, "quarantine": [...]}`` stored with the
    dataset (empty when nothing was ingested)."""
    path = dataset_dir / VERDICTS_PATH
    data = json.loads(path.read_text()) if path.exists() else {}
    return {"verdicts": data.get("verdicts", []), "records": data.get("records", {}),
            "quarantine": data.get("quarantine", [])}


def merge_verdicts(old: list[dict], new: list[RecordVerdict]) -> list[dict]:
    merged = {(v["record_id"], v["reviewer"]): v for v in old}
    for v in new:
        merged[(v.record_id, v.reviewer)] = v.model_dump(mode="json")
    return [merged[k] for k in sorted(merged)]


def check_against_records(verdicts: list[RecordVerdict], records: dict[str, dict]) -> tuple[list[RecordVerdict], list[str]]:
    """(verdicts that judge existing records and steps, a problem line per one left out);
    ``records`` maps record ids to ``record_info``."""
    kept, problems = [], []
    for v in verdicts:
        row = records.get(v.record_id)
        if row is None:
            problems.append(f"record {v.record_id} (reviewer {v.reviewer}): not in the dataset, verdict left out")
            continue
        bad = [s.index for s in v.steps if not 0 <= s.index < len(row["stages"])]
        if bad:
            problems.append(f"record {v.record_id} (reviewer {v.reviewer}): no step {bad} "
                            f"(the record has {len(row['stages'])}), verdict left out")
            continue
        kept.append(v)
    return kept, problems


def write_review(dataset_dir: Path, review: dict) -> dict:
    """Write the verdict file (``stored_review``'s shape), then the manifest's ``review``
    section; the caller holds the dataset lock."""
    verdicts, quarantine = review["verdicts"], review["quarantine"]
    text = json.dumps({"format": VERDICT_FORMAT, **review}, indent=1, sort_keys=True).encode()
    atomic_write_bytes(dataset_dir / VERDICTS_PATH, text)
    manifest = read_manifest(dataset_dir)
    manifest["review"] = {
        "path": VERDICTS_PATH, "sha256": hashlib.sha256(text).hexdigest(), "bytes": len(text),
        "verdicts": len(verdicts), "reviewers": sorted({v["reviewer"] for v in verdicts}),
        "records": len({v["record_id"] for v in verdicts}), "quarantined": len(quarantine),
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(dataset_dir / "manifest.json", manifest)
    return manifest["review"]


def review_problems(dataset_dir: Path, manifest: dict) -> list[str]:
    """``tumorcot validate``: the verdict file the manifest names is there and matches it."""
    section = manifest.get("review") or {}
    if not section.get("path"):
        return []
    path = dataset_dir / section["path"]
    if not path.exists():
        return [f"{section['path']}: listed in the manifest's review section but missing"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != section.get("sha256"):
        return [f"{section['path']}: sha256 {digest[:12]}... does not match the manifest's review section"]
    return []


def quarantined_ids(dataset_dir: Path) -> tuple[set[str], set[str]]:
    """(record ids, case ids) under quarantine: a build leaves them out of the dataset."""
    path = dataset_dir / VERDICTS_PATH
    if not path.exists():
        return set(), set()
    entries = _quarantine(str(path), path.stat().st_mtime_ns)
    return ({e["record_id"] for e in entries if e.get("scope") == "record"},
            {e["case_id"] for e in entries if e.get("scope") == "case"})


@lru_cache(maxsize=4)
def _quarantine(path: str, mtime_ns: int) -> list[dict]:
    """The quarantine list, read once per version of the file (builds ask once per case)."""
    return json.loads(Path(path).read_text()).get("quarantine", [])
