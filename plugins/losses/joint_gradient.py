"""Joint gradient loss (DFP Eq. 23): the output's Laplacian against the per-pixel maximum over the inputs."""
from __future__ import annotations

import torch
from torch import Tensor

from fusionkit.chunking import nbytes_per_slice, slice_chunks
from fusionkit.filters import laplacian
from fusionkit.imaging import to_luma
from fusionkit.interfaces import Loss, LossContext

from ._common import check_stack, cached_from_inputs
from ..params.losses import JointGradientLossParams


class JointGradientLoss(Loss):
    """``mean |lap(Y(x_down)) - max_i lap(Y(I_i))|`` with the 4-neighbour Laplacian ``[[0,1,0],[1,-4,1],[0,1,0]]``.

    ``Y`` is BT.601 luma (:func:`fusionkit.imaging.to_luma`) when ``C == 3`` and the image itself when ``C == 1``.
    The target ``max_i lap(Y(I_i))`` depends only on the inputs: it is computed once per run and kept in
    ``ctx.cache`` (see :meth:`target`). The loss works at the inputs' (low) resolution, on ``ctx.output_low``, as
    the paper's Algorithm 1 and the released code do; there is no high-resolution variant, because no
    high-resolution input exists to take the target from.

    ``mode``:

    - ``"paper"`` (default): Eq. 23 literally, the signed Laplacian on both sides and the per-pixel maximum of the
      signed input Laplacians. (The maximum of signed values favours positive responses, i.e. the dark side of
      an edge; that is what the equation says.)
    - ``"code"``: the released code, ``| |lap(Y(x))| - max_i |lap(Y(I_i))| |``, magnitudes on both sides.

    Deviations from the released code: luma is true BT.601 (the code's "Y" is ``0.299R - 0.169G + 0.499B``, a
    column of a transposed YUV matrix, not luma); ``padding`` defaults to ``"replicate"`` (no false edges at the
    border), set ``"zeros"`` for the code's zero padding. Normalisation is the mean over pixels, the paper's
    ``1/(H*W)`` and the code's ``nn.L1Loss``. For N inputs the maximum is over all N, as the released
    three-input script does.
    """

    name = "joint_gradient"
    summary = "L1 between the output's Laplacian and the per-pixel max of the inputs' Laplacians (luma, low res)"
    reference = "Deep Fusion Prior (DFP), Eq. (23)"

    Params = JointGradientLossParams

    def _lap(self, y: Tensor) -> Tensor:
        g = laplacian(y, padding=self.params.padding)
        return g.abs() if self.params.mode == "code" else g

    def _cache_key(self) -> tuple:
        return ("joint_gradient.target", self.params.mode, self.params.padding)

    def target(self, ctx: LossContext) -> Tensor:
        """``max_i lap(Y(I_i))`` as ``[1,1,H,W]`` (magnitudes in ``"code"`` mode), cached in ``ctx.cache``."""
        return cached_from_inputs(ctx, self._cache_key(), self._max_lap)

    def _max_lap(self, inputs: Tensor) -> Tensor:
        """The maximum over slices, by slice chunks (a maximum is exact in any order)."""
        out = None
        for c in slice_chunks(inputs.shape[0], nbytes_per_slice(inputs)):
            part = self._lap(to_luma(inputs[c])).amax(dim=0, keepdim=True)
            out = part if out is None else torch.maximum(out, part)
        return out

    def __call__(self, ctx: LossContext) -> Tensor:
        x = ctx.output_low
        check_stack(ctx, x, self.name)
        return (self._lap(to_luma(x)) - self.target(ctx)).abs().mean()
