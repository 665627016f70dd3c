"""Box kernel: block mean down (no overlap between output pixels), nearest-neighbour replication up."""
from __future__ import annotations

from torch import Tensor

from . import kernels
from ..params.upsamplers import BoxResamplerParams
from .separable import SeparableResampler


class BoxResampler(SeparableResampler):
    """Box kernel, support 1/2. ``down`` is the mean of each ``f x f`` block (area averaging), and ``up``
    repeats each pixel ``f x f`` times."""

    name = "box"
    summary = "Box kernel: f x f block mean down, nearest-neighbour replication up"
    reference = "Box filter B(x) = 1 for |x| < 1/2: area averaging down, nearest neighbour up"
    support = 0.5

    Params = BoxResamplerParams

    def kernel(self, x: Tensor) -> Tensor:
        return kernels.box(x)
