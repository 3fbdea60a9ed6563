"""Where a record's CT is: from the case row kept privately in ``STATE/cases/<case_id>/input.json``.

Records reference their CT by content hash only. Exports for training need a path, so it is
looked up in the stored case row (an absolute path: the case manifest's relative paths were
resolved against its folder when it was read). The path is written out as is, relative to
``image_root``, or as a symlink ``<link_dir>/<case_id><suffix>`` whose name is pseudonymous.

Paths are user-chosen and may embed a raw patient or study id (``/data/PAT123/ct.nii.gz``);
such a path is refused (``ExportError`` suggesting ``--link-images``) rather than written, and
error messages never quote a raw id.
"""

from __future__ import annotations

import os
from pathlib import Path

from tumorcot.errors import ExportError
from tumorcot.privacy import raw_ids, scrub_ids
from tumorcot.schemas import CaseInput
from tumorcot.store.atomic import atomic_path, atomic_symlink
from tumorcot.store.cases import CaseStore


def _suffix(path: Path) -> str:
    """``.nii.gz`` kept whole; a DICOM series folder has none."""
    if path.is_dir():
        return ""
    return ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix


class CaseImages:
    """Resolves and caches each case's CT path for one export or loader."""

    def __init__(self, dataset_dir: Path, *, image_root: Path | None = None, link_dir: Path | None = None):
        self.store = CaseStore(Path(dataset_dir))
        self.image_root = Path(os.path.abspath(image_root)) if image_root else None
        self.link_dir = Path(os.path.abspath(link_dir)) if link_dir else None
        self._sources: dict[str, tuple[CaseInput, Path]] = {}
        self._exported: dict[str, str] = {}

    def source(self, case_id: str, record_id: str | None = None) -> Path:
        """The CT's absolute path; ``ExportError`` when no case row is stored or the CT is gone."""
        if case_id not in self._sources:
            self._sources[case_id] = self._load(case_id, record_id)
        return self._sources[case_id][1]

    def available(self, case_id: str) -> bool:
        """Whether the case has a stored row whose CT still exists (what --skip-missing skips on)."""
        try:
            self.source(case_id)
        except ExportError:
            return False
        return True

    def _load(self, case_id: str, record_id: str | None) -> tuple[CaseInput, Path]:
        what = f"record {record_id} (case {case_id})" if record_id else f"case {case_id}"
        case = self.store.recall_input(case_id)
        if case is None:
            raise ExportError(f"{what}: the dataset keeps no case row (STATE/cases/{case_id}/input.json) to "
                              "find its CT; run `tumorcot build` once more, or export with --skip-missing",
                              case=case_id)
        ct = Path(case.ct).expanduser()
        if not ct.is_absolute():
            raise ExportError(f"{what}: the stored CT path is relative ({scrub_ids(str(ct), case, case_id)}); "
                              "rebuild from the case manifest to store it resolved", case=case_id)
        if not ct.exists():
            raise ExportError(f"{what}: CT {scrub_ids(str(ct), case, case_id)} no longer exists "
                              "(export with --skip-missing to leave such records out)", case=case_id)
        return case, Path(os.path.abspath(ct))

    def exported_path(self, case_id: str, record_id: str | None = None) -> str:
        """The path an export writes for this case's CT (absolute, relative to the root, or a link)."""
        if case_id not in self._exported:
            path = self.source(case_id, record_id)
            case = self._sources[case_id][0]
            if self.link_dir is not None:
                path = self._link(case_id, path)
            text = self._relative(path, case, case_id) if self.image_root else str(path)
            leaked = [raw for raw in raw_ids(case) if raw in text]
            if leaked:
                raise ExportError(f"the CT path of case {case_id} contains the case's raw patient or study id; "
                                  "export with --link-images DIR to write pseudonymous links instead",
                                  case=case_id)
            self._exported[case_id] = text
        return self._exported[case_id]

    def _deidentified_nifti(self, case_id: str, series: Path) -> Path:
        import SimpleITK as sitk

        from tumorcot.imaging.io import load_ct

        out = self.link_dir / f"{case_id}.nii.gz"
        if out.is_symlink():
            out.unlink()   # a link to the series made by an older export
        if not out.exists():
            image = load_ct(series, case=case_id).image   # the pixel reader loads no DICOM tag
            with atomic_path(out, suffix=".nii.gz") as partial:
                sitk.WriteImage(image, partial, True)
        return out

    def _relative(self, path: Path, case: CaseInput, case_id: str) -> str:
        try:
            return str(path.relative_to(self.image_root))
        except ValueError:
            raise ExportError(f"CT {scrub_ids(str(path), case, case_id)} is not under --image-root "
                              f"{scrub_ids(str(self.image_root), case, case_id)}", case=case_id) from None

    def _link(self, case_id: str, target: Path) -> Path:
        """``<link_dir>/<case_id><suffix>`` -> the CT, (re)made atomically when it points elsewhere.
        A DICOM series is never linked (its files carry identifying tags): it is written once as a
        de-identified ``<case_id>.nii.gz`` (pixels and geometry only) instead."""
        if target.is_dir():
            return self._deidentified_nifti(case_id, target)
        link = self.link_dir / f"{case_id}{_suffix(target)}"
        if not (link.is_symlink() and os.readlink(link) == str(target)):
            atomic_symlink(link, target)
        return link
