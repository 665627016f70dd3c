"""Describing pydantic fields for humans: type, default, bounds and description of each field of a model.

One implementation for every place that shows a model's fields (``fusionkit plugins show``, docs/spec.md,
docs/components.md), so they cannot drift apart. Output is plain text; the Markdown generators pass ``code``
(how to mark literal values, e.g. backticks) and ``model`` (how to name a nested model, e.g. as a link).
"""
from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

__all__ = ["FieldRow", "type_name", "default_text", "bounds_text", "rows"]

Mark = Callable[[str], str]

_SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null", Any: "any"}

#: constraint attribute -> how it reads; pydantic puts these on ``FieldInfo.metadata`` (annotated_types objects)
_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("multiple_of", "multiple of"),
           ("min_length", "length ≥"), ("max_length", "length ≤"))


def _plain(text: str) -> str:
    return text


def _model_name(cls: type[BaseModel]) -> str:
    return cls.__name__


class FieldRow(NamedTuple):
    """One field as people read it; a tuple so it can be splatted into a table row."""

    name: str
    type: str
    default: str
    bounds: str
    description: str


def type_name(annotation: Any, *, code: Mark = _plain, model: Callable[[type], str] = _model_name) -> str:
    """The type a user must write, in words ("integer or null", "list of number"), not Python's repr:
    users write YAML/JSON, and ``typing.Optional`` prints as an unhelpful "Optional"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0], code=code, model=model)
    if origin is Literal:
        return " or ".join(code(json.dumps(a, ensure_ascii=False)) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a, code=code, model=model) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(names)) + (" or null" if type(None) in args else "")
    if origin in (list, tuple, set, frozenset):
        inner = [type_name(a, code=code, model=model) for a in args if a is not Ellipsis]
        return "list" + (f" of {' or '.join(dict.fromkeys(inner))}" if inner else "")
    if origin is dict or annotation is dict:
        return "mapping"
    if annotation is list:
        return "list"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model(annotation)
    try:
        return _SCALARS[annotation]
    except (KeyError, TypeError):  # TypeError: an unhashable annotation
        pass
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def default_text(field: FieldInfo, *, code: Mark = _plain) -> str:
    """The default as the user would write it (JSON, which YAML also reads), or "required";
    ``default_factory`` is called so a list/model default shows its contents."""
    if field.is_required():
        return "required"
    value = to_jsonable_python(field.get_default(call_default_factory=True))
    return code(json.dumps(value, ensure_ascii=False))


def bounds_text(field: FieldInfo, *, code: Mark = _plain) -> str:
    """The field's constraints ("≥ 1, ≤ 8", "length ≥ 2", "matches ..."), so a user sees the allowed range
    before validation rejects a value."""
    parts = []
    for meta in field.metadata:
        for attr, sym in _BOUNDS:
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sym} {value}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            parts.append(f"matches {code(pattern)}")
    return ", ".join(parts)


def rows(model: type[BaseModel], *, code: Mark = _plain,
         model_name: Callable[[type], str] = _model_name) -> list[FieldRow]:
    """Every field of ``model``, in declaration order, described for people."""
    return [FieldRow(name, type_name(f.annotation, code=code, model=model_name), default_text(f, code=code),
                     bounds_text(f, code=code), f.description or "")
            for name, f in model.model_fields.items()]
