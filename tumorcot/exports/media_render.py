"""Render one case's media items from its CT (decoded once), in a worker process.

Geometry: the CT is put in LPS canonical order ``[z, y, x]`` (``render.planes``); slices are
axial in radiological display orientation (anterior at the top, patient right on the image
left). A lesion's key slice is its ``axial_slice`` (voxel ``k``), an organ's the slice through
its centroid; a video's frames are evenly spaced over the lesion's / organ's / crop's z extent
(inferior first). Crops cut the same canonical arrays to ``box_ranges`` of the normalised box,
the edges ``exports.crop`` uses on the CT's own grid.

Unchanged files are not rewritten: ``<case>/.media.json`` keeps each item's key (input hashes,
render version, item spec), what was rendered and each file's size; when every wanted item is
current (same key, files of the recorded sizes) the CT is not even decoded, otherwise a file is
written only when its bytes differ. Media files are renamed into place without an fsync (they
can be re-made; a file cut short by a crash has the wrong size and is redone), the stamp last.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tumorcot.errors import TumorcotError
from tumorcot.exports.media import VIDEO_FRAMES, VOLUME_HU_RANGE, VOLUME_SHAPE, Item
from tumorcot.imaging.geometry import lps_axes
from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.render.compose import render_slice
from tumorcot.render.planes import box_ranges, canonical_array, canonical_index
from tumorcot.render.png import encode_png
from tumorcot.render.windows import WINDOWS
from tumorcot.schemas import CaseFacts
from tumorcot.store.atomic import atomic_write_bytes, atomic_write_json

STAMP = ".media.json"
MIN_SIDE_PX = 56
"""PNGs narrower than this are enlarged by whole-pixel replication (nearest neighbour, so each
voxel stays one exact grey value): vision encoders such as Qwen2-VL's need sides of 28 px or more."""


@dataclass
class CaseJob:
    """Everything a worker needs for one case (picklable; paths as strings)."""

    case_id: str
    ct: str
    image_sha256: str
    facts_json: str
    items: list[Item]
    folder: str
    organ_mask: str | None = None
    lesion_mask: str | None = None


@dataclass
class CaseResult:
    case_id: str
    info: dict[str, dict] = field(default_factory=dict)
    written: int = 0
    unchanged: int = 0
    decoded: bool = False
    error: str | None = None


