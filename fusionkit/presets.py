"""Named schedules (``preset: fast | default | paper``) and the budget values derived from other fields.

A preset is a set of spec values applied *under* the spec: a key the spec file or a ``--set`` gives is never
replaced. It is expanded before validation, so the resolved spec (what ``--dry-run`` prints and the manifest
keeps) holds the concrete values that ran, and names the preset they came from. docs/performance.md says how each
preset was chosen and what it costs.
"""
from __future__ import annotations

import copy
from typing import Any

#: preset name -> spec values (nested like the spec). ``default`` is the field defaults themselves.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {
        # DFP Algorithm 1 and 2 as written: K = 1000 fusion and 500 embedding iterations, Adam at a constant 1e-3,
        # the last iterate, float32 throughout, no early stop.
        "iterations": 1000,
        "decision_embedding": {"iterations": 500, "stop": {"rule": "none", "max_seconds": None}},
        "optimizer": {"lr": 1e-3, "schedule": "constant", "warmup": 0.0},
        "output_average": 0.0,
        "precision": "fp32",
        "stop": {"rule": "none", "max_seconds": None},
    },
    "fast": {},
}

PRESET_NAMES = tuple(PRESETS)


def _leaves(tree: dict, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    out: list[tuple[tuple, Any]] = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out += _leaves(value, prefix + (key,))
        else:
            out.append((prefix + (key,), value))
    return out


def expand_preset(data: dict, name: str) -> dict[str, Any]:
    """Fill ``data`` (raw spec data, overrides applied) with preset ``name``'s values where it has none.

    Returns the values the preset set, by dotted key (what the manifest records). A key is only filled where the
    spec's own value is absent; a mapping given in the spec is filled key by key.
    """
    applied: dict[str, Any] = {}
    for loc, value in _leaves(PRESETS[name]):
        cur = data
        for key in loc[:-1]:
            nxt = cur.get(key)
            if nxt is None:
                nxt = cur[key] = {}
            if not isinstance(nxt, dict):  # the spec replaced the whole mapping with something else: its problem
                break
            cur = nxt
        else:
            if loc[-1] not in cur:
                cur[loc[-1]] = copy.deepcopy(value)
                applied[".".join(loc)] = value
    return applied


def embedding_iterations(iterations: int, value: int | str) -> int:
    """The decision embedding's budget: ``value``, or for ``auto`` half the fusion iterations (the paper's 500 for
    1000), so ``iterations`` alone scales the whole run."""
    return max(1, int(iterations) // 2) if value == "auto" else int(value)
