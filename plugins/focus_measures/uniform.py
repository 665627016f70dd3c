"""Equal weights for every input: the "mean of the inputs" baseline as a focus measure."""
from __future__ import annotations

import torch
from torch import Tensor

from fusionkit.interfaces import FocusMeasure

from ._common import check_stack
from ..params.focus_measures import UniformParams


class Uniform(FocusMeasure):
    """Maps of ``1/N`` everywhere, so the composite ``sum_i m_i x_i`` is the plain mean of the inputs.

    Not a focus measure in the physical sense: it is the reference point a real measure must beat. With
    ``method: composite`` it makes the "mean of the inputs, upsampled" baseline a spec like any other
    (``examples/baselines/mean-bicubic.yaml``).
    """

    name = "uniform"
    summary = "Equal weights 1/N for every input (the mean-of-inputs baseline; any N >= 2, soft)"
    reference = "baseline: arithmetic mean of the sources (no focus measurement)"

    Params = UniformParams

    def __call__(self, images: Tensor) -> Tensor:
        check_stack(images, self.name)
        return torch.full_like(images, 1.0 / images.shape[0])
