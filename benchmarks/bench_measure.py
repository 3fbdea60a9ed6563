"""Per-case measurement cost vs decoding cost, and peak memory vs the CT's in-memory size.

Writes a synthetic 512x512x300 int16 CT, a 117-label organ mask (each label one compact cell of an
8 x 8 x 2 grid) and a lesion mask to a temporary folder: a 150 mm lesion touching two vessels (aorta and IVC tubes along z), four liver lesions
beside the portal vein (a tube through a liver block) and two small distant lesions (7 lesions;
vessel contact is measured in a crop around each lesion, so its cost follows the lesion); then, in a fresh subprocess (so peak RSS is this case's own), times
(a) decoding CT + masks with SimpleITK (``load_ct`` / ``load_mask``; ``load_ct`` includes the
CT file's content hash, ~5 % of decode), (b) CPU time of ``measure_organs`` +
contrast-phase estimate + ``measure_lesions``, (c) peak RSS; with the load average. Prints ratios; asserts nothing.

Peak RSS is the child's ``VmHWM`` (/proc/self/status; ``ru_maxrss`` where /proc is absent).
``ru_maxrss`` alone is unfair on Linux: it survives fork + exec, so the child reported the
parent's own peak (writing the synthetic case, ~630 MiB) whenever that was the larger; a child
that allocates nothing reported the same figure. ``VmHWM`` belongs to the child's address space.

    PYTHONPATH=. python benchmarks/bench_measure.py [--size 512 512 300]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SPACING = (0.8, 0.8, 1.5)
BIG = (256, 300, 150, 94, 50)   # i, j, k centre, in-plane and z semi-axes (voxels): 150 mm across
VESSEL_TUBES = (("aorta", 366, 300, 15), ("inferior_vena_cava", 147, 300, 14))   # touch BIG's sides
LIVER_BOX = (slice(30, 130), slice(20, 180), slice(20, 200))   # k, j, i
PORTAL = (110, 100, 10)   # i, j, radius: a tube along z through the liver block
LIVER_LESIONS = ((8, "left"), (10, "right"), (12, "front"), (9, "back"))   # radius, side of the vein
SMALL_LESIONS = ((420, 100, 60, 8), (430, 420, 250, 12))


def _ball(lesions, ct, value, centre, radii) -> None:
    """Paint an ellipsoid (radii in voxels, i j k) into the lesion mask and darken the CT."""
    cx, cy, cz = centre
    lo = [max(int(c - r) - 1, 0) for c, r in zip((cz, cy, cx), radii[::-1])]
    sl = tuple(slice(lo[a], int(c + r) + 2) for a, (c, r) in enumerate(zip((cz, cy, cx), radii[::-1])))
    z, y, x = np.ogrid[sl]
    ball = ((x - cx) / radii[0]) ** 2 + ((y - cy) / radii[1]) ** 2 + ((z - cz) / radii[2]) ** 2 <= 1
    lesions[sl][ball] = value
    ct[sl][ball] -= 30


def write_case(folder: Path, size: tuple[int, int, int]) -> dict[str, str]:
    from tumorcot.vocabulary import label_id

    nx, ny, nz = size
    rng = np.random.default_rng(0)
    ct = np.empty((nz, ny, nx), np.int16)
    organs = np.zeros((nz, ny, nx), np.uint8)
    lesions = np.zeros((nz, ny, nx), np.uint8)
    yy, xx = np.mgrid[:ny, :nx]
    body = ((xx - nx / 2) / (0.45 * nx)) ** 2 + ((yy - ny / 2) / (0.4 * ny)) ** 2 <= 1
    block = (xx // (nx // 8)) + 8 * (yy // (ny // 8))
    drawn = {label_id(n) for n in ("liver", "portal_vein_and_splenic_vein", *(t[0] for t in VESSEL_TUBES))}
    for k in range(nz):
        # compact organs: each of the 117 labels fills one cell of an 8 x 8 x 2 grid (as real organs
        # fill one region each); the labels drawn below are kept out of the grid
        labels = 1 + block + 64 * (k * 2 // nz)
        labels = np.where((labels <= 117) & ~np.isin(labels, list(drawn)), labels, 0).astype(np.uint8)
        organs[k] = np.where(body, labels, 0)
        ct[k] = np.where(body, 40 + labels.astype(np.int16) % 50, -1000)
        ct[k] += rng.normal(0, 10, (ny, nx)).astype(np.int16)
    organs[LIVER_BOX] = label_id("liver")
    pi, pj, pr = PORTAL
    organs[:, :, :][np.broadcast_to((xx - pi) ** 2 + (yy - pj) ** 2 <= pr * pr, organs.shape)
                    & (organs == label_id("liver"))] = label_id("portal_vein_and_splenic_vein")
    for name, ci, cj, r in VESSEL_TUBES:
        organs[np.broadcast_to((xx - ci) ** 2 + (yy - cj) ** 2 <= r * r, organs.shape)] = label_id(name)
    ci, cj, ck, rxy, rz = BIG
    _ball(lesions, ct, 1, (ci, cj, ck), (rxy, rxy, rz))
    for n, (r, side) in enumerate(LIVER_LESIONS):
        gap = pr + r + 1
        di, dj = {"left": (-gap, 0), "right": (gap, 0), "front": (0, -gap), "back": (0, gap)}[side]
        _ball(lesions, ct, 1 + n % 2, (pi + di, pj + dj, 60 + 12 * n), (r, r, r * 0.55))
    for cx, cy, cz, r in SMALL_LESIONS:
        _ball(lesions, ct, 2, (cx, cy, cz), (r, r, r / 2))
    lesions[organs == label_id("aorta")] = 0  # lesions touch the vessels, never overlap them
    lesions[organs == label_id("inferior_vena_cava")] = 0
    lesions[organs == label_id("portal_vein_and_splenic_vein")] = 0
    paths = {}
    for name, array in (("ct", ct), ("organs", organs), ("lesions", lesions)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(SPACING)
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
    from tumorcot.imaging.phase import calcium_cutoff, estimate_phase

    cpu0, wall0 = time.process_time(), time.perf_counter()
    ct = load_ct(Path(paths["ct"]), case="bench")
    organ_mask = load_mask(Path(paths["organs"]), ct.image, case="bench", what="organs")
    lesion_mask = load_mask(Path(paths["lesions"]), ct.image, case="bench", what="lesions")
    cpu1, wall1 = time.process_time(), time.perf_counter()
    rss_loaded = peak_rss_bytes()
    organs = measure_organs(ct.image, organ_mask)
    views = [sitk.GetArrayViewFromImage(i) for i in (ct.image, organ_mask, lesion_mask)]
    phase, evidence = estimate_phase(*views, organs, ct.image.GetSpacing())
    cpu_lesions = time.process_time()
    lesions = measure_lesions(ct.image, lesion_mask, organ_mask, organs,
                              lesion_labels={1: "tumor", 2: "cyst"},
                              calcium_hu=calcium_cutoff(phase, evidence))
    cpu2, wall2 = time.process_time(), time.perf_counter()
    print(json.dumps({
        "decode_cpu_s": cpu1 - cpu0, "decode_wall_s": wall1 - wall0,
        "measure_cpu_s": cpu2 - cpu1, "measure_wall_s": wall2 - wall1,
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_after_decode_bytes": rss_loaded,
        "ct_bytes": ct.image.GetNumberOfPixels() * 2 if ct.image.GetPixelID() == sitk.sitkInt16
        else ct.image.GetNumberOfPixels() * 4,
        "n_organs": len(organs), "n_lesions": len(lesions), "lesions_cpu_s": cpu2 - cpu_lesions,
        "largest_mm": max(les.max_diameter_3d_mm for les in lesions),
        "contacts": [{k: v for k, v in les.vessel_contact_deg.items() if v > 0} for les in lesions],
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
    print(f"load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"organs={r['n_organs']} lesions={r['n_lesions']} ct={r['ct_bytes'] / mib:.0f} MiB "
          f"largest lesion {r['largest_mm']:.0f} mm")
    print("vessel contact (deg) per lesion: " + "; ".join(
        ", ".join(f"{k} {v:.0f}" for k, v in c.items()) or "-" for c in r["contacts"]))
    print(f"decode: cpu {r['decode_cpu_s']:.2f} s, wall {r['decode_wall_s']:.2f} s")
    print(f"measure: cpu {r['measure_cpu_s']:.2f} s (lesions {r['lesions_cpu_s']:.2f} s), "
          f"wall {r['measure_wall_s']:.2f} s")
    print(f"peak RSS {r['peak_rss_bytes'] / mib:.0f} MiB "
          f"(after decode {r['rss_after_decode_bytes'] / mib:.0f} MiB)")
    print(f"measure_cpu / decode = {r['measure_cpu_s'] / r['decode_cpu_s']:.2f} (target <= 1.0)")
    print(f"peak_memory / ct_bytes = {r['peak_rss_bytes'] / r['ct_bytes']:.2f} (target <= 4)")


if __name__ == "__main__":
    main()
