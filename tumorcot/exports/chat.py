"""Chat-format exports of a dataset's records: LLaVA, ShareGPT (LLaMA-Factory) and ms-swift, as JSONL.

One line per record. The first user turn starts with the media token (``<image>\\n`` for LLaVA,
``<image>`` / ``<video>`` for LLaMA-Factory and ms-swift, which count one token per entry of
``images`` / ``videos``); with rendered media (``--images slice|video|volume``, see
``tumorcot.exports.media``) each attend turn carries one more token for its crop. Turns alternate
user/assistant. Turns keep their ``kind`` and, where present, ``focus_organ``, ``roi_box`` and
``crop_ref`` as extra keys (trainers read only role/content and ignore them); the record-level
``roi`` and ``focus`` repeat the ROI references, and ``meta`` carries pseudonymous ids and the
task labels (and ``media``: window, slice index, orientation). With ``--images ct`` the image
is the record's CT (see ``tumorcot.exports.images``).

Output: ``OUT`` ending in ``.json`` or ``.jsonl`` is one file holding every selected split (each
item says its split): ``.json`` a JSON array (what LLaVA's training script reads), ``.jsonl`` one
item per line; any other ``OUT`` is a folder with one file per split, ``{split}.json`` (array) for
LLaVA, ``{split}.jsonl`` for ShareGPT and ms-swift, plus, for ShareGPT, the ``dataset_info.json``
that registers those files with LLaMA-Factory. Files are written to a
temporary name and renamed at the end, so a failed export leaves no partial file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from tumorcot.errors import ExportError
from tumorcot.conversation import conversation, focus_of
from tumorcot.exports.images import CaseImages
from tumorcot.exports.media import IMAGE_MODES, MODES
from tumorcot.exports.media_jobs import MediaPlan
from tumorcot.schemas import CoTRecord
from tumorcot.store.atomic import atomic_open, atomic_write_json
from tumorcot.store.shards import SPLITS, read_manifest
from tumorcot.store.lock import reads_dataset

FORMATS = ("llava", "sharegpt", "swift")
ARRAY_FORMATS = ("llava",)          # a folder export writes {split}.json arrays for these
FILE_SUFFIXES = (".json", ".jsonl")  # an OUT ending so is one file
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


def _common(record: CoTRecord, turns: list[dict], media: dict) -> dict:
    meta = {f: getattr(record, f) for f in META_FIELDS}
    if media.get("meta"):
        meta["media"] = media["meta"]
    return {"roi": record.roi_box, "focus": focus_of(turns), "meta": meta}


def ct_media(image: str) -> dict:
    """``--images ct``: the CT path, one ``<image>`` token on the first user turn."""
    return {"images": [image], "videos": [], "tokens": {0: "<image>"}, "crop_refs": {}, "meta": None}


NO_MEDIA = {"images": [], "videos": [], "tokens": {}, "crop_refs": {}, "meta": {"mode": "none"}}


def _media_turns(record: CoTRecord, media: dict) -> list[dict]:
    turns = _checked(record)
    for index, ref in media["crop_refs"].items():
        turns[index]["crop_ref"] = ref
    return turns


def llava_item(record: CoTRecord, media: dict | str) -> dict:
    """LLaVA layout; ``media``: a CT path, or a ``MediaPlan.record_media`` dict (tokens per turn)."""
    media = ct_media(media) if isinstance(media, str) else media
    turns = _media_turns(record, media)
    conversations = []
    for i, turn in enumerate(turns):
        token = media["tokens"].get(i)
        conversations.append({"from": "human" if turn["role"] == "user" else "gpt",
                              "value": (f"{token}\n" if token else "") + turn["content"],
                              **{k: turn[k] for k in TURN_META if k in turn}})
    item = {"id": record.record_id}
    for key, values in (("image", media["images"]), ("video", media["videos"])):
        if values:
            item[key] = values[0] if len(values) == 1 else values
    return {**item, "conversations": conversations, **_common(record, turns, media)}


def sharegpt_item(record: CoTRecord, media: dict | str) -> dict:
    """LLaMA-Factory's sharegpt and ms-swift's messages layout: ``messages`` (role, content with
    one ``<image>``/``<video>`` token per entry of ``images``/``videos``) and the file lists."""
    media = ct_media(media) if isinstance(media, str) else media
    turns = _media_turns(record, media)
    messages = [{"role": t["role"], "content": media["tokens"].get(i, "") + t["content"],
                 **{k: t[k] for k in TURN_META if k in t}} for i, t in enumerate(turns)]
    item = {"id": record.record_id, "messages": messages}
    for key in ("images", "videos"):
        if media[key]:
            item[key] = media[key]
    return {**item, **_common(record, turns, media)}


MAKERS = {"llava": llava_item, "sharegpt": sharegpt_item, "swift": sharegpt_item}


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
    """What ``export_chat`` reports to: ``start(total, what)`` per pass (images, then records),
    then ``advance(n)``."""

    def start(self, total: int, what: str = "records") -> None: ...

    def advance(self, n: int = 1) -> None: ...


def _llama_factory_info(files: dict[str, Path], media: str = "images") -> dict:
    columns = {"messages": "messages", **({media: media} if media else {})}
    return {f"tumorcot_{split}": {
        "file_name": path.name, "formatting": "sharegpt", "columns": columns,
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    } for split, path in files.items()}


def _path_writer(image_root: Path | None):
    """Media paths as written: absolute, or relative to ``--image-root``."""
    root = Path(os.path.abspath(image_root)) if image_root else None

    def path_of(path: Path) -> str:
        if root is None:
            return str(path)
        try:
            return str(Path(os.path.abspath(path)).relative_to(root))
        except ValueError:
            raise ExportError(f"media folder {path.parent} is not under --image-root {root} "
                              "(choose --media-dir inside it)") from None
    return path_of


@reads_dataset   # a concurrent build's update is seen whole or not at all
def export_chat(dataset_dir: Path, out: Path, fmt: str, *, splits: list[str] | None = None,
                image_root: Path | None = None, link_dir: Path | None = None, skip_missing: bool = False,
                progress: _Progress | None = None, images: str = "ct", overlay: bool = False,
                media_dir: Path | None = None, workers: int | None = None) -> dict:
    """Write the records of ``splits`` (default: all) as ``fmt`` JSONL with ``images`` media
    (``exports.media.MODES``); returns a summary ``{"files": {path: lines}, "written": n,
    "skipped": n, "skipped_cases": [...], "media": {...}}``."""
    if fmt not in MAKERS:
        raise ExportError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    if images not in MODES:
        raise ExportError(f"unknown image mode {images!r} (choose from {', '.join(MODES)})")
    dataset_dir, out = Path(dataset_dir), Path(out)
    rows = split_rows(dataset_dir)
    splits = [s for s in (splits or SPLITS) if rows.get(s)]
    case_images = CaseImages(dataset_dir, image_root=image_root, link_dir=link_dir)
    make = MAKERS[fmt]
    progress = progress or _Progress()
    single = out.suffix in FILE_SUFFIXES
    array = out.suffix == ".json" if single else fmt in ARRAY_FORMATS
    targets = {s: out if single else out / f"{s}{'.json' if array else '.jsonl'}" for s in splits}
    summary = {"files": {}, "written": 0, "skipped": 0, "skipped_cases": set()}
    plan, failed = None, {}
    if images in IMAGE_MODES:
        media_dir = Path(media_dir) if media_dir else (out.parent / f"{out.stem}_media" if single else out / "media")
        path_of = _path_writer(image_root)
        path_of(media_dir / "x")          # media outside --image-root: say so before rendering anything
        plan = MediaPlan(case_images, media_dir, images, overlay=overlay, path_of=path_of)
        for split in splits:
            for record in iter_records(dataset_dir, split):
                if not skip_missing or case_images.available(record.case_id):
                    plan.add(record)
        plan.render(progress, workers)
        failed = plan.failed()
        if failed and not skip_missing:
            raise ExportError("cannot render the images of " + "; ".join(failed.values()))
        summary["media"] = {"folder": str(plan.media_dir), "cases": len(plan.results),
                            "decoded": sum(r.decoded for r in plan.results.values()),
                            "files_written": sum(r.written for r in plan.results.values()),
                            "files_unchanged": sum(r.unchanged for r in plan.results.values())}
    progress.start(sum(rows[s] for s in splits), "records")

    def media_of(record: CoTRecord) -> dict:
        if plan is not None:
            return plan.record_media(record)
        if images == "none":
            return NO_MEDIA
        return ct_media(case_images.exported_path(record.case_id, record.record_id))  # problems stop the export

    def lines(split: str) -> Iterator[str]:
        for record in iter_records(dataset_dir, split):
            progress.advance()
            if skip_missing and (record.case_id in failed or (images != "none" and
                                                              not case_images.available(record.case_id))):
                summary["skipped"] += 1
                summary["skipped_cases"].add(record.case_id)
                continue
            summary["written"] += 1
            yield json.dumps(make(record, media_of(record)), ensure_ascii=False)

    if single:
        _write_items(out, (line for s in splits for line in lines(s)), summary, array)
    else:
        for split in splits:
            _write_items(targets[split], lines(split), summary, array)
        if fmt == "sharegpt" and splits:
            column = {"video": "videos", "none": None}.get(images, "images")
            atomic_write_json(out / "dataset_info.json", _llama_factory_info(targets, column))
    summary["skipped_cases"] = sorted(summary["skipped_cases"])
    return summary


def _write_items(path: Path, items: Iterator[str], summary: dict, array: bool) -> None:
    """Stream JSON ``items`` to a temporary file next to ``path`` (one per line, or as one JSON
    array with one item per line), then rename it into place."""
    count = 0
    with atomic_open(path, encoding="utf-8") as fh:
        if array:
            fh.write("[")
        for item in items:
            fh.write(("," if array and count else "") + ("\n" if array else "") + item + ("" if array else "\n"))
            count += 1
        if array:
            fh.write("\n]\n")
    summary["files"][str(path)] = count
