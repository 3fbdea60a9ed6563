"""Measure organs and lesions of one case on the CT grid.

Organs: one run-length pass over the organ mask and the CT (``label_stats``): count, mean and
sample std of HU, centroid and box of every label, without per-label masks.

Lesions: connected components (26-connectivity) per lesion kind, labelled in small boxes of the
lesion mask (``components``); every per-lesion computation works on the crop of its own
component. Rules:

- ids ``L1, L2, ...`` by decreasing voxel count (ties: by position), over all kinds;
- kind: ``lesion_labels`` maps mask values to kinds; without it every non-zero value is
  ``"lesion"``; values missing from the mapping are ``"lesion"`` too;
- host organ: the organ label covering most of the lesion's voxels, with that share as
  ``organ_overlap_fraction``; other labels it overlaps go to ``other_organs``. If no organ label
  overlaps it, the organ label most frequent in its one-voxel outer shell becomes host when it
  covers at least ``SHELL_HOST_MIN`` of the shell (a lesion cut out of its organ; overlap 0.0),
  else the host is ``"outside_organs"``. Without any organ mask the host is ``"unknown_organ"``;
- attenuation: ``hu_difference`` = lesion core median HU - the host organ's reference HU (organ
  minus its lesions, eroded ~2 mm: ``tumorcot.imaging.regions``); ``|diff| <= ISODENSE_HU`` is
  isodense, below hypodense, above hyperdense; "not assessed" when the host has no reference
  (hollow organ, gallbladder, too thin); None without a host organ;
- truncated: an organ's or lesion's box touching the edge of the field of view (its volume, box
  and diameters are of the visible part only);
- side: the host organ's side (kidney_left -> left); for ``outside_organs`` / ``unknown_organ``,
  the lesion centroid's LPS x against the body midline (mean x of voxels > ``BODY_HU`` on the
  lesion's centroid slice): within ``MIDLINE_MARGIN_MM`` -> "midline", smaller x -> "right";
  unpaired host organs (liver, pancreas) give no side;
- mean/std HU: population mean and sample std (ddof=1) of the lesion voxels;
- diameters: see ``tumorcot.imaging.diameters``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from tumorcot.errors import CaseInputError, GeometryError
from tumorcot.imaging.components import lesion_components
from tumorcot.imaging.describe import describe_lesion
from tumorcot.imaging.diameters import axial_diameters, max_diameter_3d, principal_length_mm
from tumorcot.imaging.geometry import bbox_slices, index_to_lps, make_box
from tumorcot.imaging.io import same_grid
from tumorcot.imaging.label_stats import label_statistics
from tumorcot.imaging.regions import organ_reference, touches_edge
from tumorcot.vocabulary import (KIDNEYS, OUTSIDE_ORGANS as OUTSIDE, UNKNOWN_ORGAN as UNKNOWN, label_name, side_of,
                                 threshold)
from tumorcot.schemas.facts import LesionFacts, OrganFacts

ISODENSE_HU = threshold("isodense_hu")
SHELL_HOST_MIN = 0.5
BODY_HU = -500.0
MIDLINE_MARGIN_MM = 10.0


def _check_grid(ct: sitk.Image, mask: sitk.Image, what: str, case: str | None) -> None:
    if not same_grid(ct, mask):
        raise GeometryError(f"{what} is not on the CT grid; load it with load_mask()", case=case)


def measure_organs(
    ct: sitk.Image, organ_mask: sitk.Image, *, case: str | None = None
) -> list[OrganFacts]:
    """Volume, HU statistics, LPS centroid, box and side of every label in the organ mask; the
    kidneys' length along their principal axis (``diameters.principal_length_mm``)."""
    _check_grid(ct, organ_mask, "organ mask", case)
    labels = _label_view(organ_mask, "organ mask", case)
    stats = label_statistics(labels, sitk.GetArrayViewFromImage(ct))
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
    organs = []
    for label in sorted(stats):
        st = stats[label]
        name = label_name(label)
        length = None
        if name in KIDNEYS:   # the kidney-size comparison's measure (schemas.derived)
            crop = labels[bbox_slices(st.vmin, st.vmax)] == label
            length = round(principal_length_mm(crop, ct.GetSpacing()), 1)
        organs.append(
            OrganFacts(
                name=name,
                label_id=int(label),
                side=side_of(name),
                voxel_count=st.count,
                volume_ml=round(st.count * voxel_ml, 3),
                mean_hu=round(st.mean, 2),
                std_hu=round(st.std, 2) if st.count > 1 else 0.0,
                centroid_mm=index_to_lps(ct, st.centroid_ijk),
                bbox=make_box(ct, st.vmin, st.vmax),
                truncated=touches_edge(st.vmin, st.vmax, ct.GetSize()),
                length_mm=length,
            )
        )
    return organs


