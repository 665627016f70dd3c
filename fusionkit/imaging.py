"""Colour conversions shared by the engine and the components (BT.601, full range, values in [0, 1])."""
from __future__ import annotations

import torch
from torch import Tensor

#: BT.601 luma weights. The released DFP code's gradient loss uses 0.299R - 0.169G + 0.499B, which is not luma.
LUMA = (0.299, 0.587, 0.114)


def to_luma(x: Tensor) -> Tensor:
    """BT.601 luma of ``[B,3,H,W]`` -> ``[B,1,H,W]``; a single-channel input is returned unchanged."""
    if x.shape[1] == 1:
        return x
    w = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """Full-range BT.601 (JPEG) YCbCr of ``[B,3,H,W]`` in [0, 1]; Cb and Cr are centred on 0.5."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
    cb = 0.5 + (b - y) / 1.772
    cr = 0.5 + (r - y) / 1.402
    return torch.cat([y, cb, cr], dim=1)


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr`; the result is clamped to [0, 1]."""
    y, cb, cr = x[:, 0:1], x[:, 1:2] - 0.5, x[:, 2:3] - 0.5
    r = y + 1.402 * cr
    b = y + 1.772 * cb
    g = (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1]
    return torch.cat([r, g, b], dim=1).clamp(0.0, 1.0)
