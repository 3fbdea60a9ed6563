"""Every error tumorcot raises on purpose.

    TumorcotError                 base class; the message always names the case when there is one
    ├── ManifestError             a case-manifest row is malformed (names the row and the field)
    ├── CaseInputError            an input file of one case is missing, unreadable, corrupt or of
    │                             the wrong modality, or a mask is empty where it must not be
    │   └── ImplausibleInputError it decodes but cannot be real: spacing, HU distribution, organ
    │                             HU/volume or lesion extent outside the plausibility gates
    ├── GeometryError             a mask cannot be put on the CT's grid (no or too little physical
    │                             overlap, non-3D image)
    ├── SegmentationError         the segmentation backend failed or is not usable (no weights)
    ├── KnowledgeGraphError       the KG data file is invalid or a query names an unknown node
    ├── LLMOutputError            an LLM answer is unusable after its retries (bad JSON, schema
    │                             violation, refusal, truncation)
    ├── CalibrationError          a generated record failed the deterministic fact/KG checks
    ├── ShardIntegrityError       a shard or the dataset manifest does not match its checksum or
    │                             schema (raised by ``tumorcot validate``)
    ├── DatasetLockedError        another writer holds the dataset's lock
    ├── RemovalRefusedError       a build would remove most of the published cases (--allow-removal)
    ├── RegenerationError         ``tumorcot regenerate`` cannot run: unknown patient, no stored
    │                             case row, or the patient's case failed again (dataset unchanged)
    ├── NotADatasetError          a command that reads a dataset was given a folder without one
    ├── PrefectUnavailableError   no Prefect API: the configured one does not answer, or the
    │                             temporary server did not start in time
    ├── StateDirError             the private state folder cannot be used (inside the dataset
    │                             folder, or belongs to another dataset)
    ├── ExportError               ``tumorcot export`` / the torch dataset cannot place a record's CT:
    │                             no stored case row, CT file gone, path outside --image-root, or
    │                             a path that would reveal a raw patient/study id
    └── ReviewError               ``tumorcot review``: a verdict file is not valid JSON / not a
                                  verdict file / judges no record of the dataset, or a review pack
                                  cannot be made (nothing to sample, a record's CT is gone)
"""

from __future__ import annotations


class TumorcotError(Exception):
    """Base class. ``case`` is the (pseudonymous or row) case label when the error concerns one."""

    def __init__(self, message: str, *, case: str | None = None):
        self.case = case
        super().__init__(f"[{case}] {message}" if case else message)


class ManifestError(TumorcotError):
    """A case-manifest row is malformed; raised while reading the manifest."""


class CaseInputError(TumorcotError):
    """An input of one case is missing, unreadable, corrupt, empty or not CT."""


class ImplausibleInputError(CaseInputError):
    """Raised by ``imaging.plausibility`` gates (names the check and the measured value)."""


class GeometryError(TumorcotError):
    """A mask cannot be aligned to the CT grid in physical space."""


class SegmentationError(TumorcotError):
    """The segmentation backend failed or cannot run (e.g. TotalSegmentator weights absent)."""


class KnowledgeGraphError(TumorcotError):
    """The knowledge-graph data file is invalid or a query names an unknown node."""


class LLMOutputError(TumorcotError):
    """An LLM answer stayed unusable after its retries."""


class CalibrationError(TumorcotError):
    """A generated record failed the deterministic fact and knowledge-graph checks."""

    def __init__(self, message: str, *, case: str | None = None, reasons: list[str] | None = None):
        self.reasons = reasons or [message]
        super().__init__(message, case=case)


class ShardIntegrityError(TumorcotError):
    """A shard or the dataset manifest does not match its checksum, row count or schema."""


class RemovalRefusedError(TumorcotError):
    """A manifest would remove more than the allowed share of a dataset's published cases."""


class DatasetLockedError(TumorcotError):
    """Another process is writing the same dataset."""


class RegenerationError(TumorcotError):
    """A patient cannot be regenerated; the dataset's shards and manifest are left unchanged."""


class NotADatasetError(TumorcotError, FileNotFoundError):
    """The folder holds no tumorcot dataset (no ``manifest.json``)."""


class PrefectUnavailableError(TumorcotError):
    """No Prefect API to run flows against."""


class WorkerProcessError(TumorcotError):
    """A worker process died while it held the case (e.g. killed when out of memory)."""


class StateDirError(TumorcotError):
    """The dataset's private state folder cannot be used."""


class ExportError(TumorcotError):
    """A record cannot be exported or loaded with its image; names the record and its case."""


class ReviewError(TumorcotError):
    """A verdict file cannot be ingested, or a review pack cannot be made."""