def _label_view(mask: sitk.Image, what: str, case: str | None) -> np.ndarray:
    """The mask as a uint8/uint16 array view (a cast copy only for other pixel types)."""
    if mask.GetPixelID() not in (sitk.sitkUInt8, sitk.sitkUInt16):
        minmax = sitk.MinimumMaximumImageFilter()
        minmax.Execute(mask)
        if minmax.GetMinimum() < 0 or minmax.GetMaximum() > 65535:
            raise CaseInputError(f"{what} has labels outside 0..65535", case=case)
        pixel = sitk.sitkUInt8 if minmax.GetMaximum() <= 255 else sitk.sitkUInt16
        return sitk.GetArrayFromImage(sitk.Cast(mask, pixel))
    return sitk.GetArrayViewFromImage(mask)


def _host(organ_crop: np.ndarray, comp: np.ndarray) -> tuple[str, float, list[str]]:
    inside = organ_crop[comp]
    counts = np.bincount(inside.ravel(), minlength=1)
    counts[0] = 0
    touched = [int(v) for v in np.argsort(-counts, kind="stable") if counts[v] > 0]
    if touched:
        host = touched[0]
        return label_name(host), float(counts[host]) / comp.sum(), [
            label_name(v) for v in touched[1:]
        ]
    return OUTSIDE, 0.0, []


def _shell_host(organ_view: np.ndarray, comp: np.ndarray, vmin, vmax) -> str | None:
    """Organ enclosing a lesion that the organ mask leaves out (majority of the outer shell)."""
    lo = [max(v - 1, 0) for v in vmin]
    hi = [min(v + 1, n - 1) for v, n in zip(vmax, organ_view.shape[::-1])]
    region = organ_view[bbox_slices(lo, hi)]
    padded = np.zeros(region.shape, dtype=bool)
    offset = tuple(slice(vmin[a] - lo[a], vmin[a] - lo[a] + comp.shape[2 - a]) for a in (2, 1, 0))
    padded[offset] = comp
    shell = ndimage.binary_dilation(padded, structure=np.ones((3, 3, 3), bool)) & ~padded
    labels = region[shell]
    if labels.size == 0:
        return None
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    best = int(np.argmax(counts))
    if counts[best] >= SHELL_HOST_MIN * labels.size and best > 0:
        return label_name(best)
    return None


def _midline_side(ct: sitk.Image, ct_view: np.ndarray, centroid_ijk, centroid_x_mm: float) -> str:
    k = int(round(centroid_ijk[2]))
    jj, ii = np.nonzero(ct_view[k] > BODY_HU)
    if ii.size == 0:
        return "midline"
    mid_x = ct.TransformContinuousIndexToPhysicalPoint((float(ii.mean()), float(jj.mean()), k))[0]
    if abs(centroid_x_mm - mid_x) <= MIDLINE_MARGIN_MM:
        return "midline"
    return "right" if centroid_x_mm < mid_x else "left"


def _attenuation(host: OrganFacts | None, diff: float | None) -> str | None:
    if host is None:
        return None
    if diff is None:
        return "not assessed"
    if abs(diff) <= ISODENSE_HU:
        return "isodense"
    return "hypodense" if diff < 0 else "hyperdense"


def _centroid(comp: np.ndarray, vmin, count: int) -> list[float]:
    """Mean continuous index (i, j, k) of the component's voxels, from its axis projections."""
    out = []
    for a in range(3):  # i, j, k = numpy axes 2, 1, 0
        axis = 2 - a
        others = tuple(b for b in range(3) if b != axis)
        per_plane = np.count_nonzero(comp, axis=others)
        out.append(vmin[a] + float(per_plane @ np.arange(per_plane.size)) / count)
    return out


def _reference(host: OrganFacts, ct, ct_view, organ_view, lesion_view) -> float | None:
    """The host's reference HU (median of the organ minus its lesions, eroded); also stored on
    the organ's facts."""
    ref = organ_reference(host.name, host.label_id, host.bbox.voxel_min, host.bbox.voxel_max,
                          ct_view, organ_view, lesion_view, ct.GetSpacing())
    if ref is None:
        return None
    host.reference_hu, host.reference_iqr_hu = round(ref.median, 2), round(ref.iqr, 2)
    return host.reference_hu


