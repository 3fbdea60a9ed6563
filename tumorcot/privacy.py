"""Pseudonymisation and patient-level splits.

Raw patient and study ids never leave this module: they are replaced by salted HMAC-SHA256
pseudonyms. The salt is ``TUMORCOT_SALT`` when set, else a random one kept in the dataset folder
(``STATE/salt`` in its private state folder, never copied into shards, logs or reports). Splits are a deterministic
function of the pseudonymous patient id, so one patient's studies never span splits.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from tumorcot.store.private import state_dir

DEFAULT_SPLITS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))


def load_or_create_salt(dataset_dir: Path) -> bytes:
    if os.environ.get("TUMORCOT_SALT"):
        return os.environ["TUMORCOT_SALT"].encode()
    path = state_dir(dataset_dir) / "salt"   # the private folder: salt, case rows with raw ids, ...
    if path.exists():
        return path.read_bytes()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)   # the salt is a secret
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
    os.replace(tmp, path)
    return path.read_bytes()


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
