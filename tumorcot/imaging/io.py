"""Load a CT (NIfTI file or DICOM series folder) and put label masks on its grid.

Rules:
- The CT is returned 3-D in HU; integral data are stored as int16 when they fit (memory), any
  other data as float32.
- DICOM: only non-identifying tags are read (modality, image type, position, orientation);
  the pixel reader does not load the metadata dictionary, so no identifying tag leaves this module.
- Masks are resampled onto the CT in physical space (identity transform, nearest neighbour,
  default 0). A mask whose non-zero voxels fall inside the CT's field of view less than
  ``MIN_MASK_OVERLAP`` of the time raises ``GeometryError``; arrays of different grids are never
  indexed together.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk

from tumorcot.errors import CaseInputError, GeometryError
from tumorcot.imaging.plausibility import check_ct_intensity, check_spacing

MIN_MASK_OVERLAP = 0.5
"""Least share of a mask's non-zero voxels that must land inside the CT's field of view."""

OVERLAP_SAMPLE = 200_000
"""Non-zero mask voxels sampled (deterministically) for the overlap check."""

GRID_TOLERANCE = 1e-4
"""Relative tolerance under which two grids count as identical (no resampling)."""

_INTEGER_PIXELS = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
    sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64,
}


@dataclass
class LoadedCT:
    image: sitk.Image
    input_format: Literal["nifti", "dicom", "other"]
    sha256: str


def content_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes; for a folder, of its sorted file names and their bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def load_ct(path: Path, *, case: str, sha256: str | None = None) -> LoadedCT:
    """Read a CT volume (NIfTI/other ITK file, or a folder holding a DICOM series).

    ``sha256``: the input's ``content_sha256`` when the caller has just computed it (the file is
    then not read a second time for hashing)."""
    path = Path(path)
    if not path.exists():
        raise CaseInputError(f"CT not found: {path}", case=case)
    if path.is_dir():
        image, fmt = _read_dicom_series(path, case=case), "dicom"
    else:
        image = _read_file(path, case=case, what="CT")
        fmt = "nifti" if path.name.endswith((".nii", ".nii.gz")) else "other"
    image = _as_3d(image, case=case, what="CT")
    minmax = sitk.MinimumMaximumImageFilter()
    minmax.Execute(image)
    if minmax.GetMinimum() == minmax.GetMaximum():
        raise CaseInputError(
            f"CT {path.name} is constant ({minmax.GetMinimum():g} everywhere)", case=case
        )
    image = _compact_hu(image, minmax.GetMinimum(), minmax.GetMaximum())
    check_spacing(image.GetSpacing(), case=case)
    check_ct_intensity(image, case=case)
    return LoadedCT(image=image, input_format=fmt, sha256=sha256 or content_sha256(path))


def load_mask(path: Path, reference: sitk.Image, *, case: str, what: str) -> sitk.Image:
    """Read an integer label mask and return it on ``reference``'s grid as uint8/uint16."""
    path = Path(path)
    if not path.exists():
        raise CaseInputError(f"{what} not found: {path}", case=case)
    mask = _as_3d(_read_file(path, case=case, what=what), case=case, what=what)
    minmax = sitk.MinimumMaximumImageFilter()
    minmax.Execute(mask)
    low, high = minmax.GetMinimum(), minmax.GetMaximum()
    if low < 0 or high > 65535:
        raise CaseInputError(f"{what} {path.name} has labels outside 0..65535", case=case)
    if mask.GetPixelID() not in _INTEGER_PIXELS and not _is_integral(mask):
        raise CaseInputError(f"{what} {path.name} holds non-integer values", case=case)
    pixel = sitk.sitkUInt8 if high <= 255 else sitk.sitkUInt16
    if same_grid(mask, reference):
        out = sitk.Cast(mask, pixel) if mask.GetPixelID() != pixel else mask
        out.CopyInformation(reference)
        return out
    if high > 0:
        overlap = _inside_fraction(mask, reference)
        if overlap < MIN_MASK_OVERLAP:
            raise GeometryError(
                f"{what} {path.name}: only {overlap:.1%} of its labelled voxels lie inside the CT "
                f"(need >= {MIN_MASK_OVERLAP:.0%}); mask and CT do not share physical space",
                case=case,
            )
    return sitk.Resample(
        mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, pixel
    )


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """True when both images have the same size, spacing, origin and direction."""
    if a.GetSize() != b.GetSize():
        return False
    spacing = np.asarray(b.GetSpacing())
    return (
        np.allclose(a.GetSpacing(), spacing, rtol=GRID_TOLERANCE, atol=0)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=GRID_TOLERANCE * spacing.min() * 10)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=GRID_TOLERANCE)
    )


