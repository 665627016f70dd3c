"""UDPNet's trained network in the roles a pipeline asks for: a complete fuser, and a mask source (focus measure)."""
from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from fusionkit.trained import TrainedFocusMeasure, TrainedFuser, WeightsParams

from .model import UDPNet, compose

#: the weights fusionkit ships (package data, trained by `fusionkit train examples/train/udpnet.yaml`)
BUILTIN_WEIGHTS = "fusionkit_plugins.udpnet:udpnet-mfiwhu"

_WEIGHTS_HELP = ("trained UDPNet weights: a weights.pt path (relative to the current folder) or PACKAGE:NAME; "
                 "the default was trained on the MFI-WHU pairs outside its 30-pair test subset (docs/training.md)")
_MASKS_HELP = ("whose masks compose the output: G's last stage ('fuser', the paper's inference) or F's refinement "
               "of the initial masks ('predictor', the paper's 'w/o G*' ablation)")
_DECISION_HELP = ("'binary': each pixel from the input whose mask is the largest (ties: the first); 'soft': the masks "
                  "as they are (Eq. 1 read literally). Binary was chosen on the held-out MFI-WHU validation pairs "
                  "(docs/training.md)")


class _RoleParams(UDPNet.Params, WeightsParams):
    model_cls: ClassVar[type] = UDPNet
    weights: str = Field(BUILTIN_WEIGHTS, description=_WEIGHTS_HELP)
    masks: Literal["fuser", "predictor"] = Field("fuser", description=_MASKS_HELP)
    decision: Literal["binary", "soft"] = Field("binary", description=_DECISION_HELP)


class _Masks:
    """Run the network with the masks the params choose (G's or F's), binarised or not."""

    def run_model(self, net, stack):
        fused, maps = net.fuse(stack, masks=self.params.masks)
        if self.params.decision == "binary":
            k = maps.shape[1]
            idx = torch.arange(k, device=maps.device).view(1, k, 1, 1, 1)
            maps = (idx == maps.argmax(dim=1, keepdim=True)).to(maps.dtype)
            fused = compose(maps, stack)
        return fused, maps


class UDPNetFuser(_Masks, TrainedFuser):
    """UDPNet as a complete method (``method: fuser``): Eq. 1 with the trained G's masks, any N >= 2 inputs.

    Colour as elsewhere in fusionkit: the luma is fused by the masks G computes from the luma stack, the chroma
    (Cb, Cr) by the same masks; gray stacks are fused directly. The spec's ``upsampler`` then gives ×s. The
    architecture parameters must match the weights (they are checked when the spec is validated).

    Deviation (``decision: binary``, the default): the masks are binarised (each pixel from the input with the
    largest mask) before Eq. 1. The blind-spot predictor learns the conditional mean of the noisy initial masks,
    so the trained masks stay soft (about 0.1-0.9) and Eq. 1 blends the inputs where one of them is sharp; on the
    9 held-out MFI-WHU validation pairs binarising scored higher on 8 of the 10 fusion metrics of the paper's
    Table II (docs/training.md). ``decision: soft`` is the paper's literal inference.
    """

    name = "udpnet"
    summary = "UDPNet (trained): Eq. 1 with the unrolled fuser G's (binarised) masks; luma and chroma by them"
    reference = ("Quan et al., 'Dual-Path Deep Unsupervised Learning for Multi-Focus Image Fusion', §III-D "
                 "(inference by Eq. 1 with G's masks)")

    class Params(_RoleParams):
        pass


class UDPNetMasks(_Masks, TrainedFocusMeasure):
    """UDPNet's trained masks as decision maps: G's last-stage masks (or F's), binary by default (``decision``),
    or soft and normalised to sum to 1.

    A mask source for DFP or the two-step composite instead of DoubleReblur's maps; any N >= 2 inputs.
    """

    name = "udpnet"
    summary = "UDPNet (trained) masks as decision maps: G's last stage (or F's), binary or soft, any N >= 2"
    reference = "Quan et al., UDPNet, §III-C/D (the unrolled fuser's mask estimates M^(T))"

    class Params(_RoleParams):
        pass