def measure_lesions(
    ct: sitk.Image,
    lesion_mask: sitk.Image,
    organ_mask: sitk.Image | None,
    organs: list[OrganFacts],
    *,
    lesion_labels: dict[int, str] | None = None,
    liver_segments: sitk.Image | None = None,
    calcium_hu: float | None = None,
    case: str | None = None,
) -> list[LesionFacts]:
    """Connected lesions with host organ, size, attenuation, side, box and the v2 descriptors
    (``tumorcot.imaging.describe``); ``liver_segments`` (TotalSegmentator ``liver_segments``
    task, on the CT grid) gives Couinaud segments, else the liver's are approximated.

    Increments ``lesion_count`` and sets ``reference_hu`` on the host organ's entry of
    ``organs``. ``calcium_hu``: the calcium cut-off for content (raised on enhanced scans, see
    ``calcified_hu`` in ``tumorcot.vocabulary.THRESHOLDS``). An empty lesion mask yields no lesions.
    """
    _check_grid(ct, lesion_mask, "lesion mask", case)
    if organ_mask is not None:
        _check_grid(ct, organ_mask, "organ mask", case)
    if liver_segments is not None:
        _check_grid(ct, liver_segments, "liver segments mask", case)
    spacing = ct.GetSpacing()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    ct_view = sitk.GetArrayViewFromImage(ct)
    organ_view = sitk.GetArrayViewFromImage(organ_mask) if organ_mask is not None else None
    segments_view = (
        sitk.GetArrayViewFromImage(liver_segments) if liver_segments is not None else None
    )
    by_name = {o.name: o for o in organs}
    present = {o.label_id for o in organs}
    lesions = []
    lesion_view = sitk.GetArrayViewFromImage(lesion_mask)
    references: dict[str, float | None] = {}
    components = lesion_components(lesion_view, lesion_labels)
    for n, component in enumerate(components):
        vmin, vmax, comp = component.vmin, component.vmax, component.mask
        count = component.voxel_count
        region = bbox_slices(vmin, vmax)
        hu = ct_view[region][comp]
        centroid_ijk = _centroid(comp, vmin, count)
        centroid_mm = index_to_lps(ct, centroid_ijk)
        if organ_view is None:
            host, overlap, others = UNKNOWN, 0.0, []
        else:
            host, overlap, others = _host(organ_view[region], comp)
            if host == OUTSIDE:
                host = _shell_host(organ_view, comp, vmin, vmax) or OUTSIDE
        host_facts = by_name.get(host)
        mean_hu = float(hu.mean(dtype=np.float64))
        if host_facts is not None and host not in references:
            references[host] = _reference(host_facts, ct, ct_view, organ_view, lesion_view)
        if host in (OUTSIDE, UNKNOWN):
            side = _midline_side(ct, ct_view, centroid_ijk, centroid_mm[0])
        else:
            side = side_of(host)
        axial = axial_diameters(comp, spacing)
        extra = describe_lesion(ct, ct_view, comp, vmin, vmax, centroid_ijk, host_facts, organ_view,
                                segments_view, present, calcium_hu)
        reference = references.get(host)
        diff = round(extra["core_median_hu"] - reference, 2) if reference is not None else None
        facts = LesionFacts(
            id=f"L{n + 1}",
            kind=component.kind,
            organ=host,
            organ_overlap_fraction=round(overlap, 4),
            other_organs=others,
            side=side,
            voxel_count=count,
            volume_ml=round(count * voxel_ml, 3),
            long_axis_mm=round(axial.long_axis_mm, 2),
            short_axis_mm=round(axial.short_axis_mm, 2),
            axial_slice=vmin[2] + axial.axial_slice,
            max_diameter_3d_mm=round(max_diameter_3d(comp, spacing), 2),
            mean_hu=round(mean_hu, 2),
            std_hu=round(float(hu.std(ddof=1, dtype=np.float64)), 2) if hu.size > 1 else 0.0,
            hu_difference=diff,
            attenuation=_attenuation(host_facts, diff),
            centroid_mm=centroid_mm,
            bbox=make_box(ct, vmin, vmax),
            mask_values=sorted(int(v) for v in np.unique(lesion_view[region][comp])),
            truncated=touches_edge(vmin, vmax, ct.GetSize()),
            **extra,
        )
        if host_facts is not None:
            host_facts.lesion_count += 1
        lesions.append(facts)
    return lesions
