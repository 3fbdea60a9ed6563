"""An export's media pass: plan every record's items, render each case once in worker processes.

``MediaPlan.add(record)`` collects, per case, the items its records need (records showing the
same lesion or organ share files). ``MediaPlan.render`` settles cases whose files are current and
runs one ``render_case`` job per other case in a pool of worker processes (one CT decode per case
and export), reporting each finished case
to the progress bar; a case that fails is reported with its reason and its records are left out
or stop the export, as the caller decides. ``MediaPlan.record_media`` then gives a record's file
paths, the tokens of its turns and the ``meta["media"]`` entry.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tumorcot.exports.images import CaseImages
from tumorcot.exports.media import VOLUME_HU_RANGE, VOLUME_SHAPE, Item, RecordMedia, plan_record
from tumorcot.exports.media_render import CaseJob, CaseResult, current_info, file_count, render_case
from tumorcot.schemas import CaseFacts, CoTRecord

AXES = "z, y, x in LPS canonical order: index 0 = inferior, anterior, patient right"
DISPLAY = ("axial, seen from the feet: anterior at the top, patient right on the image left; pixel (row, col) "
           "shows voxel (z, row // pixel_repeat [+ crop y0], col // pixel_repeat [+ crop x0])")
TOKENS = {"slice": "<image>", "volume": "<image>", "video": "<video>"}


def default_workers(jobs: int) -> int:
    return max(1, min(jobs, os.cpu_count() or 1))


def case_job(images: CaseImages, case_id: str, items: list[Item], folder: Path,
             facts: CaseFacts | None = None) -> CaseJob:
    """A render job for one case: its CT and masks from the private case row, facts from the store."""
    facts = facts or images.store.facts(case_id)
    row = images.store.recall_input(case_id)
    return CaseJob(case_id=case_id, ct=str(images.source(case_id)), image_sha256=facts.ct.content_sha256,
                   facts_json=facts.model_dump_json(), items=items, folder=str(folder),
                   organ_mask=str(row.organ_mask) if row and row.organ_mask else None,
                   lesion_mask=str(row.lesion_mask) if row and row.lesion_mask else None)


class MediaPlan:
    def __init__(self, images: CaseImages, media_dir: Path, mode: str, *, overlay: bool = False,
                 path_of=None):
        self.images, self.media_dir, self.mode, self.overlay = images, Path(media_dir).absolute(), mode, overlay
        self.path_of = path_of or str
        self._facts: dict[str, CaseFacts] = {}
        self._items: dict[str, dict[str, Item]] = {}
        self.results: dict[str, CaseResult] = {}

    def facts(self, case_id: str) -> CaseFacts:
        if case_id not in self._facts:
            self._facts[case_id] = self.images.store.facts(case_id)
        return self._facts[case_id]

    def plan(self, record: CoTRecord) -> RecordMedia:
        return plan_record(record, self.facts(record.case_id), self.mode, self.overlay)

    def add(self, record: CoTRecord) -> None:
        items = self._items.setdefault(record.case_id, {})
        for item in self.plan(record).items():
            items[item.name] = item

    def jobs(self) -> list[CaseJob]:
        return [case_job(self.images, case_id, list(items.values()), self.media_dir / case_id, self.facts(case_id))
                for case_id, items in self._items.items()]

    def render(self, progress, workers: int | None = None) -> dict[str, CaseResult]:
        """Render every planned case; ``progress.start(total, what)`` then ``advance(items)`` per case.

        Cases whose files are all current are settled here without a worker (nothing decoded);
        the rest go to ``workers`` forked processes (in this process when one case or one worker
        is left). Fork, where the platform has it: workers need no fresh imports, and nothing has
        started ITK threads in this process yet."""
        jobs = self.jobs()
        progress.start(sum(len(job.items) for job in jobs), "images")
        stale = []
        for job in jobs:
            info = current_info(job)
            if info is None:
                stale.append(job)
                continue
            self.results[job.case_id] = CaseResult(job.case_id, info=info,
                                                   unchanged=sum(file_count(i) for i in info.values()))
            progress.advance(len(job.items))
        workers = default_workers(len(stale)) if workers is None else max(1, min(workers, len(stale)))
        if workers <= 1:
            for job in stale:
                self.results[job.case_id] = render_case(job)
                progress.advance(len(job.items))
            return self.results
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
            futures = {pool.submit(render_case, job): job for job in stale}
            for future in as_completed(futures):
                job = futures[future]
                self.results[job.case_id] = future.result()
                progress.advance(len(job.items))
        return self.results

    def failed(self) -> dict[str, str]:
        return {case: result.error for case, result in self.results.items() if result.error}

    def _path(self, case_id: str, item: Item) -> str | list[str]:
        info = self.results[case_id].info[item.name]
        folder = self.media_dir / case_id / item.name
        if item.kind == "video":
            return [self.path_of(folder / f"{n:02d}.png") for n in range(len(info["z"]))]
        return self.path_of(folder)

    def _meta(self, case_id: str, item: Item) -> dict:
        info = self.results[case_id].info[item.name]
        meta = {"target": item.target, "axes": AXES}
        if item.kind == "volume":
            meta.update(shape_zyx=list(VOLUME_SHAPE), hu_range=list(VOLUME_HU_RANGE),
                        scaling="(clip(HU, lo, hi) - lo) / (hi - lo), float16, linear resampling",
                        source_shape_zyx=info["source_shape_zyx"])
        else:
            meta.update(plane="axial", display=DISPLAY, z=info["z"], window=info["window"],
                        pixel_repeat=info["pixel_repeat"])
        if "crop_zyx" in info:
            meta["crop_zyx"] = info["crop_zyx"]
        return meta

    def record_media(self, record: CoTRecord) -> dict:
        """``{"images": [...], "videos": [[...]], "tokens": {turn: token}, "crop_refs": {turn: path},
        "meta": {...}}`` of a rendered record (a video crop's ``crop_ref`` is its frame folder)."""
        planned = self.plan(record)
        out = {"images": [], "videos": [], "tokens": {}, "crop_refs": {},
               "meta": {"mode": self.mode, "overlay": self.overlay}}
        field = "videos" if self.mode == "video" else "images"
        for turn, item in [(0, planned.key), *planned.crops.items()]:
            path = self._path(record.case_id, item)
            out[field].append(path)
            out["tokens"][turn] = TOKENS[self.mode]
            if turn:
                folder = self.path_of(self.media_dir / record.case_id / item.name)
                out["crop_refs"][turn] = folder if item.kind == "video" else path
                out["meta"].setdefault("crops", {})[str(turn)] = self._meta(record.case_id, item)
            else:
                out["meta"]["key"] = self._meta(record.case_id, item)
        return out
