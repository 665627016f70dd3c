"""The shared implementation: a resampler defined by one symmetric 1-D kernel, applied separably.

A concrete resampler supplies only ``support`` (the kernel's half-width in pixels) and ``kernel(x)``. This class
turns them into filters (see :mod:`.kernels` for the geometry) and runs them as small convolutions:

- ``down`` (inside the training loss, so it must be cheap and differentiable): replication pad, then a 1-D strided
  convolution along the width, then one along the height. The cost is about ``K`` multiply-adds per high-res pixel
  per pass.
- ``up``: replication pad, one pass along the height that makes ``f`` row phases, and one grouped pass along the
  width that makes ``f*f`` phases, all at low resolution. ``pixel_shuffle`` then interleaves them.

The filters are built once per (factor, dtype, device, params) and cached on the instance, so a call makes no
host-device transfer. They are constants (``requires_grad=False``); gradients flow to ``x`` only.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from fusionkit.interfaces import Resampler

from . import kernels
from .checks import check_divisible, check_factor, check_image


class SeparableResampler(Resampler):
    """Base class for resamplers given by one separable kernel. Subclasses set ``support`` and ``kernel``."""

    #: half-width of the un-stretched kernel, in pixels (2 for lanczos2 and Keys cubic, 0.5 for box)
    support: ClassVar[float]

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        self._cache: dict[tuple, tuple[Tensor, Tensor, int]] = {}

    @abstractmethod
    def kernel(self, x: Tensor) -> Tensor:
        """The 1-D kernel at float64 distances ``x`` (in pixels of the grid it is applied on)."""

    # -- filters (float64, CPU): the inspectable definition --------------------------------------------------------

    def down_taps(self, factor: int) -> Tensor:
        """The 1-D antialiasing filter of ``down`` at ``factor`` (float64, sums to 1)."""
        return kernels.down_taps(self.kernel, self.support, check_factor(factor))

    def up_phases(self, factor: int) -> tuple[Tensor, int]:
        """The ``[factor, L]`` interpolation filters of ``up`` and their padding (float64, rows sum to 1)."""
        return kernels.up_phases(self.kernel, self.support, check_factor(factor))

    # -- the contract --------------------------------------------------------------------------------------------

    def down(self, x: Tensor, factor: int) -> Tensor:
        """``[B,C,sH,sW] -> [B,C,H,W]``: antialiased, differentiable, with replicated borders."""
        f = check_factor(factor)
        check_image(x, f"{self.name}.down")
        check_divisible(x, f)
        if f == 1:
            return x
        w_rows, w_cols, pad = self._filters("down", f, x)
        b, c, h, w = x.shape
        y = F.pad(x.reshape(b * c, 1, h, w), (pad, pad, pad, pad), mode="replicate")
        y = F.conv2d(y, w_cols, stride=(1, f))
        y = F.conv2d(y, w_rows, stride=(f, 1))
        return y.reshape(b, c, h // f, w // f)

    def up(self, x: Tensor, factor: int) -> Tensor:
        """``[B,C,H,W] -> [B,C,sH,sW]``: interpolation at pixel centres, differentiable, with clamped borders."""
        f = check_factor(factor)
        check_image(x, f"{self.name}.up")
        if f == 1:
            return x
        w_rows, w_cols, pad = self._filters("up", f, x)
        b, c, h, w = x.shape
        y = x.reshape(b * c, 1, h, w)
        if pad:
            y = F.pad(y, (pad, pad, pad, pad), mode="replicate")
        y = F.conv2d(y, w_rows)              # [N, f, H, W+2p]: one channel per output-row phase
        y = F.conv2d(y, w_cols, groups=f)    # [N, f*f, H, W]: channel = row_phase * f + col_phase
        y = F.pixel_shuffle(y, f)            # [N, 1, fH, fW]
        return y.reshape(b, c, h * f, w * f)

    # -- cache -----------------------------------------------------------------------------------------------------

    def _filters(self, op: str, f: int, like: Tensor) -> tuple[Tensor, Tensor, int]:
        key = (op, f, like.dtype, like.device, tuple(self.params.model_dump().items()))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._build(op, f, like.dtype, like.device)
            self._cache[key] = hit
        return hit

    def _build(self, op: str, f: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, int]:
        if op == "down":
            taps = self.down_taps(f)
            n = taps.numel()
            rows, cols, pad = taps.view(1, 1, n, 1), taps.view(1, 1, 1, n), kernels.down_pad(n, f)
        else:
            phases, pad = self.up_phases(f)
            n = phases.shape[1]
            rows = phases.view(f, 1, n, 1)
            cols = phases.repeat(f, 1).view(f * f, 1, 1, n)
        return rows.to(device=device, dtype=dtype), cols.to(device=device, dtype=dtype), pad


def separable_down(x: Tensor, taps: Tensor, factor: int) -> Tensor:
    """``down`` with given symmetric 1-D ``taps`` (e.g. :func:`.kernels.gaussian_taps`): replicated borders, one
    strided pass along the width, one along the height. For degradations that are not a registered resampler."""
    f = check_factor(factor)
    check_image(x, "down")
    check_divisible(x, f)
    if f == 1:
        return x
    n = taps.numel()
    pad = kernels.down_pad(n, f)
    w = taps.to(device=x.device, dtype=x.dtype)
    b, c, h, wd = x.shape
    y = F.pad(x.reshape(b * c, 1, h, wd), (pad, pad, pad, pad), mode="replicate")
    y = F.conv2d(y, w.view(1, 1, 1, n), stride=(1, f))
    y = F.conv2d(y, w.view(1, 1, n, 1), stride=(f, 1))
    return y.reshape(b, c, h // f, wd // f)
