"""Triangle (tent) kernel: linear interpolation up, an area-weighted tent average down."""
from __future__ import annotations

from torch import Tensor

from . import kernels
from ..params.upsamplers import BilinearResamplerParams
from .separable import SeparableResampler


class BilinearResampler(SeparableResampler):
    """Triangle kernel, support 1. ``up`` equals torch's bilinear with ``align_corners=False``, and ``down`` equals
    torch's antialiased bilinear in the interior."""

    name = "bilinear"
    summary = "Triangle (tent) kernel: linear interpolation up, antialiased tent average down"
    reference = "Linear interpolation; kernel T(x) = max(0, 1 - |x|), stretched by the factor for down (as PIL)"
    support = 1

    Params = BilinearResamplerParams

    def kernel(self, x: Tensor) -> Tensor:
        return kernels.triangle(x)
