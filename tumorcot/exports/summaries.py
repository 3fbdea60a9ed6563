"""What is published with the shards: dataset card, Croissant metadata and ``stats.json``.

The dataset writer (the build, regenerate and quarantine flows) calls ``publish_summaries`` after
the shard update, while it holds the lock: the store updates data, publication follows it, and
the store never reaches up into the exports. ``stats.json`` is written last, stamped with the
manifest (``tumorcot.store.stats.stamp``): a writer killed before it leaves a stale stamp, which
the next update, even an unchanged one (``only_if_stale``), repairs.
"""

from __future__ import annotations

from pathlib import Path

from tumorcot.exports.card import write_card
from tumorcot.exports.croissant import write_croissant
from tumorcot.store.lock import publishing
from tumorcot.store.atomic import atomic_write_json
from tumorcot.store.stats import stamp, stats_current, stats_from_shards


def publish_summaries(dataset_dir: Path, manifest: dict, *, only_if_stale: bool = False) -> bool:
    """Write card, Croissant metadata and ``stats.json`` (last, as the stamp); True if written."""
    if only_if_stale and stats_current(dataset_dir, manifest):
        return False
    stats = {**stats_from_shards(dataset_dir, manifest), "manifest": stamp(manifest)}
    with publishing(dataset_dir):
        write_card(dataset_dir, manifest, stats)
        write_croissant(dataset_dir, manifest, stats)
        atomic_write_json(dataset_dir / "stats.json", stats)
    return True
