"""Export with images: images written per second, and export time over one decode of each CT.

Builds a dataset (offline generator) from the real CTs in ../shared/data (TotalSegmentator NIfTI,
the 512x512x20 DICOM series with a lesion mask on its flipped grid, the sarcoma CT) plus N phantom cases at full scale (160x160x80),
then in this one process:

- decode: ``load_ct`` of the CT of every case with records once, one after the other (the decode
  an export does: file read, HU conversion and content hash);
- export: ``export_chat(--format sharegpt, --images MODE)`` into an empty media folder with one
  worker process (the same decodes, plus planning, rendering, PNG/NPY encoding, writes, JSONL)
  and with two workers (wall time; the machine has 2 cores);
- re-export: the same command again (every file current: no decode, no write).

Ratios: export wall time / summed decode time (the issue's target: <= 2x for slice mode).
Prints the load average next to each figure; asserts nothing.

    PYTHONPATH=. python benchmarks/bench_export.py [N_PHANTOMS]     (default 6)
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")   # a busy machine
os.environ.setdefault("TUMORCOT_SALT", "bench-export")

sys.path.insert(0, str(ROOT / "tests"))
from test_exports_media import dicom_lesion_mask  # noqa: E402  (the tests' lesion on the DICOM series)

from tumorcot.exports.chat import export_chat, iter_records  # noqa: E402
from tumorcot.exports.images import CaseImages  # noqa: E402
from tumorcot.flows.build import run_build  # noqa: E402
from tumorcot.imaging.io import load_ct  # noqa: E402
from tumorcot.imaging.phantom import write_phantom_cases  # noqa: E402

SHARED = Path(os.environ.get("TUMORCOT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load avg {one:.2f}/{five:.2f}"


def manifest(folder: Path, n_phantoms: int) -> Path:
    phantom = write_phantom_cases(folder / "phantom", n_phantoms, seed=3, scale=1)
    rows = []
    for row in csv.DictReader(open(phantom)):
        rows.append({k: (str((phantom.parent / v).resolve()) if k in ("ct", "organ_mask", "lesion_mask") and v
                         else v) for k, v in row.items()})
    ts, sts = SHARED / "totalseg", SHARED / "ibsi_sts" / "STS_001"
    rows += [{"patient_id": "bench-ts", "study_id": "1", "ct": ts / "example_ct_sm.nii.gz",
              "organ_mask": ts / "example_seg.nii.gz"},
             {"patient_id": "bench-dicom", "study_id": "1", "ct": ts / "example_ct_dicom",
              "organ_mask": ts / "example_seg_dicom.nii.gz", "lesion_mask": dicom_lesion_mask(ts, folder)},
             {"patient_id": "bench-sts", "study_id": "1", "ct": sts / "CT_image.nii.gz",
              "lesion_mask": sts / "CT_mask.nii.gz"}]
    path = folder / "cases.csv"
    fields = sorted({k for row in rows for k in row})
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


class Count:
    def __init__(self):
        self.totals = {}

    def start(self, total: int, what: str = "records") -> None:
        self.totals[what] = total

    def advance(self, n: int = 1) -> None: ...


def export(ds: Path, out: Path, mode: str, workers: int) -> tuple[float, dict, int]:
    progress = Count()
    start = time.perf_counter()
    summary = export_chat(ds, out, "sharegpt", images=mode, media_dir=out / "media", workers=workers,
                          progress=progress)
    return time.perf_counter() - start, summary, progress.totals.get("images", 0)


def main(n_phantoms: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        summary = run_build(manifest(tmp, n_phantoms), tmp / "ds")
        ds = tmp / "ds"
        images = CaseImages(ds)
        cases = sorted({r.case_id for split in ("train", "validation", "test") for r in iter_records(ds, split)})
        print(f"dataset: {summary['ok']} cases ({len(cases)} with records), {summary.get('records', '?')} records; "
              f"{n_phantoms} phantoms 160x160x80 + 3 real CTs ({load()})")
        decode = 0.0
        for case in cases:
            start = time.perf_counter()
            load_ct(images.source(case), case=case)
            decode += time.perf_counter() - start
        print(f"decode of each CT once, sequential: {decode:.2f} s ({load()})")
        for mode in ("slice", "video", "volume"):
            for workers in (1, 2):
                out = tmp / f"out-{mode}-{workers}"
                wall, result, items = export(ds, out, mode, workers)
                media = result["media"]
                print(f"{mode:6s} workers={workers}: {wall:6.2f} s, export/decode = {wall / decode:4.2f}x, "
                      f"{media['files_written'] / wall:7.1f} files/s ({media['files_written']} files, {items} items, "
                      f"{media['decoded']} CTs decoded) ({load()})")
            wall, result, _ = export(ds, out, mode, 2)
            print(f"{mode:6s} re-export (all current): {wall:6.2f} s = {wall / decode:4.2f}x decode, "
                  f"{result['media']['decoded']} decoded, {result['media']['files_written']} written ({load()})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
