"""Shift-and-sum refocusing (Ng et al. 2005, "Light field photography with a hand-held plenoptic camera", Eq. 1
in its discrete, sub-aperture form): pure functions on tensors, no files.

**Sign convention** (the HCI benchmark's). ``d`` is a disparity in pixels per view step: a scene point seen at
``(y, x)`` in the centre view appears at ``(y - (r - r0)·d, x - (c - c0)·d)`` in view ``(r, c)`` (``r`` counts
angular rows downwards, ``c`` columns rightwards, ``(r0, c0)`` is the grid centre). Refocusing at ``d`` samples
every view there and averages:

    I_d(y, x) = Σ_{r,c} w_{r,c}(y, x) · V_{r,c}(y - (r - r0)·d, x - (c - c0)·d) / Σ_{r,c} w_{r,c}(y, x)

so points at disparity ``d`` line up (sharp) and the others spread over the aperture (blurred). Checked on HCI
"antinous": refocused at d, the pixels whose ground-truth disparity is within 0.3 of d match the centre view
(mean error 0.002–0.006) for d from -2.5 to 2; with the opposite sign they do not (up to 0.07).

**Sub-pixel shifts** use a separable Keys cubic (a = -0.5, the ``bicubic`` resampler's kernel): 4 taps per axis,
interpolating (an integer shift is exact), and much less blurring than bilinear, whose half-pixel shift is a
[½, ½] low-pass that would soften every refocused slice unevenly (slices at integer disparities would stay
sharper). Fourier shifts were not used: they wrap around the borders.

**Borders.** ``normalise`` (default): a view contributes to an output pixel only where its sample position lies
inside the view (``w = 1`` there, else 0); the sum is divided by the weights, so borders are not darkened and no
edge pixels are smeared in (the centre view always contributes, so the weight is never 0). ``replicate``: every
view contributes everywhere, sampling clamped to the edge.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from fusionkit_plugins.upsamplers.kernels import keys_cubic

_TAPS = (-1, 0, 1, 2)


def _taps(shift: float, a: float = -0.5) -> tuple[int, list[float]]:
    """Integer part and the 4 cubic weights for sampling at ``i + shift`` (weights at ``i0 + k``, k in _TAPS)."""
    i0 = math.floor(shift)
    t = shift - i0
    w = keys_cubic(torch.tensor([t - k for k in _TAPS], dtype=torch.float64), a)
    return i0, (w / w.sum()).tolist()


def shift_axis(x: Tensor, shift: float, dim: int) -> Tensor:
    """``out[i] = x[i + shift]`` along ``dim`` by cubic interpolation, sample indices clamped to the edge."""
    n = x.shape[dim]
    i0, weights = _taps(shift)
    base = torch.arange(n, device=x.device) + i0
    out = None
    for k, w in zip(_TAPS, weights):
        if w == 0.0:
            continue
        term = x.index_select(dim, (base + k).clamp(0, n - 1)) * w
        out = term if out is None else out + term
    return out


def inside(n: int, shift: float, device=None) -> Tensor:
    """1 where the sample position ``i + shift`` lies within ``[0, n - 1]`` (a small tolerance), else 0."""
    pos = torch.arange(n, device=device, dtype=torch.float32) + shift
    return ((pos >= -1e-4) & (pos <= n - 1 + 1e-4)).to(torch.float32)


def shift_image(x: Tensor, dy: float, dx: float) -> Tensor:
    """``out[..., y, x] = x[..., y + dy, x + dx]`` (separable cubic, clamped): ``x`` is ``[..., H, W]``."""
    if dy:
        x = shift_axis(x, dy, x.dim() - 2)
    if dx:
        x = shift_axis(x, dx, x.dim() - 1)
    return x


def refocus(views: Tensor, disparities: Sequence[float], *, centre: tuple[float, float] | None = None,
            border: str = "normalise") -> Tensor:
    """Refocus ``views`` ``[U, V, C, H, W]`` at each disparity: returns ``[N, C, H, W]`` (see the module docstring).

    ``centre`` is the angular position ``(r0, c0)`` the result is registered to (default: the grid centre,
    ``((U-1)/2, (V-1)/2)``, between views for an even grid); ``disparities`` are in pixels per view step of the
    given views.
    """
    if views.dim() != 5:
        raise ValueError(f"views must be [U, V, C, H, W], got shape {tuple(views.shape)}")
    if border not in ("normalise", "replicate"):
        raise ValueError(f"border must be 'normalise' or 'replicate', got {border!r}")
    u, v, c, h, w = views.shape
    r0, c0 = centre if centre is not None else ((u - 1) / 2, (v - 1) / 2)
    out = []
    for d in disparities:
        acc = torch.zeros(c, h, w, dtype=views.dtype, device=views.device)
        weight = torch.zeros(1, h, w, dtype=views.dtype, device=views.device)
        for r in range(u):
            for q in range(v):
                dy, dx = -(r - r0) * float(d), -(q - c0) * float(d)
                sampled = shift_image(views[r, q], dy, dx)
                if border == "normalise":
                    m = (inside(h, dy, views.device)[:, None] * inside(w, dx, views.device)[None, :]).to(views.dtype)
                    acc += sampled * m
                    weight += m
                else:
                    acc += sampled
                    weight += 1.0
        out.append(acc / weight.clamp_min(1e-12))
    return torch.stack(out).clamp(0.0, 1.0)


def spread(lo: float, hi: float, n: int) -> list[float]:
    """``n`` disparities evenly spread over ``[lo, hi]``, ends included (rounded to 1e-4 for readable names)."""
    if n == 1:
        return [round((lo + hi) / 2, 4)]
    return [round(lo + (hi - lo) * i / (n - 1), 4) for i in range(n)]
