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


@lru_cache(maxsize=1)
def label_ids() -> dict[str, int]:
    """``total`` structure name -> label id."""
    return {name: i for i, name in total_labels().items()}


def label_id(name: str) -> int:
    return label_ids()[name]


def label_name(label: int) -> str:
    """``total`` label id -> name (``label_<n>`` for an id outside the map)."""
    return total_labels().get(int(label), f"label_{int(label)}")


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
           "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right")


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
# maps facts to features with them, and ``attribute_rules`` states them.
THRESHOLDS = {
    "isodense_hu": (10.0, "HU", "RadGPT / AbdomenAtlas 3.0: attenuation compared with the host organ"),
    "fatty_hu": (-30.0, "HU", "Radiopaedia: Hounsfield unit (fat below -30 HU)"),
    "calcified_hu": (130.0, "HU", "Radiopaedia: Hounsfield unit (calcification above 130 HU)"),
    "calcified_share": (0.5, "", "tumorcot: majority of lesion voxels"),
    "cystic_hu_low": (0.0, "HU", "Radiopaedia: Hounsfield unit (water/fluid 0-20 HU)"),
    "cystic_hu_high": (20.0, "HU", "Radiopaedia: Hounsfield unit (water/fluid 0-20 HU)"),
    "cystic_std_hu": (15.0, "HU", "tumorcot: homogeneous fluid"),
    "well_defined_hu_per_mm": (3.0, "HU/mm", "tumorcot: mean boundary gradient"),
    "small_mm": (10.0, "mm", "tumorcot convention: sub-centimetre lesion"),
    "large_mm": (50.0, "mm", "tumorcot convention: lesion larger than 5 cm"),
    "round_sphericity": (0.9, "", "tumorcot: ITK roundness"),
    "round_elongation": (1.3, "", "tumorcot: ITK elongation"),
    "oval_sphericity": (0.8, "", "tumorcot: ITK roundness"),
    "oval_elongation": (1.5, "", "tumorcot: ITK elongation"),
    "lobulated_sphericity": (0.65, "", "tumorcot: ITK roundness"),
}


def threshold(name: str) -> float:
    return THRESHOLDS[name][0]


def attribute_rules() -> dict[str, str]:
    """The attribute rules in words, rendered from ``THRESHOLDS`` (never typed twice)."""
    t = threshold
    return {
        "attenuation": f"hypodense if lesion mean HU < host organ mean HU - {t('isodense_hu'):g}; hyperdense if > "
                       f"organ + {t('isodense_hu'):g}; else isodense (RadGPT-style comparison to the host organ)",
        "content": f"fatty if mean HU < {t('fatty_hu'):g}; calcified if >= {t('calcified_share'):g} of voxels > "
                   f"{t('calcified_hu'):g} HU; cystic if {t('cystic_hu_low'):g}-{t('cystic_hu_high'):g} HU with std <= "
                   f"{t('cystic_std_hu'):g} HU; else solid",
        "margin": f"well-defined if the mean boundary gradient >= {t('well_defined_hu_per_mm'):g} HU/mm",
        "shape": f"sphericity >= {t('round_sphericity'):g}: round if elongation <= {t('round_elongation'):g}, else "
                 f"oval; sphericity >= {t('oval_sphericity'):g}: oval if elongation > {t('oval_elongation'):g}, else "
                 f"lobulated; sphericity >= {t('lobulated_sphericity'):g}: lobulated; else irregular",
        "small": f"longest axial diameter < {t('small_mm'):g} mm",
        "large": f"longest axial diameter > {t('large_mm'):g} mm",
        "multiple": "more than one connected lesion component in the same organ",
        "vascular_contact": "any contact angle > 0 degrees with a segmented vessel",
    }
