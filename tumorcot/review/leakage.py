"""Leakage audit: the same CT content or the same patient in two splits is an error.

Splits are assigned per pseudonymous patient, so one patient never spans splits by
construction; the same CT filed under two patient ids (a re-upload, a duplicate in two source
collections) is not caught by that and would put test images into training. Both are checked
on the published records: ``image_sha256`` (the CT's content hash) and ``patient_pseudo_id``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tumorcot.store.shards import scan_records


def split_leaks(rows: list[dict]) -> list[dict]:
    """One entry per CT content hash or patient found in more than one split."""
    leaks = []
    for kind, column in (("image", "image_sha256"), ("patient", "patient_pseudo_id")):
        splits: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for row in rows:
            splits[row[column]][row["split"]].add(row["case_id"])
        for key, by_split in sorted(splits.items()):
            if len(by_split) > 1:
                leaks.append({"kind": kind, "key": key,
                              "splits": {s: sorted(cases) for s, cases in sorted(by_split.items())}})
    return leaks


def describe_leak(leak: dict) -> str:
    where = "; ".join(f"{split}: case {', '.join(cases)}" for split, cases in leak["splits"].items())
    if leak["kind"] == "image":
        return (f"leakage: the same CT content (image_sha256 {leak['key'][:16]}...) is in splits "
                f"{', '.join(leak['splits'])} ({where}); one CT under two patient ids puts evaluation images "
                "into training: remove the duplicate case from the case manifest")
    return f"leakage: patient {leak['key']} is in splits {', '.join(leak['splits'])} ({where})"


def dataset_leaks(dataset_dir: Path) -> list[dict]:
    table = scan_records(Path(dataset_dir), ["image_sha256", "patient_pseudo_id", "split", "case_id"])
    # one row per distinct (image, patient, split, case): a case has many records
    return split_leaks(table.group_by(table.column_names).aggregate([]).to_pylist())
