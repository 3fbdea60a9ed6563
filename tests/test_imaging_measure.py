"""Organ and lesion measurement on real CT, the phantom and tiny synthetic volumes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from tumorcot.errors import GeometryError
from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.imaging.measure import ISODENSE_HU, measure_lesions, measure_organs
from tumorcot.imaging.phantom import make_phantom


@pytest.fixture(scope="module")
def totalseg(shared_data):
    ct = load_ct(shared_data / "totalseg" / "example_ct_sm.nii.gz", case="ts").image
    organs = load_mask(shared_data / "totalseg" / "example_seg.nii.gz", ct, case="ts", what="organs")
    return ct, organs


def test_real_organs_volume_boxes_and_sides(totalseg):
    ct, mask = totalseg
    organs = {o.name: o for o in measure_organs(ct, mask)}
    liver = organs["liver"]
    assert liver.label_id == 5 and liver.voxel_count == 38634
    assert liver.volume_ml == pytest.approx(38634 * 27 / 1000, rel=1e-6)  # ~1.04 L
    for organ in organs.values():
        assert all(0.0 <= v <= 1.0 for v in organ.bbox.normalized)
        x0, y0, z0, x1, y1, z1 = organ.bbox.normalized
        assert x0 < x1 and y0 < y1 and z0 < z1
        assert all(0 <= lo <= hi < n for lo, hi, n in
                   zip(organ.bbox.voxel_min, organ.bbox.voxel_max, ct.GetSize()))
    right, left = organs["kidney_right"], organs["kidney_left"]
    assert right.side == "right" and left.side == "left"
    assert right.centroid_mm[0] < left.centroid_mm[0]  # LPS: x grows to the patient's left
    # the CT is stored RAS-like (diag(-1,-1,1)); boxes are reoriented: right kidney nearer x0
    assert right.bbox.normalized[0] < left.bbox.normalized[0]
    assert liver.bbox.normalized[0] < organs["spleen"].bbox.normalized[0]


def test_real_organ_mean_hu_matches_numpy(totalseg):
    ct, mask = totalseg
    organs = {o.name: o for o in measure_organs(ct, mask)}
    hu = sitk.GetArrayViewFromImage(ct)[sitk.GetArrayViewFromImage(mask) == 5]
    assert organs["liver"].mean_hu == pytest.approx(hu.mean(), abs=0.01)


def test_real_tumour_without_organ_mask(shared_data):
    folder = shared_data / "ibsi_sts" / "STS_001"
    ct = load_ct(folder / "CT_image.nii.gz", case="sts").image
    lesion_mask = load_mask(folder / "CT_mask.nii.gz", ct, case="sts", what="lesions")
    lesions = measure_lesions(ct, lesion_mask, None, [])
    assert len(lesions) == 1
    tumour = lesions[0]
    assert tumour.id == "L1"
    assert tumour.volume_ml == pytest.approx(365.0, rel=0.01)
    voxels = sitk.GetArrayViewFromImage(ct)[sitk.GetArrayViewFromImage(lesion_mask) > 0]
    assert tumour.mean_hu == pytest.approx(float(voxels.astype(np.float64).mean()), abs=0.01)
    assert tumour.mean_hu == pytest.approx(28.5, abs=0.1)
    assert tumour.organ == "unknown_organ" and tumour.attenuation is None
    assert tumour.long_axis_mm >= tumour.short_axis_mm > 0
    assert tumour.max_diameter_3d_mm >= tumour.long_axis_mm
    with pytest.raises(GeometryError, match="do not share physical space") as info:
        load_mask(shared_data / "totalseg" / "example_seg.nii.gz", ct, case="sts", what="organs")
    assert info.value.case == "sts"


def test_mask_not_on_ct_grid_is_refused():
    ct = sitk.Image(10, 10, 10, sitk.sitkInt16)
    other = sitk.Image(10, 10, 9, sitk.sitkUInt8)
    with pytest.raises(GeometryError, match="not on the CT grid") as info:
        measure_lesions(ct, other, None, [], case="c9")
    assert info.value.case == "c9"


def test_empty_lesion_mask_gives_no_lesions(totalseg):
    ct, mask = totalseg
    empty = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(ct)
    organs = measure_organs(ct, mask)
    assert measure_lesions(ct, empty, mask, organs) == []
    assert all(o.lesion_count == 0 for o in organs)


@pytest.mark.parametrize(
    "seed, plan, flip_xy",
    [
        (0, "random", False),  # LPS-stored, 1-3 random lesions
        (1, "aorta_contact", True),  # RAS-like storage, pancreas lesion against the aorta
        (2, "random", True),  # RAS-like, random
        (4, "random", False),  # another random draw
        (7, "random", True),
    ],
)
def test_phantom_lesions_match_truth(seed, plan, flip_xy):
    ct, organ_mask, lesion_mask, truth = make_phantom(seed, plan=plan, flip_xy=flip_xy)
    organs = measure_organs(ct, organ_mask)
    lesions = measure_lesions(ct, lesion_mask, organ_mask, organs,
                              lesion_labels={1: "tumor", 2: "cyst"})
    assert len(lesions) == len(truth.lesions) > 0
    voxel_mm = max(ct.GetSpacing()[:2])
    volumes = [les.volume_ml for les in lesions]
    assert volumes == sorted(volumes, reverse=True)
    for expected in truth.lesions:
        found = min(lesions, key=lambda les: math.dist(les.centroid_mm, expected.centre_mm))
        assert math.dist(found.centroid_mm, expected.centre_mm) < 1.0
        assert found.organ == expected.organ and found.organ_overlap_fraction == 1.0
        assert found.kind == expected.kind
        diameter = 2 * expected.radius_mm
        assert abs(found.long_axis_mm - diameter) <= voxel_mm
        assert abs(found.short_axis_mm - diameter) <= voxel_mm
        assert abs(found.max_diameter_3d_mm - diameter) <= max(ct.GetSpacing())
        assert found.attenuation == expected.attenuation
        assert abs(found.hu_difference) > ISODENSE_HU
        if expected.organ.startswith("kidney"):
            assert found.side == expected.organ.split("_")[1]
    counts = {o.name: o.lesion_count for o in organs}
    for name in counts:
        assert counts[name] == sum(1 for les in truth.lesions if les.organ == name)


def test_phantom_without_lesions():
    ct, organ_mask, lesion_mask, truth = make_phantom(3, plan="none")
    organs = measure_organs(ct, organ_mask)
    assert truth.lesions == []
    assert measure_lesions(ct, lesion_mask, organ_mask, organs) == []
    names = {o.name for o in organs}
    assert {"liver", "spleen", "kidney_right", "kidney_left", "pancreas", "aorta"} <= names
    by_name = {o.name: o for o in organs}
    assert by_name["kidney_right"].centroid_mm[0] < 0 < by_name["kidney_left"].centroid_mm[0]


def test_flipped_storage_gives_same_facts():
    a = make_phantom(5, plan="aorta_contact", flip_xy=False)
    b = make_phantom(5, plan="aorta_contact", flip_xy=True)
    facts = []
    for ct, organ_mask, lesion_mask, _ in (a, b):
        organs = measure_organs(ct, organ_mask)
        facts.append((organs, measure_lesions(ct, lesion_mask, organ_mask, organs)))
    for oa, ob in zip(facts[0][0], facts[1][0]):
        assert oa.bbox.normalized == pytest.approx(ob.bbox.normalized, abs=2e-4)
        assert oa.centroid_mm == pytest.approx(ob.centroid_mm, abs=0.01)
    for la, lb in zip(facts[0][1], facts[1][1]):
        assert la.bbox.normalized == pytest.approx(lb.bbox.normalized, abs=2e-4)
        assert la.long_axis_mm == pytest.approx(lb.long_axis_mm)


def _tiny(array_kji, spacing=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(array_kji)
    image.SetSpacing(spacing)
    return image


@pytest.mark.parametrize(
    "where, organ, side",
    [
        (slice(2, 5), "liver", None),  # inside label 5 -> host liver, unpaired: no side
        (slice(12, 15), "outside_organs", "left"),  # no organ there; x right of the midline
    ],
)
def test_host_organ_and_outside_rule(where, organ, side):
    hu = np.full((5, 20, 40), -1000, np.int16)
    hu[:, 2:18, 2:38] = 40  # body
    organs_arr = np.zeros(hu.shape, np.uint8)
    organs_arr[:, 2:18, 2:10] = 5
    lesion = np.zeros(hu.shape, np.uint8)
    lesion[2, 8:11, :] = 0
    lesion[1:4, 8:11, where] = 1
    if organ == "outside_organs":
        lesion[1:4, 8:11, where] = 0
        lesion[1:4, 8:11, 32:35] = 1
    ct, om, lm = _tiny(hu), _tiny(organs_arr), _tiny(lesion)
    organs = measure_organs(ct, om)
    found = measure_lesions(ct, lm, om, organs)
    assert [les.organ for les in found] == [organ]
    assert found[0].side == side
    assert found[0].volume_ml == pytest.approx(27 / 1000)


def test_lesion_cut_out_of_its_organ_takes_the_enclosing_organ():
    hu = np.full((9, 20, 20), 50, np.int16)
    organs_arr = np.full(hu.shape, 2, np.uint8)  # kidney_right everywhere
    lesion = np.zeros(hu.shape, np.uint8)
    lesion[3:6, 8:11, 8:11] = 1
    organs_arr[lesion > 0] = 0  # the organ mask leaves the tumour out
    ct, om, lm = _tiny(hu), _tiny(organs_arr), _tiny(lesion)
    organs = measure_organs(ct, om)
    found = measure_lesions(ct, lm, om, organs)
    assert found[0].organ == "kidney_right" and found[0].organ_overlap_fraction == 0.0
    assert found[0].side == "right" and found[0].attenuation == "isodense"


def test_lesion_kinds_and_ids_by_volume():
    hu = np.zeros((6, 30, 30), np.int16)
    hu[0, 0, 0] = 1
    lesion = np.zeros(hu.shape, np.uint8)
    lesion[1:3, 2:4, 2:4] = 1  # small tumour: 8 voxels
    lesion[1:5, 10:15, 10:15] = 2  # large cyst: 100 voxels
    lesion[1:3, 20:23, 20:23] = 1  # tumour: 18 voxels
    ct, lm = _tiny(hu), _tiny(lesion)
    found = measure_lesions(ct, lm, None, [], lesion_labels={1: "tumor", 2: "cyst"})
    assert [(les.id, les.kind, les.voxel_count) for les in found] == [
        ("L1", "cyst", 100), ("L2", "tumor", 18), ("L3", "tumor", 8)]
