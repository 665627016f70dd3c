"""Parameters of the built-in losses.

Kept apart from the losses and importable without torch, so that validating a spec (``fusionkit validate``) does
not import it. Each loss's ``Params`` is one of these classes.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from fusionkit.interfaces import Params


class ContentLossParams(Params):
    lambdas: Optional[list[Annotated[float, Field(ge=0.0, le=1000.0)]]] = Field(
        None, min_length=1, max_length=64,
        description="one weight lambda_i >= 0 per input, in input order (paper: lambda_1 = lambda_2 = 1); "
                    "null = 1 for every input. Its length must equal the number of inputs")


class DecisionLossParams(Params):
    map_weight: float = Field(1.0, ge=0.0, le=1000.0,
                              description="weight of 1/2 sum_i |m_hat_i - m_i| (Eq. 20: 1)")
    intensity_weight: float = Field(1.0, ge=0.0, le=1000.0,
                                    description="weight of sum_i |m_hat_i I_i - I_i| (Eq. 20: 1)")


class GradientLimitLossParams(Params):
    on: Literal["high", "low"] = Field(
        "high", description="high: the full-resolution output (released code); low: the downsampled output")


class JointGradientLossParams(Params):
    mode: Literal["paper", "code"] = Field(
        "paper", description="paper: signed Laplacians, max of the signed input Laplacians (Eq. 23); "
                             "code: absolute Laplacians on both sides (released code)")
    padding: Literal["replicate", "zeros"] = Field(
        "replicate", description="Laplacian border handling: replicate (no false border edges) or zeros "
                                 "(released code)")
