"""Shard streams: parts cut at the shard size, in-place replacement of a few cases, re-cuts."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tumorcot.store import streams
from tumorcot.store.streams import PartWriter, replace_cases, splice, without_cases

SCHEMA = pa.schema([("case_id", pa.string()), ("value", pa.int64())])


def rows(*spec: tuple[str, int]) -> pa.Table:
    """rows(("c1", 2), ("c3", 1)) -> c1 twice, c3 once, values numbering the rows per case."""
    ids = [c for c, n in spec for _ in range(n)]
    values = [i for _, n in spec for i in range(n)]
    return pa.table({"case_id": ids, "value": values}, schema=SCHEMA)


def stream_rows(folder, entries) -> list[tuple[str, int]]:
    tables = [pq.read_table(folder / e["path"]) for e in entries]
    return [(r["case_id"], r["value"]) for t in tables for r in t.to_pylist()]


@pytest.fixture
def small_shards(monkeypatch):
    monkeypatch.setattr(streams, "MAX_ROWS_PER_SHARD", 4)


def write(folder, table, **kw):
    writer = PartWriter(folder, "data", "train", SCHEMA, **kw)
    writer.write(table)
    return writer.close()


def test_part_writer_cuts_every_max_rows_and_names_parts_i_of_n(tmp_path, small_shards):
    entries = write(tmp_path, rows(("a", 3), ("b", 3), ("c", 3)))
    assert [e["path"] for e in entries] == [f"data/train-0000{i}-of-00003.parquet" for i in range(3)]
    assert [e["rows"] for e in entries] == [4, 4, 1]
    assert stream_rows(tmp_path, entries) == [(c, i) for c in "abc" for i in range(3)]
    assert not list((tmp_path / "data").glob(".*.tmp"))


@pytest.mark.parametrize("allow_empty, files", [
    (False, 0),   # a split without records has no file
    (True, 1),    # the log and the facts always have one (maybe empty) part
])
def test_part_writer_without_rows(tmp_path, allow_empty, files):
    assert len(write(tmp_path, rows(), allow_empty=allow_empty)) == files


@pytest.mark.parametrize("gone, expected", [
    (["b"], [("a", 2), ("c", 1)]),                  # a middle case
    (["a", "c"], [("b", 3)]),                       # both ends
    (["0", "bb", "z"], [("a", 2), ("b", 3), ("c", 1)]),   # absent ids: nothing removed
])
def test_without_cases_slices_out_whole_cases(gone, expected):
    kept, hit = without_cases(rows(("a", 2), ("b", 3), ("c", 1)), sorted(gone))
    assert [(c, n) for c, n in _runs(kept)] == expected
    assert hit == (kept.num_rows < 6)


def test_without_cases_on_an_unsorted_table_filters_and_sorts():
    table = pa.concat_tables([rows(("c", 1)), rows(("a", 2), ("b", 1))])
    kept, hit = without_cases(table, ["b"])
    assert hit and _runs(kept) == [("a", 2), ("c", 1)]


def _runs(table) -> list[tuple[str, int]]:
    out: list[list] = []
    for case_id in table["case_id"].to_pylist():
        if out and out[-1][0] == case_id:
            out[-1][1] += 1
        else:
            out.append([case_id, 1])
    return [tuple(r) for r in out]


def test_splice_puts_new_cases_where_a_sort_would():
    merged = splice(rows(("b", 1), ("d", 2)), rows(("a", 1), ("c", 2), ("e", 1)))
    assert _runs(merged) == [("a", 1), ("b", 1), ("c", 2), ("d", 2), ("e", 1)]


def test_replace_cases_rewrites_only_the_touched_part(tmp_path, small_shards):
    entries = write(tmp_path, rows(("a", 2), ("b", 2), ("c", 2), ("d", 2), ("e", 2), ("f", 2)))
    assert len(entries) == 3
    before = {e["path"]: (tmp_path / e["path"]).stat().st_mtime_ns for e in entries}
    updated = replace_cases(tmp_path, "data", "train", SCHEMA, entries, {"c"}, rows(("c", 3)))
    after = {e["path"]: (tmp_path / e["path"]).stat().st_mtime_ns for e in updated}
    assert [p for p in after if after[p] != before[p]] == ["data/train-00001-of-00003.parquet"]
    assert _runs(pa.concat_tables([pq.read_table(tmp_path / e["path"]) for e in updated])) == \
        [("a", 2), ("b", 2), ("c", 3), ("d", 2), ("e", 2), ("f", 2)]
    assert updated[1]["rows"] == 5 and updated[0] == entries[0] and updated[2] == entries[2]


@pytest.mark.parametrize("affected, fresh, expected_parts", [
    ({"c", "d"}, rows(), [4, 4]),                          # a part becomes empty: re-cut
    ({"x"}, rows(("x", 9)), [4, 4, 4, 4, 4, 1]),           # a part grows past twice the shard size
])
def test_replace_cases_recuts_the_stream_when_a_part_would_be_empty_or_too_big(tmp_path, small_shards,
                                                                                affected, fresh, expected_parts):
    entries = write(tmp_path, rows(("a", 2), ("b", 2), ("c", 2), ("d", 2), ("e", 2), ("f", 2)))
    updated = replace_cases(tmp_path, "data", "train", SCHEMA, entries, affected, fresh)
    assert [e["rows"] for e in updated] == expected_parts
    everything = [r for r in rows(("a", 2), ("b", 2), ("c", 2), ("d", 2), ("e", 2), ("f", 2)).to_pylist()
                  if r["case_id"] not in affected] + fresh.to_pylist()
    assert stream_rows(tmp_path, updated) == sorted(((r["case_id"], r["value"]) for r in everything))


def test_replace_cases_new_case_before_all_parts_goes_to_the_first(tmp_path, small_shards):
    entries = write(tmp_path, rows(("m", 2), ("n", 2), ("p", 2)))
    updated = replace_cases(tmp_path, "data", "train", SCHEMA, entries, {"a"}, rows(("a", 1)))
    assert [e["rows"] for e in updated] == [5, 2] and updated[1] == entries[1]
    assert _runs(pq.read_table(tmp_path / updated[0]["path"])) == [("a", 1), ("m", 2), ("n", 2)]


def test_replace_cases_removing_the_only_part_of_a_split_leaves_no_file(tmp_path):
    entries = write(tmp_path, rows(("a", 2)))
    assert replace_cases(tmp_path, "data", "train", SCHEMA, entries, {"a"}, rows()) == []
