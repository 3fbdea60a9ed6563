"""Hand-built facts for unit tests of generation and calibration (measurement is tested on
real and phantom volumes elsewhere)."""

from __future__ import annotations

from tumorcot.schemas import Box, CaseFacts, CTInfo, LesionFacts, OrganFacts, PathologyLabels


def box(a: float, b: float) -> Box:
    return Box(voxel_min=(1, 1, 1), voxel_max=(5, 5, 5), normalized=(a, a, a, b, b, b))


def organ(name: str, label_id: int, volume_ml: float, mean_hu: float, count: int, side=None) -> OrganFacts:
    return OrganFacts(name=name, label_id=label_id, side=side, voxel_count=1000, volume_ml=volume_ml,
                      mean_hu=mean_hu, std_hu=10.0, centroid_mm=(0, 0, 0), bbox=box(0.2, 0.6), lesion_count=count)


def lesion(lid: str, organ_name: str, long_mm: float, hu: float, organ_hu: float, side=None, **kw) -> LesionFacts:
    diff = hu - organ_hu
    att = "hypodense" if diff < -10 else "hyperdense" if diff > 10 else "isodense"
    return LesionFacts(id=lid, organ=organ_name, organ_overlap_fraction=1.0, side=side, voxel_count=100,
                       volume_ml=round(long_mm ** 3 / 2000, 2), long_axis_mm=long_mm, short_axis_mm=long_mm * 0.7,
                       axial_slice=12, max_diameter_3d_mm=long_mm * 1.1, mean_hu=hu, std_hu=8.0,
                       hu_difference=diff, attenuation=att, centroid_mm=(0, 0, 0), bbox=box(0.3, 0.4),
                       core_median_hu=hu, **kw)


def case_facts(pathology: PathologyLabels | None = None) -> CaseFacts:
    """Liver with two hypodense lesions, pancreas with one, left kidney with a cyst, spleen clean."""
    return CaseFacts(
        case_id="c-test", patient_pseudo_id="p-test", study_pseudo_id="s-test",
        ct=CTInfo(size=(64, 64, 32), spacing_mm=(1.0, 1.0, 2.0), content_sha256="0" * 64),
        organs=[organ("liver", 5, 1500.0, 60.0, 2), organ("pancreas", 7, 80.0, 45.0, 1),
                organ("kidney_left", 3, 160.0, 35.0, 1, side="left"),
                organ("kidney_right", 2, 150.0, 35.0, 0, side="right"), organ("spleen", 1, 200.0, 50.0, 0)],
        lesions=[lesion("L1", "liver", 34.0, 20.0, 60.0), lesion("L2", "liver", 12.0, 25.0, 60.0),
                 lesion("L3", "pancreas", 27.0, 20.0, 45.0, margin="ill-defined", shape="irregular",
                        content="solid", vessel_contact_deg={"aorta": 90.0}),
                 lesion("L4", "kidney_left", 18.0, 8.0, 35.0, side="left", content="cystic", margin="well-defined")],
        has_organ_mask=True, has_lesion_mask=True, pathology=pathology, synthetic=True, source="unit-test")


def sarcoma_case(shared_data, pathology: str) -> "CaseInput":
    """The IBSI soft-tissue sarcoma CT (STS_001, about 11.5 cm) with its tumour mask and ``pathology``."""
    from tumorcot.schemas import CaseInput

    sts = shared_data / "ibsi_sts" / "STS_001"
    return CaseInput(row=1, patient_id="STS-001", study_id="1", ct=sts / "CT_image.nii.gz",
                     lesion_mask=sts / "CT_mask.nii.gz", lesion_labels="1:tumor", pathology=pathology)
