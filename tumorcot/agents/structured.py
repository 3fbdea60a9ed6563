"""Structured output: pydantic model -> strict JSON schema -> ``response_format``, and back.

Guarantees:

- ``strict_schema`` turns ``model_json_schema()`` into what OpenAI's ``strict: true`` mode and
  vLLM's guided decoding both accept: every object closes (``additionalProperties: false``) and
  lists all its properties as required, ``default`` values are dropped, and a ``$ref`` has no
  sibling keywords. Optional fields stay optional through ``anyOf [..., null]``.
- ``parse_output`` is the only way model text becomes an object: one JSON value (a surrounding
  Markdown code fence is tolerated), then pydantic validation. It raises ``OutputInvalid`` with a
  message fit to quote back to the model in a repair turn.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


class OutputInvalid(ValueError):
    """The model's text is not valid JSON for the schema; ``str()`` is the repair hint."""


def _tighten(node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return {"$ref": node["$ref"]}
        out = {k: _tighten(v) for k, v in node.items() if k != "default"}
        if out.get("type") == "object" or "properties" in out:
            props = out.get("properties", {})
            out["properties"] = props
            out["required"] = list(props)
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_tighten(v) for v in node]
    return node


@lru_cache(maxsize=256)
def _strict_schema_json(model: type[BaseModel]) -> str:
    return json.dumps(_tighten(copy.deepcopy(model.model_json_schema())), sort_keys=True)


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema made acceptable to ``strict: true`` structured outputs (a fresh copy)."""
    return json.loads(_strict_schema_json(model))


def schema_name(model: type[BaseModel]) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", model.__name__)[:64]


def json_schema_format(model: type[BaseModel]) -> dict[str, Any]:
    """``response_format`` for constrained decoding (OpenAI and vLLM >= 0.12)."""
    return {"type": "json_schema",
            "json_schema": {"name": schema_name(model), "schema": strict_schema(model), "strict": True}}


def json_mode_instruction(model: type[BaseModel]) -> str:
    """The system message that carries the schema when only ``json_object`` mode is available."""
    return ("Reply with exactly one JSON object, no prose, that validates against this JSON "
            "schema:\n" + json.dumps(strict_schema(model), sort_keys=True))


def parse_output(text: str, model: type[M]) -> M:
    """Validate the model's reply; raises ``OutputInvalid`` naming what is wrong."""
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputInvalid(f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} "
                            f"column {exc.colno})") from exc
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_url=False)[:10])
        raise OutputInvalid(f"the JSON does not match the schema: {problems}") from exc


def repair_message(problem: str) -> dict[str, str]:
    """The user turn that asks for a corrected reply, quoting the validation error."""
    return {"role": "user", "content": (
        f"Your previous reply was rejected: {problem}. Reply again with one JSON object that "
        "follows the required schema exactly, with no other text.")}
