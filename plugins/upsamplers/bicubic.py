"""Keys cubic convolution: the usual "bicubic", with the MATLAB/PIL a = -0.5 by default."""
from __future__ import annotations

from torch import Tensor

from . import kernels
from ..params.upsamplers import BicubicResamplerParams
from .separable import SeparableResampler


class BicubicResampler(SeparableResampler):
    """Keys cubic, support 2. With ``a = -0.5``, ``down`` matches PIL's and torch's antialiased bicubic (the
    interior), and ``up`` reproduces quadratics. ``a = -0.75`` gives torch's and OpenCV's ``up``."""

    name = "bicubic"
    summary = "Keys cubic convolution (a=-0.5 as MATLAB/PIL); antialiased down, interpolating up"
    reference = ("Keys, 'Cubic convolution interpolation for digital image processing', IEEE TASSP 29(6), 1981: "
                 "W(x) = (a+2)|x|^3 - (a+3)|x|^2 + 1 for |x| <= 1, a|x|^3 - 5a|x|^2 + 8a|x| - 4a for 1 < |x| < 2")
    support = 2

    Params = BicubicResamplerParams

    def kernel(self, x: Tensor) -> Tensor:
        return kernels.keys_cubic(x, self.params.a)
