"""Masks named by structure: folders of per-structure binary masks and label files with names.

Public collections ship masks in two shapes besides TotalSegmentator's multilabel map:
a folder with one binary mask per structure (AbdomenAtlas ``segmentations/liver_lesion.nii.gz``,
TotalSegmentator's default output) and a label file whose values are named elsewhere (nnU-Net
``dataset.json``). Both are turned into the two maps measurement reads, on the CT grid:

- the organ map, in TotalSegmentator ``total`` ids;
- the lesion map, one value per lesion kind, with its ``{value: kind}`` table.

Names go through one table (``tumorcot/data/structures.json``): every TotalSegmentator name is
itself, other spellings are synonyms, a both-sides structure (``kidney``) is split at the body
midline, lesion names carry a kind and the organ whose lesions they annotate, and known names
that are not used are skipped. An unknown name is an error naming it, never a guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tumorcot.errors import CaseInputError
from tumorcot.imaging.io import load_mask
from tumorcot.vocabulary import LUNG_LOBES, label_ids, task_labels

MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


@dataclass(frozen=True)
class Structure:
    """What a structure name means to tumorcot."""

    role: str  # "organ" | "lesion" | "ignored"
    organs: tuple[str, ...] = ()  # TotalSegmentator names (two for a structure split by side)
    kind: str | None = None  # lesions only
    reason: str | None = None  # ignored only


@dataclass
class StructureMaps:
    """Organ and lesion maps built from named masks, plus what the names covered."""

    organ_map: sitk.Image | None = None
    lesion_map: sitk.Image | None = None
    lesion_labels: dict[int, str] = field(default_factory=dict)
    annotated_organs: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(resources.files("tumorcot.data").joinpath("structures.json").read_text())


def normalise(name: str) -> str:
    """``"Gall-Bladder"`` -> ``"gall_bladder"``; file suffixes removed."""
    for suffix in MASK_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


@lru_cache(maxsize=1)
def _total_lower() -> dict[str, str]:
    """TotalSegmentator names by their lower-case form (``vertebrae_l1`` -> ``vertebrae_L1``)."""
    return {name.lower(): name for name in label_ids()}


def _organ_names(name: str | None) -> tuple[str, ...]:
    """TotalSegmentator names an organ word covers (``kidney`` -> both kidneys, ``lung`` -> lobes)."""
    if name is None:
        return ()
    if name == "lung":
        return LUNG_LOBES
    return tuple(_table()["split_by_side"].get(name, [name]))


def resolve(name: str) -> Structure:
    """The meaning of one structure name; ``KeyError`` with the name when it is unknown."""
    key = normalise(name)
    table = _table()
    if key in table["lesions"]:
        entry = table["lesions"][key]
        return Structure("lesion", _organ_names(entry.get("organ")), kind=entry["kind"])
    if key in _total_lower():
        return Structure("organ", (_total_lower()[key],))
    if key in table["organs"]:
        return Structure("organ", (table["organs"][key],))
    if key in table["split_by_side"]:
        return Structure("organ", tuple(table["split_by_side"][key]))
    if key in table["ignored"]:
        return Structure("ignored", reason=table["ignored"][key])
    raise KeyError(name)


def organ_names(words) -> list[str]:
    """TotalSegmentator organ names for organ words (``kidney`` -> both kidneys, ``lung`` -> its
    lobes, synonyms resolved), in order, without repeats; ``KeyError`` for a word that names no
    organ."""
    out = []
    for word in words:
        structure = resolve(word)
        organs = structure.organs if structure.role == "organ" else ()
        if normalise(word) == "lung":
            organs = LUNG_LOBES
        if not organs:
            raise KeyError(word)
        out += [o for o in organs if o not in out]
    return out


def unknown_names(names) -> list[str]:
    """The names ``resolve`` does not know, in the given order."""
    out = []
    for name in names:
        try:
            resolve(name)
        except KeyError:
            out.append(name)
    return out


def mask_files(folder: Path) -> dict[str, Path]:
    """``{structure name: file}`` of a per-structure mask folder (hidden files skipped)."""
    files = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.name.lower().endswith(MASK_SUFFIXES):
            files[normalise(path.name)] = path
    return files


def _midline_split(binary: np.ndarray, ct: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) halves of a both-sides mask, cut at the mid x (LPS) of its own extent: the
    two organs lie either side of the spine, so the middle of their joint extent is the midline."""
    ks, js, is_ = np.nonzero(binary)
    points = np.stack([is_, js, ks], axis=1).astype(float)
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    x_mm = (points * np.array(ct.GetSpacing())) @ direction.T[:, 0] + ct.GetOrigin()[0]
    middle = (x_mm.min() + x_mm.max()) / 2
    left, right = np.zeros_like(binary), np.zeros_like(binary)
    left[ks[x_mm > middle], js[x_mm > middle], is_[x_mm > middle]] = True  # LPS: +x = patient left
    right[ks[x_mm <= middle], js[x_mm <= middle], is_[x_mm <= middle]] = True
    return left, right


