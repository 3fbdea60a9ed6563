"""Read and validate a case manifest (CSV or JSONL).

Each row becomes a ``CaseInput`` or a ``ManifestError`` naming the row and the field; a bad row
never stops the others. A repeated (patient_id, study_id) pair is an error on the later row:
the same patient may have several studies, but one study is one case.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

from pydantic import ValidationError

from tumorcot.errors import ManifestError
from tumorcot.imaging.structures import organ_names
from tumorcot.schemas import CaseInput
from tumorcot.schemas.case import FILE_FIELDS

KNOWN = set(CaseInput.model_fields) - {"row", "predicted_masks"}


MAX_FIELD_CHARS = 1 << 20
"""Longest accepted field (1 Mi characters): a longer one is a row error, never a crash."""

REQUIRED = ("patient_id", "study_id", "ct")


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding used). A BOM wins; then the declared encoding; then UTF-8 when the bytes
    are UTF-8; else the encoding ``charset_normalizer`` detects. Undecodable bytes become lone
    surrogates (``surrogateescape``) so that only their rows fail."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(name, errors="surrogateescape" if name == "utf-8-sig" else "replace"), name
    if encoding:
        try:
            return data.decode(encoding, errors="surrogateescape"), encoding
        except LookupError:
            raise ManifestError(f"unknown encoding {encoding!r}") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None and best.encoding:
        return data.decode(best.encoding, errors="surrogateescape"), best.encoding
    return data.decode("utf-8", errors="surrogateescape"), "utf-8"


def _undecodable(values) -> bool:
    return any(isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v) for v in values)


def _rows(path: Path, encoding: str | None = None) -> tuple[list[dict | ManifestError], str]:
    """The manifest's data rows as dicts, or the row error that replaces a malformed one."""
    if not path.exists():
        raise ManifestError(f"case manifest {path} does not exist")
    if path.is_dir():
        raise ManifestError(f"case manifest {path} is a folder; give the CSV or JSONL file listing the cases")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"case manifest {path} cannot be read: {exc.strerror}") from None
    text, used = decode(data, encoding)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _json_rows(text), used
    return _csv_rows(text, path), used


def _json_rows(text: str) -> list[dict | ManifestError]:
    rows: list[dict | ManifestError] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label = f"row {len(rows) + 1}"
        if _undecodable([line]):
            rows.append(ManifestError(f"line {n} holds bytes that are not text in the manifest's encoding "
                                      "(pass --encoding)", case=label))
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(ManifestError(f"line {n} is not JSON: {exc.msg}", case=label))
            continue
        if not isinstance(value, dict):
            rows.append(ManifestError(f"line {n} is a JSON {type(value).__name__}, not an object", case=label))
            continue
        rows.append(value)
    return rows


def _csv_rows(text: str, path: Path) -> list[dict | ManifestError]:
    csv.field_size_limit(max(csv.field_size_limit(), 64 * MAX_FIELD_CHARS))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ManifestError(f"case manifest {path} is empty") from None
    missing = set(REQUIRED) - set(header)
    if missing:
        raise ManifestError(f"case manifest {path} lacks the column(s) {', '.join(sorted(missing))}")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise ManifestError(f"case manifest {path} repeats the column(s) {', '.join(repeated)}")
    rows: list[dict | ManifestError] = []
    while True:
        label = f"row {len(rows) + 1}"
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.append(ManifestError(f"not valid CSV ({exc})", case=label))
            continue
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            rows.append(ManifestError(f"has {len(values)} fields, the header has {len(header)}", case=label))
            continue
        if _undecodable(values):
            rows.append(ManifestError("holds bytes that are not text in the manifest's encoding (pass --encoding)",
                                      case=label))
            continue
        rows.append(dict(zip(header, values)))
    return rows


def read_case_manifest(path: Path, encoding: str | None = None) -> list[CaseInput | ManifestError]:
    """One entry per data row, in order: a validated case or the error that rejects it. No error
    message quotes a field's value (raw ids and report text stay out of logs)."""
    path = Path(path)
    base = path.parent.resolve()
    out: list[CaseInput | ManifestError] = []
    seen: dict[tuple[str, str], int] = {}
    rows, _ = _rows(path, encoding)
    for row_no, raw in enumerate(rows, 1):
        label = f"row {row_no}"
        if isinstance(raw, ManifestError):
            out.append(raw)
            continue
        unknown = set(map(str, raw)) - KNOWN
        if unknown:
            out.append(ManifestError(f"unknown column(s) {', '.join(sorted(unknown))}", case=label))
            continue
        long = sorted(k for k, v in raw.items() if isinstance(v, str) and len(v) > MAX_FIELD_CHARS)
        if long:
            out.append(ManifestError(f"field(s) {', '.join(long)} longer than {MAX_FIELD_CHARS:,} characters",
                                     case=label))
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
