"""Small differentiable image filters shared by components (torch, ``[B,C,H,W]``)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def laplacian(x: Tensor, padding: str = "replicate") -> Tensor:
    """4-neighbour Laplacian ``[[0,1,0],[1,-4,1],[0,1,0]]`` per channel, same size as ``x``.

    ``padding`` is ``"replicate"`` (no false edges at the border) or ``"zeros"`` (the released DFP code).
    """
    if padding == "zeros":
        p = F.pad(x, (1, 1, 1, 1))
    else:
        p = F.pad(x, (1, 1, 1, 1), mode=padding)
    c = p[..., 1:-1, 1:-1]
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4.0 * c


def forward_differences(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences ``(d/dx, d/dy)``: shapes ``[..., H, W-1]`` and ``[..., H-1, W]``."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]
