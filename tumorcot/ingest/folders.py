"""Case-per-folder collections: AbdomenAtlas and the TotalSegmentator dataset.

Both keep one folder per case with the CT and a folder of per-structure binary masks::

    ROOT/BDMAP_00000001/ct.nii.gz
    ROOT/BDMAP_00000001/segmentations/liver.nii.gz, liver_lesion.nii.gz, ...
    ROOT/s0001/ct.nii.gz
    ROOT/s0001/segmentations/liver.nii.gz, kidney_cyst_left.nii.gz, ...

The same ``segmentations/`` folder serves as organ mask (organ names) and, when it holds a
lesion name, as lesion mask (lesion names); measurement reads each role's files only.
"""

from __future__ import annotations

from pathlib import Path

from tumorcot.errors import ManifestError
from tumorcot.imaging.structures import MASK_SUFFIXES, mask_files, resolve
from tumorcot.ingest.common import FoundCase

CT_NAMES = tuple(f"ct{s}" for s in MASK_SUFFIXES)
MASK_FOLDERS = ("segmentations", "ground_truth", "masks")


def _has_lesion(names) -> bool:
    for name in names:
        try:
            if resolve(name).role == "lesion":
                return True
        except KeyError:
            pass
    return False


def find_folder_cases(root: Path, *, lesion_provenance: str = "annotated") -> list[FoundCase]:
    """Every ``ROOT/<case>/`` with a ``ct.*`` file, its masks from ``segmentations/``."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root} is not a folder")
    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        ct = next((folder / n for n in CT_NAMES if (folder / n).is_file()), None)
        if ct is None:
            continue
        masks = next((folder / n for n in MASK_FOLDERS if (folder / n).is_dir()), None)
        names = list(mask_files(masks)) if masks else []
        cases.append(FoundCase(name=folder.name, ct=ct, organ_mask=masks if names else None,
                               lesion_mask=masks if _has_lesion(names) else None, structures=names,
                               lesion_provenance=lesion_provenance))
    if not cases:
        raise ManifestError(f"no case folder with a ct.nii.gz under {root} (expected ROOT/<case>/ct.nii.gz "
                            "and ROOT/<case>/segmentations/<structure>.nii.gz)")
    return cases
