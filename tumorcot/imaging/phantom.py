"""Deterministic synthetic abdominal CT phantom in TotalSegmentator ``total`` label ids.

The anatomy is drawn in LPS millimetres around the volume centre (x to the patient's left,
y posterior, z superior): body ellipse with subcutaneous fat (-100 HU) and a muscle wall (45 HU),
mesenteric fat (-60 HU), vertebra L1 (31, 400 HU), aorta (52, 160 HU) left-anterior of the spine,
IVC (63, 120 HU) right-anterior, liver (5, 100 HU) on the right, spleen (1, 95 HU) on the left,
kidneys (2 right / 3 left, 150 HU), pancreas (7, 90 HU) as a capsule from head (right) to tail
(left), stomach (6, 30 HU), a portal-vein segment in the liver hilum (64, 170 HU): these are the
portal venous values; ``phase`` selects others (``PHASE_HU``; kidneys with a medulla 8 mm inside
the surface, darker in the arterial phase); Gaussian noise (sigma ``NOISE_HU``). Lesions are balls centred on
voxel centres, placed inside their organ (distance to the organ surface >= radius + 2 mm) in a
named region (liver lobe, pancreas head/body/tail, kidney pole); the organ mask keeps the host
label under a lesion. Cases with ``flip_xy`` store the arrays with direction diag(-1, -1, 1)
(RAS-like) and the same physical voxel centres.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from tumorcot.store.atomic import atomic_open
from tumorcot.vocabulary import label_id

NOISE_HU = 10.0
# HU of the enhancing structures per contrast phase (portal venous: the module docstring's); kidneys
# as (cortex, medulla). Typical values: unenhanced blood ~40 HU; arterial aorta ~300 HU with the
# portal vein ~110 HU and corticomedullary differentiation; delayed: vessels equilibrated.
PHASE_HU = {
    "portal_venous": {"aorta": 160, "inferior_vena_cava": 120, "portal_vein_and_splenic_vein": 170,
                      "liver": 100, "spleen": 95, "pancreas": 90, "kidney": (150, 150)},
    "non_contrast": {"aorta": 42, "inferior_vena_cava": 40, "portal_vein_and_splenic_vein": 40,
                     "liver": 55, "spleen": 45, "pancreas": 40, "kidney": (30, 30)},
    "arterial": {"aorta": 300, "inferior_vena_cava": 70, "portal_vein_and_splenic_vein": 110,
                 "liver": 70, "spleen": 120, "pancreas": 110, "kidney": (220, 90)},
    "delayed": {"aorta": 115, "inferior_vena_cava": 110, "portal_vein_and_splenic_vein": 110,
                "liver": 85, "spleen": 80, "pancreas": 70, "kidney": (120, 120)},
}
PORTAL_VEIN_MM = ((-40.0, 5.0, 10.0), (-70.0, 0.0, 30.0), 6.0)   # a segment in the liver hilum
KIDNEY_MEDULLA_INSET_MM = 8.0
# kidney -> (centre, semi-axes) mm: 9 cm long craniocaudally (``right_kidney_scale`` shrinks the right one)
KIDNEY_GEOMETRY = {"kidney_right": ((-60.0, 65.0, -30.0), (25.0, 28.0, 45.0)),
                   "kidney_left": ((60.0, 65.0, -25.0), (25.0, 28.0, 45.0))}
ATROPHIC_KIDNEY_SCALE = 0.7   # 6.3 cm against 9 cm: a size discrepancy beyond the 1.5 cm cut-off
FATTY_LIVER_HU = 35.0   # liver minus spleen about -25 HU unenhanced: below Park 2011's 1 HU criterion
LABEL = {name: label_id(name) for name in ("spleen", "kidney_right", "kidney_left", "liver", "stomach", "pancreas",
                                           "vertebrae_L1", "aorta", "inferior_vena_cava",
                                           "portal_vein_and_splenic_vein")}
AORTA_XY_MM, AORTA_RADIUS_MM = (18.0, 40.0), 12.0
PANCREAS_AXIS_MM = ((-20.0, 0.0, -10.0), (80.0, 20.0, 10.0))
PANCREAS_RADIUS_MM = 14.0
LESION_VALUE = {"tumor": 1, "cyst": 2}
# organ -> region name -> allowed band (organ-relative fraction) along x ("u") or z ("w")
REGIONS = {
    "liver": {"right lobe": ("u", 0.15, 0.45), "left lobe": ("u", 0.78, 0.92)},
    "pancreas": {"head": ("t", 0.1, 0.1), "body": ("t", 0.5, 0.5), "tail": ("t", 0.9, 0.9)},
    "kidney_right": {"upper pole": ("w", 0.75, 0.85), "interpolar": ("w", 0.45, 0.55),
                     "lower pole": ("w", 0.15, 0.25)},
    "spleen": {"spleen": ("u", 0.0, 1.0)},
}
REGIONS["kidney_left"] = REGIONS["kidney_right"]


@dataclass
class PhantomLesion:
    organ: str
    region: str
    centre_mm: tuple[float, float, float]
    radius_mm: float
    hu: float
    attenuation: str
    kind: str
    touches_aorta: bool = False
    shape: str | None = None  # expected descriptors where the plan fixes them ("variety")
    margin: str | None = None
    content: str | None = None
    planted_contact_deg: dict[str, float] = field(default_factory=dict)  # "resect_*" plans: vessel -> degrees


@dataclass
class PhantomTruth:
    lesions: list[PhantomLesion] = field(default_factory=list)
    flip_xy: bool = False


class _Grid:
    def __init__(self, shape, spacing_mm):
        self.shape = tuple(shape)  # (nx, ny, nz)
        self.spacing = tuple(float(s) for s in spacing_mm)
        axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(self.shape, self.spacing)]
        self.x = axes[0][None, None, :].astype(np.float32)
        self.y = axes[1][None, :, None].astype(np.float32)
        self.z = axes[2][:, None, None].astype(np.float32)
        self.zyx = (self.shape[2], self.shape[1], self.shape[0])

    def ellipsoid(self, c, r):
        return ((self.x - c[0]) / r[0]) ** 2 + ((self.y - c[1]) / r[1]) ** 2 + (
            (self.z - c[2]) / r[2]
        ) ** 2 <= 1.0

    def cylinder(self, cx, cy, rx, ry=None):
        ry = rx if ry is None else ry
        disc = ((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2 <= 1.0
        return np.broadcast_to(disc, self.zyx)

    def capsule(self, a, b, radius):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        ab = b - a
        t = ((self.x - a[0]) * ab[0] + (self.y - a[1]) * ab[1] + (self.z - a[2]) * ab[2]) / (
            ab @ ab
        )
        t = np.clip(t, 0.0, 1.0)
        d2 = (self.x - a[0] - t * ab[0]) ** 2 + (self.y - a[1] - t * ab[1]) ** 2 + (
            self.z - a[2] - t * ab[2]
        ) ** 2
        return d2 <= radius**2

    def snap(self, point):
        """Nearest voxel centre (mm) to ``point``."""
        out = []
        for p, n, s in zip(point, self.shape, self.spacing):
            idx = int(np.clip(round(p / s + (n - 1) / 2.0), 0, n - 1))
            out.append((idx - (n - 1) / 2.0) * s)
        return tuple(out)


def organ_hu_of(phase: str) -> dict[str, float]:
    """HU of every drawn structure in a contrast phase (kidneys: cortex)."""
    if phase not in PHASE_HU:
        raise ValueError(f"unknown phantom phase {phase!r} (known: {', '.join(PHASE_HU)})")
    p = PHASE_HU[phase]
    return {"stomach": 30, **{k: v for k, v in p.items() if k != "kidney"},
            "kidney_right": p["kidney"][0], "kidney_left": p["kidney"][0], "vertebrae_L1": 400}


def _anatomy(grid: _Grid, phase: str = "portal_venous", spleen_scale: float = 1.0, fatty_liver: bool = False,
             right_kidney_scale: float = 1.0):
    hu = np.full(grid.zyx, -1000.0, dtype=np.float32)
    labels = np.zeros(grid.zyx, dtype=np.uint8)
    kidneys = dict(KIDNEY_GEOMETRY)
    centre, radii = kidneys["kidney_right"]
    kidneys["kidney_right"] = (centre, tuple(r * right_kidney_scale for r in radii))
    body = grid.cylinder(0.0, 10.0, 140.0, 110.0)
    hu[body] = -100.0
    hu[grid.cylinder(0.0, 10.0, 125.0, 95.0)] = 45.0
    hu[grid.cylinder(0.0, 10.0, 115.0, 85.0)] = -60.0
    organs = {
        "liver": grid.ellipsoid((-60.0, -5.0, 20.0), (75.0, 65.0, 70.0)),
        "stomach": grid.ellipsoid((55.0, -40.0, 40.0), (30.0, 25.0, 30.0)),
        "spleen": grid.ellipsoid((95.0, 45.0, 30.0), tuple(r * spleen_scale for r in (25.0, 35.0, 40.0))),
        **{name: grid.ellipsoid(centre, radii) for name, (centre, radii) in kidneys.items()},
        "pancreas": grid.capsule(*PANCREAS_AXIS_MM, PANCREAS_RADIUS_MM),
        "vertebrae_L1": grid.cylinder(0.0, 70.0, 18.0),
        "aorta": grid.cylinder(*AORTA_XY_MM, AORTA_RADIUS_MM),
        "inferior_vena_cava": grid.cylinder(-22.0, 38.0, 11.0),
        "portal_vein_and_splenic_vein": grid.capsule(*PORTAL_VEIN_MM),
    }
    organ_hu = organ_hu_of(phase)
    if fatty_liver:
        organ_hu["liver"] -= FATTY_LIVER_HU
    for name, region in organs.items():
        inside = region & body
        labels[inside] = LABEL[name]
        hu[inside] = organ_hu[name]
    medulla_hu = PHASE_HU[phase]["kidney"][1]
    for name, (centre, radii) in kidneys.items():
        inner = grid.ellipsoid(centre, tuple(r - KIDNEY_MEDULLA_INSET_MM for r in radii))
        hu[inner & (labels == LABEL[name])] = medulla_hu
    return hu, labels


def _band_mask(grid, labels, organ, band):
    axis, lo, hi = band
    inside = labels == LABEL[organ]
    if axis == "t":  # pancreas: position along the head->tail axis
        a, b = (np.asarray(p) for p in PANCREAS_AXIS_MM)
        point = a + lo * (b - a)
        return inside, grid.snap(point)
    coord = grid.x if axis == "u" else grid.z
    values = np.broadcast_to(coord, grid.zyx)[inside]
    vmin, vmax = float(values.min()), float(values.max())
    band_mask = (coord >= vmin + lo * (vmax - vmin)) & (coord <= vmin + hi * (vmax - vmin))
    return inside & band_mask, None


def _place(grid, labels, organ, band, radius, rng, taken):
    """Centre (mm) of a ball of ``radius`` inside ``organ`` within ``band``, or None."""
    allowed, fixed = _band_mask(grid, labels, organ, band)
    if fixed is not None:
        radius = min(radius, PANCREAS_RADIUS_MM - 4.0)
        if any(np.linalg.norm(np.subtract(fixed, c)) <= radius + r + 8.0 for c, r in taken):
            return None, radius
        return fixed, radius
    depth = ndimage.distance_transform_edt(labels == LABEL[organ], sampling=grid.spacing[::-1])
    while radius >= 4.0:
        ok = allowed & (depth >= radius + 2.0)
        kk, jj, ii = np.nonzero(ok)
        order = rng.permutation(kk.size)
        for n in order[:200]:
            centre = (float(grid.x[0, 0, ii[n]]), float(grid.y[0, jj[n], 0]),
                      float(grid.z[kk[n], 0, 0]))
            if all(np.linalg.norm(np.subtract(centre, c)) > radius + r + 8.0 for c, r in taken):
                return centre, radius
        radius -= 2.0
    return None, radius


def _plan(kind_of_case: str, rng) -> list[tuple[str, str, float, str]]:
    """(organ, region, radius_mm, attenuation) of each lesion to draw."""
    if kind_of_case in ("none", "variety") or kind_of_case.startswith("resect_"):
        return []
    if kind_of_case == "aorta_contact":
        return [("pancreas", "aorta", 14.0, "hypodense"), ("liver", "right lobe", 10.0, "hypodense")]
    plan = []
    for _ in range(int(rng.integers(1, 4))):
        organ = str(rng.choice(list(REGIONS)))
        region = str(rng.choice(list(REGIONS[organ])))
        radius = float(rng.uniform(5.0, 25.0 if organ == "liver" else 14.0))
        attenuation = str(rng.choice(["hypodense", "cystic"] if organ.startswith("kidney")
                                     else ["hypodense", "hyperdense"]))
        plan.append((organ, region, radius, attenuation))
    return plan


def make_phantom(
    seed: int,
    *,
    plan: str = "random",
    flip_xy: bool = False,
    phase: str = "portal_venous",
    spleen_scale: float = 1.0,
    fatty_liver: bool = False,
    right_kidney_scale: float = 1.0,
    shape: tuple[int, int, int] = (160, 160, 80),
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 3.0),
):
    """``(ct, organs, lesions, truth)``: int16 HU image, uint8 organ and lesion masks, truth.

    ``plan``: "random" (1-3 lesions in liver / pancreas / kidneys / spleen), "aorta_contact"
    (a pancreas-body lesion touching the aorta plus a distant liver lesion), "variety" (one lesion
    per shape, margin, content and attenuation value: ``tumorcot.imaging.phantom_variety``),
    "resect_resectable" / "resect_borderline" / "resect_locally_advanced" / "resect_venous" (a
    pancreatic-head lesion among the vessels of the NCCN resectability criteria, touched over
    planted angles: ``tumorcot.imaging.phantom_vessels``) or "none". ``phase``: contrast phase of the enhancing structures (``PHASE_HU``); ``spleen_scale``
    scales the spleen's radii (1.4: about 400 mL, enlarged); ``fatty_liver`` lowers the liver by
    ``FATTY_LIVER_HU`` (below the spleen on a non-contrast scan); ``right_kidney_scale`` scales the
    right kidney's semi-axes (``ATROPHIC_KIDNEY_SCALE``: a small right kidney).
    """
    rng = np.random.default_rng(seed)
    grid = _Grid(shape, spacing_mm)
    hu, labels = _anatomy(grid, phase, spleen_scale, fatty_liver, right_kidney_scale)
    organ_hu = organ_hu_of(phase)
    if fatty_liver:
        organ_hu["liver"] -= FATTY_LIVER_HU
    lesion_mask = np.zeros(grid.zyx, dtype=np.uint8)
    truth = PhantomTruth(flip_xy=flip_xy)
    taken: list = []
    for organ, region, radius, attenuation in _plan(plan, rng):
        if region == "aorta":
            centre, touches = _aorta_neighbour(grid, radius), True
        else:
            centre, radius = _place(grid, labels, organ, REGIONS[organ][region], radius, rng, taken)
            touches = False
        if centre is None:
            continue
        ball = grid.ellipsoid(centre, (radius, radius, radius)) & (labels != LABEL["aorta"])
        kind = "cyst" if attenuation == "cystic" else "tumor"
        value = {"hypodense": organ_hu[organ] - 45, "hyperdense": organ_hu[organ] + 25,
                 "cystic": 8}[attenuation]
        hu[ball] = value
        labels[ball] = LABEL[organ]
        lesion_mask[ball] = LESION_VALUE[kind]
        taken.append((centre, radius))
        truth.lesions.append(PhantomLesion(
            organ=organ, region="body" if region == "aorta" else region, centre_mm=centre,
            radius_mm=radius, hu=value, kind=kind, touches_aorta=touches,
            attenuation="hypodense" if attenuation == "cystic" else attenuation,
        ))
    if plan == "variety":
        from tumorcot.imaging.phantom_variety import draw_variety

        draw_variety(grid, hu, labels, lesion_mask, rng, organ_hu, truth)
    elif plan.startswith("resect_"):
        from tumorcot.imaging.phantom_vessels import draw_resect

        draw_resect(plan, grid, hu, labels, lesion_mask, organ_hu, truth)
    hu += rng.normal(0.0, NOISE_HU, size=hu.shape).astype(np.float32)
    arrays = (np.round(hu).astype(np.int16), labels, lesion_mask)
    images = [_to_image(a, grid, flip_xy) for a in arrays]
    return images[0], images[1], images[2], truth


def _aorta_neighbour(grid: _Grid, radius: float):
    """Voxel centre of a ball whose most posterior voxels sit next to (not on) the aorta's."""
    ax, ay = AORTA_XY_MM
    x, _, z = grid.snap((ax, 0.0, 0.0))
    half = np.sqrt(max(AORTA_RADIUS_MM**2 - (x - ax) ** 2, 0.0))
    ys = grid.y[0, :, 0]
    top = float(ys[np.abs(ys - ay) <= half].min()) - grid.spacing[1]
    return (x, float(top - np.floor(radius / grid.spacing[1]) * grid.spacing[1]), z)


