"""1-D resampling kernels, and the builders that turn a kernel into separable taps and dense matrices.

Geometry: the pixel-centre convention (like ``align_corners=False``). Pixel ``p`` has its centre at ``p + 0.5``. At
an integer factor ``f``, low-res pixel ``i`` covers high-res pixels ``i*f .. i*f + f - 1``. Its centre is at
high-res coordinate ``(i + 0.5) * f``.

- **down** is antialiased. The kernel is stretched by ``f`` (support ``s*f`` high-res pixels each side of the
  low-res centre) and sampled at the high-res pixel centres. For even ``f`` those centres sit at half-integer
  offsets: this is Deep Image Prior's "phase 0.5" (``2*s*f`` taps; lanczos2 x2 is 8 taps). For odd ``f`` the
  low-res centre falls on a high-res pixel centre, so the offsets are integers. The two end samples would then lie
  exactly on the support boundary, where every kernel here is 0, so they are dropped (``2*s*f - 1`` taps). A
  phase-0.5 kernel at odd ``f`` would shift the image by half a high-res pixel.
- **up** interpolates and the kernel is not stretched. Output pixel ``j`` reads the source at
  ``u = (j + 0.5)/f - 0.5`` (source index units). Only ``f`` fractional offsets ("phases") occur, so up is ``f``
  short filters applied at low resolution and interleaved.

The taps are normalised to sum 1 (per phase for up). Borders replicate the edge pixel, so a constant image stays
constant. Everything here is built in float64 on the CPU. The resamplers convert and cache the result.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

#: A 1-D kernel: float64 distances (in pixels of the grid it is applied on) -> float64 weights.
Kernel = Callable[[Tensor], Tensor]

_EPS = 1e-9


def lanczos(x: Tensor, a: int) -> Tensor:
    """Lanczos window ``sinc(x) * sinc(x / a)`` for ``|x| < a``, else 0 (``sinc`` normalised, so ``L(0) = 1``)."""
    return torch.where(x.abs() < a, torch.sinc(x) * torch.sinc(x / a), torch.zeros_like(x))


def keys_cubic(x: Tensor, a: float = -0.5) -> Tensor:
    """Keys' cubic convolution kernel, support 2.

    ``(a+2)|x|^3 - (a+3)|x|^2 + 1`` for ``|x| <= 1``; ``a|x|^3 - 5a|x|^2 + 8a|x| - 4a`` for ``1 < |x| < 2``.
    ``a = -0.5`` (MATLAB, PIL) reproduces quadratics exactly. ``a = -0.75`` is what torch and OpenCV use.
    """
    t = x.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(x)))


def triangle(x: Tensor) -> Tensor:
    """Tent ``max(0, 1 - |x|)``: linear interpolation up; an area-weighted tent average down."""
    return (1 - x.abs()).clamp(min=0)


def box(x: Tensor) -> Tensor:
    """1 for ``|x| < 0.5``, else 0: block mean down, nearest-neighbour replication up."""
    return (x.abs() < 0.5).to(x.dtype)


def gaussian(x: Tensor, sigma: float) -> Tensor:
    """Gaussian ``exp(-x^2 / (2 sigma^2))`` (unnormalised: the taps are normalised after sampling). Not a built-in
    resampler's kernel: it makes Gaussian-blur degradations (benchmarks, tests of kernel estimation)."""
    return torch.exp(-0.5 * (x / sigma) ** 2)


def down_offsets(support: float, factor: int) -> Tensor:
    """Offsets, in high-res pixels, from a low-res pixel centre to the high-res pixel centres strictly inside the
    stretched support ``support * factor``. These are half-integers for even ``factor`` and integers for odd."""
    phase = 0.5 if factor % 2 == 0 else 0.0
    n = math.ceil(support * factor) + 1
    t = torch.arange(-n, n + 1, dtype=torch.float64) + phase
    return t[t.abs() < support * factor - _EPS]


def down_taps(kernel: Kernel, support: float, factor: int) -> Tensor:
    """The 1-D antialiasing filter for ``down`` at ``factor``: the kernel stretched by ``factor``, sampled at
    :func:`down_offsets`, normalised to sum 1. It is symmetric, and the length has the parity of ``factor``."""
    w = kernel(down_offsets(support, factor) / factor)
    return w / w.sum()


def gaussian_taps(sigma: float, factor: int) -> Tensor:
    """The 1-D taps of a Gaussian blur of ``sigma`` high-res pixels followed by decimation by ``factor``, in the
    pixel-centre geometry of ``down`` (the Gaussian is centred on the low-res pixel centre, so even factors give
    half-integer offsets), over +-4 sigma (at least one low-res pixel), normalised to sum 1."""
    if not sigma > 0:
        raise ValueError(f"a Gaussian blur needs sigma > 0; got {sigma}")
    return down_taps(lambda u: gaussian(u * factor, sigma), max(1.0, 4.0 * sigma / factor), factor)


def down_pad(n_taps: int, factor: int) -> int:
    """Replication padding per side, so that a stride-``factor`` pass gives exactly ``n / factor`` samples and each
    filter is centred on its low-res pixel."""
    return (n_taps - factor) // 2


def up_phases(kernel: Kernel, support: float, factor: int) -> tuple[Tensor, int]:
    """The ``factor`` interpolation filters for ``up``, and the padding they need.

    Returns ``(w[factor, L], pad)`` with ``L = 2*pad + 1``. Output sample ``q*factor + r`` is
    ``sum_l w[r, l] * x[clamp(q + l - pad)]``. Each row sums to 1. Outer columns that are zero for every phase
    are trimmed, so box becomes a single tap.
    """
    delta = (torch.arange(factor, dtype=torch.float64) + 0.5) / factor - 0.5  # fractional source offsets
    pad = math.ceil(support)
    m = torch.arange(-pad, pad + 1, dtype=torch.float64)
    w = kernel(delta[:, None] - m[None, :])
    w = w / w.sum(dim=1, keepdim=True)
    while pad > 0 and w[:, [0, -1]].abs().max() < _EPS:  # sinc zeros are ~1e-17, not exactly 0
        w, pad = w[:, 1:-1], pad - 1
    return w, pad


def down_matrix(taps: Tensor, factor: int, n_low: int) -> Tensor:
    """The dense ``[n_low, n_low*factor]`` matrix of the 1-D ``down``, with replication folded into the edge
    columns. It is the reference that the strided convolution must equal, and it is useful for analysis."""
    n_high = n_low * factor
    k = torch.arange(taps.numel())
    i = torch.arange(n_low)
    src = (i[:, None] * factor + k[None, :] - down_pad(taps.numel(), factor)).clamp(0, n_high - 1)
    m = torch.zeros(n_low, n_high, dtype=taps.dtype)
    m.index_put_((i[:, None].expand_as(src), src), taps.expand_as(src).clone(), accumulate=True)
    return m


def up_matrix(phases: Tensor, pad: int, factor: int, n_low: int) -> Tensor:
    """The dense ``[n_low*factor, n_low]`` matrix of the 1-D ``up``, with clamped source indices (the reference
    for the polyphase convolution)."""
    j = torch.arange(n_low * factor)
    q, r = j // factor, j % factor
    src = (q[:, None] + torch.arange(phases.shape[1])[None, :] - pad).clamp(0, n_low - 1)
    m = torch.zeros(n_low * factor, n_low, dtype=phases.dtype)
    m.index_put_((j[:, None].expand_as(src), src), phases[r], accumulate=True)
    return m
