"""Gradient-limit loss (DFP Eq. 24): anisotropic total variation."""
from __future__ import annotations

from torch import Tensor

from fusionkit.filters import forward_differences
from fusionkit.interfaces import Loss, LossContext

from ._common import mean_abs
from ..params.losses import GradientLimitLossParams


class GradientLimitLoss(Loss):
    """Anisotropic total variation ``mean|d/dx x| + mean|d/dy x|`` of forward differences.

    Each mean is over its own difference array (``H*(W-1)`` and ``(H-1)*W`` elements, times channels). A
    constant image gives 0; a horizontal ramp of slope ``a`` gives ``|a|``. An axis of size 1 contributes 0.

    Deviations from the paper:

    - Eq. 24 writes ``1/(H*W) sum (grad_x x + grad_y x)`` without absolute values. A signed sum of forward
      differences telescopes to (last column - first column) terms, is unbounded below and does not penalise
      noise, so it is meaningless as a minimisation target; the absolute values are taken, as in the released
      code's ``GradientLoss``.
    - ``on="high"`` (default) applies it to the full-resolution output, as the released code's ``GradientLoss``
      would (the term is commented out there, weight 0.1 in the paper); ``on="low"`` applies it to the
      downsampled output instead.
    """

    name = "gradient_limit"
    summary = "Anisotropic total variation of the output (forward differences, L1)"
    reference = "Deep Fusion Prior (DFP), Eq. (24), with absolute values (as the released code's GradientLoss)"

    Params = GradientLimitLossParams

    def __call__(self, ctx: LossContext) -> Tensor:
        x = ctx.output if self.params.on == "high" else ctx.output_low
        dx, dy = forward_differences(x)
        return mean_abs(dx) + mean_abs(dy)
