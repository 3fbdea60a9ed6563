"""Read and validate a case manifest (CSV or JSONL).

Each row becomes a ``CaseInput`` or a ``ManifestError`` naming the row and the field; a bad row
never stops the others. A repeated (patient_id, study_id) pair is an error on the later row:
the same patient may have several studies, but one study is one case.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import ValidationError

from tumorcot.errors import ManifestError
from tumorcot.imaging.structures import organ_names
from tumorcot.schemas import CaseInput
from tumorcot.schemas.case import FILE_FIELDS

KNOWN = set(CaseInput.model_fields) - {"row", "predicted_masks"}


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        raise ManifestError(f"case manifest {path} does not exist")
    if path.is_dir():
        raise ManifestError(f"case manifest {path} is a folder; give the CSV or JSONL file listing the cases")
    try:
        return _parse(path)
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise ManifestError(f"case manifest {path} cannot be read as CSV or JSONL: {exc}") from None


def _parse(path: Path) -> list[dict]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    rows.append(ManifestError(f"line {n} is not JSON: {exc.msg}", case=f"row {len(rows) + 1}"))
        return rows
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"patient_id", "study_id", "ct"} - set(reader.fieldnames or [])
        if missing:
            raise ManifestError(f"case manifest {path} lacks the column(s) {', '.join(sorted(missing))}")
        return [dict(r) for r in reader]


def read_case_manifest(path: Path) -> list[CaseInput | ManifestError]:
    """One entry per data row, in order: a validated case or the error that rejects it."""
    path = Path(path)
    base = path.parent.resolve()
    out: list[CaseInput | ManifestError] = []
    seen: dict[tuple[str, str], int] = {}
    for row_no, raw in enumerate(_rows(path), 1):
        label = f"row {row_no}"
        if isinstance(raw, ManifestError):
            out.append(raw)
            continue
        unknown = set(raw) - KNOWN
        if unknown:
            out.append(ManifestError(f"unknown column(s) {', '.join(sorted(unknown))}", case=label))
            continue
        data = {k: (v.strip() if isinstance(v, str) else v) for k, v in raw.items()}
        data = {k: v for k, v in data.items() if v not in (None, "")}
        for field in FILE_FIELDS:
            if field in data:
                p = Path(data[field]).expanduser()
                data[field] = p if p.is_absolute() else base / p
        try:
            case = CaseInput(row=row_no, **data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "row"
            out.append(ManifestError(f"field '{field}': {err['msg']}", case=label))
            continue
        if case.annotated_organs:
            try:
                case = case.model_copy(update={"annotated_organs": organ_names(case.annotated_organs)})
            except KeyError as exc:
                out.append(ManifestError(f"field 'annotated_organs': {exc.args[0]!r} is not an organ name", case=label))
                continue
        key = (case.patient_id, case.study_id)
        if key in seen:
            out.append(ManifestError(f"duplicate patient_id/study_id: same as row {seen[key]}", case=label))
            continue
        seen[key] = row_no
        out.append(case)
    return out
