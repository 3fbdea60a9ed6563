"""Shard streams in bounded memory: writing parts, and replacing some cases' rows in place.

A *stream* is one sequence of Parquet parts sorted by ``case_id``: a split's records
(``data/{split}-i-of-n``), the log (``logs/log-i-of-n``) or the facts (``facts/facts-i-of-n``).
``PartWriter`` takes rows in order and cuts parts every ``MAX_ROWS_PER_SHARD`` rows, buffering at
most one row group (``ROW_GROUP_ROWS``, ``BUFFER_BYTES``, ``BUFFER_PIECES``) before it goes to disk,
so a full assembly's memory does not grow with the dataset. Parts are written as temporaries and renamed once the stream is complete (only
then is ``n`` known).

``replace_cases`` updates a stream for a few changed cases: only the parts whose ``case_id`` range
holds an affected case or receives a new one are read and rewritten; the others keep their files.
A part that would become empty or grow past twice the shard size makes the whole stream be
re-cut (still part by part). The rows of a stream, in order, are the same as a full assembly's;
the cut between parts may differ after in-place updates.
"""

from __future__ import annotations

import hashlib
import os
from bisect import bisect_left, bisect_right
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tumorcot.store.atomic import atomic_write_table, commit, fsync_dir, fsync_file, temporary_path

