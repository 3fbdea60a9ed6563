"""Arrow schemas derived from the pydantic models, in this one place."""

from __future__ import annotations

import types
import typing
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel

_SCALARS = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(), Path: pa.string()}


def _arrow_type(annotation) -> pa.DataType:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if len(args) != 1:
            raise TypeError(f"cannot map union {annotation} to Arrow")
        return _arrow_type(args[0])
    if origin is typing.Literal:
        return pa.string()
    if origin in (list, tuple):
        element = args[0]
        return pa.list_(_arrow_type(element))
    if origin is dict:
        return pa.map_(_arrow_type(args[0]), _arrow_type(args[1]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct(_fields(annotation))
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"cannot map {annotation!r} to Arrow")


def _fields(model: type[BaseModel]) -> list[pa.Field]:
    return [
        pa.field(name, _arrow_type(field.annotation), nullable=True)
        for name, field in model.model_fields.items()
    ]


@lru_cache(maxsize=None)
def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    return pa.schema(_fields(model))


def to_table(model: type[BaseModel], items: list[BaseModel]) -> pa.Table:
    rows = [item.model_dump(mode="json") for item in items]
    return pa.Table.from_pylist(rows, schema=arrow_schema(model))