class _Builder:
    """Paints binary structure masks into an organ map and a lesion map on the CT grid."""

    def __init__(self, ct: sitk.Image, *, case: str):
        self.ct, self.case = ct, case
        shape = sitk.GetArrayViewFromImage(ct).shape
        self.organs = np.zeros(shape, dtype=np.uint8)
        self.lesions = np.zeros(shape, dtype=np.uint8)
        self.kinds: dict[str, int] = {}
        self.annotated: list[str] = []
        self.skipped: dict[str, str] = {}
        self.has_organ = self.has_lesion = False

    def add(self, name: str, binary: np.ndarray, *, roles: set[str]) -> None:
        try:
            structure = resolve(name)
        except KeyError:
            raise CaseInputError(f"unknown structure name {name!r}: add it to tumorcot/data/structures.json "
                                 "or rename the mask", case=self.case) from None
        if structure.role == "ignored" or structure.role not in roles:
            self.skipped[name] = structure.reason or f"{structure.role} mask, not used here"
            return
        if structure.role == "organ":
            self.has_organ = True
            parts = ([binary] if len(structure.organs) == 1 else
                     _midline_split(binary, self.ct) if binary.any() else [binary, binary])
            for organ, part in zip(structure.organs, parts):
                self.organs[part] = label_ids()[organ]
            return
        self.has_lesion = True
        value = self.kinds.setdefault(structure.kind, len(self.kinds) + 1)
        self.lesions[binary] = value
        for organ in structure.organs:
            if organ not in self.annotated:
                self.annotated.append(organ)

    def result(self) -> StructureMaps:
        def image(array):
            out = sitk.GetImageFromArray(array)
            out.CopyInformation(self.ct)
            return out

        return StructureMaps(
            organ_map=image(self.organs) if self.has_organ else None,
            lesion_map=image(self.lesions) if self.has_lesion else None,
            lesion_labels={v: k for k, v in self.kinds.items()},
            annotated_organs=self.annotated, skipped=self.skipped)


def load_structure_folder(folder: Path, ct: sitk.Image, *, case: str, roles: set[str]) -> StructureMaps:
    """Organ and/or lesion maps (``roles``) from a folder of per-structure binary masks."""
    files = mask_files(folder)
    if not files:
        raise CaseInputError(f"mask folder {Path(folder).name!r} holds no mask file ({', '.join(MASK_SUFFIXES)})",
                             case=case)
    builder = _Builder(ct, case=case)
    for name, path in files.items():
        try:
            role = resolve(name).role
        except KeyError:
            role = "unknown"
        if role in ("organ", "lesion") and role not in roles:
            continue  # the other map's structures: not read at all
        mask = load_mask(path, ct, case=case, what=f"mask {path.name}")
        builder.add(name, sitk.GetArrayViewFromImage(mask) != 0, roles=roles)
    return builder.result()


