"""Where a spec problem is: the collector of problems, dotted paths, and the YAML line of a location.

A :class:`SpecContext` is filled while one spec file (or dict) is read, overridden and validated, then turned
into one :class:`~fusionkit.errors.SpecError` listing every problem. Each problem is located either in the file
(``file:line``, from the YAML node tree) or at the ``--set`` override that produced the value.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import SpecProblem

Loc = tuple  # a pydantic-style location: str keys and int indices

#: "no value here" (distinct from None, which is a YAML value)
MISSING: Any = object()


class SpecContext:
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
            if oloc[:len(loc)] == loc and get_at(self.original, loc, MISSING) is MISSING:
                return raw
        return None

    def add(self, loc: Loc, message: str, hint: str | None = None) -> None:
        raw = self.origin(loc)
        if raw is not None:
            from .overrides import shell_set

            problem = SpecProblem(dotted(loc), message, hint, line=None, file=shell_set(raw), override=raw)
        else:
            problem = SpecProblem(dotted(loc), message, hint, line=line_of(self.root, loc), file=self.file)
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


def dotted(loc: Loc) -> str:
    """``("losses", 0, "weight")`` -> ``"losses[0].weight"``: a location as the user writes it."""
    out = ""
    for el in loc:
        if isinstance(el, int):
            out += f"[{el}]"
        else:
            out += ("." if out else "") + str(el)
    return out


def line_of(root: Node | None, loc: Loc) -> int | None:
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


def get_at(data: Any, loc: Loc, default: Any = None) -> Any:
    cur = data
    for el in loc:
        if isinstance(cur, dict) and el in cur:
            cur = cur[el]
        elif isinstance(cur, list) and isinstance(el, int) and -len(cur) <= el < len(cur):
            cur = cur[el]
        else:
            return default
    return cur


def resolve_path(p: str, loc: Loc, base_dir: Path, ctx: SpecContext) -> str:
    """A path value made absolute: against ``base_dir`` (the spec file's folder) when the file wrote it, against
    the current folder when a ``--set`` gave it (as a shell user expects); absolute paths are kept."""
    path = Path(os.path.expanduser(p))
    if path.is_absolute():
        return os.path.normpath(path)
    base = Path.cwd() if ctx.origin(loc) is not None else base_dir
    return os.path.normpath(base / path)
