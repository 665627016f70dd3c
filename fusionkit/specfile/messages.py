"""Pydantic validation errors in words: each error becomes (location, message, fix) with a did-you-mean.

Union branches are merged into one "expected X or Y", an unknown key gets the closest valid key, a bound says
the bound, a choice lists the choices; field descriptions are quoted where they help.
"""
from __future__ import annotations

import difflib
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, ValidationError

from .context import MISSING, dotted, get_at


def translate(exc: ValidationError, model: type[BaseModel], data: Any,
               owner: str | None = None) -> list[tuple[tuple, str, str | None]]:
    """Turn a pydantic error into (loc, message, hint) triples with human wording; union branches merged."""
    out: list[tuple[tuple, str, str | None]] = []
    unions: dict[tuple, Any] = {}
    for err in exc.errors(include_url=False):
        walk = _walk(model, err["loc"])
        if walk.union_loc is not None:
            unions.setdefault(walk.union_loc, walk.union_ann)
            continue
        out.append((walk.loc,) + _words(err, walk, owner))
    for uloc, ann in unions.items():
        value = get_at(data, uloc, MISSING)
        parts = [("true, false" if d == "true or false" else d)
                 for d in dict.fromkeys(describe(m) for m in _members(ann))]
        expect = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]
        got = f", got {show(value)}" if value is not MISSING else ""
        out.append((uloc, f"expected {expect}{got}", f"write {expect}"))
    return out


@dataclass
class _Walk:
    loc: tuple
    owner: type[BaseModel] | None = None      # the model holding the last key
    field: Any = None                          # its FieldInfo
    ann: Any = None                            # the annotation at the end of the walk (None: unknown)
    union_loc: tuple | None = None
    union_ann: Any = None


def _unwrap(ann: Any) -> Any:
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    if _is_union(ann):
        rest = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(rest) == 1:
            return _unwrap(rest[0])
    return ann


def _is_union(ann: Any) -> bool:
    return typing.get_origin(ann) in (Union, types.UnionType)


def _members(ann: Any) -> list:
    return [a for a in typing.get_args(ann) if a is not type(None)] if _is_union(ann) else [ann]


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _tag(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if origin is None:
        return getattr(ann, "__name__", str(ann))
    args = ",".join(_tag(a) for a in typing.get_args(ann))
    return f"{getattr(origin, '__name__', str(origin))}[{args}]".replace(" ", "")


def _walk(model: type[BaseModel], loc: tuple) -> _Walk:
    w = _Walk(loc=())
    clean: list = []
    cur: Any = model
    for el in loc:
        cur = _unwrap(cur) if cur is not None else None
        if _is_model(cur):
            f = cur.model_fields.get(el) if isinstance(el, str) else None
            w.owner, w.field = cur, f
            clean.append(el)
            cur = f.annotation if f is not None else None
            continue
        w.field = None
        origin = typing.get_origin(cur)
        if _is_union(cur):
            if w.union_loc is None:
                w.union_loc, w.union_ann = tuple(clean), cur
            match = [m for m in _members(cur) if _tag(m).lower() == str(el).replace(" ", "").lower()]
            cur = match[0] if match else None
            continue  # the branch tag is not part of the user's path
        clean.append(el)
        if origin in (list, set, frozenset) or cur in (list, set):
            args = typing.get_args(cur)
            cur = args[0] if args else None
        elif origin is tuple:
            args = [a for a in typing.get_args(cur) if a is not Ellipsis]
            cur = (args[el] if isinstance(el, int) and el < len(args) and len(args) > 1 else
                   (args[0] if args else None))
        elif origin is dict:
            cur = typing.get_args(cur)[1]
        else:
            cur = None
    w.loc = tuple(clean)
    w.ann = _unwrap(cur) if cur is not None else None
    return w


_EXPECT = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number",
    "bool_parsing": "true or false", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "tuple_type": "a list", "set_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "none_required": "null", "finite_number": "a finite number",
}
_BOUND = {"greater_than_equal": ("ge", "≥"), "greater_than": ("gt", ">"),
          "less_than_equal": ("le", "≤"), "less_than": ("lt", "<")}


