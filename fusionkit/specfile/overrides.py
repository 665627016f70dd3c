"""``--set KEY=VALUE`` overrides: the dotted-key syntax (``a.b[0].c``, ``losses[NAME].weight``) and applying them.

Values are YAML (``--set scale=4``, ``--set 'inputs=[a.png,b.png]'``). A key may go below a section the file does
not write (the model's defaults are materialised on the way), and ``[NAME]`` selects the one list item whose
``name`` is NAME. Every ``--set`` this module prints (fixes, and the label of a problem an override caused) is
quoted for the shell by :func:`shell_set`.
"""
from __future__ import annotations

import copy
import difflib
import json
import re
from typing import Any, Callable

import yaml

from ..errors import SpecProblem
from .context import MISSING, Loc, SpecContext, dotted, get_at
from .messages import a_kind


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def shell_set(assignment: str) -> str:
    """``--set KEY=VALUE`` as it must be typed: single-quoted when the shell would touch it (zsh, macOS's default
    shell, reads ``[..]``, ``{..}``, ``*`` and ``?`` as file patterns; spaces split words)."""
    if re.search(r"[][{}*?\s'\"$`!&|;<>()~#\\]", assignment):
        return "--set '" + assignment.replace("'", "'\\''") + "'"
    return f"--set {assignment}"


EXAMPLES = (f"e.g. {shell_set('iterations=50')}, {shell_set('generator.params.kernel=3')} or "
            f"{shell_set('losses[joint_gradient].weight=0')}")


class OverrideError(Exception):
    def __init__(self, path: str, message: str, hint: str):
        super().__init__(message)
        self.path, self.message, self.hint = path, message, hint


def parse_key(key: str) -> list[str | int | tuple[str]]:
    """``losses[joint_gradient].weight`` -> ["losses", ("joint_gradient",), "weight"]; ints are indices."""
    tokens: list = []
    pos = 0
    m = _NAME.match(key, pos)
    if not m:
        raise ValueError("it must start with a key name")
    tokens.append(m.group())
    pos = m.end()
    while pos < len(key):
        ch = key[pos]
        if ch == ".":
            m = _NAME.match(key, pos + 1)
            if not m:
                raise ValueError(f"expected a key name after '.' at position {pos + 1}")
            tokens.append(m.group())
            pos = m.end()
        elif ch == "[":
            end = key.find("]", pos)
            inner = key[pos + 1:end].strip() if end >= 0 else ""
            if end < 0 or not inner:
                raise ValueError(f"'[' at position {pos} needs an index or a name, then ']'")
            tokens.append(int(inner) if re.fullmatch(r"-?\d+", inner) else (inner,))
            pos = end + 1
        else:
            raise ValueError(f"unexpected {ch!r} at position {pos}")
    return tokens


def apply_overrides(data: dict, overrides: list[str], ctx: SpecContext, *, defaults: dict,
                    is_slot: Callable[[Loc], bool] = lambda loc: False, examples: str = EXAMPLES) -> None:
    """Apply ``--set KEY=VALUE`` overrides to ``data`` in order, recording where each value came from in ``ctx``.

    ``defaults`` (the spec model's defaults as JSON) lets a key be set below a section the file does not write;
    ``is_slot`` says which locations are component references (switching their ``name`` drops the old params);
    ``examples`` ends the fixes of malformed overrides. Problems go to ``ctx``; nothing is raised.
    """
    applied: list[tuple[tuple, Any, str]] = []
    for raw in overrides:
        label = shell_set(raw)
        if "=" not in raw:
            m = re.fullmatch(r"\s*([A-Za-z_][\w.\[\]\-]*)\s*(?::\s*|\s+)(\S.*)", raw)
            fix = (f"write it as {shell_set(f'{m.group(1)}={m.group(2)}')}" if m else
                   f"write --set KEY=VALUE with a dotted KEY, {examples}")
            ctx.add_raw(SpecProblem("", f"malformed override {raw!r}: expected KEY=VALUE", fix, file=label,
                                    override=raw))
            continue
        key, text = (s.strip() for s in raw.split("=", 1))
        try:
            tokens = parse_key(key)
        except ValueError as exc:
            ctx.add_raw(SpecProblem(key, f"malformed override key {key!r}: {exc}",
                                    f"use a dotted path with [index] or [name] selectors, {examples}", file=label,
                                    override=raw))
            continue
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as exc:
            ctx.add_raw(SpecProblem(key, f"cannot parse the value {text!r}: {getattr(exc, 'problem', exc)}",
                                    unparsable_fix(key, text), file=label, override=raw))
            continue
        try:
            loc, old = set_path(data, tokens, value, defaults)
        except OverrideError as exc:
            ctx.add_raw(SpecProblem(exc.path, exc.message, exc.hint, file=label, override=raw))
            continue
        ctx.origins.append((loc, raw))
        applied.append((loc, value, raw))
        # Switching a component by name drops the params written for the previous one (they belong to it);
        # params given with --set are kept whatever their order.
        slot = loc[:-1]
        if loc[-1] == "name" and is_slot(slot) and old is not MISSING and old != value:
            parent = get_at(data, slot)
            if isinstance(parent, dict) and parent.get("params"):
                parent["params"] = {}
                ctx.origins.append((slot + ("params",), raw))
                for prev_loc, prev_value, prev_raw in applied:
                    if prev_loc[:len(slot) + 1] == slot + ("params",) and len(prev_loc) > len(slot) + 1:
                        set_loc(parent["params"], prev_loc[len(slot) + 1:], prev_value)
                        ctx.origins.append((prev_loc, prev_raw))


