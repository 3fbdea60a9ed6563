"""Case manifests from public CT collections: ``tumorcot ingest atlas|totalseg|nnunet ROOT``."""

from __future__ import annotations

from pathlib import Path

from tumorcot.ingest.common import Summary, read_pathology, read_reports, write_manifest
from tumorcot.ingest.folders import find_folder_cases
from tumorcot.ingest.nnunet import find_nnunet_cases

LAYOUTS = ("atlas", "totalseg", "nnunet")


def ingest(layout: str, root: Path, out: Path, *, report_csv: Path | None = None,
           pathology_csv: Path | None = None, lesion_provenance: str = "annotated") -> Summary:
    """Find the cases of ``root`` in ``layout`` and write their manifest to ``out``."""
    if layout == "nnunet":
        cases = find_nnunet_cases(root)
    elif layout in ("atlas", "totalseg"):
        cases = find_folder_cases(root, lesion_provenance=lesion_provenance)
    else:
        raise ValueError(f"unknown layout {layout!r}; one of {LAYOUTS}")
    if layout == "nnunet":
        for case in cases:
            case.lesion_provenance = lesion_provenance
    return write_manifest(cases, out, source=f"{layout}:{Path(root).name}", reports=read_reports(report_csv),
                          pathology=read_pathology(pathology_csv))