def resize_volume(array: np.ndarray, shape) -> np.ndarray:
    """Linear resampling of a ``[z, y, x]`` array to ``shape``, voxel centres aligned (the
    first and last output centres sit half an output voxel inside the input's edges)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    out_size = [int(shape[2]), int(shape[1]), int(shape[0])]
    spacing = [n_in / n_out for n_in, n_out in zip(image.GetSize(), out_size)]
    reference = sitk.Image(out_size, sitk.sitkFloat32)
    reference.SetSpacing(spacing)
    reference.SetOrigin([(s - 1.0) / 2.0 for s in spacing])
    return sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0))


def normalise_hu(array: np.ndarray) -> np.ndarray:
    low, high = VOLUME_HU_RANGE
    return (np.clip(array.astype(np.float32), low, high) - low) / (high - low)


def upscale_factor(height: int, width: int) -> int:
    return max(1, -(-MIN_SIDE_PX // max(1, min(height, width))))


def enlarge(pixels: np.ndarray, factor: int) -> np.ndarray:
    return pixels if factor == 1 else np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def video_frames(first: int, end: int, depth: int) -> list[int]:
    """Up to ``VIDEO_FRAMES`` distinct z indices evenly spaced over ``[first, end)``, an even count
    (a neighbouring slice is added, or the last repeated, to make it even)."""
    zs = sorted({int(round(z)) for z in np.linspace(first, end - 1, VIDEO_FRAMES)})
    if len(zs) % 2:
        extra = zs[-1] + 1 if zs[-1] + 1 < depth else zs[0] - 1
        zs = sorted(zs + [extra]) if 0 <= extra < depth and extra not in zs else zs + [zs[-1]]
    return zs


class CaseRenderer:
    """A decoded case: canonical HU volume, masks on demand, geometry from the facts."""

    def __init__(self, job: CaseJob):
        self.job = job
        self.facts = CaseFacts.model_validate_json(job.facts_json)
        loaded = load_ct(Path(job.ct), case=job.case_id)
        if loaded.sha256 != job.image_sha256:
            raise TumorcotError("the CT on disk is not the one the records were built from (content hash "
                                "differs); rebuild the dataset", case=job.case_id)
        self.image = loaded.image
        self.volume = canonical_array(self.image)
        self._masks: dict[str, np.ndarray | None] = {}

    def mask(self, which: str) -> np.ndarray | None:
        """Canonical organ or lesion label array (None when the case has no such mask)."""
        if which not in self._masks:
            path = self.job.organ_mask if which == "organ" else self.job.lesion_mask
            self._masks[which] = None if not path else canonical_array(
                load_mask(Path(path), self.image, case=self.job.case_id, what=f"{which}_mask"))
        return self._masks[which]

    # ---- geometry ------------------------------------------------------------------------------

    def _z_of_point(self, point_mm) -> int:
        index = self.image.TransformPhysicalPointToContinuousIndex([float(v) for v in point_mm])
        size = self.image.GetSize()
        ijk = [min(max(int(round(v)), 0), n - 1) for v, n in zip(index, size)]
        return canonical_index(self.image, ijk)[0]

    def subject(self, target: str):
        kind, _, name = target.partition(":")
        if kind == "lesion":
            return next(les for les in self.facts.lesions if les.id == name)
        if kind == "organ":
            return self.facts.organ(name)
        return None

    def key_z(self, target: str) -> int:
        """Canonical z of the target's key slice."""
        subject = self.subject(target)
        if subject is None:
            return self.volume.shape[0] // 2
        if target.startswith("lesion:") and lps_axes(self.image)[2][0] == 2:
            ijk = (*subject.bbox.voxel_min[:2], subject.axial_slice)     # k runs along z: exact slice
            return canonical_index(self.image, ijk)[0]
        return self._z_of_point(subject.centroid_mm)

    def ranges(self, item: Item) -> tuple[tuple[int, int], ...]:
        """Canonical ``[first, end)`` per z, y, x: the crop box, the target's box, or everything."""
        subject = self.subject(item.target)
        box = item.crop if item.crop is not None else (subject.bbox.normalized if subject is not None else None)
        if box is None:
            return tuple((0, n) for n in self.volume.shape)
        return box_ranges(self.volume.shape, box)

    def contour_mask(self, target: str) -> np.ndarray | None:
        """Voxels whose contour an overlay draws: the lesion's (inside its box) or the organ's label."""
        subject = self.subject(target)
        if target.startswith("lesion:"):
            labels = self.mask("lesion")
            if labels is None:
                return None
            inside = np.zeros(labels.shape, dtype=bool)
            (z0, z1), (y0, y1), (x0, x1) = box_ranges(labels.shape, subject.bbox.normalized)
            inside[z0:z1, y0:y1, x0:x1] = labels[z0:z1, y0:y1, x0:x1] != 0
            return inside
        labels = self.mask("organ")
        return None if labels is None or subject is None else labels == subject.label_id

    # ---- rendering -----------------------------------------------------------------------------

    def _frame(self, item: Item, z: int) -> np.ndarray:
        window = WINDOWS[item.window]
        subject = self.subject(item.target)
        mask = self.contour_mask(item.target) if item.overlay else None
        outline = subject.bbox.normalized if item.overlay and item.crop is None and subject is not None else None
        pixels = render_slice(self.volume, "axial", z, window, mask=mask, roi_box=outline)
        if item.crop is not None:
            _, (y0, y1), (x0, x1) = self.ranges(item)
            pixels = pixels[y0:y1, x0:x1]
        return pixels

    def arrays(self, item: Item, *, with_mask: bool = False) -> tuple[list[np.ndarray], list[np.ndarray] | None, dict]:
        """``(pixels, masks, info)`` of one item: pixels are one ``[H, W]`` (``[H, W, 3]`` with an
        overlay) uint8 array for a slice, one per frame for a video, one float16 ``VOLUME_SHAPE``
        array for a volume; ``masks`` (``with_mask``) the target's mask on the same pixels, bool
        (all False for a target without one)."""
        (z0, z1), (y0, y1), (x0, x1) = self.ranges(item)
        info: dict = {"shape_zyx": list(self.volume.shape)}
        if item.crop is not None:
            info["crop_zyx"] = [[z0, z1], [y0, y1], [x0, x1]]
        target_mask = None
        if with_mask:
            target_mask = self.contour_mask(item.target)
            target_mask = np.zeros(self.volume.shape, bool) if target_mask is None else target_mask
        if item.kind == "volume":
            sub = self.volume[z0:z1, y0:y1, x0:x1]
            info.update(source_shape_zyx=list(sub.shape))
            masks = None if target_mask is None else \
                [resize_volume(target_mask[z0:z1, y0:y1, x0:x1], VOLUME_SHAPE) >= 0.5]
            return [resize_volume(normalise_hu(sub), VOLUME_SHAPE).astype(np.float16)], masks, info
        info["window"] = WINDOWS[item.window].as_meta()
        factor = upscale_factor(y1 - y0, x1 - x0) if item.crop is not None else upscale_factor(*self.volume.shape[1:])
        info["pixel_repeat"] = factor
        if item.kind == "slice":
            zs = [min(max(self.key_z(item.target), z0), z1 - 1)]
            info["z"] = zs[0]
        else:
            zs = video_frames(z0, z1, self.volume.shape[0])
            info["z"] = zs
        frames = [enlarge(self._frame(item, z), factor) for z in zs]
        if target_mask is None:
            return frames, None, info
        rows, cols = (slice(y0, y1), slice(x0, x1)) if item.crop is not None else (slice(None), slice(None))
        return frames, [enlarge(target_mask[z][rows, cols], factor) for z in zs], info

    def render(self, item: Item) -> tuple[dict[str, bytes], dict]:
        """``({relative file name: bytes}, info)`` of one item."""
        arrays, _, info = self.arrays(item)
        if item.kind == "volume":
            buffer = io.BytesIO()
            np.save(buffer, arrays[0], allow_pickle=False)
            return {item.name: buffer.getvalue()}, info
        if item.kind == "slice":
            return {item.name: encode_png(arrays[0])}, info
        return {f"{item.name}/{n:02d}.png": encode_png(frame) for n, frame in enumerate(arrays)}, info