MAX_ROWS_PER_SHARD = 50_000
# A row group goes to disk at whichever comes first: its rows, its Arrow bytes, or the number of
# per-case tables it gathers (a small table's buffers cost far more memory than their ``nbytes``).
ROW_GROUP_ROWS = 1_000
BUFFER_BYTES = 2 << 20
BUFFER_PIECES = 128


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(dataset_dir: Path, rel: str, rows: int) -> dict:
    path = dataset_dir / rel
    return {"path": rel, "rows": rows, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


class PartWriter:
    """Rows of one stream, in order -> ``folder/stem-i-of-n.parquet`` parts (zstd)."""

    def __init__(self, dataset_dir: Path, folder: str, stem: str, schema: pa.Schema, *,
                 allow_empty: bool = False, max_rows: int | None = None):
        self.dataset_dir, self.folder, self.stem, self.schema = dataset_dir, folder, stem, schema
        self.allow_empty, self.max_rows = allow_empty, max_rows or MAX_ROWS_PER_SHARD
        self._buffer: list[pa.Table] = []
        self._buffered_rows = self._buffered_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._parts: list[tuple[str, int]] = []   # (temporary path, rows)

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if not table.schema.equals(self.schema):
            table = table.cast(self.schema)
        while table.num_rows:
            room = self.max_rows - self._rows_in_part() - self._buffered_rows
            head, table = table.slice(0, room), table.slice(room)
            self._buffer.append(head)
            self._buffered_rows += head.num_rows
            self._buffered_bytes += head.nbytes
            if (self._buffered_rows >= ROW_GROUP_ROWS or self._buffered_bytes >= BUFFER_BYTES
                    or len(self._buffer) >= BUFFER_PIECES or self._rows_in_part() + self._buffered_rows >= self.max_rows):
                self._flush()

    def _rows_in_part(self) -> int:
        return self._parts[-1][1] if self._writer is not None else 0

    def _flush(self) -> None:
        if not self._buffered_rows:
            return
        if self._writer is None:
            tmp = temporary_path(self.dataset_dir / self.folder / f"{self.stem}.parquet")
            self._writer = pq.ParquetWriter(tmp, self.schema, compression="zstd")
            self._parts.append((tmp, 0))
        chunk = pa.concat_tables(self._buffer)
        self._writer.write_table(chunk, row_group_size=chunk.num_rows)
        tmp, rows = self._parts[-1]
        self._parts[-1] = (tmp, rows + chunk.num_rows)
        self._buffer, self._buffered_rows, self._buffered_bytes = [], 0, 0
        if self._parts[-1][1] >= self.max_rows:
            self._close_part()

    def _close_part(self) -> None:
        self._writer.close()
        self._writer = None
        fsync_file(self._parts[-1][0])

    def close(self) -> list[dict]:
        """Finish the stream; its manifest entries (path, rows, bytes, sha256), in order."""
        self._flush()
        if self._writer is not None:
            self._close_part()
        if not self._parts and self.allow_empty:
            tmp = temporary_path(self.dataset_dir / self.folder / f"{self.stem}.parquet")
            pq.write_table(self.schema.empty_table(), tmp, compression="zstd")
            fsync_file(tmp)
            self._parts.append((tmp, 0))
        n = len(self._parts)
        entries = []
        for i, (tmp, rows) in enumerate(self._parts):
            rel = f"{self.folder}/{self.stem}-{i:05d}-of-{n:05d}.parquet"
            commit(tmp, self.dataset_dir / rel, sync_dir=False)
            entries.append(file_entry(self.dataset_dir, rel, rows))
        if entries:
            fsync_dir(self.dataset_dir / self.folder)
        return entries

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        for tmp, _ in self._parts:
            Path(tmp).unlink(missing_ok=True)


def one_split(table: pa.Table, splits) -> list[tuple[str, pa.Table]]:
    """``table``'s rows by split (a case's records usually share one split: no copy then)."""
    found = pc.unique(table["split"]).to_pylist()
    if len(found) == 1:
        return [(found[0], table)]
    return [(s, table.filter(pc.equal(table["split"], s))) for s in splits if s in found]


def case_range(path: Path) -> tuple[str, str] | None:
    """(first, last) ``case_id`` of a part, from its row-group statistics (else its column)."""
    meta = pq.ParquetFile(path).metadata
    if meta.num_rows == 0:
        return None
    column = meta.schema.names.index("case_id")
    stats = [meta.row_group(i).column(column).statistics for i in range(meta.num_row_groups)]
    if all(s is not None and s.has_min_max for s in stats):
        return min(s.min for s in stats), max(s.max for s in stats)
    ids = pq.read_table(path, columns=["case_id"])["case_id"]
    return pc.min(ids).as_py(), pc.max(ids).as_py()


def splice(kept: pa.Table, fresh: pa.Table) -> pa.Table:
    """Insert ``fresh`` rows (sorted by case_id, no case shared with ``kept``) into ``kept``
    (sorted by case_id) where a sort by case_id would put them; zero-copy slices."""
    if fresh.num_rows == 0:
        return kept
    ids = kept["case_id"].to_pylist()
    fresh_ids = fresh["case_id"].to_pylist()
    pieces, done, start = [], 0, 0
    while start < len(fresh_ids):
        end = bisect_right(fresh_ids, fresh_ids[start])
        at = bisect_left(ids, fresh_ids[start])
        pieces += [kept.slice(done, at - done), fresh.slice(start, end - start)]
        done, start = at, end
    pieces.append(kept.slice(done))
    return pa.concat_tables(pieces)


def without_cases(table: pa.Table, gone: list[str]) -> tuple[pa.Table, bool]:
    """(``table`` without the rows of the ``gone`` cases (sorted), whether any was there).

    Rows are sorted by case_id, so a case's rows are one run: the result is slices of
    ``table`` (no copy). An unsorted table (not written by tumorcot) is filtered instead."""
    ids = table["case_id"].to_pylist()
    if any(a > b for a, b in zip(ids, ids[1:])):
        hit = pc.is_in(table["case_id"], pa.array(gone, pa.string()))
        kept = table.filter(pc.invert(hit))
        return kept.take(pc.sort_indices(kept, sort_keys=[("case_id", "ascending")])), kept.num_rows < len(ids)
    pieces, done = [], 0
    for case_id in gone[bisect_left(gone, ids[0]) if ids else 0:]:
        if not ids or case_id > ids[-1]:
            break
        start, end = bisect_left(ids, case_id, done), bisect_right(ids, case_id, done)
        if end > start:
            pieces.append(table.slice(done, start - done))
            done = end
    if not pieces:
        return table, False
    pieces.append(table.slice(done))
    return pa.concat_tables(pieces), True


def replace_cases(dataset_dir: Path, folder: str, stem: str, schema: pa.Schema, entries: list[dict],
                  affected: set[str], fresh: pa.Table, *, allow_empty: bool = False) -> list[dict]:
    """The stream's parts with the ``affected`` cases' rows replaced by ``fresh`` (sorted by
    case_id; may be empty): untouched parts keep their entries, touched ones are rewritten."""
    if not entries:
        writer = PartWriter(dataset_dir, folder, stem, schema, allow_empty=allow_empty)
        writer.write(fresh)
        return writer.close()
    ranges = [case_range(dataset_dir / e["path"]) for e in entries]
    if len(entries) > 1 and any(r is None for r in ranges):
        return _recut(dataset_dir, folder, stem, schema, entries, [], affected, fresh, allow_empty)
    lowers = [r[0] for r in ranges[1:]]                      # part i holds [first_i, first_i+1)
    fresh_ids = fresh["case_id"].to_pylist()
    owner = [bisect_right(lowers, cid) for cid in fresh_ids]   # sorted, so each part's rows are contiguous
    shares = [(bisect_left(owner, i), bisect_right(owner, i)) for i in range(len(entries))]
    gone_sorted = sorted(affected)
    out = []
    for i, entry in enumerate(entries):
        lo, hi = shares[i]
        incoming = fresh.slice(lo, hi - lo)
        r = ranges[i]
        may_hold = r is not None and bisect_left(gone_sorted, r[0]) < len(gone_sorted) \
            and gone_sorted[bisect_left(gone_sorted, r[0])] <= r[1]
        if not incoming.num_rows and not (may_hold and _holds_any(dataset_dir / entry["path"], gone_sorted)):
            out.append(entry)
            continue
        kept, hit = without_cases(pq.read_table(dataset_dir / entry["path"], schema=schema), gone_sorted)
        if not incoming.num_rows and not hit:
            out.append(entry)
            continue
        part = splice(kept, incoming)
        if (part.num_rows == 0 and len(entries) > 1) or part.num_rows > 2 * MAX_ROWS_PER_SHARD:
            return _recut(dataset_dir, folder, stem, schema, entries, shares, affected, fresh, allow_empty)
        if part.num_rows == 0 and not allow_empty:
            return []   # the stream's only part is empty now: the stream has no file
        atomic_write_table(dataset_dir / entry["path"], part)
        out.append(dict(entry, **file_entry(dataset_dir, entry["path"], part.num_rows)))
    return out


def _holds_any(path: Path, case_ids: list[str]) -> bool:
    """Whether the part holds a row of one of ``case_ids`` (reads its case_id column only)."""
    ids = pq.read_table(path, columns=["case_id"])["case_id"]
    return pc.any(pc.is_in(ids, pa.array(case_ids, pa.string()))).as_py() or False


def _recut(dataset_dir: Path, folder: str, stem: str, schema: pa.Schema, entries: list[dict],
           shares: list[tuple[int, int]], affected: set[str], fresh: pa.Table, allow_empty: bool) -> list[dict]:
    """Re-cut the whole stream: every part minus the affected cases, with the fresh rows merged."""
    gone = sorted(affected)
    writer = PartWriter(dataset_dir, folder, stem, schema, allow_empty=allow_empty)
    try:
        if not shares:   # no usable ranges (an empty part among others): merge in one go
            kept = [without_cases(pq.read_table(dataset_dir / e["path"], schema=schema), gone)[0] for e in entries]
            writer.write(splice(pa.concat_tables(kept), fresh))
        for entry, (lo, hi) in zip(entries, shares):
            kept, _ = without_cases(pq.read_table(dataset_dir / entry["path"], schema=schema), gone)
            writer.write(splice(kept, fresh.slice(lo, hi - lo)))
        return writer.close()
    except BaseException:
        writer.abort()
        raise
