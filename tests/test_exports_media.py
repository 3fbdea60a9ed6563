"""`tumorcot export --images slice|video|volume|none` through the CLI, on a dataset built from real
CT (TotalSegmentator NIfTI with its organ mask, the DICOM series with its y-flipped mask, a
sarcoma CT with its tumour mask) and two phantom cases (organ-focus records with attend turns).

Expected values are computed here independently: CTs and masks are read with SimpleITK directly
(the DICOM mask resampled onto the series by SimpleITK), a display pixel is mapped to its voxel
from the voxels' physical LPS coordinates, grey levels from exact fractions.

Trainer layouts checked field by field, as their docs describe them:
- LLaMA-Factory ``data/README.md`` (hiyouga/LLaMA-Factory): sharegpt ``formatting`` with
  ``columns`` messages / images / videos and ``tags`` role_tag "role", content_tag "content",
  user_tag "user", assistant_tag "assistant" (OpenAI format section); user turns in odd, assistant
  in even positions; multimodal ``images`` / ``videos`` columns hold paths, one ``<image>`` /
  ``<video>`` token per entry (``mm_plugin.py`` raises "The number of images does not match the
  number of <image> tokens"); a video may be a list of frame paths
  (``mm_plugin._check_video_is_nested_images``).
- ms-swift ``docs/source_en/Customization/Custom-dataset.md`` (modelscope/ms-swift): standard
  keys ``messages`` (role system/user/assistant, content), ``images`` / ``videos`` holding paths,
  ``<image>`` / ``<video>`` tags in the content; the preprocessor leaves each ``videos`` entry as
  given (``swift/llm/dataset/preprocessor/core.py``, ``_cast_mm_data``) and the Qwen2-VL template
  passes it to ``qwen_vl_utils.fetch_video`` (``swift/llm/template/template/qwen.py``), which
  reads a list of frame images.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from typer.testing import CliRunner

from tumorcot.cli import app
from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.render.overlay import CONTOUR_RGB
from tumorcot.store.cases import CaseStore

SALT = "images-test-salt"
RAW_IDS = ("TS-REAL-1", "DICOM-REAL-1", "STS-REAL-1")
FORMATS = ("llava", "sharegpt", "swift")
MODES = ("slice", "video", "volume", "none")
runner = CliRunner()


def dicom_lesion_mask(ts: Path, folder: Path) -> Path:
    """A 7 mm ball deep inside the DICOM series' liver, stored on the segmentation's y-flipped grid
    (so the export has lesion records on the DICOM CT, through its flipped mask)."""
    from scipy import ndimage

    seg = sitk.ReadImage(str(ts / "example_seg_dicom.nii.gz"))
    liver = np.pad(sitk.GetArrayFromImage(seg) == 5, 1)            # the volume's edge counts as outside
    spacing = seg.GetSpacing()[::-1]
    depth = ndimage.distance_transform_edt(liver, sampling=spacing)[1:-1, 1:-1, 1:-1]
    centre = np.unravel_index(np.argmax(depth), depth.shape)
    assert depth[centre] > 10
    grid = np.ogrid[tuple(slice(0, n) for n in depth.shape)]
    distance = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)))
    lesion = sitk.GetImageFromArray((distance <= 7.0).astype(np.uint8))
    lesion.CopyInformation(seg)
    path = folder / "dicom_lesion.nii.gz"
    sitk.WriteImage(lesion, str(path))
    return path


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory, prefect_server):
    root = tmp_path_factory.mktemp("media")
    phantom = write_phantom_cases(root / "phantom", 2, seed=5, scale=4)
    rows = []
    for row in csv.DictReader(open(phantom)):
        rows.append({k: (str((phantom.parent / v).resolve()) if k in ("ct", "organ_mask", "lesion_mask") and v
                         else v) for k, v in row.items()})
    ts, sts = shared_data / "totalseg", shared_data / "ibsi_sts" / "STS_001"
    rows += [
        {"patient_id": RAW_IDS[0], "study_id": "s1", "ct": ts / "example_ct_sm.nii.gz",
         "organ_mask": ts / "example_seg.nii.gz"},
        {"patient_id": RAW_IDS[1], "study_id": "s1", "ct": ts / "example_ct_dicom",
         "organ_mask": ts / "example_seg_dicom.nii.gz", "lesion_mask": dicom_lesion_mask(ts, root)},
        {"patient_id": RAW_IDS[2], "study_id": "s1", "ct": sts / "CT_image.nii.gz",
         "lesion_mask": sts / "CT_mask.nii.gz"},
    ]
    fields = sorted({k for row in rows for k in row})
    manifest = root / "cases.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUMORCOT_SALT", SALT)
        # every record (no family mix): the exports are checked over many records of every kind
        summary = run_build(manifest, root / "ds", options={"family_mix": None})
    assert summary["ok"] == 5, summary
    return root, root / "ds"


@pytest.fixture(scope="module")
def export(built):
    """``export(fmt, mode, overlay=False) -> (out folder, CLI output)``, each run once; media of a
    mode are shared across formats (so later formats find them current)."""
    root, ds = built
    done = {}

    def run(fmt: str, mode: str, overlay: bool = False):
        key = (fmt, mode, overlay)
        if key not in done:
            out = root / f"out-{fmt}-{mode}{'-overlay' if overlay else ''}"
            args = ["export", str(ds), str(out), "--format", fmt, "--images", mode,
                    "--media-dir", str(root / f"media-{mode}{'-overlay' if overlay else ''}"), "--workers", "2"]
            result = runner.invoke(app, args + (["--overlay"] if overlay else []))
            assert result.exit_code == 0, result.output
            done[key] = (out, result.output)
        return done[key]
    return run


def read_items(out: Path) -> list[dict]:
    """Every item of a folder export: ``SPLIT.jsonl`` lines, or ``SPLIT.json`` arrays (LLaVA)."""
    items = []
    for path in sorted(out.glob("*.json*")):
        if path.suffix == ".jsonl":
            items += [json.loads(line) for line in path.read_text().splitlines()]
        elif path.name != "dataset_info.json":
            items += json.loads(path.read_text())
    return items


def texts(item: dict) -> list[str]:
    if "conversations" in item:
        return [turn["value"] for turn in item["conversations"]]
    return [message["content"] for message in item["messages"]]


def media_lists(item: dict) -> tuple[list, list]:
    """(images, videos) of an item in any format (LLaVA: one entry or a list)."""
    if "conversations" in item:
        images = item.get("image")
        images = [] if images is None else (images if isinstance(images, list) else [images])
        video = item.get("video")
        videos = [] if video is None else (video if video and isinstance(video[0], list) else [video])
        return images, videos
    return item.get("images", []), item.get("videos", [])


# ---- every token has its file, and the file opens -----------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", MODES)
def test_every_token_matches_one_file_that_opens(export, fmt, mode):
    out, _ = export(fmt, mode)
    items = read_items(out)
    assert len(items) > 50
    attend_turns = 0
    for item in items:
        images, videos = media_lists(item)
        joined = "".join(texts(item))
        assert joined.count("<image>") == len(images) and joined.count("<video>") == len(videos), item["id"]
        if mode == "none":
            assert not images and not videos
            continue
        files = images + [frame for video in videos for frame in video]
        assert files
        for path in files:
            assert Path(path).is_file(), path
            if path.endswith(".npy"):
                array = np.load(path)
                assert array.shape == (32, 256, 256) and array.dtype == np.float16
                assert 0.0 <= float(array.min()) and float(array.max()) <= 1.0
            else:
                with Image.open(path) as png:
                    png.load()
                    assert png.format == "PNG" and min(png.size) >= 28
        turns = item.get("conversations") or item["messages"]
        for turn in turns:
            if turn.get("kind") == "attend":
                attend_turns += 1
                ref = Path(turn["crop_ref"])
                assert ref.is_dir() if mode == "video" else ref.is_file()
                assert turn["roi_box"] and turn["kind"] == "attend"
    if mode != "none":
        assert attend_turns > 0


@pytest.mark.parametrize("mode", ["slice", "video", "volume"])
def test_sharegpt_layout_follows_llama_factory_docs(export, mode):
    out, _ = export("sharegpt", mode)
    info = json.loads((out / "dataset_info.json").read_text())
    column = "videos" if mode == "video" else "images"
    for split_file in out.glob("*.jsonl"):
        entry = info[f"tumorcot_{split_file.stem}"]
        assert entry["file_name"] == split_file.name and entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "messages", column: column}
        assert entry["tags"] == {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                 "assistant_tag": "assistant"}
    for item in read_items(out):
        roles = [m["role"] for m in item["messages"]]
        assert roles[0::2] == ["user"] * len(roles[0::2]) and roles[1::2] == ["assistant"] * len(roles[1::2])
        assert all(isinstance(m["content"], str) for m in item["messages"])
        assert set(item) >= {"messages", column} and not set(item) & ({"images", "videos"} - {column})
        if mode == "video":   # nested images: a list of frame paths per video
            assert all(isinstance(v, list) and all(isinstance(f, str) for f in v) for v in item["videos"])
        else:
            assert all(isinstance(path, str) for path in item["images"])
        # tokens only in user turns
        assert not any(re.search("<image>|<video>", m["content"]) for m in item["messages"] if m["role"] != "user")


@pytest.mark.parametrize("mode", ["slice", "video"])
def test_swift_layout_follows_ms_swift_docs_and_keeps_turn_fields(export, mode):
    out, _ = export("swift", mode)
    assert not (out / "dataset_info.json").exists()
    field = "videos" if mode == "video" else "images"
    focus_turns = 0
    for item in read_items(out):
        assert {m["role"] for m in item["messages"]} <= {"system", "user", "assistant"}
        tag = "<video>" if mode == "video" else "<image>"
        assert sum(m["content"].count(tag) for m in item["messages"]) == len(item[field])
        for message in item["messages"]:
            assert "kind" in message
            if message["kind"] == "attend":
                focus_turns += 1
                assert len(message["roi_box"]) == 6 and message["crop_ref"] and message["focus_organ"]
    assert focus_turns > 0


# ---- pixels are the CT's HU through the stated window ------------------------------------------

def read_ct(path: Path) -> sitk.Image:
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        return reader.Execute()
    return sitk.ReadImage(str(path))


def voxel_axes(image: sitk.Image) -> list[tuple[int, bool]]:
    """Per voxel axis i, j, k: (the LPS axis a unit step moves along most, whether it moves forward),
    measured on the image's physical coordinates."""
    origin = np.asarray(image.TransformIndexToPhysicalPoint((0, 0, 0)))
    out = []
    for axis in range(3):
        step = [0, 0, 0]
        step[axis] = 1
        move = np.asarray(image.TransformIndexToPhysicalPoint(step)) - origin
        lps = int(np.argmax(np.abs(move)))
        out.append((lps, bool(move[lps] > 0)))
    return out


