"""``view_grid``: a folder of sub-aperture views, refocused by shift-and-sum into a focal stack."""
from __future__ import annotations

import os
import time
import torch

from fusionkit.errors import InputError
from fusionkit.interfaces import FocalStack, LightFieldSource

from ..upsamplers import (BicubicResampler, BilinearResampler, BoxResampler, Lanczos2Resampler,
                          Lanczos3Resampler)
from ..params.light_fields import ViewGridParams
from .refocus import refocus, spread
from .views import read_views

_RESAMPLERS = {c.name: c for c in (Lanczos2Resampler, Lanczos3Resampler, BicubicResampler, BilinearResampler,
                                   BoxResampler)}


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

    Params = ViewGridParams

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
