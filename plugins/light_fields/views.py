"""Reading sub-aperture views from a folder whose file names give each view's grid position.

Kept apart from the refocusing math (:mod:`.refocus`) so the math is testable on tensors and this module only
answers "which file is view (r, c), and are they all there and alike?".

Patterns are file names with placeholders, Python-format style:

- ``{index}``: one running number per view (``input_Cam{index:03d}.png``, the HCI benchmark); the grid
  (rows x cols) and the ordering (row-major: ``index = r*cols + c``; column-major: ``index = c*rows + r``) must
  be stated, since the names alone cannot tell them;
- ``{row}`` and ``{col}``: two numbers (``{row:02d}_{col:02d}.png``, the Lytro toy's ``02_05.png``); the grid is
  read from the numbers found, which must be evenly spaced (a stride such as 3 is fine) and complete.

``{name:0Nd}`` matches exactly N digits, ``{name}`` or ``{name:d}`` one or more.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import numpy as np

from fusionkit.errors import InputError
from fusionkit.io import IMAGE_SUFFIXES, read_image

from ..params.light_fields import KNOWN_PATTERNS

_FIELD = re.compile(r"\{([a-z]+)(?::(0?)(\d*)d?)?\}")


@dataclass
class ViewFiles:
    """The views of one light field as ``[U, V, H, W, C]`` float32 (U angular rows, V columns), with the file
    of each view and the labels its name gave (row/col numbers, or the running index)."""

    views: np.ndarray
    files: list[list[str]]
    labels: list[list[tuple[int, ...]]]
    pattern: str
    bit_depth: int

    @property
    def grid(self) -> tuple[int, int]:
        return self.views.shape[0], self.views.shape[1]


def compile_pattern(pattern: str) -> tuple[re.Pattern, tuple[str, ...]]:
    """The regex of a file-name pattern and its placeholder names (``("index",)`` or ``("row", "col")``)."""
    parts, names, pos = [], [], 0
    for m in _FIELD.finditer(pattern):
        parts.append(re.escape(pattern[pos:m.start()]))
        name, zero, width = m.group(1), m.group(2), m.group(3)
        if name not in ("index", "row", "col"):
            raise InputError(f"unknown placeholder {{{name}}} in the view pattern {pattern!r}",
                             "use {index} (one running number per view) or {row} and {col}, e.g. "
                             "input_Cam{index:03d}.png or {row:02d}_{col:02d}.png")
        if name in names:
            raise InputError(f"the view pattern {pattern!r} uses {{{name}}} twice", "use each placeholder once")
        digits = rf"\d{{{int(width)}}}" if zero and width else r"\d+"
        parts.append(f"(?P<{name}>{digits})")
        names.append(name)
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    if sorted(names) not in (["index"], ["col", "row"]):
        raise InputError(f"the view pattern {pattern!r} has placeholders {names or 'none'}",
                         "give either {index} alone (with `grid` and `order`) or both {row} and {col}, e.g. "
                         "input_Cam{index:03d}.png or {row:02d}_{col:02d}.png")
    return re.compile("".join(parts) + r"\Z"), tuple(names)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _found_text(names: list[str]) -> str:
    images = [n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    shown = images[:8]
    more = f" and {len(images) - len(shown)} more" if len(images) > len(shown) else ""
    return (f"{len(images)} image file(s): {', '.join(shown)}{more}" if images
            else f"no image files ({len(names)} other file(s))")


def locate(folder: str | Path, pattern: str = "auto", grid: tuple[int, int] | None = None,
           order: str = "row_major") -> tuple[str, list[list[Path]], list[list[tuple[int, ...]]]]:
    """The pattern used and the path and label of every view, as ``[U][V]`` lists (no image is read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"light-field folder not found: {folder}",
                         "check `light_field.path` (relative paths are relative to the spec file's folder)")
    names = _listing(folder)
    if pattern == "auto":
        matching = [p for p in KNOWN_PATTERNS if any(compile_pattern(p)[0].match(n) for n in names)]
        if not matching:
            raise InputError(f"no file in {folder} matches a known view pattern ({', '.join(KNOWN_PATTERNS)}); "
                             f"found {_found_text(names)}",
                             "set `light_field.params.pattern` to the views' naming, e.g. 'view_{row}_{col}.png' "
                             "or 'img{index:04d}.png' (with `grid: [rows, cols]`)")
        pattern = matching[0]
    regex, fields = compile_pattern(pattern)
    hits: dict[tuple[int, ...], str] = {}
    for n in names:
        m = regex.match(n)
        if m:
            key = tuple(int(m.group(f)) for f in (("index",) if fields == ("index",) else ("row", "col")))
            if key in hits:
                raise InputError(f"two files in {folder} give the same view position {key}: {hits[key]} and {n}",
                                 "remove one of them, or make the pattern stricter (e.g. {index:03d})")
            hits[key] = n
    if not hits:
        raise InputError(f"no file in {folder} matches the view pattern {pattern!r}; found {_found_text(names)}",
                         "set `light_field.params.pattern` to match the views' names, e.g. "
                         "'input_Cam{index:03d}.png' or '{row:02d}_{col:02d}.png'")
    if fields == ("index",):
        return pattern, *_index_grid(folder, pattern, hits, grid, order)
    return pattern, *_row_col_grid(folder, pattern, hits, grid)