def _to_image(array: np.ndarray, grid: _Grid, flip_xy: bool) -> sitk.Image:
    nx, ny, nz = grid.shape
    sx, sy, sz = grid.spacing
    if flip_xy:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array[:, ::-1, ::-1]))
        image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
        image.SetOrigin(((nx - 1) / 2 * sx, (ny - 1) / 2 * sy, -(nz - 1) / 2 * sz))
    else:
        image = sitk.GetImageFromArray(array)
        image.SetOrigin((-(nx - 1) / 2 * sx, -(ny - 1) / 2 * sy, -(nz - 1) / 2 * sz))
    image.SetSpacing(grid.spacing)
    return image


def _pathology(truth: PhantomTruth) -> str:
    for lesion in truth.lesions:
        size_mm = 2 * lesion.radius_mm
        if lesion.organ == "pancreas":
            t = "T1" if size_mm <= 20 else "T2" if size_mm <= 40 else "T3"
            return (f"behavior=malignant; diagnosis=pancreatic ductal adenocarcinoma; organ=pancreas;"
                    f" T={t}; N=N0; M=M0")
        if lesion.organ.startswith("kidney") and lesion.kind == "tumor":
            t = "T1a" if size_mm <= 40 else "T1b"
            return f"behavior=malignant; diagnosis=renal cell carcinoma; organ=kidney; T={t}; N=N0; M=M0"
        if lesion.organ.startswith("kidney"):
            return "behavior=benign; diagnosis=simple renal cyst; organ=kidney"
    return ""


