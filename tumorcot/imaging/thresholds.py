"""Every measurement threshold of the imaging stage, with its source (one place; the shared
vocabulary module may re-export or absorb these).

A value marked *project definition* is not taken from a guideline: no guideline gives a number for
it, so the value is ours, chosen as stated and tested on the phantom and real CT. Every other
value cites the specific source it comes from.
"""

from __future__ import annotations

# --- regions -----------------------------------------------------------------------------------
EROSION_MM = 2.0
"""Organ reference and lesion core are eroded by ceil(2 mm / spacing) voxels per axis (at least
one voxel) to keep partial-volume voxels at the boundary out of the statistics. Project
definition."""

MIN_REGION_VOXELS = 20
"""Fewer voxels left after erosion: no reference HU (attenuation "not assessed"); a lesion core
that small falls back to all lesion voxels. Project definition."""

HOLLOW_ORGANS = frozenset({"stomach", "colon", "small_bowel", "duodenum", "esophagus",
                           "urinary_bladder", "gallbladder"})
"""Organs whose mask holds a lumen (gas, fluid, oral contrast, bile, urine): their HU is not a
parenchymal reference, so a lesion's attenuation "relative to the organ" is not assessed."""

# --- attenuation -------------------------------------------------------------------------------
ISODENSE_HU = 10.0
"""|lesion core median - organ reference| <= 10 HU is isodense. Project definition (RadGPT /
AbdomenAtlas 3.0 likewise compare lesion and organ HU without a published cut-off)."""

# --- content (lesion core, robust statistics) --------------------------------------------------
FLUID_HU = (-10.0, 20.0)
"""Core median within -10..20 HU (and homogeneous, ``FLUID_MAX_IQR_HU``) is fluid ("cystic").
Source: Bosniak classification, version 2019 (Silverman SG et al., Radiology 2019;292:475-488),
Table 1, class I: "homogeneous simple fluid (-9 to 20 HU)"; the lower bound is rounded to -10."""

FLUID_MAX_IQR_HU = 30.0
"""Homogeneity for fluid: core interquartile range <= 30 HU (pure image noise of SD 15-20 HU gives
an IQR of 20-27 HU). Project definition of Bosniak's "homogeneous"."""

FAT_HU = -30.0
"""Core median < -30 HU is macroscopic fat ("fatty"). Source: Simpfendorfer C et al., AJR
2009;192:438-443 (pixels < -30 HU: positive predictive value 100 % for fat in renal
angiomyolipoma); stricter than the <= -20 HU at which Davenport MS et al., Radiology
2011;260:158-165 (Results) misdiagnosed no renal cell carcinoma as angiomyolipoma."""

CALCIUM_HU = 130.0
"""A voxel > 130 HU is calcium. Source: Agatston AS et al., J Am Coll Cardiol 1990;15:827-832
(Methods: calcific lesion = area of >= 1 mm^2 with density > 130 HU). On contrast-enhanced scans
the cut-off is raised to the aortic blood-pool median (enhancing tissue does not exceed it)."""

CALCIFIED_SHARE = 0.5
""""Calcified" when at least half of the core's voxels are calcium. Project definition (a lesion
mostly of calcium; smaller shares are reported as ``calcified_fraction``)."""

# --- margin ------------------------------------------------------------------------------------
MARGIN_MIN_CONTRAST_HU = ISODENSE_HU
MARGIN_MIN_CNR = 1.0
"""A margin is "not assessable" when the lesion core and its surroundings differ by no more than
``ISODENSE_HU`` or by less than one noise SD (robust: IQR / 1.349 of core and surroundings): the
mask's inside looks like its outside. Project definition."""

NOISE_DISTANCE_SIGMAS = 3.0
"""The noise's gradient is measured at least 3 sigma from the lesion's edge (a smoothed edge's
gradient has fallen to 1 % there)."""

WELL_DEFINED_SHARPNESS = 0.6
"""Edge sharpness = boundary gradient (noise floor removed) x sqrt(2 pi) x sigma / contrast: 1.0
for an ideal step seen through the Gaussian derivative of width sigma, sigma/sqrt(sigma^2 + w^2)
for an edge blurred over w. >= 0.6 (w <= 1.3 sigma) is well-defined, below ill-defined. Method
after Xu J et al., Med Phys 2012;39:5405-5418 (margin sharpness from boundary-normal intensity
profiles); the cut-off is a project definition."""