def _index_grid(folder: Path, pattern: str, hits: dict, grid, order: str):
    if grid is None:
        raise InputError(f"the views in {folder} are numbered by one index ({pattern!r}, {len(hits)} found), so "
                         "the grid cannot be read from the names",
                         "state it: `light_field.params.grid: [rows, cols]` (e.g. [9, 9]) and `order: row_major` "
                         "or `column_major`")
    rows, cols = grid
    wanted = rows * cols
    lo, hi = min(k[0] for k in hits), max(k[0] for k in hits)
    first = 0 if lo == 0 or hi < wanted else lo  # 0-based unless the numbers only fit a later start (1-based)
    missing = [i for i in range(first, first + wanted) if (i,) not in hits]
    extra = sorted(k[0] for k in hits if not first <= k[0] < first + wanted)
    if missing:
        shown = ", ".join(_name(pattern, index=i) for i in missing[:6])
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        raise InputError(f"incomplete light field in {folder}: a {rows}x{cols} grid needs views {first}..{first + wanted - 1}, "
                         f"but {len(missing)} are missing: {shown}{more}",
                         "restore the missing views, or state the grid the folder really holds with "
                         "`light_field.params.grid: [rows, cols]`")
    if extra:
        raise InputError(f"{folder} holds {len(hits)} views matching {pattern!r}, more than a {rows}x{cols} grid "
                         f"({wanted}); unexpected: {', '.join(hits[(i,)] for i in extra[:6])}",
                         "state the real grid with `light_field.params.grid: [rows, cols]`, or move the extra files")
    paths, labels = [], []
    for r in range(rows):
        paths.append([])
        labels.append([])
        for c in range(cols):
            i = first + (r * cols + c if order == "row_major" else c * rows + r)
            paths[-1].append(folder / hits[(i,)])
            labels[-1].append((i,))
    return paths, labels


def _name(pattern: str, **values: int) -> str:
    def sub(m: re.Match) -> str:
        zero, width = m.group(2), m.group(3)
        v = values.get(m.group(1), 0)
        return f"{v:0{int(width)}d}" if zero and width else str(v)
    return _FIELD.sub(sub, pattern)


def _axis(values: set[int], what: str, folder: Path, pattern: str) -> list[int]:
    vals = sorted(values)
    if len(vals) == 1:
        return vals
    stride = reduce(math.gcd, (b - a for a, b in zip(vals, vals[1:])))
    full = list(range(vals[0], vals[-1] + 1, stride))
    if full != vals:
        gaps = sorted(set(full) - set(vals))
        raise InputError(f"the {what} numbers of the views in {folder} ({pattern!r}) are not evenly spaced: found "
                         f"{', '.join(map(str, vals))}; {what}s {', '.join(map(str, gaps[:6]))} are missing "
                         "entirely",
                         f"the views must form a regular grid; restore the missing {what}s or remove the odd ones out")
    return vals


def _row_col_grid(folder: Path, pattern: str, hits: dict, grid):
    rows = _axis({k[0] for k in hits}, "row", folder, pattern)
    cols = _axis({k[1] for k in hits}, "column", folder, pattern)
    missing = [(r, c) for r in rows for c in cols if (r, c) not in hits]
    if missing:
        shown = ", ".join(_name(pattern, row=r, col=c) for r, c in missing[:6])
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        raise InputError(f"the views in {folder} do not form a complete {len(rows)}x{len(cols)} grid (rows "
                         f"{', '.join(map(str, rows))}; columns {', '.join(map(str, cols))}): {len(missing)} "
                         f"missing: {shown}{more}",
                         "restore the missing views, or remove the partial row/column so the rest is rectangular")
    if grid is not None and tuple(grid) != (len(rows), len(cols)):
        raise InputError(f"`grid` says {grid[0]}x{grid[1]} views but the names in {folder} give "
                         f"{len(rows)}x{len(cols)} (rows {', '.join(map(str, rows))}; columns "
                         f"{', '.join(map(str, cols))})",
                         "remove `grid` (with {row} and {col} it is read from the names) or correct it")
    paths = [[folder / hits[(r, c)] for c in cols] for r in rows]
    labels = [[(r, c) for c in cols] for r in rows]
    return paths, labels


def read_views(folder: str | Path, pattern: str = "auto", grid: tuple[int, int] | None = None,
               order: str = "row_major", flip_rows: bool = False, flip_cols: bool = False) -> ViewFiles:
    """Read every view into a :class:`ViewFiles`; views must share one size (mixed sizes are an error)."""
    pattern, paths, labels = locate(folder, pattern, grid, order)
    if flip_rows:
        paths, labels = paths[::-1], labels[::-1]
    if flip_cols:
        paths, labels = [p[::-1] for p in paths], [lab[::-1] for lab in labels]
    images, depth, sizes = [], 8, {}
    for row in paths:
        for p in row:
            img, d = read_image(p)
            depth = max(depth, d)
            sizes.setdefault(img.shape[:2], []).append(p.name)
            images.append(img)
    if len(sizes) > 1:
        listing = "; ".join(f"{w}x{h}: {', '.join(n[:3])}{' …' if len(n) > 3 else ''} ({len(n)})"
                            for (h, w), n in sorted(sizes.items(), key=lambda kv: -len(kv[1])))
        raise InputError(f"the views in {folder} differ in size: {listing}",
                         "all sub-aperture views of a light field have one size; re-export the odd ones out or "
                         "remove them from the folder")
    if any(im.shape[2] == 3 for im in images):
        images = [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im for im in images]
    u, v = len(paths), len(paths[0])
    views = np.stack(images).reshape(u, v, *images[0].shape)
    return ViewFiles(views, [[p.name for p in row] for row in paths], labels, pattern, depth)
