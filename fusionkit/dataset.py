"""Discovering the items of an evaluation dataset folder.

Naming convention (any suffix in :data:`fusionkit.io.IMAGE_SUFFIXES`, case-insensitive):

- pairs: ``NN_A.png``, ``NN_B.png`` and optionally ``NN_GT.png``;
- N-image stacks: ``NN_1.png`` ... ``NN_k.png`` (numbered from 1 without gaps) and optionally ``NN_GT.png``.

``NN`` is any run of digits; items are sorted by its numeric value. Files that do not follow the convention are
ignored (a README, a hidden file). An item with a single source, with both letter and number roles, with a gap in
its numbering or with the same role twice is an :class:`InputError`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .io import IMAGE_SUFFIXES

_NAME = re.compile(r"^(\d+)_([A-Za-z]+|\d+)$")
_CONVENTION = "name the files NN_A/NN_B[/NN_GT] (pairs) or NN_1..NN_k[/NN_GT] (stacks), e.g. 01_A.png, 01_B.png"


@dataclass(frozen=True)
class DatasetItem:
    """One evaluation item: its id (``"01"``), its source images in order, and its ground truth if any."""

    id: str
    sources: tuple[Path, ...]
    gt: Path | None = None

    @property
    def kind(self) -> str:
        return "pair" if self.sources[0].stem.split("_", 1)[1].upper() == "A" else "stack"


def discover(folder: str | Path) -> list[DatasetItem]:
    """Every item in ``folder``, sorted by id; see the module docstring for the naming convention."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}", "give a folder of images; " + _CONVENTION)
    roles: dict[str, dict[str, Path]] = {}
    for p in sorted(root.iterdir()):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        m = _NAME.match(p.stem)
        if not m:
            continue
        item_id, role = m.group(1), m.group(2).upper()
        if role.isdigit():
            role = str(int(role))
        elif role not in ("A", "B", "GT"):
            continue
        have = roles.setdefault(item_id, {})
        if role in have:
            raise InputError(f"dataset item {item_id} has two files for {role!r}: {have[role].name} and {p.name}",
                             "keep one file per role (remove or rename the duplicate)")
        have[role] = p
    if not roles:
        raise InputError(f"no dataset images found in {root}", _CONVENTION)
    items = [_item(item_id, have) for item_id, have in roles.items()]
    ids = [int(i.id) for i in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i.id for i in items if ids.count(int(i.id)) > 1})
        raise InputError(f"dataset ids {', '.join(dup)} denote the same number", "use one spelling per id (01 or 1)")
    return sorted(items, key=lambda i: (int(i.id), i.id))


def _item(item_id: str, have: dict[str, Path]) -> DatasetItem:
    gt = have.get("GT")
    letters = sorted(r for r in have if r in ("A", "B"))
    numbers = sorted((int(r) for r in have if r.isdigit()))
    listing = ", ".join(p.name for p in have.values())
    if letters and numbers:
        raise InputError(f"dataset item {item_id} mixes pair and stack naming ({listing})",
                         f"use either {item_id}_A/{item_id}_B or {item_id}_1..{item_id}_k for one item")
    if letters:
        if letters != ["A", "B"]:
            raise InputError(f"dataset item {item_id} has a single source ({listing})",
                             f"add the missing {item_id}_{'B' if letters == ['A'] else 'A'} image or remove the item")
        return DatasetItem(item_id, (have["A"], have["B"]), gt)
    if len(numbers) < 2:
        raise InputError(f"dataset item {item_id} has {'a single source' if numbers else 'no source'} ({listing})",
                         "an item needs 2 or more sources: " + _CONVENTION)
    if numbers != list(range(1, len(numbers) + 1)):
        raise InputError(f"dataset item {item_id}'s stack is numbered {numbers}, not 1..{len(numbers)}",
                         f"number the stack's images {item_id}_1 .. {item_id}_{len(numbers)} without gaps")
    return DatasetItem(item_id, tuple(have[str(k)] for k in numbers), gt)