def unparsable_fix(key: str, text: str) -> str:
    """The fix for a ``--set`` value that is not YAML: close an unclosed list or mapping (the usual slip), else
    quote the value as a string."""
    closers = {"[": "]", "{": "}"}
    stack: list[str] = []
    for ch in text:
        if ch in closers:
            stack.append(closers[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
    if stack:
        fixed = text + "".join(reversed(stack))
        return f"close the {'list' if text.lstrip().startswith('[') else 'mapping'}: {shell_set(f'{key}={fixed}')}"
    return f"quote the value for YAML and the shell: {shell_set(f'{key}=' + json.dumps(text))}"


def set_path(data: dict, tokens: list, value: Any, defaults: dict) -> tuple[tuple, Any]:
    """Set ``value`` at the path; returns the resolved location (selectors -> indices) and the old value."""
    cur: Any = data
    loc: list = []
    dflt: Any = defaults  # the spec defaults along an all-keys path: missing intermediates are materialised
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        here = dotted(tuple(loc)) or "the spec"
        if isinstance(tok, str):
            if not isinstance(cur, dict):
                raise OverrideError(dotted(tuple(loc)), f"{here} is {a_kind(cur)}, not a mapping: cannot set key {tok!r}",
                                     f"replace it as a whole: {shell_set(f'{here}=...')}")
            loc.append(tok)
            old = cur.get(tok, MISSING)
            dflt = dflt.get(tok, MISSING) if isinstance(dflt, dict) else MISSING
            if last:
                cur[tok] = value
                return tuple(loc), old
            if old is MISSING or old is None:
                if dflt is not MISSING and dflt is not None and not isinstance(dflt, (dict, list)):
                    key = dotted(tuple(loc))
                    raise OverrideError(key, f"{key} is {a_kind(dflt)}, not a mapping or a list: cannot go "
                                              "further into it", f"set it directly, e.g. {shell_set(f'{key}=...')}")
                cur[tok] = copy.deepcopy(dflt) if isinstance(dflt, (dict, list)) else {}
            cur = cur[tok]
            continue
        dflt = MISSING
        if not isinstance(cur, list):
            raise OverrideError(here, f"{here} is {a_kind(cur)}, not a list: cannot use [{tok if isinstance(tok, int) else tok[0]}]",
                                 "use a dotted key for a mapping, e.g. generator.params.kernel")
        if isinstance(tok, int):
            if not -len(cur) <= tok < len(cur):
                named = [it["name"] for it in cur if isinstance(it, dict) and isinstance(it.get("name"), str)]
                sel = f", a name selector like {here}[{named[0]}]" if named else ""
                span = f"an index from 0 to {len(cur) - 1}{sel}, or" if cur else ""
                raise OverrideError(here, f"index {tok} is out of range: {here} has {len(cur)} item(s)",
                                     f"use {span} replace the whole list: {shell_set(f'{here}=[...]')}"
                                     .replace("  ", " "))
            idx = tok % len(cur)
        else:
            name = tok[0]
            names = [it.get("name") for it in cur if isinstance(it, dict)]
            hits = [j for j, it in enumerate(cur) if isinstance(it, dict) and it.get("name") == name]
            if not hits:
                known = [str(n) for n in names if n is not None]
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                lead = f"did you mean {close[0]!r}? " if close else ""
                raise OverrideError(f"{here}[{name}]", f"no item named {name!r} in {here}",
                                     f"{lead}{here} has: {', '.join(known) or 'no named items'}; "
                                     f"or select by index, e.g. {here}[0]")
            if len(hits) > 1:
                raise OverrideError(f"{here}[{name}]", f"{len(hits)} items of {here} are named {name!r}",
                                     f"select one by index: {', '.join(f'{here}[{j}]' for j in hits)}")
            idx = hits[0]
        loc.append(idx)
        if last:
            old = cur[idx]
            cur[idx] = value
            return tuple(loc), old
        if cur[idx] is None:
            cur[idx] = {}
        cur = cur[idx]
    raise AssertionError("unreachable")  # pragma: no cover


def set_loc(data: dict, loc: tuple, value: Any) -> None:
    cur = data
    for el in loc[:-1]:
        if isinstance(cur, dict) and not isinstance(cur.get(el), (dict, list)):
            cur[el] = {}
        cur = cur[el]
    cur[loc[-1]] = value