def _words(err: dict, w: _Walk, owner: str | None) -> tuple[str, str | None]:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input", MISSING)
    desc = (w.field.description if w.field is not None and w.field.description else None)
    about = f"{w.loc[-1]}: {desc}" if desc and w.loc else None
    tail = f" — {about}" if about else ""
    if kind == "finite_number":
        return non_finite(value)
    if kind == "extra_forbidden":
        key = str(w.loc[-1]) if w.loc else "?"
        fields = list(w.owner.model_fields) if w.owner is not None else []
        close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
        lead = f"did you mean {close[0]!r}? " if close else "remove it. "
        if owner and len(w.loc) == 1:
            known = f"{owner} accepts: {', '.join(fields)}." if fields else f"{owner} takes no parameters."
        else:
            known = f"Valid keys here: {', '.join(fields) or 'none'}."
        return f"unknown key {key!r}", f"{lead}{known}"
    if kind == "missing":
        key = w.loc[-1] if w.loc else "?"
        if isinstance(key, int):
            return f"missing item [{key}]", "give every item of the list"
        return f"missing required key {key!r}", f"add `{key}: ...`" + (f" — {desc}" if desc else "")
    if kind in _BOUND:
        attr, sym = _BOUND[kind]
        return (f"must be {sym} {show_number(ctx.get(attr))} (got {show(value)})",
                f"use a value {sym} {show_number(ctx.get(attr))}{tail}")
    if kind == "literal_error":
        choices = _literal_choices(w.ann) or []
        shown = (", ".join(show(c) for c in choices) if choices
                 else str(ctx.get("expected", "")).replace(" or ", ", "))
        close = (difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1, cutoff=0.7)
                 if isinstance(value, str) else [])
        hint = f"did you mean {close[0]!r}?" if close else f"pick one of {shown}"
        return f"must be one of {shown} (got {show(value)})", hint + tail
    if kind in ("model_type", "dict_type", "model_attributes_type") and isinstance(value, str) \
            and _is_model(w.ann) and "name" in w.ann.model_fields:
        key = dotted(w.loc)
        from .overrides import shell_set

        return f"expected a mapping with a name, got {show(value)}", (f"write `{key}: {{name: {value}}}` "
                                                                     f"(on the command line: "
                                                                     f"{shell_set(f'{key}.name={value}')})")
    if kind in _EXPECT:
        expect = _EXPECT[kind]
        if kind in ("list_type", "tuple_type", "set_type") and w.ann is not None:
            expect = describe(w.ann)
        hint = {"a list": "write a YAML list, e.g. [a, b]", "a mapping": "write a YAML mapping, e.g. {key: value}",
                "true or false": "write true or false"}.get(expect.split(" of ")[0], f"write {expect}")
        return f"expected {expect}, got {show(value)}", hint + tail
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        word = "at least" if kind == "too_short" else "at most"
        return f"must have {word} {n} item(s) (got {ctx.get('actual_length')})", about
    if kind in ("string_too_short", "string_too_long"):
        n = ctx.get("min_length") if kind == "string_too_short" else ctx.get("max_length")
        word = "at least" if kind == "string_too_short" else "at most"
        return f"must have {word} {n} character(s) (got {show(value)})", about
    if kind == "string_pattern_mismatch":
        return (f"{show(value)} does not match the pattern {ctx.get('pattern')}",
                "use only the characters the pattern allows" + tail)
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    msg = msg[:1].lower() + msg[1:]
    msg = msg.replace("input should be", "expected")
    got = f" (got {show(value)})" if value is not MISSING and not isinstance(value, (dict, list)) else ""
    return f"{msg}{got}", about


def non_finite(value: Any) -> tuple[str, str]:
    """The problem and fix for a NaN or infinite number (the same words wherever it is found)."""
    return f"expected a finite number, got {show(value)}", "write a finite number (not .nan or .inf)"


def non_finite_numbers(data: Any, loc: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every NaN or infinite number in ``data`` with its location. A component's ``params`` are a free mapping in
    phase 1, and the JSON view phase 2 works on turns NaN into null, so loaders look for them first."""
    import math

    if isinstance(data, float) and not math.isfinite(data):
        return [(loc, data)]
    if isinstance(data, dict):
        return [hit for k, v in data.items() for hit in non_finite_numbers(v, loc + (k,))]
    if isinstance(data, list):
        return [hit for i, v in enumerate(data) for hit in non_finite_numbers(v, loc + (i,))]
    return []


def join_hints(*parts: str | None) -> str | None:
    """Hint fragments as sentences: each ends with punctuation, joined by a space."""
    out = []
    for part in parts:
        part = (part or "").strip()
        if part:
            out.append(part if part[-1] in ".?!" else part + ".")
    return " ".join(out) or None


def _literal_choices(ann: Any) -> list | None:
    if ann is not None and typing.get_origin(ann) is Literal:
        return list(typing.get_args(ann))
    return None


def describe(ann: Any) -> str:
    ann = _unwrap(ann)
    origin = typing.get_origin(ann)
    if ann is int:
        return "an integer"
    if ann is float:
        return "a number"
    if ann is bool:
        return "true or false"
    if ann is str:
        return "a string"
    if ann is type(None):
        return "null"
    if origin is Literal:
        args = typing.get_args(ann)
        return show(args[0]) if len(args) == 1 else "one of " + ", ".join(show(a) for a in args)
    if origin in (list, tuple, set, frozenset) or ann in (list, tuple, set):
        args = [a for a in typing.get_args(ann) if a is not Ellipsis]
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        if args and all(a is args[0] for a in args) and args[0] in plural:
            return f"a list of {plural[args[0]]}"
        return "a list"
    if origin is dict or ann is dict or _is_model(ann):
        return "a mapping"
    return getattr(ann, "__name__", str(ann))


def a_kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


def show_number(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def show(v: Any) -> str:
    if v is MISSING:
        return "nothing"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, (int, float)):
        return repr(v)
    try:
        text = json.dumps(v, default=str)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
