"""FAP-SR (focus affinity perception + super-resolution embedding), §III, Eqs. 1-16: FAPN, SRN and the fusion
decoder as one trainable model for ``fusionkit train``, on luma stacks of any K >= 2 inputs.

Shapes: a batch of LR stacks ``S`` is ``[B, K, 1, h, w]``; decision maps are ``[B, K, 1, h, w]`` (LR); HR images
are ``[B, 1, s·h, s·w]`` (``[B, K, 1, s·h, s·w]`` per input).
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from fusionkit.interfaces import Params, TrainableModel, TrainingBatch, UnsupportedInput

from .blocks import FocusEnhancement, FocusPrediction, FusionDecoder, SuperResolution, resize
from .hole_filling import hole_fill

#: what ``training_outputs(batch)`` computes for each ``batch.phase`` (None: everything)
PHASES = {
    "fapn": ("sources", "maps", "fused_lr"),
    "srn": ("sources", "sr"),
    "joint": ("sources", "maps", "pred_masks", "fused_hr"),
    None: ("sources", "maps", "fused_lr", "sr", "pred_masks", "fused_hr"),
}

_HOLE_HELP = ("Eq. 14's hole filling: regions of the binarised decision maps smaller than this fraction of the "
              "image area are given to their neighbour (0: no filling, the argmax alone)")


def pair_indices(k: int, device: Any = None) -> tuple[Tensor, Tensor]:
    """All ordered pairs ``(i, j)``, ``i != j``, of ``k`` inputs: ``k(k-1)`` index pairs, i-major."""
    ii = [i for i in range(k) for j in range(k) if i != j]
    jj = [j for i in range(k) for j in range(k) if i != j]
    return torch.tensor(ii, device=device), torch.tensor(jj, device=device)


def combine_pairs(pair_maps: Tensor, k: int) -> Tensor:
    """The N rule. ``pair_maps`` ``[B, k(k-1), 2, h, w]``: the FPM's two maps ``(M_a, M_b)`` for each ordered pair
    ``(a, b)`` of :func:`pair_indices`. Input i's pairwise score against j is ``P_ij = (M_a(i, j) + M_b(j, i)) / 2``
    (both orders, so it does not depend on which input the FPM saw first); its map is ``m_i = min_{j≠i} P_ij`` (i
    must win against every other input), and the maps are ``m_i / Σ_k m_k`` (uniform where every ``m_k`` is below
    1e-6). For K = 2 this is the paper's pair rule ``M_1, M_2`` (symmetrised and normalised). Returns
    ``[B, k, 1, h, w]``, >= 0, summing to 1."""
    b, _, _, h, w = pair_maps.shape
    index = {}
    for n, (i, j) in enumerate(zip(*[t.tolist() for t in pair_indices(k)])):
        index[(i, j)] = n
    scores = []
    for i in range(k):
        p = [0.5 * (pair_maps[:, index[(i, j)], 0] + pair_maps[:, index[(j, i)], 1]) for j in range(k) if j != i]
        scores.append(torch.stack(p, dim=0).amin(dim=0))
    m = torch.stack(scores, dim=1).unsqueeze(2)                         # [B, k, 1, h, w]
    total = m.sum(dim=1, keepdim=True)
    return torch.where(total > 1e-6, m / total.clamp_min(1e-6), torch.full_like(m, 1.0 / k))


class FAPSR(TrainableModel):
    """FAP-SR: FAPN (decision maps at LR), SRN (each input ×s) and the fusion decoder D2, any K >= 2 luma inputs.

    **FAPN** (§III-A): per input, the AEM (Eqs. 1-3, 3×3 and 5×5 features and their affinity), SAM (Eqs. 4-5)
    and CAM (Eq. 6), weights shared over the inputs; per ordered pair, the FPM (Eqs. 7-9: 3×3/5×5 convolution
    groups, ``fr_blocks`` FR blocks, ``head_convs`` 3×3 convolutions and a sigmoid) gives two maps. **N rule**
    (the paper is written for pairs): input i's score against j averages the FPM's map for i over both orders,
    its map is the minimum over j ≠ i, and the K maps are normalised to sum to 1 (:func:`combine_pairs`). For
    K = 2 this is the pair rule; the FPM runs K(K-1) times.

    **SRN** (§III-B, shared over the inputs): gradient-embedding branch on the Sobel gradient map, super-resolution
    branch with ``dense_blocks`` dense residual blocks, Eq. 10's attention, Eq. 11's deconvolution (one transposed
    convolution ×s), Eq. 12's concatenation with the bicubic-resized gradient map, D1 (Eq. 13) -> ``I_i^HR``.

    **Fusion** (§III-C): Eq. 14 hole filling (binarise, remove regions smaller than ``hole_fraction`` of the
    image), Eq. 15 ``F_fus = Σ_i Resize(M_i^pred) ⊙ F̄_i^SRN`` (bilinear), D2 -> ``I_fus^HR`` (Eq. 16).

    Deviations (docs/fapsr.md): luma in, luma out (the paper is RGB; fusionkit fuses luma and composes the
    chroma by the maps); SAM's keys and values pooled to at most ``attention_pool²`` positions with a scaled
    softmax; D1 and D2 predict residuals over bicubic ×s images; CAM's FC ends in a sigmoid; the head has
    ``head_convs`` convolutions (paper: 5).

    Sizes: the defaults (``width`` 16, ``fapn_width`` 8, ``fr_blocks`` 4, ``dense_blocks`` 4, ``head_convs`` 2)
    are about a third of the paper's depth (10 FR blocks, 10 dense residual blocks, 5 head convolutions; the paper
    gives no widths), so that the model trains on a 2-core CPU in half an hour and fuses a 256² pair ×2 within
    about 2 s there; the paper's depth is ``fr_blocks: 10, dense_blocks: 10, head_convs: 5``.

    ``training_outputs`` computes what ``batch.phase`` needs (§III-E): ``"fapn"`` the maps and Eq. 17's
    ``I_fus^LR = Σ M_i I_i^LR``; ``"srn"`` each input's ``I_i^HR``; ``"joint"`` FAPN frozen (no gradient), the
    hole-filled maps and ``I_fus^HR``; ``None`` everything.
    """

    name = "fapsr"
    summary = "FAP-SR: focus-affinity decision maps (FAPN) + gradient-embedded SR (SRN) + fusion decoder, any K >= 2"
    reference = ("Focus Affinity Perception and Super-Resolution Embedding for Multifocus Image Fusion, §III, "
                 "Eqs. 1-16 (FAPN, SRN, feature fusion)")
    provides = PHASES[None]

    class Params(Params):
        scale: int = Field(2, ge=1, le=8, description="s, the super-resolution factor (the weights are for one s)")
        width: int = Field(16, ge=2, le=256, description="channels of the SRN and the decoders D1, D2 (the paper "
                           "gives none)")
        growth: int = Field(8, ge=1, le=256, description="growth of each of the 3 layers of a dense residual block")
        dense_blocks: int = Field(4, ge=1, le=32, description="dense residual blocks of the SRN (the paper: 10)")
        fapn_width: int = Field(8, ge=2, le=256, description="channels of the FAPN's features (AEM/SAM/CAM, FPM)")
        fr_blocks: int = Field(4, ge=1, le=32, description="FR blocks of the FPM (the paper: 10)")
        head_convs: int = Field(2, ge=1, le=8, description="3×3 convolutions before the FPM's sigmoid (the paper: 5)")
        attention_pool: int = Field(16, ge=1, le=128, description="SAM keys/values pooled to at most P×P positions "
                                    "(the paper's full hw×hw attention is infeasible at real sizes)")

    class TrainingParams(Params):
        hole_fraction: float = Field(0.01, ge=0.0, lt=1.0, description=_HOLE_HELP + "; used by the joint phase")

    def __init__(self, params=None, training=None, **overrides):
        super().__init__(params, training, **overrides)
        p = self.params
        self.enhance = FocusEnhancement(p.fapn_width, p.attention_pool)
        self.predict = FocusPrediction(p.fapn_width, p.fr_blocks, p.head_convs)
        self.srn = SuperResolution(p.width, p.growth, p.dense_blocks, p.scale)
        self.decoder = FusionDecoder(p.width)

    # ---------------------------------------------------------------------------------------------- groups

    def parameter_groups(self) -> dict[str, nn.Module]:
        """The modules each training phase trains: ``fapn`` (AEM, SAM, CAM, FPM), ``srn`` (SRB, GEB, D1) and
        ``fusion`` (D2). Every parameter is in exactly one."""
        return {"fapn": nn.ModuleList([self.enhance, self.predict]), "srn": self.srn, "fusion": self.decoder}

    # ---------------------------------------------------------------------------------------------- FAPN

    def decision_maps(self, sources: Tensor) -> Tensor:
        """FAPN + the N rule: soft maps ``[B, K, 1, h, w]`` >= 0 summing to 1 (Eqs. 1-9, :func:`combine_pairs`)."""
        b, k, _, h, w = sources.shape
        f3, f5 = self.enhance(sources.reshape(b * k, 1, h, w))
        f3, f5 = f3.view(b, k, -1, h, w), f5.view(b, k, -1, h, w)
        ii, jj = pair_indices(k, sources.device)
        n = ii.numel()
        c = f3.shape[2]
        a = (f3[:, ii].reshape(b * n, c, h, w), f5[:, ii].reshape(b * n, c, h, w))
        o = (f3[:, jj].reshape(b * n, c, h, w), f5[:, jj].reshape(b * n, c, h, w))
        pair_maps = self.predict(a, o).view(b, n, 2, h, w)
        return combine_pairs(pair_maps, k)

    # ---------------------------------------------------------------------------------------------- SRN

    def srn_features(self, sources: Tensor) -> Tensor:
        """``F̄_i^SRN`` of every input: ``[B, K, C + 1, sh, sw]`` (Eqs. 10-12)."""
        b, k, _, h, w = sources.shape
        f = self.srn.features(sources.reshape(b * k, 1, h, w))
        return f.view(b, k, *f.shape[1:])

    def super_resolve(self, sources: Tensor) -> Tensor:
        """``I_i^HR`` of every input (Eqs. 10-13): ``[B, K, 1, sh, sw]``."""
        b, k, _, h, w = sources.shape
        x = sources.reshape(b * k, 1, h, w)
        out = self.srn.reconstruct(self.srn.features(x), x)
        return out.view(b, k, 1, *out.shape[-2:])

    # ---------------------------------------------------------------------------------------------- fusion

    def fuse_features(self, sources: Tensor, pred_masks: Tensor) -> Tensor:
        """Eqs. 15-16: ``I_fus^HR = D2(Σ_i Resize(M_i^pred) ⊙ F̄_i^SRN)`` ``[B, 1, sh, sw]``, D2 residual over
        ``Σ_i Resize(M_i^pred) ⊙ Bicubic(I_i^LR)``."""
        b, k, _, h, w = sources.shape
        s = self.params.scale
        up = resize(pred_masks.reshape(b * k, 1, h, w), s, "bilinear").view(b, k, 1, s * h, s * w)
        feats = self.srn_features(sources)
        f_fus = (up * feats).sum(dim=1)                                                     # Eq. 15
        skip = (up * resize(sources.reshape(b * k, 1, h, w), s, "bicubic").view(b, k, 1, s * h, s * w)).sum(1)
        return self.decoder(f_fus, skip)                                                    # Eq. 16

    # ---------------------------------------------------------------------------------------------- contract

    def training_outputs(self, batch: TrainingBatch) -> dict[str, Tensor]:
        s = batch.sources
        _check(s)
        phase = getattr(batch, "phase", None)
        if phase not in PHASES:
            raise UnsupportedInput(f"fapsr has no training phase {phase!r}",
                                   "name the phases fapn, srn and joint (§III-E), or none to compute everything")
        scale = getattr(batch, "scale", None)
        if scale is not None and int(scale) != self.params.scale:
            raise UnsupportedInput(f"the batch is for x{scale} but this fapsr model is built for "
                                   f"x{self.params.scale}", f"set model.params.scale: {scale} (or data.scale: "
                                   f"{self.params.scale}) so the two agree")
        out: dict[str, Tensor] = {"sources": s}
        if phase in ("fapn", None):
            maps = self.decision_maps(s)
            out["maps"] = maps
            out["fused_lr"] = (maps * s).sum(dim=1)                                         # Eq. 17's I_fus^LR
        if phase in ("srn", None):
            out["sr"] = self.super_resolve(s)
        if phase in ("joint", None):
            if "maps" in out:
                maps = out["maps"]
            else:
                with torch.no_grad():   # §III-E: FAPN is fixed in the later phases
                    maps = self.decision_maps(s)
                out["maps"] = maps
            pred = hole_fill(maps.detach(), self.training_params.hole_fraction)             # Eq. 14
            out["pred_masks"] = pred
            out["fused_hr"] = self.fuse_features(s, pred)
        return out

    def fuse(self, sources: Tensor, hole_fraction: float = 0.01) -> tuple[Tensor, Tensor]:
        """Inference: ``(I_fus^HR [B, 1, sh, sw], M^pred [B, K, 1, h, w])``, the maps hole-filled (Eq. 14; binary,
        summing to 1) at LR."""
        _check(sources)
        pred = hole_fill(self.decision_maps(sources), hole_fraction)
        return self.fuse_features(sources, pred), pred


def _check(sources: Tensor) -> None:
    if sources.dim() != 5 or sources.shape[2] != 1 or sources.shape[1] < 2:
        raise UnsupportedInput(f"fapsr needs luma stacks [B, K, 1, h, w] with K >= 2; got {tuple(sources.shape)}",
                               "give two or more images of the scene, converted to luma")
