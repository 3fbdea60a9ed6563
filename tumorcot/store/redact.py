"""What of a case's generation log may be published: prompts as hashes, report text never.

The per-case log in the private state folder keeps every turn whole (full prompts, with the
radiology report quoted in the extractor's). The published log shards get, per turn:

- ``messages_json``: one ``{"role", "sha256", "chars"}`` per message instead of its content
  (the prompt template and its sha256 stay in ``template``/``template_sha256``);
- ``raw_response``/``parsed_json`` of an agent that reads the report (``REPORT_AGENTS``): a
  ``{"redacted": ..., "sha256": ...}`` stub, since what it extracted is report text;
- in every other text field, each sentence of the report (and the whole report) that occurs
  verbatim is replaced by ``[report span sha256:...]``.

A log without LLM turns (the offline generator's) passes through untouched.
"""

from __future__ import annotations

import hashlib
import json
import re

import pyarrow as pa

REPORT_AGENTS = frozenset({"extractor"})
TEXT_FIELDS = ("raw_response", "parsed_json", "error")
MIN_SPAN_CHARS = 12


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hashed_messages(messages_json: str) -> str:
    """``[{"role", "content"}...]`` -> ``[{"role", "sha256", "chars"}...]``."""
    try:
        messages = json.loads(messages_json)
    except ValueError:
        return json.dumps([{"sha256": _sha(messages_json), "chars": len(messages_json)}])
    out = []
    for m in messages if isinstance(messages, list) else [messages]:
        content = m.get("content") if isinstance(m, dict) else m
        text = content if isinstance(content, str) else json.dumps(content, sort_keys=True)
        out.append({"role": m.get("role") if isinstance(m, dict) else None, "sha256": _sha(text),
                    "chars": len(text)})
    return json.dumps(out)


def report_spans(report: str | None) -> list[str]:
    """The whole report and each sentence / line of it, longest first (JSON-escaped forms too,
    since responses are stored as JSON text)."""
    if not report or not report.strip():
        return []
    pieces = {report.strip()} | {p.strip() for p in re.split(r"(?<=[.;:!?])\s+|\n+", report)}
    spans = {p for p in pieces if len(p) >= MIN_SPAN_CHARS}
    spans |= {json.dumps(p, ensure_ascii=False)[1:-1] for p in spans}
    spans |= {json.dumps(p)[1:-1] for p in spans}
    return sorted(spans, key=len, reverse=True)


def redact_spans(text: str | None, spans: list[str]) -> str | None:
    if not text:
        return text
    for span in spans:
        if span in text:
            text = text.replace(span, f"[report span sha256:{_sha(span)[:16]}]")
    return text


def needs_redaction(table: pa.Table) -> bool:
    """Whether any turn carries a prompt or a response (LLM turns do; the offline log does not)."""
    if table.num_rows == 0:
        return False
    messages = table.column("messages_json").to_pylist()
    responses = table.column("raw_response").to_pylist()
    return any(m not in ("[]", None) for m in messages) or any(r is not None for r in responses)


def publishable_log(table: pa.Table, report: str | None) -> pa.Table:
    """The log table as it may appear in a published shard (see the module docstring)."""
    if not needs_redaction(table) and not report:
        return table
    spans = report_spans(report)
    agents = table.column("agent").to_pylist()
    columns = {name: table.column(name).to_pylist() for name in ("messages_json", *TEXT_FIELDS, "reasons")}
    columns["messages_json"] = [hashed_messages(m) if m not in ("[]", None) else m for m in columns["messages_json"]]
    for name in TEXT_FIELDS:
        values = columns[name]
        for i, value in enumerate(values):
            if value and agents[i] in REPORT_AGENTS and name != "error":
                values[i] = json.dumps({"redacted": "derived from the report text", "sha256": _sha(value)})
            else:
                values[i] = redact_spans(value, spans)
    columns["reasons"] = [[redact_spans(r, spans) for r in reasons or []] for reasons in columns["reasons"]]
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), pa.array(values, type=table.schema.field(index).type))
    return table
