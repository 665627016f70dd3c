"""FAP-SR (focus affinity perception + super-resolution embedding: joint multi-focus fusion and ×s
super-resolution) as fusionkit plugins, registered through the ``fusionkit`` entry-point group (import name
``fusionkit_plugins.fapsr``), like UDPNet:

- model ``fapsr``: FAPN + SRN + fusion decoder D2 (Eqs. 1-16), trained in three phases by ``fusionkit train``;
- training losses ``fapsr_mask``, ``fapsr_gradient``, ``fapsr_ssim`` (Eq. 17, weighted by Eq. 18),
  ``fapsr_reconstruction`` (Eq. 19) and ``fapsr_fusion`` (Eq. 20);
- fuser ``fapsr`` (``method: fuser``, super-resolving itself) and focus measure ``fapsr`` (its LR decision maps),
  loading trained weights (``weights``; the built-in ones ship in ``weights/`` once trained).

See docs/fapsr.md.
"""
from __future__ import annotations

from fusionkit.registry import hookimpl

from .losses import FusionLoss, GradientLoss, MaskLoss, ReconstructionLoss, SSIMLoss
from .model import FAPSR
from .roles import FAPSRFuser, FAPSRMasks

__all__ = ["FAPSR", "MaskLoss", "GradientLoss", "SSIMLoss", "ReconstructionLoss", "FusionLoss", "FAPSRFuser",
           "FAPSRMasks"]


@hookimpl
def register_models(register):
    register(FAPSR)


@hookimpl
def register_training_losses(register):
    for cls in (MaskLoss, GradientLoss, SSIMLoss, ReconstructionLoss, FusionLoss):
        register(cls)


@hookimpl
def register_fusers(register):
    register(FAPSRFuser)


@hookimpl
def register_focus_measures(register):
    register(FAPSRMasks)
