"""fusionkit's built-in resamplers (import name ``fusionkit_plugins.upsamplers``), registered through the
``fusionkit`` entry-point group.

Each is a separable kernel (see :mod:`.kernels` for the geometry and :mod:`.separable` for the implementation):

- ``lanczos2``: the Deep Image Prior / DFP downsampler used inside the loss;
- ``lanczos3``: a wider Lanczos window;
- ``bicubic``: Keys cubic, with ``a = -0.5`` by default;
- ``bilinear``: triangle;
- ``box``: block mean down, nearest up;
- ``learned_kernel``: a small 2-D kernel estimated during the fusion (:mod:`.learned_kernel`), bicubic up.
"""
from __future__ import annotations

from fusionkit.registry import hookimpl

from .bicubic import BicubicResampler
from .bilinear import BilinearResampler
from .box import BoxResampler
from .checks import ResampleError
from .lanczos import Lanczos2Resampler, Lanczos3Resampler
from .learned_kernel import LearnedKernelResampler
from .separable import SeparableResampler

__all__ = ["BicubicResampler", "BilinearResampler", "BoxResampler", "Lanczos2Resampler", "Lanczos3Resampler",
           "LearnedKernelResampler", "ResampleError", "SeparableResampler", "register_resamplers"]


@hookimpl
def register_resamplers(register):
    for cls in (Lanczos2Resampler, Lanczos3Resampler, BicubicResampler, BilinearResampler, BoxResampler,
                LearnedKernelResampler):
        register(cls)
