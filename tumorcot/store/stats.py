"""Dataset statistics (``DIR/stats.json``) and the files published with them.

``dataset_stats`` counts records per task, task/subtask, organ, split and task x split, the
answer-position balance of multiple-choice records, the share of negatives (records about an
organ without lesions) among the subtasks that can be negative, the patients per split, the
synthetic share and the task families present.

Counting runs over record batches of a few columns (``STATS_COLUMNS``), so memory stays flat in
the dataset's size. ``tumorcot.exports.summaries.publish_summaries`` (called by the writer after
the update) writes ``README.md`` (dataset card), ``croissant.json`` and last ``stats.json``, stamped with the manifest's ``run_id`` and
``created``: a writer killed between the manifest and ``stats.json`` leaves a stale or missing
stamp, which the next update (even an unchanged one) detects from ``stats.json`` alone and
repairs. A current stamp costs one small file read, no shard read.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tumorcot.schemas.options import MIX_GROUPS, mix_group, stored_options
from tumorcot.schemas.records import Task
from tumorcot.store.lock import reads_dataset

STATS_FORMAT = "tumorcot-stats/1"
FAMILIES = typing.get_args(Task)
NEGATIVE_CAPABLE = ("presence", "count", "organ_report")
NO_ORGAN = "(none)"
STATS_COLUMNS = ("task", "subtask", "organ", "split", "negative", "synthetic", "form", "options",
                 "answer_index", "patient_pseudo_id")
_BATCH_ROWS = 65_536


class StatsAccumulator:
    """Adds up record batches; ``result()`` gives the stats dict."""

    def __init__(self):
        self.groups: dict[tuple, int] = {}
        self.positions: dict[int, dict] = {}
        self.patients: dict[str, set[str]] = {}

    def add(self, table: pa.Table) -> "StatsAccumulator":
        if table.num_rows == 0:
            return self
        self._add_groups(table)
        self._add_positions(table)
        self._add_patients(table)
        return self

    def _add_groups(self, table: pa.Table) -> None:
        keys = ["task", "subtask", "organ", "split", "negative", "synthetic"]
        view = pa.table({
            "task": table["task"], "subtask": table["subtask"],
            "organ": pc.fill_null(table["organ"], NO_ORGAN), "split": table["split"],
            "negative": pc.fill_null(table["negative"], False),
            "synthetic": pc.fill_null(table["synthetic"], False),
        })
        counted = view.group_by(keys).aggregate([([], "count_all")])
        for row in counted.to_pylist():
            key = tuple(row[k] for k in keys)
            self.groups[key] = self.groups.get(key, 0) + row["count_all"]

    def _add_positions(self, table: pa.Table) -> None:
        choice = table.filter(pc.equal(table["form"], "multiple_choice"))
        if choice.num_rows == 0:
            return
        view = pa.table({"k": pc.fill_null(pc.list_value_length(choice["options"]), 0),
                         "index": choice["answer_index"]})
        for row in view.group_by(["k", "index"]).aggregate([([], "count_all")]).to_pylist():
            k, index, n = int(row["k"]), row["index"], row["count_all"]
            entry = self.positions.setdefault(k, {"counts": [0] * k, "unplaced": 0})
            if index is None or not 0 <= index < k:
                entry["unplaced"] += n   # an answer index outside the options: counted, not hidden
            else:
                entry["counts"][index] += n

    def _add_patients(self, table: pa.Table) -> None:
        pairs = pa.table({"split": table["split"], "patient": table["patient_pseudo_id"]})
        for row in pairs.group_by(["split", "patient"]).aggregate([]).to_pylist():
            self.patients.setdefault(row["split"], set()).add(row["patient"])

    def result(self) -> dict:
        total = sum(self.groups.values())
        by = _marginals(self.groups)
        negatives = sum(n for (t, s, o, sp, neg, syn), n in self.groups.items() if neg)
        eligible = sum(n for (t, s, o, sp, neg, syn), n in self.groups.items() if s in NEGATIVE_CAPABLE)
        synthetic = sum(n for (t, s, o, sp, neg, syn), n in self.groups.items() if syn)
        all_patients = set().union(*self.patients.values()) if self.patients else set()
        return {
            "format": STATS_FORMAT,
            "records": total,
            **by,
            "answer_positions": {str(k): _balance(v) for k, v in sorted(self.positions.items())},
            "negatives": {"records": negatives, "eligible": eligible, "subtasks": list(NEGATIVE_CAPABLE),
                          "share": _share(negatives, eligible)},
            "synthetic": {"records": synthetic, "share": _share(synthetic, total)},
            "patients": {"total": len(all_patients),
                         **{split: len(ids) for split, ids in sorted(self.patients.items())}},
            "families": [f for f in FAMILIES if f in by["by_task"]],
            "family_mix": family_mix(by["by_task"], total, by_task_split=by["by_task_split"]),
        }


def family_mix(by_task: dict[str, int], total: int, target: dict[str, float] | None = None,
               by_task_split: dict[str, dict[str, int]] | None = None) -> dict:
    """Records and achieved share per family group (``MIX_GROUPS``), overall and per split (the
    mix is applied per split), with the target when known."""
    def groups(counts: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for task, n in counts.items():
            group = mix_group(task) or "other"
            out[group] = out.get(group, 0) + n
        return dict(sorted(out.items()))

    achieved = groups(by_task)
    per_split: dict[str, dict[str, int]] = {}
    for task, splits in (by_task_split or {}).items():
        for split, n in splits.items():
            per_split.setdefault(split, {})[task] = n
    splits = {}
    for split, counts in sorted(per_split.items()):
        records = groups(counts)
        splits[split] = {"records": records, "achieved": {g: _share(n, sum(records.values())) for g, n in records.items()}}
    return {"groups": {g: list(t) for g, t in MIX_GROUPS.items()}, "target": target,
            "records": achieved, "achieved": {g: _share(n, total) for g, n in achieved.items()}, "splits": splits}


def with_mix_target(stats: dict, manifest: dict) -> dict:
    """The stats with the family-mix target the dataset was built with (manifest versions.options;
    none when it was built without a mix)."""
    options = manifest.get("versions", {}).get("options")
    stats["family_mix"]["target"] = stored_options(options).family_mix if options is not None else None
    return stats


def _marginals(groups: dict[tuple, int]) -> dict:
    by_task: dict[str, int] = {}
    by_task_subtask: dict[str, dict[str, int]] = {}
    by_organ: dict[str, int] = {}
    by_split: dict[str, int] = {}
    by_task_split: dict[str, dict[str, int]] = {}
    for (task, subtask, organ, split, _neg, _syn), n in groups.items():
        by_task[task] = by_task.get(task, 0) + n
        sub = by_task_subtask.setdefault(task, {})
        sub[subtask] = sub.get(subtask, 0) + n
        by_organ[organ] = by_organ.get(organ, 0) + n
        by_split[split] = by_split.get(split, 0) + n
        per = by_task_split.setdefault(task, {})
        per[split] = per.get(split, 0) + n
    return {"by_task": _sorted(by_task), "by_task_subtask": {t: _sorted(s) for t, s in sorted(by_task_subtask.items())},
            "by_organ": _sorted(by_organ), "by_split": _sorted(by_split),
            "by_task_split": {t: _sorted(s) for t, s in sorted(by_task_split.items())}}


def _sorted(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items()))


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _balance(entry: dict) -> dict:
    """Counts per answer position and the largest relative deviation from a uniform spread."""
    counts = entry["counts"]
    placed = sum(counts)
    expected = placed / len(counts) if counts else 0
    deviation = max(abs(c - expected) / expected for c in counts) if expected else None
    return {"records": placed + entry["unplaced"], "counts": counts, "unplaced": entry["unplaced"],
            "max_relative_deviation": None if deviation is None else round(deviation, 4)}


def dataset_stats(records: pa.Table) -> dict:
    """Stats of a records table (the CoTRecord Arrow schema, or at least ``STATS_COLUMNS``)."""
    return StatsAccumulator().add(records).result()


def stats_from_shards(dataset_dir: Path, manifest: dict) -> dict:
    """Stats of the record shards a manifest lists, read batch by batch, few columns at a time."""
    acc = StatsAccumulator()
    for entry in manifest.get("files", []):
        if entry["kind"] != "records":
            continue
        shard = pq.ParquetFile(dataset_dir / entry["path"])
        for batch in shard.iter_batches(batch_size=_BATCH_ROWS, columns=list(STATS_COLUMNS)):
            acc.add(pa.Table.from_batches([batch]))
    return with_mix_target(acc.result(), manifest)


def stamp(manifest: dict) -> dict:
    return {"run_id": manifest.get("run_id"), "created": manifest.get("created")}


def read_stats(dataset_dir: Path) -> dict | None:
    path = dataset_dir / "stats.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def stats_current(dataset_dir: Path, manifest: dict) -> bool:
    """True when ``stats.json`` (and so the card and Croissant file) matches this manifest."""
    stats = read_stats(dataset_dir)
    return bool(stats) and stats.get("format") == STATS_FORMAT and stats.get("manifest") == stamp(manifest)


@reads_dataset   # a concurrent build's update is seen whole or not at all
def load_or_compute_stats(dataset_dir: Path) -> tuple[dict, bool]:
    """(stats, from_file): ``stats.json`` when current, else computed from the shards (not written:
    readers do not hold the dataset lock)."""
    from tumorcot.store.shards import read_manifest

    manifest = read_manifest(dataset_dir)
    if stats_current(dataset_dir, manifest):
        return read_stats(dataset_dir), True
    return {**stats_from_shards(dataset_dir, manifest), "manifest": stamp(manifest)}, False

