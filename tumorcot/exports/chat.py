"""Chat-format exports of a dataset's records: LLaVA and ShareGPT (LLaMA-Factory), as JSONL.

One line per record. The first user turn starts with the image token (``<image>\\n`` for LLaVA,
``<image>`` for LLaMA-Factory, which counts one token per entry of ``images``); turns alternate
user/assistant. Turns keep their ``kind`` and, where present, ``focus_organ``, ``roi_box`` and
``crop_ref`` as extra keys (trainers read only role/content and ignore them); the record-level
``roi`` and ``focus`` repeat the ROI references, and ``meta`` carries pseudonymous ids and the
task labels. The image is the record's CT (see ``tumorcot.exports.images``).

Output: ``OUT`` ending in ``.jsonl`` is one file holding every selected split (each line says
its split); any other ``OUT`` is a folder with ``{split}.jsonl`` per split, plus, for ShareGPT,
the ``dataset_info.json`` that registers those files with LLaMA-Factory. Files are written to a
temporary name and renamed at the end, so a failed export leaves no partial file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from tumorcot.errors import ExportError
from tumorcot.conversation import conversation, focus_of
from tumorcot.exports.images import CaseImages
from tumorcot.schemas import CoTRecord
from tumorcot.store.atomic import atomic_open, atomic_write_json
from tumorcot.store.shards import SPLITS, read_manifest

FORMATS = ("llava", "sharegpt")
META_FIELDS = ("case_id", "patient_pseudo_id", "split", "task", "subtask", "organ", "lesion_id", "form",
               "options", "answer_index", "negative", "image_sha256", "generator", "synthetic")
TURN_META = ("kind", "focus_organ", "roi_box", "crop_ref")
_BATCH_ROWS = 4_096


def _checked(record: CoTRecord) -> list[dict]:
    turns = conversation(record)
    roles = [t["role"] for t in turns]
    if roles[0] != "user" or any(a == b for a, b in zip(roles, roles[1:])):
        raise ExportError(f"record {record.record_id}: turns do not alternate user/assistant ({roles})",
                          case=record.case_id)
    return turns


def _common(record: CoTRecord, turns: list[dict]) -> dict:
    return {"roi": record.roi_box, "focus": focus_of(turns),
            "meta": {f: getattr(record, f) for f in META_FIELDS}}


def llava_item(record: CoTRecord, image: str) -> dict:
    turns = _checked(record)
    conversations = []
    for i, turn in enumerate(turns):
        value = ("<image>\n" if i == 0 else "") + turn["content"]
        conversations.append({"from": "human" if turn["role"] == "user" else "gpt", "value": value,
                              **{k: turn[k] for k in TURN_META if k in turn}})
    return {"id": record.record_id, "image": image, "conversations": conversations, **_common(record, turns)}


def sharegpt_item(record: CoTRecord, image: str) -> dict:
    turns = _checked(record)
    messages = [{"role": t["role"], "content": ("<image>" if i == 0 else "") + t["content"],
                 **{k: t[k] for k in TURN_META if k in t}} for i, t in enumerate(turns)]
    return {"id": record.record_id, "messages": messages, "images": [image], **_common(record, turns)}


MAKERS = {"llava": llava_item, "sharegpt": sharegpt_item}


def iter_records(dataset_dir: Path, split: str) -> Iterator[CoTRecord]:
    """The split's records, shard by shard, batch by batch (memory flat in the dataset size)."""
    for entry in read_manifest(dataset_dir)["files"]:
        if entry["kind"] == "records" and entry.get("split") == split:
            for batch in pq.ParquetFile(dataset_dir / entry["path"]).iter_batches(batch_size=_BATCH_ROWS):
                for row in batch.to_pylist():
                    yield CoTRecord.model_validate(row)


def split_rows(dataset_dir: Path) -> dict[str, int]:
    rows = {split: 0 for split in SPLITS}
    for entry in read_manifest(dataset_dir)["files"]:
        if entry["kind"] == "records":
            rows[entry["split"]] += entry["rows"]
    return rows


class _Progress:
    """What ``export_chat`` reports to: ``start(total)`` once, then ``advance(n)``."""

    def start(self, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


def _llama_factory_info(files: dict[str, Path]) -> dict:
    return {f"tumorcot_{split}": {
        "file_name": path.name, "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    } for split, path in files.items()}


def export_chat(dataset_dir: Path, out: Path, fmt: str, *, splits: list[str] | None = None,
                image_root: Path | None = None, link_dir: Path | None = None, skip_missing: bool = False,
                progress: _Progress | None = None) -> dict:
    """Write the records of ``splits`` (default: all) as ``fmt`` JSONL; returns a summary
    ``{"files": {path: lines}, "written": n, "skipped": n, "skipped_cases": [...]}``."""
    if fmt not in MAKERS:
        raise ExportError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    dataset_dir, out = Path(dataset_dir), Path(out)
    rows = split_rows(dataset_dir)
    splits = [s for s in (splits or SPLITS) if rows.get(s)]
    images = CaseImages(dataset_dir, image_root=image_root, link_dir=link_dir)
    make = MAKERS[fmt]
    progress = progress or _Progress()
    progress.start(sum(rows[s] for s in splits))
    single = out.suffix == ".jsonl"
    targets = {s: out if single else out / f"{s}.jsonl" for s in splits}
    summary = {"files": {}, "written": 0, "skipped": 0, "skipped_cases": set()}

    def lines(split: str) -> Iterator[str]:
        for record in iter_records(dataset_dir, split):
            progress.advance()
            if skip_missing and not images.available(record.case_id):
                summary["skipped"] += 1
                summary["skipped_cases"].add(record.case_id)
                continue
            image = images.exported_path(record.case_id, record.record_id)   # other problems stop the export
            summary["written"] += 1
            yield json.dumps(make(record, image), ensure_ascii=False) + "\n"

    if single:
        _write_lines(out, (line for s in splits for line in lines(s)), summary)
    else:
        for split in splits:
            _write_lines(targets[split], lines(split), summary)
        if fmt == "sharegpt" and splits:
            atomic_write_json(out / "dataset_info.json", _llama_factory_info(targets))
    summary["skipped_cases"] = sorted(summary["skipped_cases"])
    return summary


def _write_lines(path: Path, lines: Iterator[str], summary: dict) -> None:
    """Stream ``lines`` to a temporary file next to ``path``, then rename it into place."""
    count = 0
    with atomic_open(path, encoding="utf-8") as fh:
        for line in lines:
            fh.write(line)
            count += 1
    summary["files"][str(path)] = count
