"""No destructive surprise: how many published cases a manifest would remove, and whether to.

A build removes the cases its manifest no longer lists. A manifest that lost most of its rows
(a header-only file, the wrong file, a half-written export) would silently delete most of a
published dataset and its private per-case store. ``removal_problem`` refuses a build that would
remove more than ``MAX_REMOVAL_SHARE`` of the published cases (or all of them) unless removal is
asked for (``--allow-removal``). Cases whose input files are missing (an unmounted share) are not
removed at all: ``inputs_missing`` tells the build to keep their records and report them missing.
"""

from __future__ import annotations

from pathlib import Path

from tumorcot.privacy import case_id_for
from tumorcot.store.cases import CaseStore

MAX_REMOVAL_SHARE = 0.5


def removal_problem(dataset_dir: Path, cases: list, salt: bytes | None, *, allow_removal: bool,
                    max_share: float = MAX_REMOVAL_SHARE) -> str | None:
    """Why this build must not run (None when it may): it would remove too many published cases.
    ``cases``: the manifest's valid rows (``CaseInput``); ``salt``: the dataset's, None if new."""
    published = set(CaseStore(dataset_dir).case_ids()) if salt is not None else set()
    if allow_removal or not published:
        return None
    listed = {case_id_for(c.patient_id, c.study_id, salt) for c in cases}
    removed = len(published - listed)
    if removed and (removed == len(published) or removed > max_share * len(published)):
        return (f"the manifest would remove {removed} of the dataset's {len(published)} published cases "
                f"(more than {max_share:.0%}): check the manifest, or pass --allow-removal to remove them")
    return None


def inputs_missing(case) -> list[str]:
    """The case's input fields whose file or folder is not there."""
    return [field for field, path in case.files().items() if not Path(path).exists()]