def voxel_of(image: sitk.Image, zyx_rank) -> tuple[int, int, int]:
    """The voxel (i, j, k) whose physical x, y, z are the given ranks among the grid's (0 = the
    patient-right / anterior / inferior-most)."""
    want = {0: zyx_rank[2], 1: zyx_rank[1], 2: zyx_rank[0]}          # LPS axis -> rank
    return tuple(int(want[lps] if forward else n - 1 - want[lps])
                 for (lps, forward), n in zip(voxel_axes(image), image.GetSize()))


def ranks_of(image: sitk.Image, ijk) -> tuple[int, int, int]:
    """Inverse of ``voxel_of``: (z, y, x) ranks of voxel ``ijk``."""
    rank = [0, 0, 0]
    for (lps, forward), v, n in zip(voxel_axes(image), ijk, image.GetSize()):
        rank[lps] = int(v if forward else n - 1 - v)
    return rank[2], rank[1], rank[0]


def grey_of(hu: float, window: dict) -> int:
    width, level = Fraction(window["width_hu"]), Fraction(window["level_hu"])
    low = level - width / 2
    clipped = min(max(Fraction(hu), low), low + width)
    return round((clipped - low) * 255 / width)


def check_pixels(png_path: str, ct: sitk.Image, meta: dict, samples: int = 400) -> None:
    pixels = np.asarray(Image.open(png_path))
    repeat = meta["pixel_repeat"]
    y0, x0 = (meta["crop_zyx"][1][0], meta["crop_zyx"][2][0]) if "crop_zyx" in meta else (0, 0)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, pixels.shape[0], samples)
    cols = rng.integers(0, pixels.shape[1], samples)
    z = meta["z"]
    for row, col in zip(rows, cols):
        ijk = voxel_of(ct, (z, y0 + row // repeat, x0 + col // repeat))
        assert pixels[row, col] == grey_of(ct[ijk], meta["window"]), (png_path, row, col, ijk)


def case_inputs(ds: Path):
    store = CaseStore(ds)
    return {case: (store.recall_input(case), store.facts(case)) for case in store.case_ids()}


def test_key_slice_pixels_are_windowed_hu_of_real_ct(built, export):
    _, ds = built
    out, _ = export("sharegpt", "slice")
    inputs = case_inputs(ds)
    seen = set()
    for item in read_items(out):
        case, meta = item["meta"]["case_id"], item["meta"]["media"]["key"]
        row, facts = inputs[case]
        if facts.synthetic or (case, meta["target"]) in seen:
            continue
        seen.add((case, meta["target"]))
        ct = read_ct(Path(row.ct))
        check_pixels(item["images"][0], ct, meta)
        if meta["target"].startswith("lesion:"):    # the lesion's largest-diameter slice, as measured
            lesion = next(les for les in facts.lesions if les.id == meta["target"].split(":")[1])
            assert voxel_of(ct, (meta["z"], 0, 0))[2] == lesion.axial_slice
            # the DICOM ball sits in the liver: liver window; the limb sarcoma has no organ: abdomen
            assert meta["window"]["name"] == ("liver" if lesion.organ == "liver" else "abdomen")
        if meta["target"] == "organ:liver":
            assert (meta["window"]["width_hu"], meta["window"]["level_hu"]) == (150, 30)
    sources = {inputs[c][0].ct.name for c, _ in seen}
    assert {"example_ct_sm.nii.gz", "example_ct_dicom", "CT_image.nii.gz"} <= sources


def test_dicom_overlay_contour_lies_on_its_flipped_mask(built, export, shared_data):
    _, ds = built
    out, _ = export("sharegpt", "slice", overlay=True)
    ts = shared_data / "totalseg"
    ct = read_ct(ts / "example_ct_dicom")
    inputs = case_inputs(ds)
    checked, targets = 0, set()
    for item in read_items(out):
        row, facts = inputs[item["meta"]["case_id"]]
        meta = item["meta"]["media"]["key"]
        if row.ct.name != "example_ct_dicom" or meta["target"] == "ct":
            continue
        kind, name = meta["target"].split(":")
        targets.add(kind)
        stored = row.lesion_mask if kind == "lesion" else ts / "example_seg_dicom.nii.gz"
        mask = sitk.Resample(sitk.ReadImage(str(stored)), ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                             sitk.sitkUInt8)
        label = 1 if kind == "lesion" else facts.organ(name).label_id
        pixels = np.asarray(Image.open(item["images"][0]))
        red = np.argwhere((pixels == CONTOUR_RGB).all(axis=2))
        for r, c in red:
            assert mask[voxel_of(ct, (meta["z"], r, c))] == label
        if len(red):
            checked += 1
        else:                             # no contour only where the slice holds none of the organ
            k = voxel_of(ct, (meta["z"], 0, 0))[2]
            assert not (sitk.GetArrayViewFromImage(mask)[k] == label).any()
    assert checked >= 3 and "lesion" in targets


# ---- crops, frames, volumes ---------------------------------------------------------------------

def test_attend_crops_cover_the_organ_box_and_show_its_hu(built, export):
    _, ds = built
    out, _ = export("sharegpt", "slice")
    inputs = case_inputs(ds)
    checked = 0
    for item in read_items(out):
        media = item["meta"]["media"]
        for turn, meta in media.get("crops", {}).items():
            row, facts = inputs[item["meta"]["case_id"]]
            organ = item["messages"][int(turn)]["focus_organ"]
            if facts.organ(organ) is None:          # no organ mask (limb sarcoma): a crop of the CT
                continue
            ct = read_ct(Path(row.ct))
            labels = sitk.ReadImage(str(row.organ_mask))
            k, j, i = np.nonzero(sitk.GetArrayViewFromImage(labels) == facts.organ(organ).label_id)
            (z0, z1), (y0, y1), (x0, x1) = meta["crop_zyx"]
            for voxel in zip(i[::7], j[::7], k[::7]):       # every organ voxel lies inside the crop
                point = labels.TransformIndexToPhysicalPoint([int(v) for v in voxel])
                z, y, x = ranks_of(ct, ct.TransformPhysicalPointToIndex(point))
                assert z0 <= z < z1 and y0 <= y < y1 and x0 <= x < x1
            png = Image.open(item["messages"][int(turn)]["crop_ref"])
            assert png.size == ((x1 - x0) * meta["pixel_repeat"], (y1 - y0) * meta["pixel_repeat"])
            check_pixels(item["messages"][int(turn)]["crop_ref"], ct, meta, samples=100)
            checked += 1
    assert checked > 0


def test_video_frames_run_through_the_target(built, export):
    _, ds = built
    out, _ = export("sharegpt", "video")
    inputs = case_inputs(ds)
    for item in read_items(out)[:40]:
        key = item["meta"]["media"]["key"]
        frames = item["videos"][0]
        assert len(frames) == len(key["z"]) and len(frames) % 2 == 0 and len(frames) <= 8
        assert key["z"] == sorted(key["z"])
        row, _ = inputs[item["meta"]["case_id"]]
        ct = read_ct(Path(row.ct))
        first = {**key, "z": key["z"][0]}
        check_pixels(frames[0], ct, first, samples=50)


def test_volume_crop_is_the_box_resampled(built, export):
    out, _ = export("sharegpt", "volume")
    crops = 0
    for item in read_items(out):
        media = item["meta"]["media"]
        assert media["key"]["shape_zyx"] == [32, 256, 256] and media["key"]["hu_range"] == [-1000.0, 1000.0]
        for turn, meta in media.get("crops", {}).items():
            (z0, z1), (y0, y1), (x0, x1) = meta["crop_zyx"]
            assert meta["source_shape_zyx"] == [z1 - z0, y1 - y0, x1 - x0]
            assert item["messages"][int(turn)]["crop_ref"] == item["images"][1]
            crops += 1
    assert crops > 0


def test_resize_volume_interpolates_linearly_between_voxel_centres():
    from tumorcot.exports.media_render import resize_volume

    ramp = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((10, 4, 4), np.float32)   # value = z
    out = resize_volume(ramp, (5, 4, 4))
    # output voxel o covers input [2o, 2o + 2): its centre is input coordinate 2o + 0.5
    assert np.allclose(out[:, 0, 0], [0.5, 2.5, 4.5, 6.5, 8.5], atol=1e-5)
    up = resize_volume(ramp[:2], (4, 4, 4))       # centres at -0.25, 0.25, 0.75, 1.25: clamped at the edges
    assert np.allclose(up[:, 0, 0], [0.0, 0.25, 0.75, 1.0], atol=1e-5)


# ---- re-export, privacy, errors -----------------------------------------------------------------

def test_reexport_decodes_no_ct_and_rewrites_no_file(built, export):
    root, ds = built
    out, _ = export("llava", "slice")
    media = root / "media-slice"
    before = {p: p.stat().st_mtime_ns for p in media.rglob("*.png")}
    result = runner.invoke(app, ["export", str(ds), str(out), "--format", "llava", "--images", "slice",
                                 "--media-dir", str(media)])
    assert result.exit_code == 0, result.output
    assert "0 CT(s) decoded, 0 file(s) written" in " ".join(result.output.split())
    assert {p: p.stat().st_mtime_ns for p in media.rglob("*.png")} == before


def test_media_names_and_files_carry_no_raw_id(built, export):
    root, _ = built
    for mode in ("slice", "video", "volume"):
        export("sharegpt", mode)
    for path in root.glob("media-*/**/*"):
        assert not any(raw in str(path.relative_to(root)) for raw in RAW_IDS), path
        if path.suffix == ".png":
            with Image.open(path) as png:
                assert not getattr(png, "text", {}) and set(png.info) <= {"dpi"}
        if path.is_file():
            data = path.read_bytes()
            assert not any(raw.encode() in data for raw in RAW_IDS)


def test_image_root_writes_relative_media_paths_and_refuses_media_outside_it(built, tmp_path):
    _, ds = built
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["export", str(ds), str(out), "--format", "swift", "--images", "slice",
                                 "--image-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for line in out.read_text().splitlines():
        for path in json.loads(line)["images"]:
            assert path.startswith("out_media/") and (tmp_path / path).is_file()
    result = runner.invoke(app, ["export", str(ds), str(tmp_path / "other"), "--format", "swift", "--images",
                                 "slice", "--image-root", str(tmp_path / "elsewhere")])
    assert result.exit_code == 1 and "--image-root" in result.output
    assert not (tmp_path / "other" / "media").exists()          # refused before rendering


def test_changed_ct_stops_the_export_naming_its_case_or_is_skipped(built, tmp_path):
    root, ds = built
    inputs = case_inputs(ds)
    case, (row, _) = next((c, v) for c, v in inputs.items() if v[1].synthetic)
    saved = tmp_path / "saved.nii.gz"
    shutil.copy(row.ct, saved)
    try:
        image = sitk.ReadImage(str(saved))
        sitk.WriteImage(image + 1, str(row.ct))                 # same grid, other content
        out = tmp_path / "out"
        args = ["export", str(ds), str(out), "--format", "sharegpt", "--images", "slice",
                "--media-dir", str(tmp_path / "media")]
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and case in result.output and "content hash" in result.output
        assert not list(out.glob("*.json*"))
        result = runner.invoke(app, args + ["--skip-missing"])
        assert result.exit_code == 0, result.output
        cases = {item["meta"]["case_id"] for item in read_items(out)}
        assert case not in cases and len(cases) == 4
    finally:
        shutil.copy(saved, row.ct)


# ---- torch Dataset ------------------------------------------------------------------------------

def test_torch_dataset_gives_the_exported_pixels_with_a_mask_channel(built, export):
    from tumorcot.exports.torch_dataset import TumorCoTDataset

    _, ds = built
    out, _ = export("sharegpt", "slice")
    exported = {item["id"]: item for item in read_items(out)}
    inputs = case_inputs(ds)
    calls = []

    def transform(item: dict) -> dict:
        calls.append(item["record"]["record_id"])
        return {**item, "seen": True}

    datasets = [TumorCoTDataset(ds, split, images="slice", mask=True, transform=transform)
                for split in ("train", "validation", "test")]
    checked_mask = 0
    for item in (dataset[i] for dataset in datasets for i in range(len(dataset))):
        assert item["seen"] and calls[-1] == item["record"]["record_id"]
        expected = exported[item["record"]["record_id"]]
        png = np.asarray(Image.open(expected["images"][0]))
        assert item["image"].dtype == torch_uint8() and tuple(item["image"].shape) == (2, *png.shape)
        assert np.array_equal(item["image"][0].numpy(), png)
        assert len(item["crops"]) == len(expected["images"]) - 1
        for crop, path in zip(item["crops"], expected["images"][1:]):
            assert np.array_equal(crop[0].numpy(), np.asarray(Image.open(path)))
        row, facts = inputs[item["record"]["case_id"]]
        key = item["media"]["key"]
        if key["z"] == expected["meta"]["media"]["key"]["z"] and expected["meta"]["media"]["key"]["target"] \
                .startswith("organ:") and row.organ_mask and not facts.synthetic:
            label = facts.organ(expected["meta"]["media"]["key"]["target"].split(":")[1]).label_id
            ct = read_ct(Path(row.ct))
            labels = sitk.Resample(sitk.ReadImage(str(row.organ_mask)), ct, sitk.Transform(),
                                   sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
            inside = np.argwhere(item["image"][1].numpy())
            assert len(inside)
            for r, c in inside[:: max(1, len(inside) // 200)]:
                assert labels[voxel_of(ct, (key["z"], int(r), int(c)))] == label
            checked_mask += 1
    assert checked_mask > 0


@pytest.mark.parametrize("mode, shape", [("video", (None, 1, None, None)), ("volume", (1, 32, 256, 256))])
def test_torch_dataset_stacks_and_volumes(built, mode, shape):
    from tumorcot.exports.torch_dataset import TumorCoTDataset

    _, ds = built
    dataset = next(d for d in (TumorCoTDataset(ds, split, images=mode) for split in ("train", "validation", "test"))
                   if len(d))
    item = dataset[len(dataset) - 1]
    assert all(want is None or got == want for got, want in zip(item["image"].shape, shape))
    assert len(item["image"].shape) == len(shape)
    if mode == "video":
        assert item["image"].shape[0] == len(item["media"]["key"]["z"])


def torch_uint8():
    import torch
    return torch.uint8
