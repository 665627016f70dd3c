"""FAP-SR's trained network in the roles a pipeline asks for: a complete ×s fuser, and a mask source (its LR
decision maps)."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from fusionkit.trained import TrainedFocusMeasure, TrainedSuperResolvingFuser, WeightsParams

from .hole_filling import hole_fill
from .model import FAPSR

PACKAGE = "fusionkit_plugins.fapsr"
#: the weights fusionkit ships (package data, trained by `fusionkit train examples/train/fapsr-x2.yaml`)
BUILTIN_WEIGHTS = f"{PACKAGE}:fapsr-x2"

_WEIGHTS_HELP = ("trained FAP-SR weights: a weights.pt path (relative to the current folder) or PACKAGE:NAME "
                 f"({PACKAGE}:fapsr-x2 or :fapsr-x4, trained on synthetic Kodak stacks by "
                 "examples/train/fapsr-x2.yaml / fapsr-x4.yaml); params.scale must be the weights' scale")
_HOLE_HELP = ("Eq. 14's hole filling: regions of the binarised decision maps smaller than this fraction of the "
              "image area are given to their neighbour (0: the argmax alone)")


class _RoleParams(FAPSR.Params, WeightsParams):
    model_cls: ClassVar[type] = FAPSR
    weights: str = Field(BUILTIN_WEIGHTS, description=_WEIGHTS_HELP, validate_default=True)
    hole_fraction: float = Field(0.01, ge=0.0, lt=1.0, description=_HOLE_HELP)


class _Maps:
    """The network's decision maps, hole-filled with the role's ``hole_fraction``."""

    def run_model(self, net, stack):
        return net.fuse(stack, hole_fraction=self.params.hole_fraction)


class FAPSRFuser(_Maps, TrainedSuperResolvingFuser):
    """FAP-SR as a complete ×s method (``method: fuser``): FAPN's hole-filled maps (Eq. 14), the SRN's features
    fused by them (Eq. 15) and decoded by D2 (Eq. 16), any N >= 2 inputs.

    It super-resolves itself: ``fuse(images, scale)`` returns ``[1, C, s·H, s·W]`` and the engine uses it as is
    (no upsampler). ``scale`` must be the weights' (``params.scale``): another is refused naming the weights to
    use. ×1 (``__call__``, or ``fuse(images, 1)``) is a fallback: the ×s result downsampled to the inputs' size.

    Colour: the luma goes through the network (FAP-SR is trained on luma here; the paper's network is RGB); the
    chroma (Cb, Cr) is composed by the same LR maps and upsampled bicubically (standard SR practice); gray stacks
    are fused directly. The architecture parameters must match the weights (checked when the spec is validated).
    """

    name = "fapsr"
    summary = "FAP-SR (trained): joint fusion + xs super-resolution (FAPN maps, SRN features, decoder D2), any N >= 2"
    reference = ("Focus Affinity Perception and Super-Resolution Embedding for Multifocus Image Fusion, §III-C "
                 "(Eqs. 14-16: hole filling, feature fusion, decoder D2)")

    class Params(_RoleParams):
        pass


class FAPSRMasks(_Maps, TrainedFocusMeasure):
    """FAP-SR's decision maps as a focus measure: the FAPN's maps (Eqs. 1-9 with the N rule of
    :func:`~fusionkit_plugins.fapsr.model.combine_pairs`), hole-filled (Eq. 14; binary, summing to 1), at the
    inputs' resolution. A mask source for DFP or the two-step composite; any N >= 2."""

    name = "fapsr"
    summary = "FAP-SR (trained) FAPN decision maps, hole-filled (binary), any N >= 2"
    reference = "Focus Affinity Perception and Super-Resolution Embedding for Multifocus Image Fusion, §III-A, Eq. 14"

    class Params(_RoleParams):
        pass

    def run_model(self, net, stack):
        return None, hole_fill(net.decision_maps(stack), self.params.hole_fraction)
