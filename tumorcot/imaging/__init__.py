"""Imaging stage: load CT (NIfTI or DICOM series), put masks on the CT grid, measure.

``imaging_version()`` names the measurement code: a hash of this package's modules, of the
vocabulary (label maps, thresholds) and of the facts schema. It is part of every case's facts
key, so a change to any of them re-measures, and nothing else does.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources

MEASUREMENT_SOURCES = (("tumorcot", "vocabulary.py"), ("tumorcot.schemas", "facts.py"),
                       ("tumorcot.data", "labels_total_v2.json"))


@lru_cache(maxsize=1)
def imaging_version() -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in resources.files("tumorcot.imaging").iterdir() if p.name.endswith(".py"))
    files += [resources.files(package).joinpath(name) for package, name in MEASUREMENT_SOURCES]
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return "imaging-" + digest.hexdigest()[:16]
