"""Load a pipeline spec, apply ``--set`` overrides, validate it in two phases and resolve it.

``load_spec("spec.yaml", ["iterations=50"])`` returns a :class:`ResolvedSpec`: every default filled in, every
component's ``params`` validated against that component's ``Params`` and completed, input paths resolved against
the spec file's folder. Anything wrong is reported all at once as one :class:`~fusionkit.errors.SpecError` whose
problems each say where (``file:line`` or the ``--set`` that caused it, plus the dotted path), what, and the fix.

Phases:

0. read: the file exists, is YAML, and its top level is a mapping; overrides are parsed and applied;
1. structure: :class:`~fusionkit.spec.PipelineSpec` (unknown keys, types, ranges, choices);
2. components: each component reference is looked up in the catalog and its ``params`` validated against the
   component's ``Params``; then the cross-field checks (inputs, losses).
"""
from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import SpecError, SpecProblem
from .spec import PipelineSpec

if typing.TYPE_CHECKING:  # pragma: no cover
    from .registry import Catalog

__all__ = ["ResolvedSpec", "load_spec", "problem_at", "shell_set", "spec_json_schema", "COMPONENT_SLOTS"]

Loc = tuple  # a pydantic-style location: str keys and int indices

#: The component references of a spec: location -> kind. ``losses[i]`` is added per item.
COMPONENT_SLOTS: dict[tuple[str, ...], str] = {
    ("focus_measure",): "focus_measure",
    ("generator",): "generator",
    ("decision_embedding", "generator"): "generator",
    ("decision_embedding", "loss"): "loss",
    ("downsampler",): "resampler",
    ("upsampler",): "resampler",
    ("fuser",): "fuser",
    ("light_field",): "light_field",
}

_MISSING = object()


# ------------------------------------------------------------------------------------------------ the result

@dataclass
class ResolvedSpec:
    """A validated, fully resolved spec and where it came from."""

    spec: PipelineSpec
    source: str | None          # absolute path of the spec file; None for a dict
    base_dir: Path              # folder relative input paths were resolved against
    overrides: list[str] = field(default_factory=list)
    #: per input, how its path was resolved ("'near.png', given with --set, relative to the current folder /x"),
    #: for messages about a missing input
    input_origins: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The resolved spec as plain JSON-able data (what the manifest records)."""
        return self.spec.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved spec as YAML that :func:`load_spec` accepts again."""
        head = [f"# resolved by fusionkit from {self.source or 'a Python dict'}"]
        if self.overrides:
            head.append("# overrides: " + " ".join(shell_set(o) for o in self.overrides))
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True,
                              width=110)
        return "\n".join(head) + "\n" + body


def spec_json_schema() -> dict:
    """JSON Schema of :class:`PipelineSpec` (``fusionkit schema``), for editor completion and checking."""
    schema = PipelineSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# ------------------------------------------------------------------------------------------------ entry point

def load_spec(source: str | os.PathLike | Mapping, overrides: Sequence[str] = (), *,
              catalog: "Catalog | None" = None, require_inputs: bool = True) -> ResolvedSpec:
    """Read ``source`` (a YAML file path or a dict), apply ``overrides`` and validate; see the module docstring.

    ``require_inputs=False`` accepts a spec without ``inputs`` (the images are given as arrays instead).
    Raises :class:`SpecError` listing every problem found.
    """
    if isinstance(overrides, str):  # a single "k=v" string is a common slip
        overrides = [overrides]
    ctx = _Context()
    if isinstance(source, Mapping):
        ctx.file = "<dict>"
        data: Any = copy.deepcopy(dict(source))
        base_dir = Path.cwd()
        abs_source = None
    else:
        path = Path(source)
        ctx.file = str(source)
        abs_source = str(path.resolve())
        base_dir = path.resolve().parent
        data = _read_yaml(path, ctx)
        if data is _MISSING:
            raise SpecError(ctx.problems, source=ctx.file)

    ctx.original = copy.deepcopy(data)
    _apply_overrides(data, list(overrides), ctx)

    if catalog is None:
        from .registry import default_catalog
        catalog = default_catalog()

    for loc, value in _non_finite_numbers(data):
        ctx.add(loc, *_non_finite(value))

    # phase 1: structure
    model: PipelineSpec | None = None
    try:
        model = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        for loc, message, hint in _translate(exc, PipelineSpec, data):
            ctx.add(loc, message, hint)

    # phase 2: components, on what parsed (defaults filled in where the structure is broken elsewhere)
    defaults = PipelineSpec().model_dump(mode="json")
    view = model.model_dump(mode="json") if model is not None else _overlay(defaults, data)
    for loc, kind in _slots(view):
        _resolve_component(view, loc, kind, catalog, ctx)
    _cross_checks(view, ctx, require_inputs, source_is_dict=isinstance(source, Mapping))

    if ctx.problems:
        raise SpecError(ctx.sorted_problems(), source=ctx.file)

    origins: list[str] = []
    if isinstance(view.get("inputs"), list):
        origins = [_input_origin(p, i, base_dir, ctx, isinstance(source, Mapping))
                   for i, p in enumerate(view["inputs"])]
        view["inputs"] = [_resolve_input(p, i, base_dir, ctx) for i, p in enumerate(view["inputs"])]
    if isinstance(view.get("light_field"), dict):
        view["light_field"]["path"] = _resolve_path(view["light_field"]["path"], ("light_field", "path"), base_dir, ctx)
    spec = PipelineSpec.model_validate(view)
    return ResolvedSpec(spec=spec, source=abs_source, base_dir=base_dir, overrides=list(overrides),
                        input_origins=origins)


