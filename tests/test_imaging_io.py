"""Loading CT and masks: formats, geometry checks and bad inputs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from tumorcot.errors import CaseInputError, GeometryError
from tumorcot.imaging.io import content_sha256, load_ct, load_mask, same_grid


def _image(array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def test_real_ct_loads_as_int16_with_hash(shared_data):
    ct = load_ct(shared_data / "totalseg" / "example_ct_sm.nii.gz", case="c1")
    assert ct.input_format == "nifti"
    assert ct.image.GetSize() == (122, 101, 30)
    assert ct.image.GetPixelID() == sitk.sitkInt16
    assert ct.sha256 == content_sha256(shared_data / "totalseg" / "example_ct_sm.nii.gz")
    assert len(ct.sha256) == 64


def test_float_ct_with_integral_values_is_compacted(shared_data):
    # STS_001 is float32 on disk but holds whole HU numbers
    ct = load_ct(shared_data / "ibsi_sts" / "STS_001" / "CT_image.nii.gz", case="sts")
    assert ct.image.GetPixelID() == sitk.sitkInt16


def test_int32_ct_is_compacted(shared_data):
    ct = load_ct(shared_data / "totalseg" / "example_ct.nii.gz", case="c1")
    assert ct.image.GetPixelID() == sitk.sitkInt16


def test_folder_hash_depends_on_names_and_bytes(tmp_path):
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"2")
    first = content_sha256(tmp_path)
    (tmp_path / "b").rename(tmp_path / "c")
    assert content_sha256(tmp_path) != first


@pytest.mark.parametrize(
    "make, message",
    [
        # file does not exist
        (lambda tmp, data: tmp / "missing.nii.gz", "not found"),
        # gzip cut in half
        (lambda tmp, data: _truncated(tmp, data), "truncated"),
        # 2-D image
        (lambda tmp, data: _write(tmp, sitk.GetImageFromArray(np.ones((8, 8), np.int16))),
         "not a 3-D"),
        # constant volume
        (lambda tmp, data: _write(tmp, _image(np.full((4, 5, 6), -1000, np.int16))), "constant"),
    ],
)
def test_bad_ct_raises_case_input_error(tmp_path, shared_data, make, message):
    with pytest.raises(CaseInputError, match=message) as info:
        load_ct(make(tmp_path, shared_data), case="case-7")
    assert info.value.case == "case-7"
    assert "[case-7]" in str(info.value)


def _truncated(tmp_path, data):
    src = (data / "totalseg" / "example_ct_sm.nii.gz").read_bytes()
    out = tmp_path / "cut.nii.gz"
    out.write_bytes(src[: len(src) // 2])
    return out


def _write(tmp_path, image):
    out = tmp_path / "img.nii.gz"
    sitk.WriteImage(image, str(out))
    return out


def test_mask_same_grid_takes_fast_path(shared_data):
    ct = load_ct(shared_data / "totalseg" / "example_ct_sm.nii.gz", case="c").image
    mask = load_mask(shared_data / "totalseg" / "example_seg.nii.gz", ct, case="c", what="organs")
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert same_grid(mask, ct)
    assert int((sitk.GetArrayViewFromImage(mask) == 5).sum()) == 38634


def test_mask_of_other_grid_without_overlap_raises(shared_data):
    ct = load_ct(shared_data / "ibsi_sts" / "STS_001" / "CT_image.nii.gz", case="sts").image
    with pytest.raises(GeometryError, match="inside the CT") as info:
        load_mask(shared_data / "totalseg" / "example_seg.nii.gz", ct, case="sts", what="organs")
    assert info.value.case == "sts"


def test_mask_of_other_size_same_space_is_resampled(tmp_path):
    ct = _image(np.random.default_rng(0).integers(-100, 100, (10, 20, 20)).astype(np.int16))
    half = np.zeros((5, 10, 10), np.uint8)
    half[2, 3:6, 3:6] = 4
    path = _write(tmp_path, _image(half, spacing=(2.0, 2.0, 2.0), origin=(0.5, 0.5, 0.5)))
    out = load_mask(path, ct, case="c", what="lesions")
    assert same_grid(out, ct)
    array = sitk.GetArrayViewFromImage(out)
    assert set(np.unique(array)) == {0, 4}
    assert int((array == 4).sum()) == 9 * 8  # each 2 mm voxel -> 2x2x2 1 mm voxels


def test_mask_with_negative_labels_is_rejected(tmp_path):
    ct = _image(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    path = _write(tmp_path, _image(np.full((4, 5, 6), -1, np.int16)))
    with pytest.raises(CaseInputError, match="labels outside"):
        load_mask(path, ct, case="c", what="lesions")


def test_dicom_folder_with_missing_slice_is_rejected(tmp_path, shared_data):
    src = shared_data / "totalseg" / "example_ct_dicom"
    files = sorted(src.iterdir())
    for file in files[:8] + files[9:]:
        shutil.copy(file, tmp_path / file.name)
    with pytest.raises(CaseInputError, match="missing or duplicate") as info:
        load_ct(tmp_path, case="dcm")
    assert info.value.case == "dcm"


def test_folder_without_dicom_is_rejected(tmp_path):
    (tmp_path / "notes.txt").write_text("no images")
    with pytest.raises(CaseInputError, match="no axial CT series"):
        load_ct(tmp_path, case="x")
