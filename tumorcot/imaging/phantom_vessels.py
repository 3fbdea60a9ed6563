"""The phantom's "resect_*" plans: a pancreatic-head lesion among the vessels the NCCN
resectability criteria need, each touched over a planted angle.

The vessels ``total`` has no label for (superior mesenteric artery and vein, celiac trunk, common
hepatic artery, main portal vein: ``vocabulary.EXTENSION_LABELS``) are drawn as vertical cylinders
of radius ``VESSEL_RADIUS_MM`` around a ball lesion of radius ``LESION_RADIUS_MM`` in the pancreatic
head, one per direction in ``DIRECTIONS`` (schematic, not anatomical: a vertical vessel has the same
cross-section on every axial slice, so the contact angle is set by construction). A vessel the plan
leaves untouched stands ``CLEAR_MM`` clear of the lesion. A touched vessel is tangent to the ball,
and the lesion wraps it with a cuff (``CUFF_MM`` thick) over the planted angle, centred on the side
facing the lesion, on the slices through the lesion's middle. Arteries take the aorta's HU, veins
the portal vein's. The aorta and IVC of the base phantom stay clear of the lesion.

Plans (``PLANS``): resect_resectable (no vessel touched), resect_borderline (superior mesenteric
artery 90 degrees), resect_locally_advanced (superior mesenteric artery 270 degrees), resect_venous
(superior mesenteric vein 90 degrees: the vein's contour decides, so the status is indeterminate).
"""

from __future__ import annotations

import numpy as np

from tumorcot.imaging import phantom as ph
from tumorcot.vocabulary import EXTENSION_LABELS, label_id

PLANS = {
    "resect_resectable": {},
    "resect_borderline": {"superior_mesenteric_artery": 90.0},
    "resect_locally_advanced": {"superior_mesenteric_artery": 270.0},
    "resect_venous": {"superior_mesenteric_vein": 90.0},
}
LESION_RADIUS_MM = 10.0
VESSEL_RADIUS_MM = 5.0
CLEAR_MM = 12.0
CUFF_MM = 4.0
# direction of each vessel's axis from the lesion centre, degrees in the axial plane (LPS: 0 = +x,
# the patient's left; 90 = +y, posterior); away from the IVC (about 108 degrees, 38 mm off)
DIRECTIONS = {"superior_mesenteric_artery": 45.0, "superior_mesenteric_vein": -15.0, "celiac_trunk": 180.0,
              "common_hepatic_artery": -60.0, "main_portal_vein": -120.0}
VEINS = ("superior_mesenteric_vein", "main_portal_vein")


def draw_resect(plan: str, grid, hu, labels, lesion_mask, organ_hu, truth) -> None:
    """Draw the plan's lesion and vessels into the phantom arrays (in place); record the lesion
    with its planted contact angles in ``truth``."""
    planted = PLANS[plan]
    a, b = (np.asarray(p) for p in ph.PANCREAS_AXIS_MM)
    centre = grid.snap(a + 0.1 * (b - a))   # the head's point on the pancreas axis
    cx, cy, cz = centre
    radius = LESION_RADIUS_MM
    ball = grid.ellipsoid(centre, (radius,) * 3)
    lesion = ball.copy()
    vessels = np.zeros(grid.zyx, dtype=np.uint8)
    slab = np.abs(grid.z - cz) <= 0.6 * radius
    for name, direction in DIRECTIONS.items():
        angle = planted.get(name, 0.0)
        distance = radius + VESSEL_RADIUS_MM + (0.0 if angle else CLEAR_MM)
        t = np.deg2rad(direction)
        vx, vy = cx + distance * np.cos(t), cy + distance * np.sin(t)
        rho = np.sqrt((grid.x - vx) ** 2 + (grid.y - vy) ** 2)
        vessel = np.broadcast_to((rho <= VESSEL_RADIUS_MM) & (np.abs(grid.z - cz) <= 3 * radius), grid.zyx)
        vessels[vessel] = label_id(name)
        if angle:
            # polar angle around the vessel axis, relative to the direction back to the lesion centre
            phi = np.arctan2(grid.y - vy, grid.x - vx) - (t + np.pi)
            phi = np.abs((phi + np.pi) % (2 * np.pi) - np.pi)
            cuff = (rho > VESSEL_RADIUS_MM) & (rho <= VESSEL_RADIUS_MM + CUFF_MM) & (phi <= np.deg2rad(angle) / 2)
            lesion |= np.broadcast_to(cuff, grid.zyx) & slab
    lesion &= vessels == 0
    artery_hu, vein_hu = organ_hu["aorta"], organ_hu["portal_vein_and_splenic_vein"]
    for name in EXTENSION_LABELS.values():
        drawn = vessels == label_id(name)
        labels[drawn] = label_id(name)
        hu[drawn] = vein_hu if name in VEINS else artery_hu
    value = organ_hu["pancreas"] - 45
    hu[lesion] = value
    labels[lesion] = ph.LABEL["pancreas"]
    lesion_mask[lesion] = ph.LESION_VALUE["tumor"]
    truth.lesions.append(ph.PhantomLesion(
        organ="pancreas", region="head", centre_mm=centre, radius_mm=radius, hu=value, kind="tumor",
        attenuation="hypodense", planted_contact_deg={n: planted.get(n, 0.0) for n in DIRECTIONS}))
