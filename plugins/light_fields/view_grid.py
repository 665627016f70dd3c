"""``view_grid``: a folder of sub-aperture views, refocused by shift-and-sum into a focal stack."""
from __future__ import annotations

import os
import time
from typing import Annotated, Literal, Optional

import torch
from pydantic import Field, field_validator, model_validator

from fusionkit.errors import InputError
from fusionkit.interfaces import FocalStack, LightFieldSource, Params

from ..upsamplers import (BicubicResampler, BilinearResampler, BoxResampler, Lanczos2Resampler,
                          Lanczos3Resampler)
from .refocus import refocus, spread
from .views import KNOWN_PATTERNS, read_views

_RESAMPLERS = {c.name: c for c in (Lanczos2Resampler, Lanczos3Resampler, BicubicResampler, BilinearResampler,
                                   BoxResampler)}

Disparity = Annotated[float, Field(ge=-100.0, le=100.0)]


class ViewGrid(LightFieldSource):
    """Reads a regular grid of sub-aperture views and refocuses them at N disparities (shift-and-sum, see
    :mod:`fusionkit_plugins.light_fields.refocus` for the sign convention, the cubic sub-pixel shifts and the
    border rule).

    Disparities are in pixels per view step at the views' *original* resolution, so the same numbers work with
    any ``downsample`` (they are divided by it internally) and can be read off a ground-truth disparity map. With
    ``downsample: s`` the views are first cropped to a multiple of ``s`` (right and bottom edge) and reduced with
    the named fusionkit resampler; refocusing then runs at the low resolution, as a plenoptic camera's
    sub-aperture images would be. The DFP plenoptic paper makes its slices with OpenRefocus without giving the
    method or the slice count (it shows four); shift-and-sum is the standard method it builds on.
    """

    name = "view_grid"
    summary = "sub-aperture views named by grid position, refocused by shift-and-sum into a focal stack"
    reference = ("Ng, Levoy, Brédif, Duval, Horowitz, Hanrahan, 'Light field photography with a hand-held "
                 "plenoptic camera', Stanford CTSR 2005-02, Eq. 1 (shift-and-add of sub-aperture images)")

    class Params(Params):
        pattern: str = Field(
            "auto", min_length=1, max_length=200,
            description="view file names with {index} (one running number, needs `grid`) or {row} and {col} "
                        "placeholders, e.g. input_Cam{index:03d}.png or {row:02d}_{col:02d}.png ({name:0Nd} = "
                        f"exactly N digits); auto = the first of {', '.join(KNOWN_PATTERNS)} that matches")
        grid: Optional[list[Annotated[int, Field(ge=1, le=64)]]] = Field(
            None, min_length=2, max_length=2,
            description="[rows, cols] of views; required with {index}; with {row}/{col} it is read from the names "
                        "(and checked if given)")
        order: Literal["row_major", "column_major"] = Field(
            "row_major", description="with {index}: row_major = index r*cols + c (HCI); column_major = c*rows + r")
        flip_rows: bool = Field(False, description="reverse the angular rows (for captures numbered bottom-up); "
                                                   "flips the sign of vertical disparities")
        flip_cols: bool = Field(False, description="reverse the angular columns (numbered right-to-left)")
        disparities: Optional[list[Disparity]] = Field(
            None, min_length=2, max_length=64,
            description="refocus disparities (px per view step, original resolution), one slice each; "
                        "replaces disparity_range and slices")
        disparity_range: Optional[list[Disparity]] = Field(
            [-1.0, 1.0], min_length=2, max_length=2,
            description="[lo, hi] disparities (px per view step, original resolution); `slices` values are "
                        "spread evenly over it, ends included")
        slices: int = Field(5, ge=2, le=64, description="number of refocused slices spread over disparity_range")
        downsample: int = Field(1, ge=1, le=8, description="reduce the views by this integer factor before "
                                                           "refocusing (1 = full resolution)")
        downsampler: Literal["lanczos2", "lanczos3", "bicubic", "bilinear", "box"] = Field(
            "lanczos2", description="the fusionkit resampler used for `downsample` (lanczos2: the DFP loss's "
                                    "downsampler, so the low-resolution stack matches the fusion's forward model)")
        aperture: Optional[int] = Field(
            None, ge=1, le=64, description="use only the central aperture x aperture views (a smaller aperture: "
                                           "deeper focus per slice); null = every view")
        border: Literal["normalise", "replicate"] = Field(
            "normalise", description="normalise: average only the views whose sample lies inside them; "
                                     "replicate: clamp samples to the view's edge")

        @model_validator(mode="before")
        @classmethod
        def _one_disparity_source(cls, data):
            if isinstance(data, dict) and data.get("disparities") is not None:
                if data.get("disparity_range") is not None:
                    raise ValueError("give either `disparities` (an explicit list) or `disparity_range` (with "
                                     "`slices`), not both")
                data = {**data, "disparity_range": None}
            return data

        @model_validator(mode="after")
        def _some_disparity(self):
            if self.disparities is None and self.disparity_range is None:
                raise ValueError("give `disparities: [d1, d2, ...]` or `disparity_range: [lo, hi]` with `slices`")
            return self

        @field_validator("disparity_range")
        @classmethod
        def _ordered(cls, v):
            if v is not None and not v[0] < v[1]:
                raise ValueError(f"disparity_range must be [lo, hi] with lo < hi, got {v}")
            return v

        @field_validator("disparities")
        @classmethod
        def _distinct(cls, v):
            if v is not None and len(set(v)) != len(v):
                raise ValueError("disparities must be distinct (two equal slices add nothing to a focal stack)")
            return v

    def planned_disparities(self) -> list[float]:
        """The N disparities this source refocuses at (original-resolution px per view step)."""
        p = self.params
        return list(p.disparities) if p.disparities is not None else spread(*p.disparity_range, p.slices)

    def __call__(self, folder: str | os.PathLike) -> FocalStack:
        p = self.params
        t0 = time.perf_counter()
        grid = read_views(folder, p.pattern, tuple(p.grid) if p.grid else None, p.order, p.flip_rows, p.flip_cols)
        views = torch.from_numpy(grid.views).permute(0, 1, 4, 2, 3)      # [U, V, C, H, W]
        u, v = grid.grid
        rows, cols = range(u), range(v)
        if p.aperture is not None:
            k = p.aperture
            if k > min(u, v) or (u - k) % 2 or (v - k) % 2:
                raise InputError(f"aperture {k} does not fit centrally in the {u}x{v} view grid of {folder}",
                                 f"use an aperture of at most {min(u, v)} with the parity of the grid "
                                 f"({'odd' if u % 2 else 'even'}), or null for every view")
            rows, cols = range((u - k) // 2, (u + k) // 2), range((v - k) // 2, (v + k) // 2)
            views = views[rows.start:rows.stop, cols.start:cols.stop]
        t1 = time.perf_counter()
        full_h, full_w = views.shape[-2:]
        s = p.downsample
        if s > 1:
            h, w = (full_h // s) * s, (full_w // s) * s
            if h < 8 * s or w < 8 * s:
                raise InputError(f"the views in {folder} ({full_w}x{full_h}) are too small to downsample by {s}",
                                 "use a smaller `downsample`")
            flat = views[..., :h, :w].reshape(-1, views.shape[2], h, w)
            flat = _RESAMPLERS[p.downsampler]().down(flat.contiguous(), s)
            views = flat.reshape(*views.shape[:3], h // s, w // s)
        disparities = self.planned_disparities()
        images = refocus(views, [d / s for d in disparities], border=p.border)
        cu, cv = (len(rows) - 1) / 2, (len(cols) - 1) / 2
        centre_file = grid.files[rows[round(cu - 0.01)]][cols[round(cv - 0.01)]]
        info = {
            "folder": os.path.abspath(folder),
            "pattern": grid.pattern,
            "grid": [u, v],
            "views_used": [len(rows), len(cols)],
            "rows_used": [rows.start, rows.stop - 1],
            "cols_used": [cols.start, cols.stop - 1],
            "corner_files": [grid.files[rows[0]][cols[0]], grid.files[rows[-1]][cols[-1]]],
            "centre_view": centre_file,
            "centre_is_a_view": len(rows) % 2 == 1 and len(cols) % 2 == 1,
            "view_size": [full_w, full_h],
            "downsample": s,
            "downsampler": p.downsampler if s > 1 else None,
            "refocused_size": [int(images.shape[-1]), int(images.shape[-2])],
            "disparities": disparities,
            "disparity_unit": "pixels per view step at the views' original resolution",
            "border": p.border,
            "seconds": {"read_views": round(t1 - t0, 3), "resample_and_refocus": round(time.perf_counter() - t1, 3)},
        }
        return FocalStack(images.float().contiguous(), disparities, grid.bit_depth, info)
