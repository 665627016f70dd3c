"""Parameters of the built-in resamplers.

Kept apart from the resamplers and importable without torch, so that validating a spec (``fusionkit validate``)
does not import it. Each resampler's ``Params`` is one of these classes.
"""
from __future__ import annotations

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
