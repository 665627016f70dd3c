"""The local-variance focus measure: per-pixel choice of the input whose luma varies most around the pixel."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor

from fusionkit.imaging import to_luma
from fusionkit.interfaces import FocusMeasure, Params, UnsupportedInput

#: Local variances below this count as flat (0), so that float round-off cannot break ties in flat regions.
#: 1e-7 is a luma standard deviation of about 3e-4, a tenth of an 8-bit grey level.
FLAT = 1e-7


def box_mean(x: Tensor, size: int) -> Tensor:
    """Mean over a ``size x size`` window centred on each pixel of ``[B,C,H,W]``, same size as ``x``.

    Borders are replicate-padded, which works for any ``H x W`` (even smaller than the window).
    """
    if size == 1:
        return x
    r = size // 2
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), size, stride=1)


class LocalVariance(FocusMeasure):
    """Hard decision maps from the local variance of each input's luma.

    For input ``i`` with luma ``Y_i`` and a ``window x window`` box ``W(p)`` centred on pixel ``p``::

        E_i(p) = mean_{q in W(p)} (Y_i(q) - mu_i(p))^2  =  mean_W(Y_i^2) - mean_W(Y_i)^2,   mu_i(p) = mean_W(Y_i)

    Defocus blur is a low-pass filter, so it lowers local variance: the input with the largest ``E_i(p)`` is taken
    as the one in focus at ``p``, and its map is 1 there (every other map 0). Ties go to the lowest input index, so a
    region that is flat in every input (all ``E_i`` below 1e-7) belongs to the first input. With ``smooth``, each
    ``E_i`` is box-filtered before the comparison, which removes isolated decisions in weakly textured regions.

    Input: a luma stack ``[N,1,H,W]`` (an RGB stack ``[N,3,H,W]`` is converted to BT.601 luma), any ``N >= 2`` and
    any ``H x W``. Output: ``[N,1,H,W]`` float32 one-hot maps on the input's device. Not differentiable (the maps
    are constants of the optimisation).
    """

    name = "local_variance"
    summary = "Hard maps: per pixel, the input whose luma has the largest variance in a k x k window"
    reference = ("Gray-level local variance as a focus measure; see Pertuz, Puig and Garcia, 'Analysis of focus "
                 "measure operators for shape-from-focus', Pattern Recognition 46(5), 2013 (statistics operators)")

    class Params(Params):
        window: int = Field(7, ge=3, le=63,
                            description="odd side, in pixels, of the square window the variance is taken over")
        smooth: Optional[int] = Field(None, ge=3, le=63,
                                      description="odd side, in pixels, of a box filter applied to each variance "
                                                  "map before the argmax; null = no smoothing")

        @field_validator("window", "smooth")
        @classmethod
        def _odd(cls, v: Optional[int], info) -> Optional[int]:
            if v is not None and v % 2 != 1:
                raise ValueError(f"{info.field_name} must be odd (a window centred on the pixel)")
            return v

    def energy(self, images: Tensor) -> Tensor:
        """The per-input local variance ``E_i`` ``[N,1,H,W]`` (after ``smooth``), float32."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise UnsupportedInput(
                f"focus measure 'local_variance' expects an [N,1,H,W] luma (or [N,3,H,W] RGB) stack, "
                f"got shape {tuple(images.shape)}",
                "pass the input stack as one 4-D tensor, one image per row")
        if images.shape[0] < 2:
            raise UnsupportedInput(
                f"focus measure 'local_variance' needs at least 2 inputs, got {images.shape[0]}",
                "give two or more differently focused images of the same scene")
        y = to_luma(images.float())
        y = y - y.mean(dim=(2, 3), keepdim=True)          # variance is shift-invariant; centring limits round-off
        w = self.params.window
        e = (box_mean(y * y, w) - box_mean(y, w).square()).clamp_min(0.0)
        e = torch.where(e < FLAT, torch.zeros_like(e), e)
        if self.params.smooth is not None:
            e = box_mean(e, self.params.smooth)
        return e

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        e = self.energy(images)
        winner = e.argmax(dim=0, keepdim=True)            # torch.argmax returns the first maximum: ties -> lowest i
        return torch.zeros_like(e).scatter_(0, winner, 1.0)
