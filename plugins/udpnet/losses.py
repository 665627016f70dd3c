"""UDPNet's training losses (Eqs. 5, 13, 15) as swappable ``training_loss`` components.

The paper writes squared Frobenius and L1 norms, i.e. sums over pixels. Each loss here is that sum divided by
``B·H·W`` (samples × pixels of one mask), the same divisor for all three, so the paper's weights keep their ratios
while the values do not grow with the crop or batch size. With the paper's (β, γ) = (0.2, 0.2) the total is
``L_mask^F + 0.2 L_mask^G + 0.2 L_fusion`` (Eq. 16).
"""
from __future__ import annotations

from pydantic import Field
from torch import Tensor

from fusionkit.interfaces import Params, TrainingBatch, TrainingLoss


def _per_pixel(total: Tensor, like: Tensor) -> Tensor:
    """A sum over a batch divided by ``B·H·W`` of ``like`` (``[B, ..., H, W]``)."""
    return total / (like.shape[0] * like.shape[-2] * like.shape[-1])


class BlindSpotMaskLoss(TrainingLoss):
    """Eq. 5: ``Σ_k ‖(1 − B_k) ⊙ (F(M_B(M̃_k)) − M̃_k)‖² + α ‖Σ_k F(M_B(M̃_k)) − 1‖²``.

    The first term is computed on the obscured pixels only (a blind-spot reconstruction: F must predict them from
    their context); the second makes the K refined masks complementary (Eq. 2). K-way as in Remark 1."""

    name = "blind_spot_mask"
    summary = "UDPNet Eq. 5: blind-spot reconstruction of the initial masks on obscured pixels + sum-to-one term"
    reference = "Quan et al., UDPNet, §III-B, Eq. (5) (with Eq. 4's perturbation), α = 0.4"
    needs = ("initial_masks", "blind_keep", "blind_predictions")

    class Params(Params):
        alpha: float = Field(0.4, ge=0.0, le=100.0, description="α, the weight of the sum-to-one term")

    def __call__(self, outputs: dict[str, Tensor], batch: TrainingBatch) -> Tensor:
        pred, target, keep = outputs["blind_predictions"], outputs["initial_masks"], outputs["blind_keep"]
        recon = ((1.0 - keep) * (pred - target)).square().sum()
        total = (pred.sum(dim=1) - 1.0).square().sum()
        return _per_pixel(recon + self.params.alpha * total, pred)


class StageMaskLoss(TrainingLoss):
    """Eq. 13: ``Σ_{t=1..T} ω_t ‖M⁽ᵗ⁾ − M^F‖²`` with ``ω_t = base^t`` (2^t in the paper) and ``M^F = F(M̃)``
    detached, so G's early, inaccurate stages do not pull F."""

    name = "stage_mask"
    summary = "UDPNet Eq. 13: every unrolled stage's masks towards F's (detached), stage t weighted base^t"
    reference = "Quan et al., UDPNet, §III-C, Eq. (13), ω_t = 2^t"
    needs = ("stage_masks", "predictor_masks")

    class Params(Params):
        base: float = Field(2.0, gt=0.0, le=10.0, description="ω_t = base^t for stage t = 1..T")

    def __call__(self, outputs: dict[str, Tensor], batch: TrainingBatch) -> Tensor:
        target = outputs["predictor_masks"].detach()
        stages = outputs["stage_masks"]
        total = stages.new_zeros(())
        for t in range(stages.shape[0]):
            total = total + self.params.base ** (t + 1) * (stages[t] - target).square().sum()
        return _per_pixel(total, target)


class FusionConsistencyLoss(TrainingLoss):
    """Eq. 15: ``‖A_F − A_G‖₁`` with ``A_F = Σ_k F(M̃_k) ⊙ S_k`` (Eq. 14, not detached: it trains F and G jointly)
    and ``A_G`` G's fused image."""

    name = "fusion_consistency"
    summary = "UDPNet Eq. 15: L1 between the image composed with F's masks and G's fused image"
    reference = "Quan et al., UDPNet, §III-D, Eqs. (14)-(15)"
    needs = ("sources", "predictor_masks", "fused")

    class Params(Params):
        pass

    def __call__(self, outputs: dict[str, Tensor], batch: TrainingBatch) -> Tensor:
        a_f = (outputs["predictor_masks"] * outputs["sources"]).sum(dim=1)
        return _per_pixel((a_f - outputs["fused"]).abs().sum(), a_f)
