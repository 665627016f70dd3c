"""UDPNet (Quan et al., dual-path unsupervised multi-focus fusion) as fusionkit plugins, registered through the
``fusionkit`` entry-point group (import name ``fusionkit_plugins.udpnet``), the way a third-party method would be:

- model ``udpnet``: the trainable network (mask predictor F + unrolled fuser G), for ``fusionkit train``;
- training losses ``blind_spot_mask`` (Eq. 5), ``stage_mask`` (Eq. 13), ``fusion_consistency`` (Eq. 15);
- fuser ``udpnet`` (``method: fuser``) and focus measure ``udpnet`` (a mask source for DFP), loading trained
  weights, by default those shipped in ``weights/`` (package data).
"""
from __future__ import annotations

from fusionkit.registry import hookimpl

from .losses import BlindSpotMaskLoss, FusionConsistencyLoss, StageMaskLoss
from .model import UDPNet
from .roles import UDPNetFuser, UDPNetMasks

__all__ = ["UDPNet", "BlindSpotMaskLoss", "StageMaskLoss", "FusionConsistencyLoss", "UDPNetFuser", "UDPNetMasks"]


@hookimpl
def register_models(register):
    register(UDPNet)


@hookimpl
def register_training_losses(register):
    for cls in (BlindSpotMaskLoss, StageMaskLoss, FusionConsistencyLoss):
        register(cls)


@hookimpl
def register_fusers(register):
    register(UDPNetFuser)


@hookimpl
def register_focus_measures(register):
    register(UDPNetMasks)
