"""Parameters of the built-in resamplers.

Kept apart from the resamplers and importable without torch, so that validating a spec (``fusionkit validate``)
does not import it. Each resampler's ``Params`` is one of these classes.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from fusionkit.interfaces import Params


class BicubicResamplerParams(Params):
    a: float = Field(-0.5, ge=-1.0, le=0.0,
                     description="Keys' free parameter: -0.5 as MATLAB imresize and PIL (exact for quadratics); "
                                 "-0.75 as torch and OpenCV (sharper, more overshoot)")


class BilinearResamplerParams(Params):
    pass


class BoxResamplerParams(Params):
    pass


class Lanczos2ResamplerParams(Params):
    pass


class Lanczos3ResamplerParams(Params):
    pass


class LearnedKernelResamplerParams(Params):
    support: float = Field(2.0, ge=0.5, le=4.0,
                           description="half-width of the kernel in low-resolution pixels: the taps are the "
                                       "high-resolution pixel centres within it (2*support*s taps a side for even "
                                       "s, 2*support*s - 1 for odd; 8x8 at x2 with the default, as lanczos2)")
    init: Literal["lanczos2", "bicubic"] = Field(
        "lanczos2", description="the kernel it starts from (lanczos2: the default DFP loss kernel, so a run "
                                "starts exactly where the fixed downsampler is)")
    parameterisation: Literal["signed", "softmax"] = Field(
        "signed", description="signed: taps projected to sum 1, negative lobes allowed (lanczos2 and bicubic have "
                              "them); softmax: non-negative taps summing to 1 (a physical blur; the init's "
                              "negative lobes are dropped)")
    lr: float = Field(0.1, gt=0.0, le=1.0,
                      description="Adam learning rate of the kernel parameters (in units of 1/taps per tap, "
                                  "or logits for softmax); follows the fusion loop's schedule")
    frozen_for: float = Field(0.0, ge=0.0, lt=1.0,
                              description="fraction of the fusion iterations, from the start, with the kernel "
                                          "held at its initial value (measured: a freeze lets the generator fit a "
                                          "blurred image under the initial kernel, which then hardly moves; "
                                          "docs/degradation.md)")
    centre_weight: float = Field(1.0, ge=0.0,
                                 description="weight of the centre-of-mass prior |E[offset]|^2 (HR pixels^2)")
    smoothness_weight: float = Field(0.01, ge=0.0,
                                     description="weight of the smoothness prior: sum of squared differences "
                                                 "of neighbouring taps")
    boundary_weight: float = Field(0.01, ge=0.0,
                                   description="weight of the support prior: sum of |tap| times "
                                               "max(0, r - free_radius)^2, r the tap's distance in LR pixels")
    free_radius: float = Field(1.0, ge=0.0,
                               description="distance from the centre (LR pixels) within which taps are not "
                                           "penalised by the support prior")