def problem_at(resolved: ResolvedSpec, loc: tuple, message: str, hint: str | None = None) -> SpecProblem:
    """A problem found after validation (e.g. an output folder that cannot be written), located like the others:
    at the ``--set`` that gave the value, else at its line in the spec file."""
    for raw in reversed(resolved.overrides):
        try:
            tokens = tuple(t for t in _parse_key(raw.split("=", 1)[0].strip()))
        except ValueError:
            continue
        n = min(len(tokens), len(loc))
        if tokens[:n] == tuple(loc[:n]):
            return SpecProblem(_dotted(loc), message, hint, file=shell_set(raw), override=raw)
    line = None
    if resolved.source:
        try:
            line = _line_of(yaml.compose(Path(resolved.source).read_text(encoding="utf-8")), loc)
        except (OSError, yaml.YAMLError):
            pass
    return SpecProblem(_dotted(loc), message, hint, line=line, file=resolved.source or "<dict>")


# ------------------------------------------------------------------------------------------------ context

class _Context:
    """Collects problems and knows where a location came from (YAML line or a ``--set``)."""

    def __init__(self) -> None:
        self.file: str = "<spec>"
        self.root: Node | None = None
        self.problems: list[SpecProblem] = []
        self.origins: list[tuple[tuple, str]] = []   # (resolved loc, raw override), in order of application
        self.original: Any = None                    # the data before overrides

    def origin(self, loc: Loc) -> str | None:
        """The override that produced the value at ``loc`` (or created the key there), if any."""
        loc = tuple(loc)
        for oloc, raw in reversed(self.origins):
            if loc[:len(oloc)] == oloc:
                return raw
        for oloc, raw in reversed(self.origins):
            if oloc[:len(loc)] == loc and _get(self.original, loc, _MISSING) is _MISSING:
                return raw
        return None

    def add(self, loc: Loc, message: str, hint: str | None = None) -> None:
        raw = self.origin(loc)
        if raw is not None:
            problem = SpecProblem(_dotted(loc), message, hint, line=None, file=shell_set(raw), override=raw)
        else:
            problem = SpecProblem(_dotted(loc), message, hint, line=_line_of(self.root, loc), file=self.file)
        if not any(vars(p) == vars(problem) for p in self.problems):
            self.problems.append(problem)

    def add_raw(self, problem: SpecProblem) -> None:
        self.problems.append(problem)

    def sorted_problems(self) -> list[SpecProblem]:
        def key(ip):
            i, p = ip
            in_file = p.file == self.file
            return (0 if in_file else 1, p.line if p.line is not None else 10**9, i)
        return [p for _, p in sorted(enumerate(self.problems), key=key)]


def _dotted(loc: Loc) -> str:
    out = ""
    for el in loc:
        if isinstance(el, int):
            out += f"[{el}]"
        else:
            out += ("." if out else "") + str(el)
    return out


# ------------------------------------------------------------------------------------------------ phase 0: YAML

