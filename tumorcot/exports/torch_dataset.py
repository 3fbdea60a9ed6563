"""A PyTorch ``Dataset`` over one split of a tumorcot dataset, with the CT (or its ROI crop), or
the same key slice, frame stack, volume and attend-turn crops ``tumorcot export --images`` writes.

Needs the optional extra: ``pip install 'tumorcot[torch]'``. Importing this module imports
torch (a subclass of ``torch.utils.data.Dataset`` needs it); the rest of ``tumorcot.exports``
never does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

try:
    import torch
    from torch.nn import functional as F
    from torch.utils.data import Dataset
except ImportError as exc:  # only the optional extra provides torch
    raise ImportError("tumorcot.exports.torch_dataset needs PyTorch: pip install 'tumorcot[torch]'") from exc

from tumorcot.errors import ExportError
from tumorcot.conversation import conversation
from tumorcot.exports.crop import canonical_array, crop_to_box
from tumorcot.exports.images import CaseImages
from tumorcot.exports.media import IMAGE_MODES, Item, plan_record
from tumorcot.exports.media_jobs import case_job
from tumorcot.exports.media_render import CaseRenderer
from tumorcot.imaging.io import load_ct
from tumorcot.schemas import CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.shards import read_manifest
from tumorcot.store.lock import reading


def _split_table(dataset_dir: Path, split: str) -> pa.Table:
    paths = [dataset_dir / f["path"] for f in read_manifest(dataset_dir)["files"]
             if f["kind"] == "records" and f.get("split") == split]
    schema = arrow_schema(CoTRecord)
    tables = [pq.read_table(p, schema=schema) for p in paths]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _size3(size: int | Sequence[int] | None) -> tuple[int, int, int] | None:
    if size is None:
        return None
    size = (size,) * 3 if isinstance(size, int) else tuple(int(s) for s in size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"size is one positive int or three (D, H, W), got {size!r}")
    return size


def roi_of(record: CoTRecord) -> list[float] | None:
    """The region a record is about: its ``roi_box``, else the box its attend turn focuses on."""
    if record.roi_box is not None:
        return record.roi_box
    return next((t.roi_box for t in record.turns if t.kind == "attend" and t.roi_box is not None), None)


class TumorCoTDataset(Dataset):
    """One split's records, each with its CT volume.

    Item: ``dict(image=tensor, conversation=turns, record=row)``.

    - ``image``: float32 tensor ``[1, D, H, W]`` in HU, axes ``(z, y, x)`` in LPS canonical
      orientation: index 0 is the inferior / anterior / patient-right side, as in the
      normalised boxes (``BOX_CONVENTION``), whatever the CT's stored voxel order. With
      ``roi=True`` it is the crop of the record's ROI box (``roi_of``; the whole CT for a
      record without one); with ``size`` it is resampled (trilinear) to ``size``.
    - ``conversation``: the turns of ``tumorcot.conversation``.
    - ``record``: the record as a plain dict (Parquet row).

    The CT path comes from the dataset's private case rows; a CT whose content hash differs
    from the record's ``image_sha256`` (file replaced since the build) raises ``ExportError``.
    The last CT read is kept, and records are stored by case, so a case's volume is read once
    per pass in order. Volumes differ in size unless ``size`` is given: batch with
    ``collate_fn=list`` or ``batch_size=1`` otherwise.

    ``images="slice" | "video" | "volume"`` gives instead the pixels the export writes for that
    mode (``tumorcot.exports.media``; ``roi`` and ``size`` do not apply): ``image`` is the key
    slice as uint8 ``[C, H, W]``, the frames as uint8 ``[T, C, H, W]``, or the normalised volume
    as float32 ``[C, 32, 256, 256]``; ``crops`` lists the attend turns' crops the same way (turn
    order) and ``media`` their geometry (window, z, crop ranges). ``C`` is 1, or 2 with
    ``mask=True``: channel 1 is the record's lesion (or organ) mask on the same pixels, 0/1.
    ``transform`` (any mode) receives each item dict and returns the one to yield.
    """

    def __init__(self, dataset_dir: Path | str, split: str = "train", roi: bool = True,
                 size: int | Sequence[int] | None = None, *, images: str = "ct", mask: bool = False,
                 transform: Callable[[dict], dict] | None = None):
        if images not in ("ct", *IMAGE_MODES):
            raise ValueError(f"images is 'ct' or one of {', '.join(IMAGE_MODES)}, got {images!r}")
        if mask and images == "ct":
            raise ValueError("a mask channel needs images='slice', 'video' or 'volume'")
        self.dataset_dir = Path(dataset_dir)
        self.split, self.roi, self.size = split, roi, _size3(size)
        self.mode, self.with_mask, self.transform = images, mask, transform
        with reading(self.dataset_dir):   # the manifest and the shards of one generation
            self.table = _split_table(self.dataset_dir, split)
        self.images = CaseImages(self.dataset_dir)
        self._last: tuple[str, object] | None = None
        self._renderer: CaseRenderer | None = None

    def __len__(self) -> int:
        return self.table.num_rows

    def _ct(self, record: CoTRecord):
        if self._last is None or self._last[0] != record.case_id:
            loaded = load_ct(self.images.source(record.case_id, record.record_id), case=record.case_id)
            if loaded.sha256 != record.image_sha256:
                raise ExportError(f"record {record.record_id}: the CT on disk is not the one the record was "
                                  "built from (content hash differs); rebuild the dataset", case=record.case_id)
            self._last = (record.case_id, loaded.image)
        return self._last[1]

    def _render(self, record: CoTRecord, item: Item) -> tuple[torch.Tensor, dict]:
        renderer = self._renderer
        if renderer is None or renderer.job.case_id != record.case_id:
            job = case_job(self.images, record.case_id, [], self.dataset_dir)
            if job.image_sha256 != record.image_sha256:
                raise ExportError(f"record {record.record_id}: its case facts describe another CT; rebuild the "
                                  "dataset", case=record.case_id)
            renderer = self._renderer = CaseRenderer(job)
        arrays, masks, info = renderer.arrays(item, with_mask=self.with_mask)
        channels = [np.stack(arrays)] + ([np.stack(masks).astype(arrays[0].dtype)] if masks is not None else [])
        stacked = torch.from_numpy(np.stack(channels, axis=1))          # [T, C, ...]
        if item.kind == "volume":
            return stacked[0].float(), info
        return (stacked[0] if item.kind == "slice" else stacked), info

    def _media_item(self, record: CoTRecord, row: dict) -> dict:
        planned = plan_record(record, self.images.store.facts(record.case_id), self.mode)
        image, key_info = self._render(record, planned.key)
        crops, crop_info = [], {}
        for turn, item in planned.crops.items():
            tensor, crop_info[turn] = self._render(record, item)
            crops.append(tensor)
        return {"image": image, "crops": crops, "media": {"key": key_info, "crops": crop_info},
                "conversation": conversation(record), "record": row}

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        row = self.table.slice(index, 1).to_pylist()[0]
        record = CoTRecord.model_validate(row)
        if self.mode != "ct":
            item = self._media_item(record, row)
            return self.transform(item) if self.transform else item
        image = self._ct(record)
        box = roi_of(record) if self.roi else None
        if box is not None:
            image = crop_to_box(image, box)
        tensor = torch.from_numpy(canonical_array(image).astype(np.float32, copy=False))[None]
        if self.size is not None:
            tensor = F.interpolate(tensor[None], size=self.size, mode="trilinear", align_corners=False)[0]
        item = {"image": tensor, "conversation": conversation(record), "record": row}
        return self.transform(item) if self.transform else item
