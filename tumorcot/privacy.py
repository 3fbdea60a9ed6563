"""Pseudonymisation and patient-level splits.

Raw patient and study ids never leave this module: they are replaced by salted HMAC-SHA256
pseudonyms. The salt is ``TUMORCOT_SALT`` when set, else a random one kept in the dataset's
private state folder (``STATE/salt``, never copied into shards, logs or reports). Splits are a
deterministic function of the pseudonymous patient id, so one patient's studies never span splits.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from tumorcot.store.atomic import atomic_write_bytes
from tumorcot.store.private import state_dir

DEFAULT_SPLITS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))


def salt_path(dataset_dir: Path, *, create: bool = False) -> Path:
    """Where the dataset's salt is kept: its private state folder."""
    return state_dir(dataset_dir, create=create) / "salt"


def load_or_create_salt(dataset_dir: Path, *, create: bool = True) -> bytes | None:
    """The dataset's salt: ``TUMORCOT_SALT`` when set, else the private salt file, made (random,
    owner-only) when missing; with ``create=False`` a missing salt is None (the caller explains)."""
    if os.environ.get("TUMORCOT_SALT"):
        return os.environ["TUMORCOT_SALT"].encode()
    path = salt_path(dataset_dir, create=create)
    if path.exists():
        return path.read_bytes()
    if not create:
        return None
    atomic_write_bytes(path, secrets.token_hex(32).encode())   # mkstemp's 0600 in the private folder
    return path.read_bytes()


MIN_ID_LENGTH = 3   # shorter raw ids ("1") would match everywhere; they are not scrubbed


def raw_ids(case) -> list[str]:
    """A case's raw patient and study ids (a ``CaseInput``), as text may quote them."""
    return [raw for raw in {case.patient_id, case.study_id} if len(raw) >= MIN_ID_LENGTH]


def scrub_ids(text: str, case, replacement: str) -> str:
    """``text`` (an error message, a path) with the case's input paths (private) replaced by their
    field names and its raw ids by ``replacement``."""
    for field, path in case.files().items():
        text = text.replace(str(path), f"<{field}>")
    for raw in raw_ids(case):
        text = text.replace(raw, replacement)
    return text


def pseudonymise(value: str, salt: bytes, *, prefix: str = "p") -> str:
    return f"{prefix}-" + hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()[:16]


def case_id_for(patient_id: str, study_id: str, salt: bytes) -> str:
    return pseudonymise(f"{patient_id}\x1f{study_id}", salt, prefix="c")


def assign_split(patient_pseudo_id: str, ratios=DEFAULT_SPLITS) -> str:
    """Deterministic split of a pseudonymous patient id by ``ratios`` (name, share) pairs."""
    u = int(hashlib.sha256(f"split\x1f{patient_pseudo_id}".encode()).hexdigest()[:15], 16) / 16**15
    total = sum(share for _, share in ratios)
    edge = 0.0
    for name, share in ratios:
        edge += share / total
        if u < edge:
            return name
    return ratios[-1][0]