def _read_yaml(path: Path, ctx: _Context) -> Any:
    def fail(message: str, hint: str, line: int | None = None) -> Any:
        ctx.add_raw(SpecProblem("", message, hint, line=line, file=ctx.file))
        return _MISSING

    if not path.exists():
        return fail(f"spec file not found: {path}",
                    "check the path (relative paths are relative to the current folder); example specs are in "
                    "examples/, e.g. examples/dfp-x2.yaml")
    if path.is_dir():
        return fail(f"{path} is a folder, not a spec file", "give the path of a .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read the spec file: {exc}", "check the file's permissions and that it is UTF-8 text")

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(s) for s in (getattr(exc, "context", None), getattr(exc, "problem", None)) if s)
        return fail(f"YAML syntax error: {what or exc}",
                    f"check the YAML near line {line} (and the line before): indentation, a missing ':' or the "
                    "space after it, unclosed brackets or quotes" if line else "correct the YAML syntax", line)
    finally:
        loader.dispose()
    if data is None:
        return fail("the spec file is empty",
                    "write a mapping of spec keys, e.g. `inputs: [near.png, far.png]`; see docs/spec.md", 1)
    if not isinstance(data, dict):
        return fail(f"the top level of a spec must be a mapping of keys (name:, inputs:, ...), got {_a(data)}",
                    "start the file with keys such as `inputs: [near.png, far.png]`; see examples/dfp-x2.yaml",
                    node.start_mark.line + 1)
    ctx.root = node
    _duplicate_keys(node, (), ctx)
    return data


def _duplicate_keys(node: Node, loc: Loc, ctx: _Context) -> None:
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            if isinstance(k, ScalarNode):
                if k.value in seen:
                    ctx.add_raw(SpecProblem(
                        _dotted(loc + (k.value,)), f"duplicate key {k.value!r} (first on line {seen[k.value]}); "
                        "the last one would silently win", "keep only one of them",
                        line=k.start_mark.line + 1, file=ctx.file))
                seen.setdefault(k.value, k.start_mark.line + 1)
                _duplicate_keys(v, loc + (k.value,), ctx)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, loc + (i,), ctx)


def _line_of(root: Node | None, loc: Loc) -> int | None:
    """1-based line of the deepest YAML node along ``loc`` (a mapping key's own line); None if none matched."""
    node, line = root, None
    for el in loc:
        if isinstance(node, MappingNode):
            found = None
            for k, v in node.value:
                if isinstance(k, ScalarNode) and k.value == str(el):
                    found = (k, v)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, SequenceNode) and isinstance(el, int) and -len(node.value) <= el < len(node.value):
            node = node.value[el]
            line = node.start_mark.line + 1
        else:
            break
    return line


# ------------------------------------------------------------------------------------------------ overrides

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def shell_set(assignment: str) -> str:
    """``--set KEY=VALUE`` as it must be typed: single-quoted when the shell would touch it (zsh, macOS's default
    shell, reads ``[..]``, ``{..}``, ``*`` and ``?`` as file patterns; spaces split words)."""
    if re.search(r"[][{}*?\s'\"$`!&|;<>()~#\\]", assignment):
        return "--set '" + assignment.replace("'", "'\\''") + "'"
    return f"--set {assignment}"


_EXAMPLES = (f"e.g. {shell_set('iterations=50')}, {shell_set('generator.params.kernel=3')} or "
             f"{shell_set('losses[joint_gradient].weight=0')}")


class _OverrideError(Exception):
    def __init__(self, path: str, message: str, hint: str):
        super().__init__(message)
        self.path, self.message, self.hint = path, message, hint


def _parse_key(key: str) -> list[str | int | tuple[str]]:
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