def _read_file(path: Path, *, case: str, what: str) -> sitk.Image:
    """ITK silently zero-fills a truncated NIfTI (even inside an intact gzip) and reads a zero
    spacing as 1 mm, so the NIfTI-1 header is checked first: data length and pixdim."""
    header = _nifti_header(path) if path.name.endswith((".nii", ".nii.gz")) else None
    if header is not None:
        _check_nifti(path, header, case=case, what=what)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = _gzip_problem(path) or str(exc).strip().splitlines()[-1][:200]
        raise CaseInputError(f"cannot read {what} {path.name}: {reason}", case=case) from exc


@dataclass
class NiftiHeader:
    data_end: int
    """vox_offset + voxels x bytes per voxel: the file length the header promises."""
    pixdim: tuple[float, ...]


def _nifti_header(path: Path) -> NiftiHeader | None:
    """The NIfTI-1 header's promised data length and spacing (None: not NIfTI-1 / unreadable)."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            raw = fh.read(348)
    except (OSError, EOFError, zlib.error):
        return None
    if len(raw) < 348:
        return None
    for order in ("<", ">"):
        if np.frombuffer(raw[:4], dtype=f"{order}i4")[0] == 348:
            dims = np.frombuffer(raw[40:56], dtype=f"{order}i2")
            ndim = max(1, min(int(dims[0]), 7))
            bitpix = int(np.frombuffer(raw[72:74], dtype=f"{order}i2")[0])
            offset = int(np.frombuffer(raw[108:112], dtype=f"{order}f4")[0])
            pixdim = np.frombuffer(raw[76:108], dtype=f"{order}f4")[1 : 1 + min(ndim, 3)]
            voxels = int(np.prod(dims[1 : 1 + ndim].astype(np.int64)))
            return NiftiHeader(max(offset, 348) + voxels * bitpix // 8, tuple(float(p) for p in pixdim))
    return None  # not NIfTI-1 (e.g. NIfTI-2): left to ITK


def _check_nifti(path: Path, header: NiftiHeader, *, case: str, what: str) -> None:
    if path.name.endswith(".gz"):
        with open(path, "rb") as fh:
            fh.seek(-4, 2)
            isize = int.from_bytes(fh.read(4), "little")   # gzip trailer: length mod 2**32
        length = None if header.data_end % (1 << 32) == isize else _gunzipped_length(path, case=case, what=what)
    else:
        length = path.stat().st_size
    if length is not None and length < header.data_end:
        raise CaseInputError(f"cannot read {what} {path.name}: truncated NIfTI ({length:,} of the "
                             f"{header.data_end:,} bytes its header promises)", case=case)
    check_spacing(header.pixdim, case=case, what=f"{what} {path.name} (NIfTI pixdim)")


def _gunzipped_length(path: Path, *, case: str, what: str) -> int:
    length = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                length += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise CaseInputError(f"cannot read {what} {path.name}: corrupt or truncated gzip ({exc})", case=case) from exc
    return length


def _gzip_problem(path: Path) -> str | None:
    if not path.name.endswith(".gz"):
        return None
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return f"corrupt or truncated gzip ({exc})"
    return None


def _as_3d(image: sitk.Image, *, case: str, what: str) -> sitk.Image:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseInputError(f"{what} is not a scalar image", case=case)
    size = image.GetSize()
    if image.GetDimension() == 4 and size[3] == 1:
        return image[:, :, :, 0]
    if image.GetDimension() != 3 or min(size) < 2:
        raise CaseInputError(f"{what} is not a 3-D volume (size {size})", case=case)
    return image


def _is_integral(image: sitk.Image) -> bool:
    """Slice by slice, so no whole-volume temporary is made."""
    view = sitk.GetArrayViewFromImage(image)
    return all(np.array_equal(plane, np.round(plane)) for plane in view)


def _compact_hu(image: sitk.Image, low: float, high: float) -> sitk.Image:
    fits = -32768 <= low and high <= 32767
    integral = image.GetPixelID() in _INTEGER_PIXELS or _is_integral(image)
    if integral and fits:
        target = sitk.sitkInt16
    else:
        target = sitk.sitkFloat32
    return image if image.GetPixelID() == target else sitk.Cast(image, target)


def _inside_fraction(mask: sitk.Image, reference: sitk.Image) -> float:
    """Share of the mask's non-zero voxels whose centres fall inside ``reference``'s volume."""
    view = sitk.GetArrayViewFromImage(mask)
    flat = np.flatnonzero(view)
    if flat.size > OVERLAP_SAMPLE:
        flat = flat[:: flat.size // OVERLAP_SAMPLE + 1]
    kji = np.stack(np.unravel_index(flat, view.shape), axis=1)
    ijk = kji[:, ::-1].astype(np.float64)
    m_dir = np.asarray(mask.GetDirection()).reshape(3, 3)
    points = ijk * np.asarray(mask.GetSpacing()) @ m_dir.T + np.asarray(mask.GetOrigin())
    r_dir = np.asarray(reference.GetDirection()).reshape(3, 3)
    cont = (points - np.asarray(reference.GetOrigin())) @ r_dir / np.asarray(
        reference.GetSpacing()
    )
    size = np.asarray(reference.GetSize())
    inside = np.all((cont >= -0.5) & (cont <= size - 0.5), axis=1)
    return float(inside.mean())


def _read_dicom_series(folder: Path, *, case: str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = [
        (sid, reader.GetGDCMSeriesFileNames(str(folder), sid))
        for sid in reader.GetGDCMSeriesIDs(str(folder))
    ]
    candidates = []
    for sid, files in series:
        modality, image_type = _series_kind(files[0])
        if modality == "CT" and "LOCALIZER" not in image_type.upper():
            candidates.append(files)
    if not candidates:
        raise CaseInputError(
            f"no axial CT series in {folder.name} ({len(series)} series, none CT non-localizer)",
            case=case,
        )
    files = max(candidates, key=len)
    if len(files) < 3:
        raise CaseInputError(f"CT series in {folder.name} has only {len(files)} slice(s)", case=case)
    _check_slice_spacing(files, case=case)
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOff()
    reader.LoadPrivateTagsOff()
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise CaseInputError(f"cannot decode DICOM series in {folder.name}: {exc}", case=case)


def _series_kind(file: str) -> tuple[str, str]:
    info = _info(file)
    get = lambda key: info.GetMetaData(key).strip() if info.HasMetaDataKey(key) else ""  # noqa: E731
    return get("0008|0060"), get("0008|0008")


def _info(file: str) -> sitk.ImageFileReader:
    info = sitk.ImageFileReader()
    info.SetFileName(file)
    info.LoadPrivateTagsOff()
    info.ReadImageInformation()
    return info


def _check_slice_spacing(files: list[str], *, case: str) -> None:
    """Reject series with a missing or duplicated slice (gap > 1.5x or < 0.5x the median step), and
    series whose instance numbers repeat or do not follow the slice positions (two acquisitions
    interleaved under one series UID, e.g. at half the slice step)."""
    positions, instances, normal = [], [], None
    for file in files:
        info = _info(file)
        if not info.HasMetaDataKey("0020|0032"):
            return
        if normal is None and info.HasMetaDataKey("0020|0037"):
            cosines = [float(v) for v in info.GetMetaData("0020|0037").split("\\")]
            normal = np.cross(cosines[:3], cosines[3:6])
        positions.append([float(v) for v in info.GetMetaData("0020|0032").split("\\")])
        number = info.GetMetaData("0020|0013").strip() if info.HasMetaDataKey("0020|0013") else ""
        instances.append(int(float(number)) if number.lstrip("-").replace(".", "", 1).isdigit() else None)
    if normal is None:
        return
    heights = np.asarray(positions) @ normal
    order = np.argsort(heights)
    steps = np.diff(heights[order])
    median = float(np.median(steps))
    if median <= 0 or steps.max() > 1.5 * median or steps.min() < 0.5 * median:
        raise CaseInputError(
            f"DICOM series has uneven slice positions (steps {steps.min():.2f}-{steps.max():.2f} "
            f"mm, median {median:.2f} mm): missing or duplicate slices",
            case=case,
        )
    if all(n is not None for n in instances):
        numbers = np.asarray(instances)[order]
        if len(set(numbers.tolist())) < len(numbers):
            raise CaseInputError("DICOM series repeats instance numbers: two acquisitions under one series UID",
                                 case=case)
        turns = np.diff(np.sign(np.diff(numbers)))
        if np.count_nonzero(turns):
            raise CaseInputError("DICOM series instance numbers do not follow the slice positions: slices of "
                                 "two acquisitions interleaved under one series UID", case=case)
