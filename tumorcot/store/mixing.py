"""The family mix where shards are written: which stored records each split publishes.

The mix is a property of a split (``agents/families/mix.py``), so it is chosen from every case's
stored records at once, a few columns per case, before the record streams are written; the
streams then keep only the chosen rows. Every case keeps all its records in the private store, so
a change of ``--mix`` (or of the split ratios) rewrites the shards and regenerates nothing.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from tumorcot.agents.families.mix import Candidate, select
from tumorcot.schemas import CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.schemas.options import stored_options
from tumorcot.store.cases import CaseStore, read_table

COLUMNS = ("record_id", "case_id", "task", "subtask", "patient_pseudo_id", "negative", "answer_index", "options",
           "template", "answer_template")


def mix_settings(versions: dict) -> tuple:
    """What of a run's options decides the selection (a change rewrites every record stream)."""
    options = stored_options(versions.get("options"))
    return options.family_mix, options.organ_box_cap


def chosen_records(store: CaseStore, case_ids: list[str], versions: dict, with_splits) -> set[str] | None:
    """Record ids the shards keep under the run's family mix; None without a mix (keep all).
    ``with_splits(table, ratios)`` assigns each row its split (``shards.with_splits``)."""
    options = stored_options(versions.get("options"))
    if not options.family_mix:
        return None
    schema = arrow_schema(CoTRecord)
    candidates: list[Candidate] = []
    for case_id in case_ids:
        path = store.records_path(case_id)
        if not path.exists():
            continue
        table = with_splits(read_table(path, schema).select([*COLUMNS, "split"]), options.split_ratios)
        candidates += _candidates(table)
    return select(candidates, options.family_mix, options.organ_box_cap)


def _candidates(table: pa.Table) -> list[Candidate]:
    choices = pc.fill_null(pc.list_value_length(table["options"]), 0).to_pylist()
    negative = pc.fill_null(table["negative"], False).to_pylist()
    columns = {k: table[k].to_pylist() for k in ("record_id", "case_id", "task", "subtask", "split", "answer_index",
                                                 "template", "answer_template")}
    return [Candidate(record_id=rid, case_id=cid, task=task, subtask=sub, split=split, negative=neg,
                      choices=k, answer_index=index if k else None, question_form=(question or "").split("+")[0],
                      answer_form=answer or "")
            for rid, cid, task, sub, split, index, neg, k, question, answer in zip(
                columns["record_id"], columns["case_id"], columns["task"], columns["subtask"], columns["split"],
                columns["answer_index"], negative, choices, columns["template"], columns["answer_template"])]


def keep_rows(table: pa.Table, chosen: set[str] | None) -> pa.Table:
    """``table``'s rows the mix chose (all of them without a mix)."""
    if chosen is None or table.num_rows == 0:
        return table
    mask = pa.array([rid in chosen for rid in table["record_id"].to_pylist()], pa.bool_())
    return table.filter(mask)