def case_variant(index: int) -> dict:
    """Organ-level variety of case ``index`` (every 8th+6: non-contrast with a fatty liver and an
    enlarged spleen; every 8th+7: non-contrast with a small right kidney, a case without lesions);
    the rest portal venous, normal."""
    return {6: {"phase": "non_contrast", "spleen_scale": 1.4, "fatty_liver": True},
            7: {"phase": "non_contrast", "right_kidney_scale": ATROPHIC_KIDNEY_SCALE}}.get(index % 8, {})


RESECT_PLANS = ("resect_resectable", "resect_borderline", "resect_locally_advanced", "resect_venous")


def case_plan(index: int) -> tuple[str, bool]:
    """Plan and orientation of case ``index``: every 4th case has no lesion, every 4th+1 has the
    aorta-contact lesion, every 8th+2 a resectability plan (``RESECT_PLANS`` in turn: cases 2,
    10, 18, 26); odd cases are stored RAS-like."""
    if index % 8 == 2:
        return RESECT_PLANS[(index // 8) % len(RESECT_PLANS)], False
    plan = {3: "none", 1: "aorta_contact"}.get(index % 4, "random")
    return plan, index % 2 == 1


def write_phantom_cases(out_dir: Path, n_cases: int, seed: int = 0, *, scale: int = 1) -> Path:
    """Write ``case_XXX_{ct,organs,lesions}.nii.gz`` and ``manifest.csv``; return the manifest.

    ``scale`` > 1 divides the voxel count per axis by ``scale`` (same anatomy in millimetres,
    coarser voxels): fast cases for benchmarks and operational tests.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n_cases):
        plan, flip = case_plan(index)
        ct, organs, lesions, truth = make_phantom(
            seed * 100_003 + index, plan=plan, flip_xy=flip, **case_variant(index),
            shape=(160 // scale, 160 // scale, 80 // scale), spacing_mm=(2.0 * scale, 2.0 * scale, 3.0 * scale))
        stem = f"case_{index:03d}"
        names = {part: f"{stem}_{part}.nii.gz" for part in ("ct", "organs", "lesions")}
        if not truth.lesions:  # an empty lesion mask is an input error; a lesion-free case has none
            names.pop("lesions")
        for part, image in zip(names, (ct, organs, lesions)):
            sitk.WriteImage(image, str(out_dir / names[part]), useCompression=True)
        kinds = sorted({lesion.kind for lesion in truth.lesions})
        rows.append({
            "patient_id": f"phantom-{seed}-{index:03d}",
            "study_id": f"study-{index:03d}",
            "ct": names["ct"],
            "organ_mask": names["organs"],
            "lesion_mask": names.get("lesions", ""),
            "lesion_labels": ";".join(f"{LESION_VALUE[k]}:{k}" for k in kinds),
            "report": "",
            "pathology": _pathology(truth),
            "source": "synthetic-phantom",
        })
    manifest = out_dir / "manifest.csv"
    with atomic_open(manifest, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["patient_id"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