# --- shape -------------------------------------------------------------------------------------
ROUND_SPHERICITY = 0.85
ROUND_AXIS_RATIO = 1.3
"""Convex and IBSI sphericity >= 0.85 and principal-axis ratio <= 1.3: round; convex otherwise:
oval. IBSI sphericity (Zwanenburg A et al., Radiology 2020;295:328-338; IBSI reference manual
3.1.8, mesh-based, 1.0 for a sphere); cut-offs are project definitions."""

LOBULATED_INDEX = 0.03
IRREGULAR_INDEX = 0.2
"""Lobulation index = area-weighted convex deficiency of the axial contours, digitisation excess
removed (``tumorcot.imaging.shape``): convex shapes (balls, ellipsoids, a 3:3:1 disc) score 0.0;
0.03-0.2 lobulated (notches between a few lobes: three overlapping balls 0.085, a 5-lobed
outline of 27 % amplitude 0.16); above irregular (a 7-pointed star of 53 % amplitude 0.41).
Project definition."""

# --- contrast phase ----------------------------------------------------------------------------
UNENHANCED_BLOOD_MAX_HU = 70.0
"""Aorta median <= 70 HU and portal vein median <= 70 HU: non-contrast. Unenhanced blood measures
29-45 HU (IQR, descending aorta, 325 patients; non-anaemic 39-50 HU): "blood attenuation in
non-contrast CT and anaemia", Research Square preprint rs-1420003/v1 (2022), Table 2; the margin of 20 HU is the enhancement criterion of Bosniak 2019
(Silverman SG et al., Radiology 2019;292:475-488, "enhancement: >= 20 HU")."""

ARTERIAL_AORTA_PORTAL_RATIO = 2.0
"""Arterial when the aorta's enhancement (HU above unenhanced blood, ``BLOOD_BASELINE_HU``) is at
least twice the portal vein's. Source: Goshima S et al., "MDCT of the liver and hypervascular
hepatocellular carcinomas: optimizing scan delays for bolus-tracking techniques of hepatic
arterial and portal venous phases", AJR 2006;187:W25-W32 (Results): at 10-15 s the aortic enhancement reached 300-336 HU while the proximal portal
vein's was 75-104 HU (ratio >= 2.9); at 45-55 s (portal venous) the aorta's had fallen to
117-125 HU with the liver at peak. LI-RADS v2018 CT/MRI technique (arterial phase: hepatic
artery fully enhanced, portal vein enhanced less than in the portal venous phase)."""

BLOOD_BASELINE_HU = 40.0
"""Unenhanced blood, the zero of "enhancement" (midpoint of 29-50 HU, see above)."""

PORTAL_MIN_ENHANCEMENT_HU = 50.0
"""Portal venous: portal vein enhanced by >= 50 HU and not arterial (LI-RADS v2018: portal veins
fully enhanced). Project threshold on the Goshima 2006 figures (portal vein enhancement 75-104 HU
already in the arterial phase)."""

DELAYED_AORTA_MAX_HU = 130.0
"""Delayed (equilibrium/excretory): enhanced, not arterial, aorta median <= 130 HU and portal vein
within 20 HU of the aorta, or the urinary bladder holding excreted contrast (median > 100 HU;
urine is fluid, <= 20 HU, without it). LI-RADS v2018 CT/MRI technique (delayed phase: portal and
hepatic veins enhanced but less than in the portal venous phase); the aortic cut-off sits below
Goshima 2006's portal venous aorta (117-125 HU enhancement, about 160 HU). Project threshold."""

EXCRETED_CONTRAST_HU = 100.0

CORTICOMEDULLARY_HU = 40.0
"""Kidney outer rim (cortex) median minus inner core (medulla) median >= 40 HU is corticomedullary
differentiation, supporting an arterial phase (Yuh BI, Cohan RH, AJR 1999;173:747-755:
corticomedullary phase 25-70 s, homogeneous nephrographic phase 80-120 s). Project threshold."""

KIDNEY_CORTEX_MM = 4.0
KIDNEY_MEDULLA_MM = 8.0
"""Cortex = kidney voxels within 4 mm of the kidney surface; medulla = deeper than 8 mm."""
