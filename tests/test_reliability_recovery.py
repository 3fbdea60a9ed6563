"""Clean recovery, through the CLI: the next build removes every temporary file a killed writer
left (the SIGKILL sweep is in test_crash.py), readers never see a half-replaced dataset while a
real ``tumorcot build`` rewrites it, and ``export --link-images`` never links a DICOM folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops_helpers import read_rows, write_rows
from tumorcot.cli import app
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.store.atomic import is_temporary, temporary_path
from tumorcot.store.private import default_state_dir

pytestmark = pytest.mark.usefixtures("prefect_server")
runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def dataset(tmp_path):
    cases = write_phantom_cases(tmp_path / "cases", 4, seed=11, scale=4)
    out = tmp_path / "ds"
    assert runner.invoke(app, ["build", "-m", str(cases), "-o", str(out)]).exit_code == 0
    return cases, out


def temporaries(out: Path) -> list[Path]:
    return sorted(p for folder in (out, default_state_dir(out)) for p in folder.rglob(".*") if is_temporary(p))


def test_next_build_removes_every_kind_of_leftover(dataset):
    cases, out = dataset
    state = default_state_dir(out)
    case = next((state / "cases").iterdir())
    planted = [temporary_path(out / "README.md"), temporary_path(out / "data" / "train.parquet"),
               temporary_path(case / "log.arrow"), temporary_path(state / "assembling"),
               temporary_path(state / "llm-cache" / "ab" / "answer.json"),
               temporary_path(state / "segmentations" / "x_total.nii.gz", suffix=".nii.gz")]
    assert len(temporaries(out)) == len(planted)
    result = runner.invoke(app, ["build", "-m", str(cases), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert temporaries(out) == []


def test_readers_never_see_a_half_replaced_dataset(dataset, tmp_path):
    """``tumorcot validate`` in a loop while another process rebuilds every case (--force)."""
    from prefect.settings import PREFECT_API_URL

    cases, out = dataset
    rows = read_rows(cases)
    for row in rows:   # every case changes: every shard is rewritten
        row["pathology"] = "behavior=benign; diagnosis=hepatic cyst; organ=liver"
    changed = write_rows(cases.parent / "changed.csv", rows)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               PREFECT_API_URL=PREFECT_API_URL.value() or "")
    writer = subprocess.Popen([sys.executable, "-m", "tumorcot.cli", "build", "-m", str(changed), "-o", str(out),
                               "--force", "--concurrency", "1"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    passes, generations = 0, set()
    try:
        while writer.poll() is None or passes == 0:
            result = runner.invoke(app, ["validate", str(out)])
            assert result.exit_code == 0, result.output   # never a checksum mismatch
            generations.add(json.loads((out / "manifest.json").read_text())["run_id"])
            passes += 1
    finally:
        writer.wait(timeout=600)
    assert writer.returncode == 0, writer.stderr.read()
    assert passes >= 2
    print(f"reader passes during the rebuild: {passes}, none with a mismatch; dataset generations seen: "
          f"{len(generations)}")


def test_link_images_writes_a_deidentified_nifti_for_a_dicom_series(shared_data, tmp_path):
    import SimpleITK as sitk

    import numpy as np

    ts = shared_data / "totalseg"
    seg = sitk.ReadImage(str(ts / "example_seg_dicom.nii.gz"))
    labels = sitk.GetArrayFromImage(seg)
    k, j, i = (int(np.median(axis)) for axis in np.nonzero(labels == 5))   # inside the liver
    lesion = np.zeros(labels.shape, np.uint8)
    lesion[k - 1:k + 2, j - 6:j + 7, i - 6:i + 7] = 1
    mask = sitk.GetImageFromArray(lesion)
    mask.CopyInformation(seg)
    sitk.WriteImage(mask, str(tmp_path / "lesion.nii.gz"))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"patient_id,study_id,ct,organ_mask,lesion_mask\nDCM-PATIENT,1,{ts / 'example_ct_dicom'},"
                        f"{ts / 'example_seg_dicom.nii.gz'},{tmp_path / 'lesion.nii.gz'}\n")
    out = tmp_path / "ds"
    assert runner.invoke(app, ["build", "-m", str(manifest), "-o", str(out)]).exit_code == 0
    links = tmp_path / "links"
    result = runner.invoke(app, ["export", str(out), str(tmp_path / "x.jsonl"), "--format", "llava",
                                 "--link-images", str(links)])
    assert result.exit_code == 0, result.output
    (written,) = list(links.iterdir())
    assert written.name.endswith(".nii.gz") and not written.is_symlink()
    series = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(ts / "example_ct_dicom")))
    nifti = sitk.ReadImage(str(written))
    assert nifti.GetSize() == series.GetSize()
    assert sitk.GetArrayViewFromImage(nifti).tolist() == sitk.GetArrayViewFromImage(series).tolist()
    text = written.read_bytes()
    for tag_value in (b"DCM-PATIENT",):
        assert tag_value not in text
    images = {json.loads(line)["image"] for line in (tmp_path / "x.jsonl").read_text().splitlines()}
    assert images == {str(written)}


def test_a_killed_commands_temporary_prefect_server_is_reaped_by_the_next(dataset, tmp_path):
    import signal
    import time

    from tumorcot.ops.orphans import _alive, _is_prefect_server, registry
    from tumorcot.ops.preflight import prefect_api

    cases, out = dataset
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}   # it starts its own server
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    command = subprocess.Popen([sys.executable, "-m", "tumorcot.cli", "build", "-m", str(cases), "-o", str(out),
                                "--force"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    entry = None
    while entry is None:
        assert command.poll() is None and time.monotonic() < deadline, "no temporary server registered"
        for path in registry().glob("*.json"):
            if json.loads(path.read_text())["owner_pid"] == command.pid:
                entry = json.loads(path.read_text())
        time.sleep(0.1)
    command.send_signal(signal.SIGKILL)   # the command only: its server is orphaned
    command.wait()
    server = entry["server_pid"]
    assert _alive(server) and _is_prefect_server(server)
    prefect_api()                          # the next command (here on the session's server) reaps it
    time.sleep(0.5)
    assert not _alive(server) or not _is_prefect_server(server)
