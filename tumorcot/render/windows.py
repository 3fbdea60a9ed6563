"""CT display windows (width / level in HU) and windowing HU -> uint8 grey.

A window of width ``W`` and level ``L`` shows HU from ``L - W/2`` (black, 0) to ``L + W/2``
(white, 255) linearly; values outside are clipped:

    grey = round(255 * (clip(hu, L - W/2, L + W/2) - (L - W/2)) / W)

(in float64, rounding half to even, as numpy does). Window presets are the "standard window settings"
of Radiopaedia's article *Windowing (CT)* (radiopaedia.org/articles/windowing-ct, section
"Standard window settings", abdomen and chest/spine rows): abdomen soft tissues W400 L50,
liver W150 L30, lungs W1500 L-600, bone W1800 L400.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tumorcot.vocabulary import organ_family

WINDOW_SOURCE = "Radiopaedia, 'Windowing (CT)', section 'Standard window settings'"


@dataclass(frozen=True)
class Window:
    name: str
    width_hu: float
    level_hu: float

    @property
    def low_hu(self) -> float:
        return self.level_hu - self.width_hu / 2

    @property
    def high_hu(self) -> float:
        return self.level_hu + self.width_hu / 2

    def as_meta(self) -> dict:
        """What an export stores in a record's meta: enough to invert the grey levels."""
        return {"name": self.name, "width_hu": self.width_hu, "level_hu": self.level_hu, "source": WINDOW_SOURCE}


WINDOWS: dict[str, Window] = {
    "abdomen": Window("abdomen", 400.0, 50.0),   # abdominal soft tissues
    "liver": Window("liver", 150.0, 30.0),       # narrow: liver lesions against parenchyma
    "lung": Window("lung", 1500.0, -600.0),      # aerated lung and nodules
    "bone": Window("bone", 1800.0, 400.0),       # cortical and trabecular bone
}

BONE_PREFIXES = ("vertebrae_", "rib_", "hip_", "femur_", "humerus_", "scapula_", "clavicula_")
BONE_NAMES = frozenset({"sacrum", "sternum", "skull", "costal_cartilages"})
"""TotalSegmentator ``total`` structures shown in the bone window."""


def window_for(organ: str | None) -> Window:
    """The window a structure is shown in: liver, lung (lobes), bone, else abdomen."""
    if organ is None:
        return WINDOWS["abdomen"]
    family = organ_family(organ)
    if family in ("liver", "lung"):
        return WINDOWS[family]
    if organ in BONE_NAMES or organ.startswith(BONE_PREFIXES):
        return WINDOWS["bone"]
    return WINDOWS["abdomen"]


def apply_window(hu: np.ndarray, window: Window) -> np.ndarray:
    """HU array -> uint8 grey levels of the same shape (see the module docstring)."""
    hu = np.clip(np.asarray(hu, dtype=np.float64), window.low_hu, window.high_hu)
    return np.rint((hu - window.low_hu) * 255.0 / window.width_hu).astype(np.uint8)
