"""The words every stage shares, in one place: label maps, organ sets, sub-location names,
attribute values and the thresholds that decide them.

Imaging writes these names and values, the knowledge graph reasons over them, the agents ask
and answer in them, and the calibrator checks them: each reads them from here, as
TotalSegmentator keeps one ``class_map`` for all of its code.

- Label maps: ``task_labels(task)`` for every TotalSegmentator task the pipeline reads
  (``total``: ``data/labels_total_v2.json``; ``liver_segments``: Couinaud I-VIII).
- Organ sets: the two pseudo-organs of a lesion without a host (``NO_HOST``), lung lobes,
  kidneys, the vessels whose contact is measured.
- Sub-location names per scheme (``SUB_LOCATION_SCHEMES``) and the closed attribute value sets
  (``ATTRIBUTE_VALUES``).
- ``THRESHOLDS``: every number an attribute rule uses, with its source; ``attribute_rules()``
  renders the rules' prose from those numbers (the knowledge graph publishes it).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

# -- label maps --------------------------------------------------------------------------------

ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")


@lru_cache(maxsize=1)
def total_labels() -> dict[int, str]:
    """TotalSegmentator v2 ``total`` label ids -> names (117 classes)."""
    text = resources.files("tumorcot.data").joinpath("labels_total_v2.json").read_text()
    return {int(k): v for k, v in json.loads(text)["labels"].items()}


# TotalSegmentator ``liver_segments``: label n is Couinaud segment n (liver_segment_1 .. _8).
LIVER_SEGMENT_LABELS = {n: f"liver_segment_{n}" for n in range(1, 9)}
# TotalSegmentator subtasks whose tumour / nodule / cyst labels become model-predicted lesions
# (totalsegmentator/map_to_binary.py class_map; their names resolve in data/structures.json).
LESION_SUBTASK_LABELS = {
    "liver_vessels": {1: "liver_vessels", 2: "liver_tumor"},
    "lung_nodules": {1: "lung", 2: "lung_nodules"},
    "kidney_cysts": {1: "kidney_cyst_left", 2: "kidney_cyst_right"},
}


def task_labels(task: str) -> dict[int, str]:
    """``{label id: structure name}`` of a TotalSegmentator task the pipeline reads."""
    if task == "total":
        return total_labels()
    if task == "liver_segments":
        return dict(LIVER_SEGMENT_LABELS)
    if task in LESION_SUBTASK_LABELS:
        return dict(LESION_SUBTASK_LABELS[task])
    raise KeyError(f"no label map for TotalSegmentator task {task!r} "
                   f"(known: total, liver_segments, {', '.join(LESION_SUBTASK_LABELS)})")


# Structures the ``total`` task does not segment but per-structure masks (AbdomenAtlas 3.0 / PanTS
# style folders) and the phantom can give: tumorcot's own label ids, above any ``total`` id. The
# pancreatic resectability criteria need them (``knowledge_graph/resectability.py``); the ``total``
# label ``portal_vein_and_splenic_vein`` holds the splenic vein too, so it cannot stand in for the
# main portal vein.
EXTENSION_LABELS = {201: "superior_mesenteric_artery", 202: "celiac_trunk", 203: "common_hepatic_artery",
                    204: "superior_mesenteric_vein", 205: "main_portal_vein"}


def organ_labels() -> dict[int, str]:
    """Every organ-map label id -> name: ``total`` plus ``EXTENSION_LABELS``."""
    return {**total_labels(), **EXTENSION_LABELS}


@lru_cache(maxsize=1)
def label_ids() -> dict[str, int]:
    """Organ-map structure name (``total`` or extension) -> label id."""
    return {name: i for i, name in organ_labels().items()}


def label_id(name: str) -> int:
    return label_ids()[name]


def label_name(label: int) -> str:
    """Organ-map label id -> name (``label_<n>`` for an id outside the map)."""
    return organ_labels().get(int(label), f"label_{int(label)}")


# -- organ sets --------------------------------------------------------------------------------

OUTSIDE_ORGANS = "outside_organs"   # a lesion in no segmented organ (soft tissue)
UNKNOWN_ORGAN = "unknown_organ"     # a lesion of a case without an organ mask
NO_HOST = (OUTSIDE_ORGANS, UNKNOWN_ORGAN)
SOFT_TISSUE = "soft_tissue"         # the knowledge graph's organ for both

LUNG_LOBES = (
    "lung_upper_lobe_left",
    "lung_lower_lobe_left",
    "lung_upper_lobe_right",
    "lung_middle_lobe_right",
    "lung_lower_lobe_right",
)
KIDNEYS = ("kidney_right", "kidney_left")
# Vessels whose contact with a lesion is measured (``total`` names).
VESSELS = ("aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein", "superior_vena_cava",
           "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
           *EXTENSION_LABELS.values())


def organ_family(name: str) -> str:
    """The organ a knowledge graph reasons about: kidney_left -> kidney, lung lobes -> lung."""
    if name.startswith("kidney_") and not name.startswith("kidney_cyst"):
        return "kidney"
    if name in LUNG_LOBES:
        return "lung"
    if name.startswith("adrenal_gland"):
        return "adrenal_gland"
    return name


def side_of(name: str) -> str | None:
    """Laterality encoded in a TotalSegmentator name, if any."""
    if name.endswith("_left"):
        return "left"
    if name.endswith("_right"):
        return "right"
    return None


def display_name(name: str) -> str:
    """Human wording of a structure name: kidney_right -> right kidney."""
    if name == OUTSIDE_ORGANS:
        return "soft tissue outside the segmented organs"
    if name == UNKNOWN_ORGAN:
        return "unlocalised tissue"
    words = name.split("_")
    if words[-1] in ("left", "right"):
        words = [words[-1], *words[:-1]]
    return " ".join(words)


# -- sub-locations -----------------------------------------------------------------------------

COUINAUD_SEGMENTS = tuple(f"segment {r}" for r in ROMAN)   # from a liver_segments mask
LIVER_REGIONS = {   # geometric approximation without one: (region, superior?) -> name
    ("lateral", True): "left lobe, lateral segment II", ("lateral", False): "left lobe, lateral segment III",
    ("caudate", True): "caudate lobe, segment I", ("caudate", False): "caudate lobe, segment I",
    ("medial", True): "left lobe, medial segment IVa", ("medial", False): "left lobe, medial segment IVb",
    ("anterior", True): "right lobe, anterior segment VIII", ("anterior", False): "right lobe, anterior segment V",
    ("posterior", True): "right lobe, posterior segment VII", ("posterior", False): "right lobe, posterior segment VI",
}
PANCREAS_PARTS = ("head", "body", "tail")
KIDNEY_POLES = ("upper pole", "interpolar", "lower pole")


def lung_lobe_name(structure: str) -> str:
    """lung_upper_lobe_right -> 'right upper lobe'."""
    words = structure.split("_")
    return f"{words[3]} {words[1]} lobe"


SUB_LOCATION_SCHEMES = (
    COUINAUD_SEGMENTS,
    tuple(dict.fromkeys(LIVER_REGIONS.values())),
    PANCREAS_PARTS,
    KIDNEY_POLES,
    ("right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe"),
)

# -- attribute values and thresholds -----------------------------------------------------------

ATTRIBUTE_VALUES = {
    "presence": ("Yes", "No"),
    "density": ("hypodense", "isodense", "hyperdense"),
    "shape": ("round", "oval", "lobulated", "irregular"),
    "margin": ("well-defined", "ill-defined"),
    "content": ("cystic", "calcified", "solid", "fatty"),
    "behavior": ("benign", "malignant"),
}

# name: (value, unit, source). Imaging decides attributes with these values, the knowledge graph
# maps facts to features with them, and ``attribute_rules`` states them. "tumorcot" marks a
# project definition: no guideline gives a number for it.
THRESHOLDS = {
    "isodense_hu": (10.0, "HU", "tumorcot (as RadGPT / AbdomenAtlas 3.0, which compare lesion and organ HU "
                    "without a published cut-off)"),
    "erosion_mm": (2.0, "mm", "tumorcot: organ reference and lesion core eroded by ceil(2 mm / spacing) voxels "
                   "per axis (at least one) to keep partial-volume boundary voxels out"),
    "min_region_voxels": (20.0, "voxels", "tumorcot: fewer voxels after erosion -> no organ reference (lesion: "
                          "all its voxels)"),
    "fluid_hu_low": (-10.0, "HU", "Bosniak v2019 (Silverman SG et al., Radiology 2019;292:475-488), Table 1, "
                     "class I: homogeneous simple fluid -9 to 20 HU (lower bound rounded)"),
    "fluid_hu_high": (20.0, "HU", "Bosniak v2019 (Silverman SG et al., Radiology 2019;292:475-488), Table 1, "
                      "class I: homogeneous simple fluid -9 to 20 HU"),
    "fluid_max_iqr_hu": (30.0, "HU", "tumorcot: Bosniak's 'homogeneous' as core IQR <= 30 HU (image noise of SD "
                         "15-20 HU alone gives 20-27 HU)"),
    "fatty_hu": (-30.0, "HU", "Simpfendorfer C et al., AJR 2009;192:438-443 (pixels < -30 HU: PPV 100 % for fat "
                 "in renal angiomyolipoma); stricter than the <= -20 HU at which Davenport MS et al., Radiology "
                 "2011;260:158-165 misdiagnosed no renal cell carcinoma"),
    "calcified_hu": (130.0, "HU", "Agatston AS et al., J Am Coll Cardiol 1990;15:827-832, Methods (calcium: "
                     "density > 130 HU); raised to the aortic median on enhanced scans (tumorcot)"),
    "calcified_share": (0.5, "", "tumorcot: majority of the core's voxels"),
    "margin_min_cnr": (1.0, "", "tumorcot: core and surroundings differing by less than one noise SD (or by no "
                       "more than isodense_hu) make the margin not assessable"),
    "well_defined_sharpness": (0.6, "", "tumorcot cut-off on a margin-sharpness measure after Xu J et al., Med "
                               "Phys 2012;39:5405-5418 (edge profiles normal to the boundary)"),
    "noise_distance_sigmas": (3.0, "", "tumorcot: noise gradient measured >= 3 sigma from the lesion's edge"),
    "round_sphericity": (0.85, "", "IBSI sphericity (Zwanenburg A et al., Radiology 2020;295:328-338; IBSI "
                         "reference manual 3.1.8, mesh-based); cut-off tumorcot"),
    "round_axis_ratio": (1.3, "", "tumorcot: principal-axis ratio of a round lesion"),
    "lobulated_index": (0.03, "", "tumorcot: contour lobulation index (convex outlines score 0)"),
    "irregular_index": (0.2, "", "tumorcot: contour lobulation index of an irregular outline"),
    "small_mm": (10.0, "mm", "ACR liver white paper 2017 (Gore), Fig 1: lesions < 1 cm too small to characterise"),
    "large_mm": (50.0, "mm", "ACR Appropriateness Criteria Soft-Tissue Masses 2018, summary: size > 5 cm raises "
                 "suspicion"),
    "adrenal_large_mm": (40.0, "mm", "ACR adrenal white paper 2017 (Mayo-Smith), Fig 1: masses >= 4 cm"),
    "adenoma_max_hu": (10.0, "HU", "ACR adrenal white paper 2017 (Mayo-Smith), Fig 1: <= 10 HU on unenhanced CT"),
    "node_short_axis_mm": (10.0, "mm", "RECIST 1.1 (Eisenhauer 2009), section 3.1.2: short axis >= 10 mm "
                           "pathological"),
    # contrast phase (tumorcot.imaging.phase)
    "unenhanced_blood_max_hu": (70.0, "HU", "unenhanced aortic blood 29-45 HU (IQR; non-anaemic 39-50 HU), "
                                "Research Square preprint rs-1420003/v1, Table 2 (blood attenuation on "
                                "non-contrast CT and anaemia), plus the 20 HU "
                                "enhancement criterion of Bosniak v2019 (Silverman SG et al., Radiology 2019)"),
    "blood_baseline_hu": (40.0, "HU", "unenhanced blood, midpoint of 29-50 HU (same source)"),
    "arterial_aorta_portal_ratio": (2.0, "", "Goshima S et al., AJR 2006;187:W25-W32, Results: arterial phase "
                                    "aortic enhancement 300-336 HU vs portal vein 75-104 HU (ratio >= 2.9); "
                                    "LI-RADS v2018 CT/MRI technique: portal vein less enhanced than in the portal "
                                    "venous phase"),
    "portal_min_enhancement_hu": (50.0, "HU", "tumorcot, below Goshima 2006's portal vein enhancement (75-104 HU "
                                  "already in the arterial phase); LI-RADS v2018: portal veins fully enhanced"),
    "delayed_aorta_max_hu": (130.0, "HU", "tumorcot, below Goshima 2006's portal venous aorta (enhancement "
                             "117-125 HU, about 160 HU); LI-RADS v2018: delayed phase veins enhanced but less "
                             "than in the portal venous phase"),
    "delayed_aorta_portal_hu": (20.0, "HU", "tumorcot: aorta and portal vein equilibrated"),
    "excreted_contrast_hu": (100.0, "HU", "tumorcot: urine is fluid (Bosniak v2019 -9 to 20 HU) unless contrast "
                             "has been excreted"),
    "corticomedullary_hu": (40.0, "HU", "tumorcot cut-off; Yuh BI, Cohan RH, AJR 1999;173:747-755: "
                            "corticomedullary differentiation in the corticomedullary phase (25-70 s), homogeneous "
                            "nephrogram later"),
    "kidney_cortex_mm": (4.0, "mm", "tumorcot: kidney cortex = within 4 mm of the kidney surface"),
    "kidney_medulla_mm": (8.0, "mm", "tumorcot: kidney medulla = deeper than 8 mm"),
    # organ-level findings (agents/families/organs.py)
    "spleen_volume_ml": (314.5, "mL", "Prassopoulos P et al., Eur Radiol 1997;7:246-248, Results: normal splenic "
                         "volume on CT 107.2-314.5 cm3 (140 adults); above the upper end: enlarged spleen"),
    "steatosis_liver_spleen_hu": (1.0, "HU", "Park YS, Park SH, Lee SS et al., Radiology 2011;258:760-766, Results: "
                                  "liver minus spleen attenuation on non-contrast CT 1-18 HU in biopsy-proven "
                                  "non-steatotic livers; below 1 HU as the criterion for steatosis"),
    "kidney_length_gap_cm": (1.5, "cm", "ACC/AHA 2005 Practice Guidelines for the Management of Patients With "
                             "Peripheral Arterial Disease (Hirsch AT et al., Circulation 2006;113:e463-e654), renal "
                             "arterial disease, recommendations on the clinical clues to the diagnosis of renal artery "
                             "stenosis, class I (Level of Evidence B): atrophic kidney or 'a discrepancy in size "
                             "between the 2 kidneys of greater than 1.5 cm' (as tabulated in Prog Cardiovasc Dis "
                             "2011;54:29-35, Table 3); the size in cm read as renal length along the long axis"),
    "relation_min_mm": (10.0, "mm", "tumorcot: centres closer than 10 mm along an axis state no relation on it"),
    # pancreatic resectability (knowledge_graph/resectability.py; the rows are the KG's resectability:pancreas)
    "vessel_encasement_deg": (180.0, "deg", "NCCN Guidelines Pancreatic Adenocarcinoma Version 2.2021 (Tempero MA et "
                              "al., J Natl Compr Canc Netw 2021;19:439-457), Criteria Defining Resectability Status "
                              "(PANC-C): solid tumour contact <= 180 vs > 180 degrees of the vessel circumference; "
                              "Al-Hawary MM et al., Radiology 2014;270:248-260, "
                              "Arterial and venous evaluation: abutment <= 180, encasement > 180 degrees"),
}

# Organs whose mask holds a lumen (gas, fluid, oral contrast, bile, urine): their HU is no
# parenchymal reference, so a lesion's attenuation relative to them is "not assessed".
HOLLOW_ORGANS = frozenset({"stomach", "colon", "small_bowel", "duodenum", "esophagus", "urinary_bladder",
                           "gallbladder"})


def threshold(name: str) -> float:
    return THRESHOLDS[name][0]


def attribute_rules() -> dict[str, str]:
    """The attribute rules in words, rendered from ``THRESHOLDS`` (never typed twice)."""
    t = threshold
    return {
        "regions": f"organ reference = the organ minus its lesions eroded by {t('erosion_mm'):g} mm (none for hollow "
                   f"organs and the gallbladder, or when fewer than {t('min_region_voxels'):g} voxels remain); lesion "
                   f"core = the lesion eroded likewise",
        "attenuation": f"lesion core median HU vs the host organ's reference median: hypodense if lower by more than "
                       f"{t('isodense_hu'):g} HU, hyperdense if higher by more, else isodense; not assessed without "
                       f"a reference",
        "content": f"fatty if the core median < {t('fatty_hu'):g} HU; calcified if >= {t('calcified_share'):g} of "
                   f"core voxels > {t('calcified_hu'):g} HU (the aortic median on enhanced scans, if higher); cystic "
                   f"(fluid) if the core median is {t('fluid_hu_low'):g} to {t('fluid_hu_high'):g} HU with IQR <= "
                   f"{t('fluid_max_iqr_hu'):g} HU; else solid",
        "margin": f"not assessable if core and surroundings differ by <= {t('isodense_hu'):g} HU or by less than "
                  f"{t('margin_min_cnr'):g} noise SD; else edge sharpness (boundary gradient with the noise share, "
                  f"measured >= {t('noise_distance_sigmas'):g} sigma away, removed, x sqrt(2 pi) sigma / contrast) "
                  f">= {t('well_defined_sharpness'):g} is well-defined, below ill-defined",
        "shape": f"lobulation index > {t('irregular_index'):g}: irregular; > {t('lobulated_index'):g}: lobulated; "
                 f"else round if IBSI sphericity >= {t('round_sphericity'):g} and axis ratio <= "
                 f"{t('round_axis_ratio'):g}, else oval",
        "small": f"longest axial diameter < {t('small_mm'):g} mm",
        "large": f"longest axial diameter > {t('large_mm'):g} mm",
        "size_ge_4cm": f"longest axial diameter >= {t('adrenal_large_mm'):g} mm",
        "multiple": "more than one connected lesion component in the same organ",
        "vascular_contact": "any contact angle > 0 degrees with a segmented vessel",
        "contrast_phase": f"non-contrast if aorta and portal vein medians <= {t('unenhanced_blood_max_hu'):g} HU; "
                          f"delayed if the bladder holds excreted contrast (> {t('excreted_contrast_hu'):g} HU); "
                          f"arterial if aortic enhancement (HU - {t('blood_baseline_hu'):g}) >= "
                          f"{t('arterial_aorta_portal_ratio'):g} x the portal vein's; delayed if aorta <= "
                          f"{t('delayed_aorta_max_hu'):g} HU within {t('delayed_aorta_portal_hu'):g} HU of the portal "
                          f"vein; portal venous if portal enhancement >= {t('portal_min_enhancement_hu'):g} HU; with "
                          f"the aorta alone, arterial if kidney cortex (within {t('kidney_cortex_mm'):g} mm of the "
                          f"surface) exceeds medulla (deeper than {t('kidney_medulla_mm'):g} mm) by >= "
                          f"{t('corticomedullary_hu'):g} HU; otherwise indeterminate",
        "phase": "CaseFacts.contrast_phase (estimated by the imaging stage) -> feature:phase_<phase>; "
                 "'indeterminate' gives no phase feature",
        "unenhanced_le_10hu": f"lesion mean HU <= {t('adenoma_max_hu'):g} on a case whose phase is non_contrast",
        "history_pancreatitis": "the given pathology report of the case or lesion names pancreatitis",
        "short_axis": f"lymph nodes (lesion kind lymph_node): short axis >= {t('node_short_axis_mm'):g} mm or below",
    }
