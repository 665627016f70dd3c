"""UDPNet (Quan et al., dual-path unsupervised MFIF), §III: the mask predictor F and the deep-unrolling image fuser G,
as one trainable model for ``fusionkit train``.

Shapes: a batch of stacks ``S`` is ``[B, K, 1, H, W]`` (luma), masks ``M`` are ``[B, K, 1, H, W]``, a fused image
``A`` is ``[B, 1, H, W]``.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F_
from pydantic import Field, field_validator
from torch import Tensor, nn

from fusionkit.interfaces import Params, TrainableModel, TrainingBatch, UnsupportedInput
from fusionkit_plugins.focus_measures.max_gradient import box_mean, gradient_magnitude

from .blind_spot import blind_spot
from .blocks import EncoderDecoder

Widths = tuple[int, int, int]


def initial_masks(sources: Tensor, gradient: str = "sobel", window: int = 1) -> Tensor:
    """Eq. 3, K-way (Remark 1): ``M̃_k = 1`` where ``|∇S_k|`` is the largest of the K inputs (ties: lowest k).

    The printed ``sgn(max_j |∇S_j| − |∇S_k|)`` would be 1 where ``S_k`` is *not* the sharpest, the opposite of the
    principle the paper states beside it; as fusionkit's ``max_gradient`` focus measure, this follows the principle.
    """
    b, k, _, h, w = sources.shape
    energy = box_mean(gradient_magnitude(sources.reshape(b * k, 1, h, w), gradient), window).view(b, k, 1, h, w)
    idx = energy.argmax(dim=1, keepdim=True)
    return (torch.arange(k, device=sources.device).view(1, k, 1, 1, 1) == idx).to(sources.dtype)


def compose(masks: Tensor, sources: Tensor) -> Tensor:
    """Eq. 1, K-way: ``Σ_k M_k ⊙ S_k`` -> ``[B, 1, H, W]``."""
    return (masks * sources).sum(dim=1)


def objective(a: Tensor, m: Tensor, sources: Tensor, lam: float) -> Tensor:
    """``h(A, M) = λ‖A − Σ_k M_k S_k‖² + ‖1 − Σ_k M_k‖²`` (Eqs. 7, 12), summed over the batch."""
    return lam * (a - compose(m, sources)).square().sum() + (1.0 - m.sum(dim=1)).square().sum()


def gradient_masks(a: Tensor, m: Tensor, sources: Tensor, lam: float) -> Tensor:
    """Eq. 10, K-way: ``∇_{M_k} h = −2λ S_k ⊙ (A − Σ_j M_j S_j) − 2 (1 − Σ_j M_j)``."""
    residual = (a - compose(m, sources)).unsqueeze(1)
    return -2.0 * lam * sources * residual - 2.0 * (1.0 - m.sum(dim=1, keepdim=True))


def gradient_image(a: Tensor, m: Tensor, sources: Tensor, lam: float) -> Tensor:
    """Eq. 11: ``∇_A h = 2λ (A − Σ_k M_k S_k)``."""
    return 2.0 * lam * (a - compose(m, sources))


class UDPNet(TrainableModel):
    """UDPNet: a blind-spot mask predictor F and a T-stage deep-unrolling fuser G (Eqs. 3-13), any K >= 2 inputs.

    **F** (§III-B) maps one initial mask ``M̃_k`` (Eq. 3, maximal gradient) to a refined one in (0, 1): an
    encoder-decoder with skip connections and a sigmoid, weights shared over the K masks. It is trained with the
    blind-spot perturbation of Eq. 4 and only serves training (and the ``masks: predictor`` ablation).

    **G** (§III-C) unrolls T proximal-gradient steps (Eq. 9) on ``h(A, M) = λ‖A − Σ_k M_k S_k‖² + ‖1 − Σ_k M_k‖²``
    (Eqs. 7, 12), with the gradients of Eqs. 10-11 and learnable step sizes ``ρ_M^t, ρ_A^t > 0`` (softplus):

    - ``Z_M = M − ρ_M ∇_M h(A, M)``, then the mask estimator ``M_k ← P_ψ([Z_M,k, S_k, A])`` (sigmoid), one network
      per stage shared over the K inputs, so G takes any K (Remark 1);
    - ``Z_A = A − ρ_A ∇_A h(A, M)``, then the image estimator ``A ← Z_A + P_φ([Z_A, Σ_k M_k S_k])`` with a non-local
      block at its bottleneck.

    Choices the paper leaves open (fusionkit's): the start ``M⁽⁰⁾ = M̃`` (Eq. 3) and ``A⁽⁰⁾ = Σ M̃_k S_k``; the
    estimators' inputs above (each mask estimator sees its source and the current fused image, the only way a
    K-agnostic network can compare sources); three-scale encoder-decoders with additive skips (``*_widths``); the
    image estimator as a residual refinement. Inference (§III-D) is Eq. 1 with G's last masks, normalised to sum to 1
    per pixel (Eq. 2; they already nearly do after training with the sum-to-one terms).
    """

    name = "udpnet"
    summary = "UDPNet: blind-spot mask predictor F + T-stage unrolled mask/image fuser G (any K >= 2 inputs, luma)"
    reference = ("Quan, Wan, Zheng, Huang, Ji, 'Dual-Path Deep Unsupervised Learning for Multi-Focus Image "
                 "Fusion', §III, Eqs. 1-13 and Remark 1")
    provides = ("sources", "initial_masks", "blind_keep", "blind_predictions", "predictor_masks", "stage_masks",
                "fused")

    class Params(Params):
        stages: int = Field(3, ge=1, le=12, description="T, the number of unrolled stages of G")
        lam: float = Field(1.0, gt=0.0, le=1000.0, description="λ of Eq. 6/7, the weight of the composition term "
                                                             "in h(A, M)")
        predictor_widths: list[int] = Field([16, 24, 32], min_length=3, max_length=3,
                                            description="channels per scale of F's encoder-decoder")
        mask_widths: list[int] = Field([16, 24, 32], min_length=3, max_length=3,
                                       description="channels per scale of each stage's mask estimator")
        image_widths: list[int] = Field([16, 24, 32], min_length=3, max_length=3,
                                        description="channels per scale of each stage's image estimator")
        non_local_keys: int = Field(256, ge=1, le=65536, description="at most this many key positions in the "
                                    "non-local block (bigger images are pooled to it; the 60x60 crops never are)")
        gradient: Literal["sobel", "forward", "laplacian"] = Field(
            "sobel", description="|∇S_k| of the initial masks (Eq. 3), as the max_gradient focus measure")
        window: int = Field(1, ge=1, le=99, description="box window averaging |∇S_k| before Eq. 3's comparison "
                                                        "(1 = pixelwise, the paper's)")

        @field_validator("predictor_widths", "mask_widths", "image_widths")
        @classmethod
        def _positive(cls, v: list[int]) -> list[int]:
            if any(c < 1 or c > 512 for c in v):
                raise ValueError(f"channel counts must lie in 1..512, got {v}")
            return v

        @field_validator("window")
        @classmethod
        def _odd(cls, v: int) -> int:
            if v % 2 != 1:
                raise ValueError(f"window must be odd, got {v}; try {v + 1}")
            return v

    class TrainingParams(Params):
        keep_probability: float = Field(0.9, gt=0.0, lt=1.0, description="p of Eq. 4: the probability that a "
                                        "mask pixel is kept (the rest are redrawn)")
        replacement: Literal["neighbours", "coin"] = Field(
            "neighbours", description="how obscured pixels are redrawn: from the fraction of ones among their 8 "
                                      "neighbours (Eq. 4), or fair coin flips (an ablation)")
        initial_step_mask: float = Field(0.5, gt=0.0, le=10.0, description="ρ_M⁽ᵗ⁾ at initialisation")
        initial_step_image: float = Field(0.25, gt=0.0, le=10.0, description="ρ_A⁽ᵗ⁾ at initialisation")

    def __init__(self, params=None, training=None, **overrides):
        super().__init__(params, training, **overrides)
        p, tp = self.params, self.training_params
        self.predictor = EncoderDecoder(1, 1, tuple(p.predictor_widths), output="sigmoid")
        self.mask_estimators = nn.ModuleList(
            EncoderDecoder(3, 1, tuple(p.mask_widths), output="sigmoid") for _ in range(p.stages))
        self.image_estimators = nn.ModuleList(
            EncoderDecoder(2, 1, tuple(p.image_widths), non_local=True, max_keys=p.non_local_keys, output="residual")
            for _ in range(p.stages))
        self.step_mask = nn.Parameter(torch.full((p.stages,), _softplus_inverse(tp.initial_step_mask)))
        self.step_image = nn.Parameter(torch.full((p.stages,), _softplus_inverse(tp.initial_step_image)))

    # ---------------------------------------------------------------------------------------------- F

    def predict_masks(self, masks: Tensor) -> Tensor:
        """F applied to each of the K masks ``[B, K, 1, H, W]`` (shared weights)."""
        b, k, _, h, w = masks.shape
        return self.predictor(masks.reshape(b * k, 1, h, w)).view(b, k, 1, h, w)

    # ---------------------------------------------------------------------------------------------- G

    def unroll(self, sources: Tensor, start: Tensor) -> tuple[list[Tensor], Tensor]:
        """G: T stages from ``M⁽⁰⁾ = start``; returns every stage's masks ``M⁽¹⁾..M⁽ᵀ⁾`` and the last ``A⁽ᵀ⁾``."""
        lam = self.params.lam
        b, k, _, h, w = sources.shape
        m = start
        a = compose(m, sources)
        stage_masks = []
        for t in range(self.params.stages):
            rho_m = F_.softplus(self.step_mask[t])
            rho_a = F_.softplus(self.step_image[t])
            z_m = m - rho_m * gradient_masks(a, m, sources, lam)
            est_in = torch.cat([z_m, sources, a.unsqueeze(1).expand(b, k, 1, h, w)], dim=2)
            m = self.mask_estimators[t](est_in.reshape(b * k, 3, h, w)).view(b, k, 1, h, w)
            stage_masks.append(m)
            comp = compose(m, sources)
            z_a = a - rho_a * gradient_image(a, m, sources, lam)
            a = self.image_estimators[t](torch.cat([z_a, comp], dim=1))
        return stage_masks, a

    # ---------------------------------------------------------------------------------------------- contract

    def training_outputs(self, batch: TrainingBatch) -> dict[str, Tensor]:
        s = batch.sources
        _check(s)
        tp = self.training_params
        m0 = initial_masks(s, self.params.gradient, self.params.window)
        b, k, _, h, w = m0.shape
        perturbed, keep = blind_spot(m0.reshape(b * k, 1, h, w), tp.keep_probability, batch.generator,
                                     tp.replacement)
        blind = self.predict_masks(perturbed.view(b, k, 1, h, w))
        predicted = self.predict_masks(m0)
        stages, fused = self.unroll(s, m0)
        return {"sources": s, "initial_masks": m0, "blind_keep": keep.view(b, k, 1, h, w),
                "blind_predictions": blind, "predictor_masks": predicted, "stage_masks": torch.stack(stages),
                "fused": fused}

    def fuse(self, sources: Tensor, masks: str = "fuser") -> tuple[Tensor, Tensor]:
        """Eq. 1 with G's last masks (``masks="fuser"``, the paper's inference) or F's refined initial masks
        (``"predictor"``, the paper's "w/o G*" ablation), normalised to sum to 1."""
        _check(sources)
        m0 = initial_masks(sources, self.params.gradient, self.params.window)
        if masks == "predictor":
            m = self.predict_masks(m0)
        else:
            m = self.unroll(sources, m0)[0][-1]
        total = m.sum(dim=1, keepdim=True)
        k = sources.shape[1]
        m = torch.where(total > 1e-6, m / total.clamp_min(1e-6), torch.full_like(m, 1.0 / k))
        return compose(m, sources), m


def _check(sources: Tensor) -> None:
    if sources.dim() != 5 or sources.shape[2] != 1 or sources.shape[1] < 2:
        raise UnsupportedInput(f"udpnet needs luma stacks [B, K, 1, H, W] with K >= 2; got {tuple(sources.shape)}",
                               "give two or more images of the scene, converted to luma")


def _softplus_inverse(y: float) -> float:
    return float(y + math.log(-math.expm1(-y)))
