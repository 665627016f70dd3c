"""Decision-embedding loss (DFP Eq. 20), generalised to N soft maps."""
from __future__ import annotations

from torch import Tensor

from fusionkit.interfaces import Loss, LossContext, UnsupportedInput

from ..params.losses import DecisionLossParams


class DecisionLoss(Loss):
    """Fits predicted soft decision maps to the handcrafted ones, weighted by the inputs' intensities.

    Here the context is the decision-embedding one: ``ctx.output`` (and ``ctx.output_low``, the same tensor) is the
    predicted map stack ``m_hat`` ``[N,1,H,W]`` summing to 1 per pixel, ``ctx.maps`` the handcrafted target maps
    ``m`` ``[N,1,H,W]`` and ``ctx.inputs`` the low-resolution (luma) inputs ``I`` ``[N,C,H,W]``::

        L = mean_pixels( map_weight * 1/2 * sum_i |m_hat_i - m_i|
                         + intensity_weight * sum_i |m_hat_i * I_i - I_i| )

    For ``N = 2`` with ``m_hat_2 = 1 - m_hat_1`` and ``m_2 = 1 - m_1`` the first sum is ``2 |m_hat_1 - m_1|`` (hence
    the 1/2) and the second is ``|m_hat_1 I_fore - I_fore| + |(1 - m_hat_1) I_back - I_back|``: exactly Eq. 20
    with both weights 1. With ``C > 1`` the intensity part is also averaged over channels (inputs are normally
    luma).

    Deviations from the paper and the released code:

    - Algorithm 2 binarises ``m_hat`` at 0.5 *inside* the loop, before the loss, which would zero every gradient;
      the loss takes the soft maps and binarisation is left to after the last iteration (as the released code
      does).
    - The released code uses two independent networks and a different loss (L1 of the fixed input average
      against ``alpha_1 A`` and ``alpha_2 B`` plus L1 of each alpha against its label); this is the paper's Eq. 20.
    - N inputs: one map per input and the map term halved, so it counts each pixel's total variation distance
      between the predicted and the target distributions once.
    """

    name = "decision"
    summary = "Decision-embedding loss: soft maps vs handcrafted maps plus intensity-weighted coverage (Eq. 20)"
    reference = "Deep Fusion Prior (DFP), Eq. (20) and Algorithm 2, generalised to N maps"

    Params = DecisionLossParams

    def __call__(self, ctx: LossContext) -> Tensor:
        m_hat, m, inputs = ctx.output, ctx.maps, ctx.inputs
        if (m_hat.dim() != 4 or m_hat.shape[1] != 1 or m_hat.shape != m.shape or inputs.dim() != 4
                or inputs.shape[0] != m.shape[0] or inputs.shape[2:] != m.shape[2:]):
            raise UnsupportedInput(
                f"loss 'decision' needs predicted maps, target maps [N,1,H,W] and inputs [N,C,H,W] that agree; got "
                f"{tuple(m_hat.shape)}, {tuple(m.shape)} and {tuple(inputs.shape)}",
                "use this loss only in the decision-embedding stage, with one predicted map per input")
        p = self.params
        map_term = (m_hat - m).abs().sum(dim=0).mean()                        # sum over maps, mean over H, W
        intensity_term = (m_hat * inputs - inputs).abs().sum(dim=0).mean()    # ... and over channels
        return (0.5 * p.map_weight) * map_term + p.intensity_weight * intensity_term
