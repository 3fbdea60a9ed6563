"""Per-case measurement cost vs decoding cost, and peak memory vs the CT's in-memory size.

Writes a synthetic 512x512x300 int16 CT, a 117-label organ mask and a lesion mask with 6 lesions
to a temporary folder, then, in a fresh subprocess (so peak RSS is this case's own), times
(a) decoding CT + masks with SimpleITK (``load_ct`` / ``load_mask``; ``load_ct`` includes the
CT file's content hash, ~5 % of decode), (b) CPU time of ``measure_organs`` +
``measure_lesions``, (c) peak RSS. Prints ratios; asserts nothing.

Peak RSS is the child's ``VmHWM`` (/proc/self/status; ``ru_maxrss`` where /proc is absent).
``ru_maxrss`` alone is unfair on Linux: it survives fork + exec, so the child reported the
parent's own peak (writing the synthetic case, ~630 MiB) whenever that was the larger; a child
that allocates nothing reported the same figure. ``VmHWM`` belongs to the child's address space.

    PYTHONPATH=. python benchmarks/bench_measure.py [--size 512 512 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

LESIONS_VOX = [(150, 200, 150, 30), (350, 220, 120, 18), (260, 330, 200, 12), (140, 320, 60, 8),
               (380, 350, 240, 22), (300, 150, 80, 5)]


def write_case(folder: Path, size: tuple[int, int, int]) -> dict[str, str]:
    nx, ny, nz = size
    rng = np.random.default_rng(0)
    ct = np.empty((nz, ny, nx), np.int16)
    organs = np.zeros((nz, ny, nx), np.uint8)
    lesions = np.zeros((nz, ny, nx), np.uint8)
    yy, xx = np.mgrid[:ny, :nx]
    body = ((xx - nx / 2) / (0.45 * nx)) ** 2 + ((yy - ny / 2) / (0.4 * ny)) ** 2 <= 1
    block = (xx // (nx // 8)) + 8 * (yy // (ny // 8))
    for k in range(nz):
        labels = (1 + (block + 64 * (k * 4 // nz)) % 117).astype(np.uint8)
        organs[k] = np.where(body, labels, 0)
        ct[k] = np.where(body, 40 + labels.astype(np.int16) % 50, -1000)
        ct[k] += rng.normal(0, 10, (ny, nx)).astype(np.int16)
    zz = np.arange(nz)[:, None, None]
    for n, (cx, cy, cz, r) in enumerate(LESIONS_VOX):
        lo = [max(c - r - 1, 0) for c in (cz, cy, cx)]
        sl = tuple(slice(lo[a], lo[a] + 2 * r + 3) for a in range(3))
        z, y, x = np.ogrid[sl]
        ball = (x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * 2) ** 2 <= r * r
        lesions[sl][ball] = 1 + n % 2
        ct[sl][ball] -= 30
    del zz
    paths = {}
    for name, array in (("ct", ct), ("organs", organs), ("lesions", lesions)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.8, 0.8, 1.5))
        image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
        paths[name] = str(folder / f"{name}.nii.gz")
        sitk.WriteImage(image, paths[name], useCompression=True)
    return paths


def peak_rss_bytes() -> int:
    """High-water RSS of this process's own address space (see module docstring)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(paths: dict[str, str]) -> None:
    from tumorcot.imaging.io import load_ct, load_mask
    from tumorcot.imaging.measure import measure_lesions, measure_organs

    cpu0, wall0 = time.process_time(), time.perf_counter()
    ct = load_ct(Path(paths["ct"]), case="bench")
    organ_mask = load_mask(Path(paths["organs"]), ct.image, case="bench", what="organs")
    lesion_mask = load_mask(Path(paths["lesions"]), ct.image, case="bench", what="lesions")
    cpu1, wall1 = time.process_time(), time.perf_counter()
    rss_loaded = peak_rss_bytes()
    organs = measure_organs(ct.image, organ_mask)
    lesions = measure_lesions(ct.image, lesion_mask, organ_mask, organs,
                              lesion_labels={1: "tumor", 2: "cyst"})
    cpu2, wall2 = time.process_time(), time.perf_counter()
    print(json.dumps({
        "decode_cpu_s": cpu1 - cpu0, "decode_wall_s": wall1 - wall0,
        "measure_cpu_s": cpu2 - cpu1, "measure_wall_s": wall2 - wall1,
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_after_decode_bytes": rss_loaded,
        "ct_bytes": ct.image.GetNumberOfPixels() * 2 if ct.image.GetPixelID() == sitk.sitkInt16
        else ct.image.GetNumberOfPixels() * 4,
        "n_organs": len(organs), "n_lesions": len(lesions),
    }))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 300))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        paths = write_case(Path(tmp), tuple(args.size))
        print(f"wrote synthetic case {tuple(args.size)} in {time.perf_counter() - start:.1f} s")
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(paths)],
                             capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    mib = 1 << 20
    print(f"organs={r['n_organs']} lesions={r['n_lesions']} ct={r['ct_bytes'] / mib:.0f} MiB")
    print(f"decode: cpu {r['decode_cpu_s']:.2f} s, wall {r['decode_wall_s']:.2f} s")
    print(f"measure: cpu {r['measure_cpu_s']:.2f} s, wall {r['measure_wall_s']:.2f} s")
    print(f"peak RSS {r['peak_rss_bytes'] / mib:.0f} MiB "
          f"(after decode {r['rss_after_decode_bytes'] / mib:.0f} MiB)")
    print(f"measure_cpu / decode = {r['measure_cpu_s'] / r['decode_cpu_s']:.2f} (target <= 1.0)")
    print(f"peak_memory / ct_bytes = {r['peak_rss_bytes'] / r['ct_bytes']:.2f} (target <= 4)")


if __name__ == "__main__":
    main()