def _files_exist(folder: Path, item: Item, info: dict) -> bool:
    """Every file of the item is there with the size the stamp recorded."""
    try:
        return all((folder / name).stat().st_size == size for name, size in info["bytes"].items())
    except (OSError, KeyError):
        return False


def current_info(job: CaseJob) -> dict[str, dict] | None:
    """Each item's stored info when every item of the job is current (same key, files present),
    else None: the check a re-export makes before deciding to decode the CT."""
    stamp_path = Path(job.folder) / STAMP
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return None
    inputs = CaseFacts.model_validate_json(job.facts_json).input_sha256 or {"ct": job.image_sha256}
    for item in job.items:
        entry = stamp.get(item.name)
        if entry is None or entry.get("key") != item.key(inputs) or not _files_exist(Path(job.folder), item,
                                                                                      entry["info"]):
            return None
    return {item.name: stamp[item.name]["info"] for item in job.items}


def render_case(job: CaseJob) -> CaseResult:
    """Render the job's items that are not current; never raises for a bad case (``error``)."""
    result = CaseResult(job.case_id)
    folder = Path(job.folder)
    try:
        stamp_path = folder / STAMP
        stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
        inputs = CaseFacts.model_validate_json(job.facts_json).input_sha256 or {"ct": job.image_sha256}
        keys = {item.name: item.key(inputs) for item in job.items}
        current = {item.name for item in job.items
                   if stamp.get(item.name, {}).get("key") == keys[item.name]
                   and _files_exist(folder, item, stamp[item.name]["info"])}
        stale = [item for item in job.items if item.name not in current]
        renderer = CaseRenderer(job) if stale else None
        result.decoded = renderer is not None
        for item in stale:
            files, info = renderer.render(item)
            info["bytes"] = {name: len(data) for name, data in files.items()}
            for name, data in files.items():
                path = folder / name
                if path.is_file() and path.read_bytes() == data:
                    result.unchanged += 1
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, data, sync_dir=False, fsync=False)
                result.written += 1
            stamp[item.name] = {"key": keys[item.name], "info": info}
        for name in current:
            result.unchanged += file_count(stamp[name]["info"])
        if stale:
            atomic_write_json(stamp_path, stamp)
        result.info = {item.name: stamp[item.name]["info"] for item in job.items}
    except (TumorcotError, OSError, RuntimeError, ValueError) as exc:   # RuntimeError: ITK read failures
        result.error = str(exc)
    return result


def file_count(info: dict) -> int:
    """Files behind one item (a video's frames, else one)."""
    return len(info["bytes"])
