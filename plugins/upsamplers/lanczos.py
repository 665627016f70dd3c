"""Lanczos resamplers: the Deep Image Prior / Deep Fusion Prior downsampler (lanczos2) and its wider sibling."""
from __future__ import annotations

from torch import Tensor

from . import kernels
from ..params.upsamplers import Lanczos2ResamplerParams, Lanczos3ResamplerParams
from .separable import SeparableResampler


class Lanczos2Resampler(SeparableResampler):
    """Lanczos, a = 2. Down at x2 uses Deep Image Prior's 8 taps (phase 0.5), which DFP uses inside its loss."""

    name = "lanczos2"
    summary = "Lanczos a=2 (sinc-windowed sinc); DIP/DFP's antialiased downsampler inside the loss"
    reference = ("Duchon, 'Lanczos filtering in one and two dimensions', J. Appl. Meteor. 18 (1979): "
                 "L(x) = sinc(x) sinc(x/a), |x| < a, a = 2; downsampler as Deep Image Prior (Ulyanov et al., "
                 "CVPR 2018) Downsampler(kernel_type='lanczos2', phase=0.5), used by Deep Fusion Prior")
    support = 2

    Params = Lanczos2ResamplerParams

    def kernel(self, x: Tensor) -> Tensor:
        return kernels.lanczos(x, 2)


class Lanczos3Resampler(SeparableResampler):
    """Lanczos, a = 3: sharper cut-off than lanczos2, with more ringing and 6f taps down."""

    name = "lanczos3"
    summary = "Lanczos a=3 (sinc-windowed sinc); sharper, more ringing than lanczos2"
    reference = ("Duchon, 'Lanczos filtering in one and two dimensions', J. Appl. Meteor. 18 (1979): "
                 "L(x) = sinc(x) sinc(x/a), |x| < a, a = 3; Deep Image Prior's kernel_type='lanczos3'")
    support = 3

    Params = Lanczos3ResamplerParams

    def kernel(self, x: Tensor) -> Tensor:
        return kernels.lanczos(x, 3)