def load_named_labels(path: Path, names: dict[int, str], ct: sitk.Image, *, case: str,
                      roles: set[str]) -> StructureMaps:
    """Organ and/or lesion maps from one label file whose values ``names`` names (nnU-Net style)."""
    image = load_mask(path, ct, case=case, what=Path(path).name)
    labels = sitk.GetArrayViewFromImage(image)  # a view: ``image`` must stay alive while it is read
    builder = _Builder(ct, case=case)
    present = set(np.unique(labels).tolist()) - {0}
    extra = sorted(present - set(names))
    if extra:
        raise CaseInputError(f"label file {Path(path).name} has value(s) {extra} that mask_labels does not name",
                             case=case)
    for value, name in sorted(names.items()):
        if value != 0:
            builder.add(name, labels == value, roles=roles)
    return builder.result()


@dataclass
class CaseMasks:
    """The maps one case's measurement reads, and where its lesions come from."""

    organ_mask: sitk.Image | None
    lesion_mask: sitk.Image | None
    lesion_labels: dict[int, str] | None
    annotated_organs: list[str]
    lesion_provenance: str | None


def case_masks(case, ct: sitk.Image) -> CaseMasks:
    """Organ and lesion maps of ``case`` (a ``CaseInput``) on the CT grid, from whichever form
    its manifest gives: a TotalSegmentator label map, a label file named by ``mask_labels``, a
    folder of per-structure masks; lesions predicted by TotalSegmentator subtasks only where the
    manifest gives no lesion mask."""
    label = case.label
    organ = lesion = None
    lesion_labels = case.lesion_labels
    annotated: list[str] = []
    if case.organ_mask is not None:
        if Path(case.organ_mask).is_dir():
            organ = load_structure_folder(case.organ_mask, ct, case=label, roles={"organ"}).organ_map
        elif case.mask_labels:
            organ = load_named_labels(case.organ_mask, case.mask_labels, ct, case=label, roles={"organ"}).organ_map
        else:
            organ = load_mask(case.organ_mask, ct, case=label, what="organ_mask")
    provenance = None
    if case.lesion_mask is not None:
        provenance = case.lesion_provenance
        if Path(case.lesion_mask).is_dir() or case.mask_labels:
            maps = (load_structure_folder(case.lesion_mask, ct, case=label, roles={"lesion"})
                    if Path(case.lesion_mask).is_dir() else
                    load_named_labels(case.lesion_mask, case.mask_labels, ct, case=label, roles={"lesion"}))
            if maps.lesion_map is None:
                raise CaseInputError("lesion_mask names no lesion structure (only organs or unused names)",
                                     case=label)
            lesion, lesion_labels, annotated = maps.lesion_map, maps.lesion_labels, maps.annotated_organs
        else:
            lesion = load_mask(case.lesion_mask, ct, case=label, what="lesion_mask")
    elif case.predicted_masks:
        lesion, lesion_labels, annotated = _predicted_lesions(case, ct)
        provenance = "model-predicted"
    return CaseMasks(organ, lesion, lesion_labels, annotated, provenance)


def _predicted_lesions(case, ct: sitk.Image):
    """One lesion map from the lesion labels of every TotalSegmentator subtask output."""
    values = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=np.uint8)
    kinds: dict[str, int] = {}
    annotated: list[str] = []
    for task, path in sorted(case.predicted_masks.items()):
        maps = load_named_labels(path, task_labels(task), ct, case=case.label, roles={"lesion"})
        annotated += [organ for organ in maps.annotated_organs if organ not in annotated]
        if maps.lesion_map is None:
            continue
        view = sitk.GetArrayViewFromImage(maps.lesion_map)
        for value, kind in maps.lesion_labels.items():
            values[view == value] = kinds.setdefault(kind, len(kinds) + 1)
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(ct)
    return image, {v: k for k, v in kinds.items()}, annotated
