"""The phantom's "variety" plan: one lesion for every shape, margin, content and attenuation value.

Each lesion is drawn with the descriptors it must measure as (``PhantomLesion.shape`` /
``margin`` / ``content`` / ``attenuation``), placed like the random plan's balls (inside its
organ, away from the others; ``phantom._place`` with the lesion's bounding radius):

- liver: a round hypodense solid ball (well-defined); an oval hyperdense ellipsoid (2:1:1); a
  lobulated lesion of three overlapping balls; an irregular 7-pointed star (margin not fixed: its
  thin spikes blur at the gradient's scale); an ill-defined ball
  whose edge fades over ``BLUR_MM`` (Gaussian); an isodense ball (same HU as the liver: margin
  not assessable); a fluid cyst (5 HU); a calcified ball (450 HU);
- left kidney: a fatty lesion (-80 HU); stomach (hollow organ): a solid lesion whose attenuation
  is "not assessed".
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tumorcot.imaging import phantom as ph

BLUR_MM = 6.0
WHOLE = ("u", 0.0, 1.0)
# (organ, shape kind, bounding radius mm, HU offset from the organ or absolute ("abs", HU),
#  expected shape, margin (None: not fixed), content, attenuation, lesion kind)
LESIONS = (
    ("liver", "ball", 12.0, -45, "round", "well-defined", "solid", "hypodense", "tumor"),
    ("liver", "oval", 18.0, +25, "oval", "well-defined", "solid", "hyperdense", "tumor"),
    ("liver", "lobes", 26.0, -45, "lobulated", "well-defined", "solid", "hypodense", "tumor"),
    ("liver", "star", 20.0, -45, "irregular", None, "solid", "hypodense", "tumor"),
    ("liver", "blurred", 28.0, -45, "round", "ill-defined", "solid", "hypodense", "tumor"),
    ("liver", "ball", 12.0, 0, "round", "not assessable", "solid", "isodense", "tumor"),
    ("liver", "ball", 10.0, ("abs", 5), "round", "well-defined", "cystic", "hypodense", "cyst"),
    ("liver", "ball", 7.0, ("abs", 450), "round", "well-defined", "calcified", "hyperdense", "tumor"),
    ("kidney_left", "ball", 10.0, ("abs", -80), "round", "well-defined", "fatty", "hypodense", "tumor"),
    ("stomach", "ball", 9.0, ("abs", 60), "round", "well-defined", "solid", "not assessed", "tumor"),
)


def _footprint(grid, kind: str, centre, radius: float) -> np.ndarray:
    x, y, z = grid.x - centre[0], grid.y - centre[1], grid.z - centre[2]
    if kind in ("ball", "blurred"):
        return grid.ellipsoid(centre, (radius,) * 3)
    if kind == "oval":
        return grid.ellipsoid(centre, (radius, radius / 2, radius / 2))
    if kind == "lobes":
        r = radius / 26.0
        out = np.zeros(grid.zyx, dtype=bool)
        for dx, dy, dz, rr in ((-13, 0, 0, 12), (12, 4, 0, 12), (0, -13, 2, 11)):
            out |= grid.ellipsoid((centre[0] + dx * r, centre[1] + dy * r, centre[2] + dz * r), (rr * r,) * 3)
        return out
    if kind == "star":
        rho = np.sqrt(x**2 + y**2)
        theta = np.arctan2(y, x)
        return (rho <= 0.6 * radius * (1.0 + 0.55 * np.cos(7 * theta))) & (np.abs(z) <= 0.6 * radius)
    raise ValueError(kind)


def draw_variety(grid, hu, labels, lesion_mask, rng, organ_hu, truth) -> None:
    """Draw ``LESIONS`` into the phantom arrays (in place) and record them in ``truth``."""
    taken: list = []
    for organ, kind, radius, hu_spec, shape, margin, content, attenuation, lesion_kind in sorted(
            LESIONS, key=lambda spec: -spec[2]):  # largest first: room for all
        centre, placed = ph._place(grid, labels, organ, WHOLE, radius, rng, taken)
        if centre is None or placed < radius:
            raise RuntimeError(f"variety phantom: no room for a {radius} mm {kind} lesion in the {organ}")
        mask = _footprint(grid, kind, centre, radius) & (labels == ph.LABEL[organ])
        value = float(hu_spec[1]) if isinstance(hu_spec, tuple) else float(organ_hu[organ] + hu_spec)
        if kind == "blurred":
            weight = ndimage.gaussian_filter(mask.astype(np.float32), [BLUR_MM / s for s in grid.spacing[::-1]])
            region = ndimage.binary_dilation(mask, iterations=6) & (labels == ph.LABEL[organ])
            hu[region] = organ_hu[organ] + (value - organ_hu[organ]) * weight[region]
        else:
            hu[mask] = value
        lesion_mask[mask] = ph.LESION_VALUE[lesion_kind]
        taken.append((centre, radius))
        truth.lesions.append(ph.PhantomLesion(
            organ=organ, region="variety", centre_mm=centre, radius_mm=radius, hu=value, kind=lesion_kind,
            attenuation=attenuation, shape=shape, margin=margin, content=content))
