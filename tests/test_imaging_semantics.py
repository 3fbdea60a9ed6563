"""Measurement semantics on real CT and the phantom: organ reference HU, content, margin, shape,
field-of-view truncation and contrast phase. Expected values are computed here independently
(numpy / scipy on the same voxels), never read back from the code under test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.imaging.measure import measure_lesions, measure_organs
from tumorcot.imaging.phantom import PHASE_HU, make_phantom
from tumorcot.imaging.phase import classify_phase, estimate_phase
from tumorcot.imaging.shape import shape_of
from tumorcot.vocabulary import ATTRIBUTE_VALUES, OUTSIDE_ORGANS, label_id

LIVER, GALLBLADDER, STOMACH = label_id("liver"), label_id("gallbladder"), label_id("stomach")


def _image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


@pytest.fixture(scope="module")
def totalseg(shared_data):
    """The 3 mm TotalSegmentator example CT with the organ mask made on it (same grid)."""
    folder = shared_data / "totalseg"
    ct = load_ct(folder / "example_ct_sm.nii.gz", case="ts").image
    organs = load_mask(folder / "example_seg.nii.gz", ct, case="ts", what="organs")
    return ct, organs


def _median_eroded(hu: np.ndarray, mask: np.ndarray) -> float:
    """Median HU after removing one voxel layer (3 mm voxels: the ~2 mm erosion is one voxel)."""
    core = ndimage.binary_erosion(mask, structure=np.ones((3, 3, 3), bool))
    return float(np.median(hu[core]))


def _liver_sphere(organ_array: np.ndarray, radius_mm: float) -> np.ndarray:
    """A ball at the deepest point of the liver, away from the first and last slices."""
    liver = organ_array == LIVER
    liver[:6], liver[-6:] = False, False
    depth = ndimage.distance_transform_edt(liver, sampling=(3, 3, 3))
    c = np.unravel_index(int(np.argmax(depth)), depth.shape)
    z, y, x = np.ogrid[: liver.shape[0], : liver.shape[1], : liver.shape[2]]
    return (((z - c[0]) * 3) ** 2 + ((y - c[1]) * 3) ** 2 + ((x - c[2]) * 3) ** 2) <= radius_mm**2


def test_gallbladder_as_liver_lesion_is_fluid(totalseg):
    ct, organs = totalseg
    organ_array = sitk.GetArrayFromImage(organs)
    hu = sitk.GetArrayViewFromImage(ct).astype(np.float64)
    lesion = organ_array == GALLBLADDER
    organ_array[lesion] = LIVER  # the gallbladder's voxels given as a lesion inside the liver
    organ_image, lesion_image = _image(organ_array, ct), _image(lesion.astype(np.uint8), ct)
    facts = measure_organs(ct, organ_image)
    [found] = measure_lesions(ct, lesion_image, organ_image, facts)
    assert found.organ == "liver" and found.content == "cystic"
    core = _median_eroded(hu, lesion)
    assert -10 <= core <= 20 and found.core_median_hu == pytest.approx(core)
    assert found.attenuation == "hypodense" and found.hu_difference < -30
    assert found.margin == "well-defined"  # fluid against liver: a real edge, 44 HU of contrast


def test_liver_reference_excludes_lesions_and_boundary(totalseg):
    ct, organs = totalseg
    organ_array = sitk.GetArrayViewFromImage(organs)
    hu = sitk.GetArrayViewFromImage(ct).astype(np.float64)
    sphere = _liver_sphere(np.array(organ_array), 15.0)
    facts = measure_organs(ct, organs)
    measure_lesions(ct, _image(sphere.astype(np.uint8), ct), organs, facts)
    liver = next(o for o in facts if o.name == "liver")
    expected = _median_eroded(hu, (organ_array == LIVER) & ~sphere)
    assert liver.reference_hu == pytest.approx(expected)
    assert liver.reference_hu != pytest.approx(liver.mean_hu, abs=0.5)  # median of the eroded organ


def test_sphere_in_homogeneous_liver_is_isodense_and_not_assessable(totalseg):
    ct, organs = totalseg
    sphere = _liver_sphere(sitk.GetArrayFromImage(organs), 15.0)
    facts = measure_organs(ct, organs)
    [found] = measure_lesions(ct, _image(sphere.astype(np.uint8), ct), organs, facts)
    assert found.organ == "liver" and not found.truncated
    assert found.attenuation == "isodense" and found.margin == "not assessable"


@pytest.mark.parametrize("noise_sd", [10.0, 20.0])
def test_mask_over_nothing_in_a_noisy_image_is_never_well_defined(totalseg, noise_sd):
    ct, organs = totalseg
    hu = sitk.GetArrayFromImage(ct).astype(np.float64)
    noisy = hu + np.random.default_rng(7).normal(0.0, noise_sd, hu.shape)
    noisy_ct = _image(np.round(noisy).astype(np.int16), ct)
    sphere = _liver_sphere(sitk.GetArrayFromImage(organs), 18.0)
    facts = measure_organs(noisy_ct, organs)
    [found] = measure_lesions(noisy_ct, _image(sphere.astype(np.uint8), ct), organs, facts)
    assert found.margin != "well-defined"
    assert found.attenuation == "isodense"


def test_lesion_in_a_hollow_organ_has_no_attenuation(totalseg):
    ct, organs = totalseg
    organ_array = sitk.GetArrayViewFromImage(organs)
    stomach = organ_array == STOMACH
    kk, jj, ii = np.nonzero(stomach)
    ball = np.zeros(stomach.shape, bool)
    ball[kk.min() + 4 : kk.min() + 7, :, :] = True
    lesion = ball & stomach
    facts = measure_organs(ct, organs)
    found = measure_lesions(ct, _image(lesion.astype(np.uint8), ct), organs, facts)
    assert found and all(f.organ == "stomach" and f.attenuation == "not assessed" for f in found)
    assert next(o for o in facts if o.name == "stomach").reference_hu is None


def test_truncation_flags_match_the_field_of_view(totalseg):
    ct, organs = totalseg
    organ_array = sitk.GetArrayViewFromImage(organs)
    facts = measure_organs(ct, organs)
    for organ in facts:
        where = organ_array == organ.label_id
        edge = (where[0].any() or where[-1].any() or where[:, 0].any() or where[:, -1].any()
                or where[:, :, 0].any() or where[:, :, -1].any())
        assert organ.truncated == edge, organ.name
    assert any(o.truncated for o in facts) and not all(o.truncated for o in facts)
    top = np.zeros(organ_array.shape, np.uint8)
    top[-3:, 40:45, 40:45] = 1  # a lesion reaching the last slice
    [found] = measure_lesions(ct, _image(top, ct), organs, facts)
    assert found.truncated


def test_sts_001_ibsi_sphericity_diameter_and_context(shared_data):
    folder = shared_data / "ibsi_sts" / "STS_001"
    ct = load_ct(folder / "CT_image.nii.gz", case="sts").image
    lesion = load_mask(folder / "CT_mask.nii.gz", ct, case="sts", what="lesions")
    no_organs = _image(np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8), ct)
    [tumour] = measure_lesions(ct, lesion, no_organs, [])
    assert tumour.sphericity == pytest.approx(0.80, abs=0.02)  # IBSI reference / pyradiomics
    assert tumour.max_diameter_3d_mm == pytest.approx(115.3, rel=0.01)
    assert tumour.organ == OUTSIDE_ORGANS and tumour.attenuation is None
    assert tumour.shape in ("oval", "lobulated") and not tumour.truncated


def test_disc_is_oval_not_lobulated_and_notched_shapes_are():
    z, y, x = np.mgrid[-40:41, -40:41, -40:41]
    disc = (x / 30.0) ** 2 + (y / 30.0) ** 2 + (z / 10.0) ** 2 <= 1  # 3:3:1
    found = shape_of(disc, (1.0, 1.0, 1.0))
    assert found["shape"] == "oval" and found["lobulation"] < 0.01
    lobes = np.zeros(x.shape, bool)
    for cx, cy, cz, r in ((-10, 0, 0, 12), (10, 4, 0, 11), (0, -10, 3, 10)):
        lobes |= (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r * r
    assert shape_of(lobes, (1.0, 1.0, 1.0))["shape"] == "lobulated"
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    star = (rho <= 15 + 8 * np.cos(7 * theta)) & (np.abs(z) < 15)
    assert shape_of(star, (1.0, 1.0, 1.0))["shape"] == "irregular"
    ball = x**2 + y**2 + z**2 <= 20**2
    assert shape_of(ball, (1.0, 1.0, 1.0))["shape"] == "round"


def _phase_of(ct, organs):
    organs_facts = measure_organs(ct, organs)
    return estimate_phase(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(organs), None,
                          organs_facts, ct.GetSpacing())


def test_totalseg_example_is_non_contrast(totalseg):
    ct, organs = totalseg
    phase, evidence = _phase_of(ct, organs)
    hu, labels = sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(organs)
    aorta = float(np.median(hu[labels == label_id("aorta")]))
    assert 35 <= aorta <= 50  # unenhanced blood
    assert phase == "non_contrast" and evidence["aorta"] == pytest.approx(aorta, abs=3)


def test_dicom_series_is_contrast_enhanced(shared_data):
    folder = shared_data / "totalseg"
    ct = load_ct(folder / "example_ct_dicom", case="dcm").image
    organs = load_mask(folder / "example_seg_dicom.nii.gz", ct, case="dcm", what="organs")
    phase, evidence = _phase_of(ct, organs)
    hu, labels = sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(organs)
    assert float(np.median(hu[labels == label_id("aorta")])) > 140
    assert phase == "portal_venous"  # aorta ~150 HU, portal vein ~140 HU: veins as bright as the aorta
    assert evidence["portal_vein"] > 120


@pytest.mark.parametrize("evidence, expected", [
    ({"aorta": 42, "portal_vein": 38}, "non_contrast"),
    ({"aorta": 310, "portal_vein": 120}, "arterial"),
    ({"aorta": 165, "portal_vein": 175}, "portal_venous"),
    ({"aorta": 120, "portal_vein": 112}, "delayed"),
    ({"aorta": 160, "portal_vein": 170, "urinary_bladder": 400}, "delayed"),  # excreted contrast
    ({"aorta": 260, "kidney_cortex": 200, "kidney_medulla": 90}, "arterial"),  # corticomedullary
    ({"aorta": 160}, "indeterminate"),  # enhanced, one vessel, no corticomedullary difference
    ({}, "indeterminate"),
])
def test_phase_rule(evidence, expected):
    assert classify_phase(evidence) == expected


@pytest.mark.parametrize("phase", sorted(PHASE_HU))
def test_phantom_phases_are_recovered(phase):
    ct, organs, lesions, _ = make_phantom(2, plan="none", phase=phase)
    assert _phase_of(ct, organs)[0] == phase


def test_phantom_variety_gives_every_value_and_its_own():
    ct, organs, lesions, truth = make_phantom(0, plan="variety")
    facts = measure_organs(ct, organs)
    found = measure_lesions(ct, lesions, organs, facts, lesion_labels={1: "tumor", 2: "cyst"})
    assert len(found) == len(truth.lesions)
    for expected in truth.lesions:
        lesion = min(found, key=lambda f: math.dist(f.centroid_mm, expected.centre_mm))
        assert math.dist(lesion.centroid_mm, expected.centre_mm) < expected.radius_mm / 2
        assert (lesion.shape, lesion.content, lesion.attenuation) == (
            expected.shape, expected.content, expected.attenuation), expected
        if expected.margin is not None:
            assert lesion.margin == expected.margin, expected
    values = {name: {getattr(f, field) for f in found} for name, field in
              (("shape", "shape"), ("margin", "margin"), ("content", "content"), ("density", "attenuation"))}
    for name, seen in values.items():
        assert set(ATTRIBUTE_VALUES[name]) <= seen, name
    assert "not assessable" in values["margin"] and "not assessed" in values["density"]


def _contact_whole_slice(organ_array, lesion, label) -> float:
    """Reference: the same rule on whole slices (8-connected sections, one-voxel rings)."""
    ring8 = np.ones((3, 3), bool)
    best = 0.0
    for k in range(lesion.shape[0]):
        if not lesion[k].any():
            continue
        vessel = organ_array[k] == label
        touching = ndimage.binary_dilation(lesion[k], ring8) & vessel
        parts, _ = ndimage.label(vessel, ring8)
        for part in np.unique(parts[touching]):
            section = parts == part
            ring = ndimage.binary_dilation(section, ring8) & ~section
            best = max(best, 360.0 * float((ring & lesion[k]).sum()) / float(ring.sum()))
    return round(best, 1)


def test_vessel_contact_in_a_crop_equals_the_whole_slice_rule():
    from tumorcot.imaging.components import lesion_components
    from tumorcot.imaging.vessels import VESSEL_LABELS, vessel_contact

    shape = (12, 300, 300)  # k, j, i at 0.8 mm: the crop margin (40 mm) is 50 voxels
    organ_array = np.zeros(shape, np.uint8)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    aorta, vein = label_id("aorta"), label_id("portal_vein_and_splenic_vein")
    organ_array[np.broadcast_to((x - 150) ** 2 + (y - 150) ** 2 <= 20**2, shape)] = aorta
    # a long vein (200 voxels = 160 mm) whose cross-section leaves the crop on both sides
    organ_array[:, 60:75, 40:260] = vein
    lesion = np.zeros(shape, bool)
    lesion[2:9, 75:135, 120:180] = True  # touches the vein's lower edge and the aorta's top
    lesion &= organ_array == 0
    [component] = lesion_components(lesion.astype(np.uint8), None)
    found = vessel_contact(organ_array, component.mask, component.vmin, component.vmax,
                           {aorta, vein}, (0.8, 0.8, 2.0))
    for label in (aorta, vein):
        expected = _contact_whole_slice(organ_array, lesion, label)
        assert expected > 0 and found[VESSEL_LABELS[label]] == pytest.approx(expected), label


def test_truncated_organs_and_lesions_get_no_box_record(totalseg, shared_data, tmp_path):
    from tumorcot.agents.offline import OfflineGenerator
    from tumorcot.knowledge_graph import load_kg
    from tumorcot.pipeline import extract_facts
    from tumorcot.schemas import CaseInput

    ct, organs = totalseg
    lesion = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8)
    lesion[-3:, 40:45, 40:45] = 1  # reaches the last slice
    lesion |= _liver_sphere(sitk.GetArrayFromImage(organs), 12.0).astype(np.uint8)
    sitk.WriteImage(_image(lesion, ct), str(tmp_path / "lesions.nii.gz"))
    folder = shared_data / "totalseg"
    case = CaseInput(row=1, patient_id="TS-trunc", study_id="1", ct=folder / "example_ct_sm.nii.gz",
                     organ_mask=folder / "example_seg.nii.gz", lesion_mask=tmp_path / "lesions.nii.gz")
    facts = extract_facts(case, b"s" * 32)
    assert facts.contrast_phase == "non_contrast" and facts.phase_evidence["aorta"] < 50
    assert facts.fact_table()["case.contrast_phase"].value == "non_contrast"
    truncated = {o.name for o in facts.organs if o.truncated} | {les.id for les in facts.lesions if les.truncated}
    whole = {o.name for o in facts.organs if not o.truncated} | {les.id for les in facts.lesions if not les.truncated}
    assert truncated and whole and any(les.truncated for les in facts.lesions)
    records = OfflineGenerator(load_kg()).generate(facts)
    boxes = {r.lesion_id or r.organ for r in records if r.task == "localization"}
    assert boxes and not boxes & truncated
    assert boxes <= whole