def _apply_overrides(data: dict, overrides: list[str], ctx: _Context) -> None:
    defaults = PipelineSpec().model_dump(mode="json")
    applied: list[tuple[tuple, Any, str]] = []
    for raw in overrides:
        label = shell_set(raw)
        if "=" not in raw:
            m = re.fullmatch(r"\s*([A-Za-z_][\w.\[\]\-]*)\s*(?::\s*|\s+)(\S.*)", raw)
            fix = (f"write it as {shell_set(f'{m.group(1)}={m.group(2)}')}" if m else
                   f"write --set KEY=VALUE with a dotted KEY, {_EXAMPLES}")
            ctx.add_raw(SpecProblem("", f"malformed override {raw!r}: expected KEY=VALUE", fix, file=label,
                                    override=raw))
            continue
        key, text = (s.strip() for s in raw.split("=", 1))
        try:
            tokens = _parse_key(key)
        except ValueError as exc:
            ctx.add_raw(SpecProblem(key, f"malformed override key {key!r}: {exc}",
                                    f"use a dotted path with [index] or [name] selectors, {_EXAMPLES}", file=label,
                                    override=raw))
            continue
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as exc:
            ctx.add_raw(SpecProblem(key, f"cannot parse the value {text!r}: {getattr(exc, 'problem', exc)}",
                                    _unparsable_fix(key, text), file=label, override=raw))
            continue
        try:
            loc, old = _set_path(data, tokens, value, defaults)
        except _OverrideError as exc:
            ctx.add_raw(SpecProblem(exc.path, exc.message, exc.hint, file=label, override=raw))
            continue
        ctx.origins.append((loc, raw))
        applied.append((loc, value, raw))
        # Switching a component by name drops the params written for the previous one (they belong to it);
        # params given with --set are kept whatever their order.
        slot = loc[:-1]
        if loc[-1] == "name" and _is_slot(slot) and old is not _MISSING and old != value:
            parent = _get(data, slot)
            if isinstance(parent, dict) and parent.get("params"):
                parent["params"] = {}
                ctx.origins.append((slot + ("params",), raw))
                for prev_loc, prev_value, prev_raw in applied:
                    if prev_loc[:len(slot) + 1] == slot + ("params",) and len(prev_loc) > len(slot) + 1:
                        _set_loc(parent["params"], prev_loc[len(slot) + 1:], prev_value)
                        ctx.origins.append((prev_loc, prev_raw))


def _unparsable_fix(key: str, text: str) -> str:
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


