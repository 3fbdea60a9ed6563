"""Measurement v2 (sub-location, shape, margin, content, vessel contact) and DICOM geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from tumorcot.imaging.shape import shape_of
from tumorcot.imaging.texture import content_of
from tumorcot.imaging.io import load_ct, load_mask
from tumorcot.imaging.measure import measure_lesions, measure_organs
from tumorcot.imaging.phantom import make_phantom


def _measure(seed, plan, flip_xy, **kwargs):
    ct, organ_mask, lesion_mask, truth = make_phantom(seed, plan=plan, flip_xy=flip_xy)
    organs = measure_organs(ct, organ_mask)
    lesions = measure_lesions(ct, lesion_mask, organ_mask, organs,
                              lesion_labels={1: "tumor", 2: "cyst"}, **kwargs)
    pairs = [(t, min(lesions, key=lambda les: math.dist(les.centroid_mm, t.centre_mm)))
             for t in truth.lesions]
    return ct, organ_mask, pairs


@pytest.mark.parametrize(
    "seed, plan, flip_xy",
    [
        (0, "random", False),  # liver right lobe + spleen lesions
        (1, "aorta_contact", True),  # pancreas body (against the aorta) + liver
        (2, "random", False),  # pancreas head + kidney upper-pole cyst
        (4, "random", True),  # kidney poles + pancreas body, RAS-like storage
        (6, "random", False),  # kidney interpolar
        (9, "random", True),
        (10, "random", False),
    ],
)
def test_phantom_sub_locations_and_descriptors(seed, plan, flip_xy):
    _, _, pairs = _measure(seed, plan, flip_xy)
    for truth, found in pairs:
        if truth.organ == "liver":
            assert found.sub_location.startswith(truth.region)
            assert found.sub_location_method == "geometric-approximation"
        elif truth.organ == "spleen":
            assert found.sub_location is None
        else:
            assert found.sub_location == truth.region
        # IBSI mesh sphericity of digitised balls of 3-10 voxels radius: 0.86-0.93
        assert found.shape == "round" and found.sphericity > 0.85
        assert found.margin == "well-defined"
        assert found.content == ("cystic" if truth.kind == "cyst" else "solid")


def test_vessel_contact_with_the_aorta():
    _, _, pairs = _measure(1, "aorta_contact", True)
    touching = [found for truth, found in pairs if truth.touches_aorta]
    distant = [found for truth, found in pairs if not truth.touches_aorta]
    assert len(touching) == 1 and touching[0].vessel_contact_deg["aorta"] > 0
    assert distant and all(f.vessel_contact_deg["aorta"] == 0.0 for f in distant)
    assert all(f.vessel_contact_deg["inferior_vena_cava"] == 0.0 for _, f in pairs)


def test_liver_segments_mask_takes_precedence():
    ct, _, lesion_mask, truth = make_phantom(1, plan="aorta_contact")
    _, organ_mask, _, _ = make_phantom(1, plan="aorta_contact")
    segments = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    segments.CopyInformation(ct)
    segments = segments + 7  # everything "liver_segment_7"
    organs = measure_organs(ct, organ_mask)
    lesions = measure_lesions(ct, lesion_mask, organ_mask, organs, liver_segments=segments)
    liver = [les for les in lesions if les.organ == "liver"]
    assert [les.sub_location for les in liver] == ["segment VII"]
    assert liver[0].sub_location_method == "liver_segments"


@pytest.mark.parametrize(
    "values, expected",
    [
        ([-80, -60, -90], "fatty"),  # median < -30
        ([300, 400, 20], "calcified"),  # 2/3 of voxels > 130 HU
        ([5, 10, 12, 8], "cystic"),  # fluid median, homogeneous
        ([-9, 20, 0, 15, -5], "cystic"),  # Bosniak's -9..20 HU range
        ([5, 80, -40, 10, 70, -30], "solid"),  # fluid median but heterogeneous (IQR > 30)
        ([45, 50, 55], "solid"),
        ([25, 30, 28], "solid"),  # above fluid
    ],
)
def test_content_rule(values, expected):
    assert content_of(np.array(values, dtype=float))["content"] == expected


def test_calcium_cutoff_follows_the_blood_pool():
    core = np.array([150.0, 160.0, 170.0, 40.0])  # enhancing tissue on an arterial scan
    assert content_of(core)["content"] == "calcified"  # non-contrast cut-off 130 HU
    assert content_of(core, calcium_hu=250.0)["content"] == "solid"  # aorta at 250 HU


@pytest.mark.parametrize(
    "semi_axes_vox, expected",
    [
        ((8, 8, 8), "round"),  # ball
        ((16, 8, 8), "oval"),  # 2:1 ellipsoid
    ],
)
def test_shape_rule(semi_axes_vox, expected):
    z, y, x = np.mgrid[-20:21, -20:21, -20:21]
    a, b, c = semi_axes_vox
    mask = (x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2 <= 1
    assert shape_of(mask, (1.0, 1.0, 1.0))["shape"] == expected


@pytest.fixture(scope="module")
def dicom_case(shared_data):
    folder = shared_data / "totalseg"
    ct = load_ct(folder / "example_ct_dicom", case="dcm")
    mask = load_mask(folder / "example_seg_dicom.nii.gz", ct.image, case="dcm", what="organs")
    return folder, ct, mask


def test_dicom_series_hu_and_geometry(dicom_case):
    _, ct, _ = dicom_case
    assert ct.input_format == "dicom"
    assert ct.image.GetSize() == (512, 512, 20)
    assert ct.image.GetSpacing() == pytest.approx((0.9766, 0.9766, 2.0), abs=1e-3)
    assert ct.image.GetOrigin() == pytest.approx((-249.512, -437.512, -804.5), abs=1e-2)
    array = sitk.GetArrayViewFromImage(ct.image)
    assert int(array.min()) == -1024


def test_flipped_mask_lands_on_the_same_voxels(dicom_case):
    folder, ct, mask = dicom_case
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg_dicom.nii.gz")))
    assert np.array_equal(raw[:, ::-1, :], sitk.GetArrayViewFromImage(mask))
    organs = {o.name: o for o in measure_organs(ct.image, mask)}
    assert organs["liver"].mean_hu == pytest.approx(89.0, abs=1.5)
    assert organs["aorta"].mean_hu > 150  # contrast-enhanced
