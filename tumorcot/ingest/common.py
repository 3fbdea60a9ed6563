"""What every collection layout produces: one manifest row per case, and a summary.

A layout module (``folders``, ``nnunet``) finds the cases of a collection and names their masks;
this module joins reports and pathology labels by case name, writes the case manifest (CSV) and
counts structures and unknown names for the summary.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tumorcot.errors import ManifestError
from tumorcot.imaging.structures import resolve
from tumorcot.store.atomic import atomic_open

COLUMNS = ("patient_id", "study_id", "ct", "organ_mask", "lesion_mask", "mask_labels", "annotated_organs",
           "lesion_provenance", "report", "pathology", "source")
PATHOLOGY_KEYS = ("diagnosis", "histology", "behavior", "organ", "T", "N", "M")
CASE_COLUMNS = ("case", "case_id", "patient_id", "id")


@dataclass
class FoundCase:
    """One case of a collection: its CT, its masks and the structure names they hold."""

    name: str
    ct: Path
    organ_mask: Path | None = None
    lesion_mask: Path | None = None
    mask_labels: dict[int, str] | None = None
    structures: list[str] = field(default_factory=list)
    lesion_provenance: str = "annotated"

    def annotated_organs(self) -> list[str]:
        """Organs whose lesions the masks annotate: those a lesion name fixes, and, when the
        labels hold a lesion with no organ in its name (nnU-Net "tumour"), the organs labelled
        beside it."""
        lesion_organs, organs, generic_lesion = [], [], False
        for name in self.structures:
            try:
                structure = resolve(name)
            except KeyError:
                continue
            if structure.role == "lesion":
                lesion_organs += structure.organs
                generic_lesion |= not structure.organs
            elif structure.role == "organ":
                organs += structure.organs
        chosen = lesion_organs + (organs if generic_lesion else [])
        return list(dict.fromkeys(chosen))


@dataclass
class Summary:
    cases: int = 0
    structures: Counter = field(default_factory=Counter)
    unknown: dict[str, list[str]] = field(default_factory=dict)  # name -> cases
    problems: list[str] = field(default_factory=list)
    unmatched_reports: list[str] = field(default_factory=list)


def _case_key(row: dict, what: str, path: Path) -> str:
    for column in CASE_COLUMNS:
        if row.get(column):
            return row[column].strip()
    raise ManifestError(f"{what} {path} needs one of the columns {', '.join(CASE_COLUMNS)}")


def read_reports(path: Path | None) -> dict[str, str]:
    """``{case name: report text}`` from a CSV with a case column and ``report``."""
    if path is None:
        return {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if rows and "report" not in rows[0]:
        raise ManifestError(f"report CSV {path} needs a 'report' column")
    return {_case_key(r, "report CSV", path): r["report"] for r in rows if r.get("report")}


def read_pathology(path: Path | None) -> dict[str, str]:
    """``{case name: "key=value; ..."}`` from a CSV with a case column and either ``pathology``
    or any of the columns diagnosis, histology, behavior, organ, T, N, M."""
    if path is None:
        return {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for row in rows:
        key = _case_key(row, "pathology CSV", path)
        if row.get("pathology"):
            out[key] = row["pathology"]
            continue
        parts = [f"{k}={row[k].strip()}" for k in PATHOLOGY_KEYS if (row.get(k) or "").strip()]
        if parts:
            out[key] = "; ".join(parts)
    return out


def write_manifest(cases: list[FoundCase], out: Path, *, source: str, reports: dict[str, str],
                   pathology: dict[str, str]) -> Summary:
    """Write the case manifest (paths relative to its folder where possible) and count."""
    summary = Summary(cases=len(cases))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = {c.name for c in cases}
    summary.unmatched_reports = sorted((set(reports) | set(pathology)) - names)
    with atomic_open(out, newline="") as fh:   # a failed ingest leaves no half-written manifest
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for case in cases:
            for name in case.structures:
                summary.structures[name] += 1
                try:
                    resolve(name)
                except KeyError:
                    summary.unknown.setdefault(name, []).append(case.name)
            writer.writerow({
                "patient_id": case.name, "study_id": case.name, "ct": _rel(case.ct, out.parent),
                "organ_mask": _rel(case.organ_mask, out.parent), "lesion_mask": _rel(case.lesion_mask, out.parent),
                "mask_labels": ";".join(f"{v}:{n}" for v, n in sorted(case.mask_labels.items()))
                if case.mask_labels else "",
                "annotated_organs": ";".join(case.annotated_organs()) if case.lesion_mask else "",
                "lesion_provenance": case.lesion_provenance if case.lesion_mask else "",
                "report": reports.get(case.name, ""), "pathology": pathology.get(case.name, ""),
                "source": source,
            })
    return summary


def _rel(path: Path | None, base: Path) -> str:
    if path is None:
        return ""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(base.resolve()))
    except ValueError:
        return str(path)