def _set_path(data: dict, tokens: list, value: Any, defaults: dict) -> tuple[tuple, Any]:
    """Set ``value`` at the path; returns the resolved location (selectors -> indices) and the old value."""
    cur: Any = data
    loc: list = []
    dflt: Any = defaults  # the spec defaults along an all-keys path: missing intermediates are materialised
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        here = _dotted(tuple(loc)) or "the spec"
        if isinstance(tok, str):
            if not isinstance(cur, dict):
                raise _OverrideError(_dotted(tuple(loc)), f"{here} is {_a(cur)}, not a mapping: cannot set key {tok!r}",
                                     f"replace it as a whole: {shell_set(f'{here}=...')}")
            loc.append(tok)
            old = cur.get(tok, _MISSING)
            dflt = dflt.get(tok, _MISSING) if isinstance(dflt, dict) else _MISSING
            if last:
                cur[tok] = value
                return tuple(loc), old
            if old is _MISSING or old is None:
                if dflt is not _MISSING and dflt is not None and not isinstance(dflt, (dict, list)):
                    key = _dotted(tuple(loc))
                    raise _OverrideError(key, f"{key} is {_a(dflt)}, not a mapping or a list: cannot go "
                                              "further into it", f"set it directly, e.g. {shell_set(f'{key}=...')}")
                cur[tok] = copy.deepcopy(dflt) if isinstance(dflt, (dict, list)) else {}
            cur = cur[tok]
            continue
        dflt = _MISSING
        if not isinstance(cur, list):
            raise _OverrideError(here, f"{here} is {_a(cur)}, not a list: cannot use [{tok if isinstance(tok, int) else tok[0]}]",
                                 "use a dotted key for a mapping, e.g. generator.params.kernel")
        if isinstance(tok, int):
            if not -len(cur) <= tok < len(cur):
                named = [it["name"] for it in cur if isinstance(it, dict) and isinstance(it.get("name"), str)]
                sel = f", a name selector like {here}[{named[0]}]" if named else ""
                span = f"an index from 0 to {len(cur) - 1}{sel}, or" if cur else ""
                raise _OverrideError(here, f"index {tok} is out of range: {here} has {len(cur)} item(s)",
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
                raise _OverrideError(f"{here}[{name}]", f"no item named {name!r} in {here}",
                                     f"{lead}{here} has: {', '.join(known) or 'no named items'}; "
                                     f"or select by index, e.g. {here}[0]")
            if len(hits) > 1:
                raise _OverrideError(f"{here}[{name}]", f"{len(hits)} items of {here} are named {name!r}",
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


def _set_loc(data: dict, loc: tuple, value: Any) -> None:
    cur = data
    for el in loc[:-1]:
        if isinstance(cur, dict) and not isinstance(cur.get(el), (dict, list)):
            cur[el] = {}
        cur = cur[el]
    cur[loc[-1]] = value


def _get(data: Any, loc: Loc, default: Any = None) -> Any:
    cur = data
    for el in loc:
        if isinstance(cur, dict) and el in cur:
            cur = cur[el]
        elif isinstance(cur, list) and isinstance(el, int) and -len(cur) <= el < len(cur):
            cur = cur[el]
        else:
            return default
    return cur


def _is_slot(loc: Loc) -> bool:
    return tuple(loc) in COMPONENT_SLOTS or (len(loc) == 2 and loc[0] == "losses" and isinstance(loc[1], int))


def _overlay(defaults: Any, raw: Any) -> Any:
    """``raw`` with the spec defaults filled in where both are mappings (used when phase 1 failed)."""
    if isinstance(defaults, dict) and isinstance(raw, dict):
        out = copy.deepcopy(defaults)
        for k, v in raw.items():  # a component's params replace the default ones, never merge with them
            out[k] = _overlay(defaults[k], v) if k in defaults and k != "params" else copy.deepcopy(v)
        return out
    return copy.deepcopy(raw)


# ------------------------------------------------------------------------------------------------ phase 2

def _slots(view: dict) -> list[tuple[tuple, str]]:
    """The component references that this spec actually uses, with their kinds."""
    lf = [(("light_field",), "light_field")] if isinstance(view.get("light_field"), dict) else []
    return lf + _pipeline_slots(view)


def _pipeline_slots(view: dict) -> list[tuple[tuple, str]]:
    method = view.get("method")
    if method == "fuser":  # a complete fuser replaces the focus measure, the embedding and the generator
        return [(("fuser",), "fuser"), (("upsampler",), "resampler")]
    out: list[tuple[tuple, str]] = [(("focus_measure",), "focus_measure")]
    if method != "composite":
        out.append((("generator",), "generator"))
    emb = view.get("decision_embedding")
    if isinstance(emb, dict) and emb.get("enabled") is not False:
        out += [(("decision_embedding", "generator"), "generator"), (("decision_embedding", "loss"), "loss")]
    out += [(("downsampler",), "resampler"), (("upsampler",), "resampler")]
    losses = view.get("losses")
    if isinstance(losses, list):
        out += [(("losses", i), "loss") for i in range(len(losses))]
    return out


def _resolve_component(view: dict, loc: tuple, kind: str, catalog: "Catalog", ctx: _Context) -> None:
    ref = _get(view, loc)
    if not isinstance(ref, dict):
        return
    name, params = ref.get("name"), ref.get("params", {})
    if not isinstance(name, str) or not isinstance(params, dict):
        return  # phase 1 reported it
    words = kind.replace("_", " ")
    if (kind, name) in catalog.conflicts:  # two distributions provide it: the catalog's error names both
        from .errors import PluginError
        try:
            catalog.get(kind, name)
        except PluginError as exc:
            ctx.add(loc + ("name",), exc.message, exc.hint)
        return
    if not catalog.has(kind, name):
        from .registry.catalog import plural
        guess = catalog.suggest(kind, name)
        lead = f"did you mean {guess!r}? " if guess else ""
        installed = ", ".join(catalog.names(kind)) or "none"
        default = (_get(ctx.original, loc + ("name",), _MISSING) is _MISSING
                   and ctx.origin(loc + ("name",)) is None)
        ctx.add(loc + ("name",), f"unknown {words} {name!r}" + (" (the default)" if default else ""),
                f"{lead}Installed {plural(kind)}: {installed}. " + (catalog.failure_note() or
                f"See `fusionkit plugins list --kind {kind}`."))
        return
    model = catalog.get(kind, name).params  # the Params model only: no need to import the component (torch)
    try:
        validated = model.model_validate(params)
    except ValidationError as exc:
        see = f"See `fusionkit plugins show {name}` for its parameters."
        for ploc, message, hint in _translate(exc, model, params, owner=f"{name} ({words})"):
            ctx.add(loc + ("params",) + ploc, message, _join(hint, see))
        return
    ref["params"] = validated.model_dump(mode="json")


def _cross_checks(view: dict, ctx: _Context, require_inputs: bool, source_is_dict: bool) -> None:
    inputs = view.get("inputs")
    if isinstance(view.get("light_field"), dict):
        if isinstance(inputs, list) and inputs:
            ctx.add(("light_field",), "the spec gives both `inputs` and `light_field`; the stack to fuse comes "
                    "from exactly one of them",
                    "remove `inputs` to fuse the light field's refocused slices, or remove `light_field` to fuse "
                    "the listed images")
        require_inputs = False
    if require_inputs and isinstance(inputs, list) and len(inputs) < 2:
        if source_is_dict:
            hint = ("add \"inputs\": [\"near.png\", \"far.png\"] to the dict, or pass the images as arrays: "
                    "fusionkit.run(spec, inputs=[a, b])")
        else:
            hint = ("list the images in the spec, e.g. `inputs: [near.png, far.png]` (paths relative to the spec "
                    "file), or on the command line: --set 'inputs=[near.png,far.png]' (paths relative to the "
                    "current folder)")
            if not inputs:
                hint += (", or fuse a light field's refocused slices instead: `light_field: {name: view_grid, "
                         "path: views/, params: {...}}` (see docs/light-fields.md)")
        ctx.add(("inputs",), f"fusion needs at least 2 input images, got {len(inputs)}", hint)
    if view.get("method") == "fuser" and not isinstance(view.get("fuser"), dict):
        ctx.add(("fuser",), "method 'fuser' needs a fuser, got none",
                "name one, e.g. `fuser: {name: enfuse}` (see `fusionkit plugins list --kind fuser`), "
                "or use `method: composite` for the two-step baseline")
    if view.get("method", "dfp") == "dfp" and view.get("iterations") == 0:
        ctx.add(("iterations",), "method 'dfp' needs at least 1 iteration, got 0 (the output would be the "
                "untrained network's)",
                "give iterations: 1 or more, or use `method: composite` for the two-step result without any "
                "optimisation")
    losses = view.get("losses")
    if view.get("method", "dfp") == "dfp" and isinstance(losses, list) and not losses:
        ctx.add(("losses",), "method 'dfp' needs at least one loss term, got none",
                "add terms, e.g. `losses: [{name: content, weight: 1.0}, {name: joint_gradient, weight: 0.5}]`, "
                "or use `method: composite` (no optimisation)")
    if isinstance(losses, list):
        first: dict[str, int] = {}
        for i, term in enumerate(losses):
            name = term.get("name") if isinstance(term, dict) else None
            if not isinstance(name, str):
                continue
            if name in first:
                ctx.add(("losses", i, "name"), f"loss {name!r} appears twice (also losses[{first[name]}])",
                        "list each loss once and put the combined weight on it; the `losses[NAME]` override "
                        "selector needs unique names")
            else:
                first[name] = i


def _resolve_input(p: str, i: int, base_dir: Path, ctx: _Context) -> str:
    return _resolve_path(p, ("inputs", i), base_dir, ctx)


def _input_origin(p: str, i: int, base_dir: Path, ctx: _Context, from_dict: bool) -> str:
    """How input ``i`` was resolved, in words, for a message about a missing file."""
    if Path(os.path.expanduser(p)).is_absolute():
        return f"{p!r} is an absolute path"
    if ctx.origin(("inputs", i)) is not None:
        return f"{p!r}, given with --set, is relative to the current folder {Path.cwd()}"
    if from_dict:
        return f"{p!r}, in a spec given as a dict, is relative to the current folder {Path.cwd()}"
    return f"{p!r} is relative to the spec file's folder {base_dir}"


def _resolve_path(p: str, loc: tuple, base_dir: Path, ctx: _Context) -> str:
    path = Path(os.path.expanduser(p))
    if path.is_absolute():
        return os.path.normpath(path)
    # paths given with --set are relative to the current folder, as a shell user expects
    base = Path.cwd() if ctx.origin(loc) is not None else base_dir
    return os.path.normpath(base / path)


# ------------------------------------------------------------------------------------------------ pydantic -> words

def _translate(exc: ValidationError, model: type[BaseModel], data: Any,
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
        value = _get(data, uloc, _MISSING)
        parts = [("true, false" if d == "true or false" else d)
                 for d in dict.fromkeys(_describe(m) for m in _members(ann))]
        expect = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]
        got = f", got {_show(value)}" if value is not _MISSING else ""
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
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input", _MISSING)
    desc = (w.field.description if w.field is not None and w.field.description else None)
    about = f"{w.loc[-1]}: {desc}" if desc and w.loc else None
    tail = f" — {about}" if about else ""
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
    if kind == "finite_number":
        return _non_finite(value)
    if kind in _BOUND:
        attr, sym = _BOUND[kind]
        return (f"must be {sym} {_num(ctx.get(attr))} (got {_show(value)})",
                f"use a value {sym} {_num(ctx.get(attr))}{tail}")
    if kind == "literal_error":
        choices = _literal_choices(w.ann) or []
        shown = (", ".join(_show(c) for c in choices) if choices
                 else str(ctx.get("expected", "")).replace(" or ", ", "))
        close = (difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1, cutoff=0.7)
                 if isinstance(value, str) else [])
        hint = f"did you mean {close[0]!r}?" if close else f"pick one of {shown}"
        return f"must be one of {shown} (got {_show(value)})", hint + tail
    if kind in ("model_type", "dict_type", "model_attributes_type") and isinstance(value, str) \
            and _is_model(w.ann) and "name" in w.ann.model_fields:
        key = _dotted(w.loc)
        return f"expected a mapping with a name, got {_show(value)}", (f"write `{key}: {{name: {value}}}` "
                                                                     f"(on the command line: "
                                                                     f"{shell_set(f'{key}.name={value}')})")
    if kind in _EXPECT:
        expect = _EXPECT[kind]
        if kind in ("list_type", "tuple_type", "set_type") and w.ann is not None:
            expect = _describe(w.ann)
        hint = {"a list": "write a YAML list, e.g. [a, b]", "a mapping": "write a YAML mapping, e.g. {key: value}",
                "true or false": "write true or false"}.get(expect.split(" of ")[0], f"write {expect}")
        return f"expected {expect}, got {_show(value)}", hint + tail
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        word = "at least" if kind == "too_short" else "at most"
        return f"must have {word} {n} item(s) (got {ctx.get('actual_length')})", about
    if kind in ("string_too_short", "string_too_long"):
        n = ctx.get("min_length") if kind == "string_too_short" else ctx.get("max_length")
        word = "at least" if kind == "string_too_short" else "at most"
        return f"must have {word} {n} character(s) (got {_show(value)})", about
    if kind == "string_pattern_mismatch":
        return (f"{_show(value)} does not match the pattern {ctx.get('pattern')}",
                "use only the characters the pattern allows" + tail)
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    msg = msg[:1].lower() + msg[1:]
    msg = msg.replace("input should be", "expected")
    got = f" (got {_show(value)})" if value is not _MISSING and not isinstance(value, (dict, list)) else ""
    return f"{msg}{got}", about


def _non_finite(value: Any) -> tuple[str, str]:
    return f"expected a finite number, got {_show(value)}", "write a finite number (not .nan or .inf)"


def _non_finite_numbers(data: Any, loc: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every NaN or infinite number in ``data`` with its location. Component ``params`` are free mappings in phase
    1 and the JSON view phase 2 works on turns NaN into null, so they are caught here, before either phase."""
    if isinstance(data, float) and not math.isfinite(data):
        return [(loc, data)]
    if isinstance(data, dict):
        return [hit for k, v in data.items() for hit in _non_finite_numbers(v, loc + (k,))]
    if isinstance(data, list):
        return [hit for i, v in enumerate(data) for hit in _non_finite_numbers(v, loc + (i,))]
    return []


def _join(*parts: str | None) -> str | None:
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


def _describe(ann: Any) -> str:
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
        return _show(args[0]) if len(args) == 1 else "one of " + ", ".join(_show(a) for a in args)
    if origin in (list, tuple, set, frozenset) or ann in (list, tuple, set):
        args = [a for a in typing.get_args(ann) if a is not Ellipsis]
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        if args and all(a is args[0] for a in args) and args[0] in plural:
            return f"a list of {plural[args[0]]}"
        return "a list"
    if origin is dict or ann is dict or _is_model(ann):
        return "a mapping"
    return getattr(ann, "__name__", str(ann))


def _a(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def _show(v: Any) -> str:
    if v is _MISSING:
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
