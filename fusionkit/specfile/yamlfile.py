"""Reading a spec file: YAML with the node tree kept (for ``file:line``), duplicate keys refused.

Any problem (missing file, a folder, unreadable, YAML syntax, empty, not a mapping, a duplicate key) becomes a
located problem in the :class:`~fusionkit.specfile.context.SpecContext` and :data:`MISSING` is returned, so the
caller reports every problem at once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import SpecProblem
from .context import MISSING, Loc, SpecContext, dotted
from .messages import a_kind


def read_yaml(path: Path, ctx: SpecContext) -> Any:
    def fail(message: str, hint: str, line: int | None = None) -> Any:
        ctx.add_raw(SpecProblem("", message, hint, line=line, file=ctx.file))
        return MISSING

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
        return fail(f"the top level of a spec must be a mapping of keys (name:, inputs:, ...), got {a_kind(data)}",
                    "start the file with keys such as `inputs: [near.png, far.png]`; see examples/dfp-x2.yaml",
                    node.start_mark.line + 1)
    ctx.root = node
    _duplicate_keys(node, (), ctx)
    return data


def _duplicate_keys(node: Node, loc: Loc, ctx: SpecContext) -> None:
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            if isinstance(k, ScalarNode):
                if k.value in seen:
                    ctx.add_raw(SpecProblem(
                        dotted(loc + (k.value,)), f"duplicate key {k.value!r} (first on line {seen[k.value]}); "
                        "the last one would silently win", "keep only one of them",
                        line=k.start_mark.line + 1, file=ctx.file))
                seen.setdefault(k.value, k.start_mark.line + 1)
                _duplicate_keys(v, loc + (k.value,), ctx)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, loc + (i,), ctx)
