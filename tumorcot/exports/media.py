"""Which image files a record is exported with (``--images``), and their pseudonymous names.

Modes:

- ``ct``: the record's CT path (NIfTI file or DICOM folder, see ``exports.images``), as before;
- ``slice``: a windowed axial PNG of the record's key slice: a lesion's largest-diameter slice
  (``LesionFacts.axial_slice``), an organ's central slice (through its centroid), else the CT's
  middle slice; ``--overlay`` draws the lesion / organ contour and its box;
- ``video``: ``VIDEO_FRAMES`` windowed axial PNG frames evenly spaced through the lesion's,
  organ's or CT's z extent, exported as a list of frame paths (one ``videos`` entry);
- ``volume``: the whole CT as ``.npy`` float16, HU clipped to ``VOLUME_HU_RANGE`` and scaled to
  0..1, resampled (linear) to ``VOLUME_SHAPE`` ``[z, y, x]`` in LPS canonical order (like M3D);
- ``none``: no image at all (text only).

In the image modes every organ-focus ``attend`` turn also gets its crop (the CT cut to the turn's
``roi_box``, same kind of file: a cropped key slice, cropped frames, or a resampled sub-volume),
shown to the model at that turn; its ``crop_ref`` becomes the crop's path.

An ``Item`` is one file (or frame folder) of one case; records showing the same thing share it.
Names carry only the pseudonymous case id, lesion ids (L1...), organ names and window names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

from tumorcot.render.windows import window_for
from tumorcot.schemas import CaseFacts, CoTRecord

MODES = ("ct", "slice", "video", "volume", "none")
IMAGE_MODES = ("slice", "video", "volume")
VIDEO_FRAMES = 8
"""Frames per video: even, as Qwen2-VL merges frames in pairs (temporal patch size 2)."""
VOLUME_SHAPE = (32, 256, 256)
VOLUME_HU_RANGE = (-1000.0, 1000.0)
RENDER_VERSION = "2"
"""Bumped when rendering changes, so re-exports redo files made the old way."""


@dataclass(frozen=True)
class Item:
    """One media file of a case. ``target``: ``lesion:L1``, ``organ:liver`` or ``ct``;
    ``crop``: the normalised box it is cut to (attend turns), else the whole field of view."""

    kind: Literal["slice", "video", "volume"]
    target: str
    window: str
    crop: tuple[float, ...] | None = None
    overlay: bool = False

    @property
    def name(self) -> str:
        """File (slice, volume) or folder (video) name inside the case's media folder."""
        parts = [self.kind, self.target.replace(":", "-")]
        if self.kind != "volume":
            parts.append(self.window)
        if self.crop is not None:
            box = json.dumps([round(v, 4) for v in self.crop])
            parts.append("crop-" + hashlib.sha256(box.encode()).hexdigest()[:8])
        if self.overlay:
            parts.append("overlay")
        name = "_".join(parts)
        return name + {"slice": ".png", "video": "", "volume": ".npy"}[self.kind]

    def key(self, input_sha256: dict[str, str]) -> str:
        """Changes whenever the file's content would: inputs, rendering version, the item itself."""
        spec = {"version": RENDER_VERSION, "inputs": dict(sorted(input_sha256.items())), "item": asdict(self),
                "video_frames": VIDEO_FRAMES, "volume": [VOLUME_SHAPE, VOLUME_HU_RANGE]}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RecordMedia:
    """A record's items: ``key`` shown with the first user turn, ``crops`` by attend-turn index."""

    key: Item | None
    crops: dict[int, Item]

    def items(self) -> list[Item]:
        return ([self.key] if self.key else []) + list(self.crops.values())


def target_of(record: CoTRecord, facts: CaseFacts) -> tuple[str, str | None]:
    """(target, organ whose window applies) of the record's key image."""
    if record.lesion_id:
        lesion = next((les for les in facts.lesions if les.id == record.lesion_id), None)
        if lesion is not None:
            return f"lesion:{lesion.id}", lesion.organ
    if record.organ and facts.organ(record.organ) is not None:
        return f"organ:{record.organ}", record.organ
    return "ct", record.organ


def plan_record(record: CoTRecord, facts: CaseFacts, mode: str, overlay: bool = False) -> RecordMedia:
    """The items ``record`` is exported with in an image ``mode`` (see the module docstring)."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"{mode!r} is not an image mode ({', '.join(IMAGE_MODES)})")
    target, organ = target_of(record, facts)
    if mode == "volume":
        key = Item("volume", "ct", "none")
    else:
        key = Item(mode, target, window_for(organ).name, overlay=overlay and target != "ct")
    crops = {}
    for index, turn in enumerate(record.turns):
        if turn.kind == "attend" and turn.roi_box is not None:
            organ = turn.focus_organ
            shown = f"organ:{organ}" if organ and facts.organ(organ) is not None else "ct"
            window = "none" if mode == "volume" else window_for(organ).name
            crops[index] = Item(mode, shown, window, crop=tuple(float(v) for v in turn.roi_box),
                                overlay=overlay and mode != "volume" and shown != "ct")
    return RecordMedia(key, crops)
