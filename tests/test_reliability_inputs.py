"""Bad rows stay rows, impossible volumes are refused: through ``tumorcot build``.

Every malformed-row kind and a Latin-1 manifest in one build (the good rows are built, each bad
row is an error naming its row, no raw id or report text in the output or Prefect's logs), and
each implausible volume made in the test from the real CT of ../shared/data."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from tumorcot.cli import app
from tumorcot.store.shards import read_manifest

runner = CliRunner()


def build(manifest: Path, out: Path):
    return runner.invoke(app, ["build", "-m", str(manifest), "-o", str(out), "--allow-failures"])


def failures(out: Path) -> dict[str, str]:
    return {f["case_label"]: f"{f['error_type']}: {f['reason']}" for f in read_manifest(out)["failures"]}


def prefect_log_text() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(), limit=200)
        runs = client.read_flow_runs(limit=50)
    return json.dumps([log.message for log in logs]) + json.dumps(
        [[r.parameters, r.state.message if r.state else ""] for r in runs], default=str)


def test_every_malformed_row_kind_is_a_row_error(shared_data, tmp_path, prefect_server):
    ct = shared_data / "totalseg" / "example_ct_sm.nii.gz"
    seg = shared_data / "totalseg" / "example_seg.nii.gz"
    long_report = "R" * (1 << 20) + "LONGREPORTMARKER"
    lines = [
        "patient_id,study_id,ct,organ_mask,report",
        f"GOOD-A,1,{ct},{seg},fine",                               # row 1: built
        f"EXTRA-FIELD-ID,1,{ct},{seg},fine,surplus",                # row 2: one field too many
        "MISSING-FIELD-ID,1",                                      # row 3: fields missing
        f"LONG-ID,1,{ct},{seg},{long_report}",                       # row 4: field over 1 Mi characters
    ]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(lines) + "\n")
    result = build(manifest, tmp_path / "ds")
    assert result.exit_code == 0, result.output
    fails = failures(tmp_path / "ds")
    assert fails == {"row 2": "ManifestError: [row 2] has 6 fields, the header has 5",
                     "row 3": "ManifestError: [row 3] has 2 fields, the header has 5",
                     "row 4": f"ManifestError: [row 4] field(s) report longer than {1 << 20:,} characters"}
    assert read_manifest(tmp_path / "ds")["cases"] and "ok 1" in result.output
    for marker in ("EXTRA-FIELD-ID", "MISSING-FIELD-ID", "LONG-ID", "LONGREPORTMARKER"):
        assert marker not in result.output and marker not in prefect_log_text()

    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text("\n".join(["[1, 2]", "7", json.dumps({"patient_id": "J-GOOD", "study_id": "1", "ct": str(ct)}),
                                "{not json"]) + "\n")
    assert build(jsonl, tmp_path / "dsj").exit_code == 0
    assert failures(tmp_path / "dsj") == {
        "row 1": "ManifestError: [row 1] line 1 is a JSON list, not an object",
        "row 2": "ManifestError: [row 2] line 2 is a JSON int, not an object",
        "row 4": "ManifestError: [row 4] line 4 is not JSON: Expecting property name enclosed in double quotes"}


def test_latin1_and_bom_manifests_are_read(shared_data, tmp_path, prefect_server):
    ct = shared_data / "totalseg" / "example_ct_sm.nii.gz"
    latin = tmp_path / "latin.csv"
    latin.write_bytes(f"patient_id,study_id,ct,report\nJOSÉ-MARKER,1,{ct},scanner abdominal réalisé\n"
                      .encode("latin-1"))
    result = build(latin, tmp_path / "ds")
    assert result.exit_code == 0 and "ok 1" in result.output, result.output
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + f"patient_id,study_id,ct\nBOM-1,1,{ct}\n".encode())
    assert "ok 1" in build(bom, tmp_path / "ds2").output
    assert "JOSÉ-MARKER" not in prefect_log_text()


# ------------------------------------------------------------------ implausible volumes

def nifti_bytes(path: Path) -> bytearray:
    return bytearray(gzip.decompress(path.read_bytes()))


def with_pixdim(raw: bytearray, axis: int, value: float) -> bytes:
    raw = bytearray(raw)
    raw[76 + 4 * axis: 80 + 4 * axis] = struct.pack("<f", value)
    return bytes(raw)


def write_like(array: np.ndarray, reference: sitk.Image, path: Path) -> Path:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture(scope="module")
def volumes(shared_data, tmp_path_factory):
    """Each implausible input, written from the real example CT: name -> (row fields, expected)."""
    ts = shared_data / "totalseg"
    folder = tmp_path_factory.mktemp("implausible")
    ct_path, seg_path = ts / "example_ct_sm.nii.gz", ts / "example_seg.nii.gz"   # one grid
    ct, seg = sitk.ReadImage(str(ct_path)), sitk.ReadImage(str(seg_path))
    raw = nifti_bytes(ct_path)
    cases = {}

    truncated = folder / "truncated.nii.gz"       # intact gzip of a NIfTI missing its last third
    truncated.write_bytes(gzip.compress(bytes(raw[: 352 + (len(raw) - 352) * 2 // 3])))
    cases["truncated"] = ({"ct": truncated}, "truncated NIfTI")
    zero = folder / "zero_spacing.nii.gz"
    zero.write_bytes(gzip.compress(with_pixdim(raw, 1, 0.0)))
    cases["zero spacing"] = ({"ct": zero}, "spacing")
    huge = folder / "huge_spacing.nii.gz"
    huge.write_bytes(gzip.compress(with_pixdim(raw, 3, 100.0)))
    cases["100 mm spacing"] = ({"ct": huge}, "spacing")

    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    mr_like = folder / "mr_like.nii.gz"            # MR-like: positive intensities, no air at -1000
    write_like(np.clip((hu + 1024) * 0.6, 0, None).astype(np.int16), ct, mr_like)
    cases["MR-like intensities"] = ({"ct": mr_like}, "ct_intensity")
    cases["label map as CT"] = ({"ct": seg_path}, "ct_intensity")

    labels = sitk.GetArrayFromImage(seg)
    shifted = folder / "shifted_seg.nii.gz"        # organ mask shifted by 30 % of the field of view
    write_like(np.roll(labels, int(0.3 * labels.shape[1]), axis=1), seg, shifted)
    cases["shifted organ mask"] = ({"ct": ct_path, "organ_mask": shifted}, "organ_hu")
    whole = folder / "whole_lesion.nii.gz"
    write_like(np.ones_like(labels), seg, whole)
    cases["lesion over the whole volume"] = ({"ct": ct_path, "organ_mask": seg_path, "lesion_mask": whole},
                                             "lesion_extent")
    cases["interleaved DICOM"] = ({"ct": interleaved_dicom(ts / "example_ct_dicom", folder / "dicom")},
                                  "interleaved")
    return cases


def interleaved_dicom(source: Path, target: Path) -> Path:
    """The real series' slices written as DICOM twice, the second copy half a slice step higher
    and numbered from 1000, all under one series UID (two acquisitions interleaved)."""
    reader = sitk.ImageSeriesReader()
    volume = sitk.ReadImage(reader.GetGDCMSeriesFileNames(str(source)), sitk.sitkInt16)
    target.mkdir()
    step = volume.GetSpacing()[2]
    series = "1.2.826.0.1.3680043.2.1125.99.1"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for copy, offset in ((0, 0.0), (1, step / 2)):
        for k in range(volume.GetDepth()):
            plane = volume[:, :, k]
            x, y, z = volume.TransformIndexToPhysicalPoint((0, 0, k))
            tags = {"0008|0060": "CT", "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL", "0020|000e": series,
                    "0020|000d": "1.2.826.0.1.3680043.2.1125.99", "0020|0037": "1\\0\\0\\0\\1\\0",
                    "0020|0032": f"{x}\\{y}\\{z + offset}", "0020|0013": str(k + 1 + 1000 * copy),
                    "0008|0018": f"{series}.{copy}.{k}", "0028|1052": "0", "0028|1053": "1"}
            for key, value in tags.items():
                plane.SetMetaData(key, value)
            writer.SetFileName(str(target / f"s{copy}_{k:03d}.dcm"))
            writer.Execute(plane)
    return target


def test_implausible_volumes_are_refused_with_the_check_named(volumes, shared_data, tmp_path, prefect_server):
    ct, seg = shared_data / "totalseg" / "example_ct_sm.nii.gz", shared_data / "totalseg" / "example_seg.nii.gz"
    names = list(volumes)
    rows = [{"patient_id": "OK", "study_id": "1", "ct": ct, "organ_mask": seg}]
    rows += [{"patient_id": f"BAD{i}", "study_id": "1", **volumes[n][0]} for i, n in enumerate(names)]
    columns = ["patient_id", "study_id", "ct", "organ_mask", "lesion_mask"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join([",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns)
                                                          for r in rows]) + "\n")
    result = build(manifest, tmp_path / "ds")
    assert "ok 1" in result.output, result.output
    fails = failures(tmp_path / "ds")
    for i, name in enumerate(names, start=2):
        reason = fails.get(f"row {i}", "")
        assert volumes[name][1] in reason, (name, reason)
        assert reason.startswith(("CaseInputError", "ImplausibleInputError")), (name, reason)
    assert len(fails) == len(names)


@pytest.mark.parametrize("name", ["STS_001", "STS_019"])
def test_real_ct_crops_pass_the_gates(shared_data, name):
    from tumorcot.imaging.io import load_ct

    load_ct(shared_data / "ibsi_sts" / name / "CT_image.nii.gz", case=name)   # raises if a gate fails
