"""Measured facts of one case: every number later text may state comes from here.

Coordinates. Voxel indices are SimpleITK ``(i, j, k)`` on the CT grid. Millimetres are patient
coordinates in DICOM LPS (x to the patient's Left, y to Posterior, z to Superior). Normalised
boxes are six numbers ``(x0, y0, z0, x1, y1, z1)`` in 0-1 over the CT's field of view with the
axes reoriented to LPS: 0 = the patient-right / anterior / inferior edge of the volume,
1 = the left / posterior / superior edge (``BOX_CONVENTION``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tumorcot.schemas.case import PathologyLabels

BOX_CONVENTION = (
    "normalised (x0, y0, z0, x1, y1, z1) in the volume's field of view, LPS axes: "
    "x 0=patient right..1=left, y 0=anterior..1=posterior, z 0=inferior..1=superior"
)


class Box(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voxel_min: tuple[int, int, int]
    voxel_max: tuple[int, int, int] = Field(description="inclusive")
    normalized: tuple[float, float, float, float, float, float]


class Fact(BaseModel):
    """One citable number or category, flattened from the structured facts."""

    id: str
    subject: str
    name: str
    value: float | str
    unit: str | None = None


class CTInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    modality: str = "CT"
    input_format: Literal["nifti", "dicom", "other"] = "nifti"
    content_sha256: str


class OrganFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    label_id: int
    side: str | None = None
    voxel_count: int
    volume_ml: float
    mean_hu: float
    std_hu: float
    centroid_mm: tuple[float, float, float]
    bbox: Box
    lesion_count: int = 0
    truncated: bool = Field(default=False, description="touches the edge of the field of view: "
                            "volume and box are of the visible part only")
    reference_hu: float | None = Field(default=None, description="median HU of the organ minus its "
                                       "lesions, eroded ~2 mm; measured for lesion hosts and the contrast-"
                                       "phase vessels; None for hollow organs and the gallbladder")
    reference_iqr_hu: float | None = Field(default=None, description="interquartile range of that region")
    length_mm: float | None = Field(default=None, description="kidneys: extent along the principal (long) axis, "
                                    "edge to edge (imaging.diameters.principal_length_mm); of the visible part "
                                    "when truncated; None for other organs")


class LesionFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="L1, L2, ... ordered by decreasing volume")
    kind: str = "lesion"
    organ: str = Field(description="host organ name, or 'outside_organs'")
    organ_overlap_fraction: float = Field(description="share of lesion voxels inside the host")
    other_organs: list[str] = []
    side: str | None = None
    voxel_count: int
    volume_ml: float
    long_axis_mm: float = Field(description="longest in-plane (axial) diameter")
    short_axis_mm: float = Field(description="longest diameter perpendicular to it, same slice")
    axial_slice: int = Field(description="k index of the slice holding the longest diameter")
    max_diameter_3d_mm: float
    mean_hu: float
    std_hu: float
    hu_difference: float | None = Field(
        default=None, description="lesion core median HU - host organ reference HU (OrganFacts.reference_hu)")
    attenuation: Literal["hypodense", "isodense", "hyperdense", "not assessed"] | None = Field(
        default=None, description="None without a host organ; 'not assessed' when the host has no "
        "reference HU (hollow organ, gallbladder, too small after erosion)")
    centroid_mm: tuple[float, float, float]
    bbox: Box
    # Measurement v2 (imaging issue); None where not measured.
    sub_location: str | None = None
    sub_location_method: str | None = None
    shape: Literal["round", "oval", "lobulated", "irregular"] | None = None
    sphericity: float | None = None
    elongation: float | None = None
    margin: Literal["well-defined", "ill-defined", "not assessable"] | None = None
    boundary_gradient_hu_per_mm: float | None = None
    content: Literal["cystic", "calcified", "solid", "fatty"] | None = Field(
        default=None, description="from the eroded core: cystic = fluid attenuation")
    vessel_contact_deg: dict[str, float] = {}
    provenance: Literal["annotated", "model-predicted"] = Field(
        default="annotated", description="model-predicted: from a TotalSegmentator subtask, not a human annotation")
    truncated: bool = Field(default=False, description="touches the edge of the field of view: "
                            "volume, box and diameters are of the visible part only")
    core_median_hu: float | None = None
    core_iqr_hu: float | None = None
    calcified_fraction: float | None = Field(default=None, description="share of core voxels > 130 HU")
    lobulation: float | None = None
    edge_contrast_hu: float | None = Field(default=None, description="|median inside - median outside| "
                                           "across the boundary")
    edge_sharpness: float | None = Field(default=None, description="edge contrast over the boundary "
                                         "width, normalised (see imaging.margin)")
    mask_values: list[int] = Field(default=[], description="lesion-mask values of this lesion's voxels")


class TCheck(BaseModel):
    """A given T category compared with the T the AJCC size rule gives for the measured size."""

    model_config = ConfigDict(extra="forbid")

    lesion_id: str
    organ: str
    given_t: str
    size_t: str | None = Field(description="T by the size rule; None where size alone does not decide it")
    greatest_dimension_cm: float
    agrees: bool | None = Field(description="None where the size rule cannot decide (e.g. T4 by extent)")
    rule: str = Field(description="the KG staging node, e.g. staging:pancreas:T")
    band_low_cm: float | None = Field(None, description="the size rule's lower cut-off of size_t (None: lowest band)")
    band_high_cm: float | None = Field(None, description="the size rule's upper cut-off of size_t (None: highest band)")
    below_high_cm: float | None = Field(None, description="band_high_cm minus the greatest dimension")


ContrastPhase = Literal["non_contrast", "arterial", "portal_venous", "delayed", "indeterminate"]


class CaseFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: str = Field(description="pseudonymous: salted hash of patient and study ids")
    patient_pseudo_id: str
    study_pseudo_id: str
    ct: CTInfo
    organs: list[OrganFacts]
    lesions: list[LesionFacts]
    has_organ_mask: bool
    has_lesion_mask: bool
    annotated_organs: list[str] = Field(default=[], description="organs whose lesions the lesion mask annotates; "
                                        "empty = every organ with a mask. Negative claims only for these")
    segmentation_backend: str = "precomputed"
    pathology: PathologyLabels | None = None
    lesion_pathology: dict[str, PathologyLabels] = Field(default={}, description="labels per lesion id")
    t_checks: list[TCheck] = []
    synthetic: bool = False
    source: str | None = None
    input_sha256: dict[str, str] = {}
    contrast_phase: ContrastPhase = Field(default="indeterminate",
                                          description="estimated from measured HU (imaging.phase)")
    phase_evidence: dict[str, float] = Field(default={}, description="measured HU used, by structure")

    def organ(self, name: str) -> OrganFacts | None:
        return next((o for o in self.organs if o.name == name), None)

    def lesions_in(self, organ: str) -> list[LesionFacts]:
        return [lesion for lesion in self.lesions if lesion.organ == organ]

    def is_annotated(self, organ: str) -> bool:
        """Whether the lesion mask was drawn for ``organ``: a "no lesion" claim about it is
        verified only then (and only with a lesion mask at all)."""
        if not self.has_lesion_mask:
            return False
        return not self.annotated_organs or organ in self.annotated_organs

    def given_labels(self, lesion_id: str) -> PathologyLabels | None:
        """The labels given for one lesion, or None (case-level labels: see ``agents.chains``)."""
        return self.lesion_pathology.get(lesion_id)

    def fact_table(self) -> dict[str, Fact]:
        """Every citable fact by id: ``case.<field>`` (contrast phase and its HU evidence),
        ``organ:<name>.<field>`` and ``lesion:<id>.<field>``."""
        table: dict[str, Fact] = {}

        def add(subject: str, name: str, value, unit: str | None = None) -> None:
            if value is None:
                return
            fid = f"{subject}.{name}"
            table[fid] = Fact(id=fid, subject=subject, name=name, value=value, unit=unit)

        add("case", "contrast_phase", self.contrast_phase)
        for structure, hu in self.phase_evidence.items():
            add("case", f"phase_{structure}_hu", hu, "HU")
        for o in self.organs:
            s = f"organ:{o.name}"
            add(s, "volume_ml", o.volume_ml, "mL")
            add(s, "mean_hu", o.mean_hu, "HU")
            add(s, "reference_hu", o.reference_hu, "HU")
            add(s, "truncated", "yes" if o.truncated else None)
            add(s, "lesion_count", o.lesion_count)
            add(s, "side", o.side)
            add(s, "length_mm", o.length_mm, "mm")
            add(s, "length_cm", None if o.length_mm is None else round(o.length_mm / 10, 1), "cm")
            for axis, v in zip(("x0", "y0", "z0", "x1", "y1", "z1"), o.bbox.normalized):
                add(s, f"box_{axis}", v)
        for les in self.lesions:
            s = f"lesion:{les.id}"
            add(s, "organ", les.organ)
            add(s, "kind", les.kind)
            add(s, "side", les.side)
            add(s, "volume_ml", les.volume_ml, "mL")
            add(s, "long_axis_mm", les.long_axis_mm, "mm")
            add(s, "short_axis_mm", les.short_axis_mm, "mm")
            add(s, "long_axis_cm", round(les.long_axis_mm / 10, 1), "cm")
            add(s, "max_diameter_3d_mm", les.max_diameter_3d_mm, "mm")
            add(s, "max_diameter_3d_cm", round(les.max_diameter_3d_mm / 10, 1), "cm")  # AJCC greatest dimension
            add(s, "axial_slice", les.axial_slice)
            add(s, "mean_hu", les.mean_hu, "HU")
            add(s, "hu_difference", les.hu_difference, "HU")
            add(s, "attenuation", les.attenuation)
            add(s, "sub_location", les.sub_location)
            add(s, "shape", les.shape)
            add(s, "margin", les.margin)
            add(s, "content", les.content)
            add(s, "truncated", "yes" if les.truncated else None)
            add(s, "core_median_hu", les.core_median_hu, "HU")
            add(s, "core_iqr_hu", les.core_iqr_hu, "HU")
            add(s, "calcified_fraction", les.calcified_fraction)
            add(s, "sub_location_method", les.sub_location_method)
            add(s, "sphericity", les.sphericity)     # the shape rule's inputs (imaging.shape)
            add(s, "elongation", les.elongation)
            add(s, "lobulation", les.lobulation)
            add(s, "edge_contrast_hu", les.edge_contrast_hu, "HU")   # the margin rule's (imaging.texture)
            add(s, "edge_sharpness", les.edge_sharpness)
            for vessel, deg in les.vessel_contact_deg.items():
                add(s, f"contact_{vessel}_deg", deg, "deg")
            for axis, v in zip(("x0", "y0", "z0", "x1", "y1", "z1"), les.bbox.normalized):
                add(s, f"box_{axis}", v)
        add("case", "slice_mm", round(self.ct.spacing_mm[2], 2), "mm")
        from tumorcot.schemas.derived import derived_facts   # organ findings, comparisons, relations
        for subject, name, value, unit in derived_facts(self):
            add(subject, name, value, unit)
        if self.pathology is not None:
            for name, value in self.pathology.model_dump().items():
                add("pathology", name, value)
        for lesion_id, labels in self.lesion_pathology.items():
            for name, value in labels.model_dump().items():
                add(f"pathology:{lesion_id}", name, value)
        for check in self.t_checks:
            s = f"tcheck:{check.lesion_id}"
            add(s, "given_t", check.given_t)
            add(s, "size_t", check.size_t)
            add(s, "greatest_dimension_cm", check.greatest_dimension_cm, "cm")
            add(s, "agrees", None if check.agrees is None else ("yes" if check.agrees else "no"))
            add(s, "band_low_cm", check.band_low_cm, "cm")
            add(s, "band_high_cm", check.band_high_cm, "cm")
            add(s, "below_high_cm", check.below_high_cm, "cm")
        return table
