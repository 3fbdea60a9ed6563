"""nnU-Net raw folders (MSD, KiTS, FLARE): ``dataset.json``, ``imagesTr/``, ``labelsTr/``.

``dataset.json`` names the label values in one of two forms:

- v1 (MSD): ``"labels": {"0": "background", "1": "liver", "2": "cancer"}``, cases listed under
  ``"training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}]``,
  the channel under ``"modality": {"0": "CT"}``;
- v2: ``"labels": {"background": 0, "kidney": 1, "tumor": 2}``, ``"channel_names": {"0": "CT"}``,
  ``"file_ending": ".nii.gz"``, images ``imagesTr/<case>_0000<ending>`` beside
  ``labelsTr/<case><ending>``.

Each label file becomes both the organ mask (organ names) and the lesion mask (lesion names),
with ``mask_labels`` naming its values. Region-based v2 labels (a name mapped to a list of
values) and non-CT channels are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from tumorcot.errors import ManifestError
from tumorcot.imaging.structures import resolve
from tumorcot.ingest.common import FoundCase


def label_names(dataset: dict, *, where: str) -> dict[int, str]:
    """``{value: name}`` from either form of ``dataset.json`` ``labels`` (background dropped)."""
    labels = dataset.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ManifestError(f"{where}: no 'labels' object")
    out = {}
    for key, value in labels.items():
        if isinstance(value, list):
            raise ManifestError(f"{where}: region-based label {key!r} -> {value} is not supported; "
                                "give one value per structure")
        if str(key).lstrip("-").isdigit():  # v1: "1": "liver"
            number, name = int(key), str(value)
        elif isinstance(value, int) or str(value).isdigit():  # v2: "liver": 1
            number, name = int(value), str(key)
        else:
            raise ManifestError(f"{where}: label entry {key!r}: {value!r} is neither v1 nor v2 form")
        if number != 0:
            out[number] = name
    return out


def _channels(dataset: dict) -> dict:
    return dataset.get("channel_names") or dataset.get("modality") or {}


def find_nnunet_cases(root: Path) -> list[FoundCase]:
    root = Path(root)
    spec = root / "dataset.json"
    if not spec.is_file():
        raise ManifestError(f"{root} has no dataset.json (an nnU-Net raw folder has dataset.json, imagesTr/, "
                            "labelsTr/)")
    try:
        dataset = json.loads(spec.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{spec} is not JSON: {exc.msg}") from None
    channels = _channels(dataset)
    if len(channels) != 1 or str(next(iter(channels.values()))).upper() != "CT":
        raise ManifestError(f"{spec}: tumorcot reads single-channel CT; channels are {channels or 'not given'}")
    names = label_names(dataset, where=str(spec))
    roles = {_role(n) for n in names.values()}
    cases = []
    for image, label in _pairs(root, dataset):
        cases.append(FoundCase(
            name=label.name.split(".")[0], ct=image, mask_labels=names, structures=list(names.values()),
            organ_mask=label if "organ" in roles else None, lesion_mask=label if "lesion" in roles else None))
    if not cases:
        raise ManifestError(f"no labelled training case under {root}/labelsTr")
    return cases


def _role(name: str) -> str:
    try:
        return resolve(name).role
    except KeyError:
        return "unknown"


def _pairs(root: Path, dataset: dict) -> list[tuple[Path, Path]]:
    """(image, label) of every labelled case: from ``training`` (v1) or by file name (v2)."""
    if isinstance(dataset.get("training"), list) and dataset["training"]:
        pairs = [(root / t["image"], root / t["label"]) for t in dataset["training"]]
    else:
        ending = dataset.get("file_ending", ".nii.gz")
        pairs = []
        for label in sorted((root / "labelsTr").glob(f"*{ending}")):
            case = label.name[: -len(ending)]
            pairs.append((root / "imagesTr" / f"{case}_0000{ending}", label))
    missing = [str(image.relative_to(root)) for image, _ in pairs if not image.is_file()]
    if missing:
        raise ManifestError(f"{len(missing)} image(s) listed or implied by labelsTr are missing, "
                            f"e.g. {missing[0]}")
    return pairs
