"""UDPNet's blind-spot perturbation of a binary mask (Eq. 4), for the self-supervised training of the mask predictor.

``M_B(M̃) = B ⊙ M̃ + (1 − B) ⊙ N`` with ``B[x,y] ~ Bernoulli(p)`` (p = 0.9 keeps 90 % of the pixels) and
``N[x,y] ~ Bernoulli(p_xy)``, ``p_xy`` the fraction of ones among the eight neighbours of ``M̃[x,y]``: the obscured
pixels are redrawn from their neighbourhood, so the network cannot copy them and learns to predict them from
context. At the image border only the neighbours inside the image count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_RING = ((1.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, 1.0))


def neighbour_fraction(mask: Tensor) -> Tensor:
    """Per pixel of ``[B,1,H,W]`` (values in [0, 1]): the mean of its eight neighbours inside the image."""
    ring = mask.new_tensor(_RING).view(1, 1, 3, 3)
    total = F.conv2d(F.pad(mask, (1, 1, 1, 1)), ring)
    count = F.conv2d(F.pad(torch.ones_like(mask[:1]), (1, 1, 1, 1)), ring)
    return total / count


def blind_spot(mask: Tensor, keep_probability: float, generator: torch.Generator,
               replacement: str = "neighbours") -> tuple[Tensor, Tensor]:
    """Eq. 4 on ``mask`` ``[B,1,H,W]``: returns ``(perturbed, keep)`` with ``keep`` = B (1 = pixel kept).

    ``replacement="neighbours"`` is the paper's ``N``; ``"coin"`` redraws obscured pixels as fair coin flips (an
    ablation: the neighbourhood statistics are then no longer imitated). Random numbers come from ``generator``
    (a CPU generator, so a step is reproducible on any device) and are moved to the mask's device.
    """
    shape = tuple(mask.shape)
    keep = (torch.rand(shape, generator=generator) < keep_probability).to(mask.device, mask.dtype)
    draw = torch.rand(shape, generator=generator).to(mask.device, mask.dtype)
    p = neighbour_fraction(mask) if replacement == "neighbours" else torch.full_like(mask, 0.5)
    noise = (draw < p).to(mask.dtype)
    return keep * mask + (1.0 - keep) * noise, keep
