"""fusionkit's built-in losses (DFP Eqs. 20 and 22-24), registered through the ``fusionkit`` entry-point group.

- ``content``: map-weighted L1 to each input at low resolution (Eq. 22, N inputs);
- ``joint_gradient``: Laplacian of the output's luma vs the per-pixel max over the inputs (Eq. 23);
- ``gradient_limit``: anisotropic total variation of the output (Eq. 24);
- ``decision``: the decision-embedding loss on soft maps (Eq. 20, N maps).
"""
from __future__ import annotations

from fusionkit.registry import hookimpl

from .content import ContentLoss
from .decision import DecisionLoss
from .gradient_limit import GradientLimitLoss
from .joint_gradient import JointGradientLoss

__all__ = ["ContentLoss", "DecisionLoss", "GradientLimitLoss", "JointGradientLoss", "register_losses"]


@hookimpl
def register_losses(register):
    for cls in (ContentLoss, JointGradientLoss, GradientLimitLoss, DecisionLoss):
        register(cls)
