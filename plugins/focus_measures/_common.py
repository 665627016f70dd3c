"""Shared helpers of the built-in focus measures: input checks and the torch <-> numpy boundary."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fusionkit.interfaces import UnsupportedInput


def check_stack(images: Tensor, who: str, exactly: int | None = None, hint: str | None = None) -> None:
    """Raise :class:`UnsupportedInput` unless ``images`` is a finite ``[N,1,H,W]`` luma stack with ``N >= 2``
    (or ``N == exactly``)."""
    if not isinstance(images, Tensor):
        raise UnsupportedInput(f"{who} needs a torch tensor [N,1,H,W]; got {type(images).__name__}",
                               "pass the luma stack as a float tensor")
    if images.dim() != 4 or images.shape[1] != 1:
        raise UnsupportedInput(f"{who} needs a luma stack of shape [N,1,H,W]; got {tuple(images.shape)}",
                               "convert the inputs to luma first (fusionkit.imaging.to_luma)")
    n, _, h, w = images.shape
    if n < 2:
        raise UnsupportedInput(f"{who} needs at least 2 inputs; got N={n}", "give two or more images of the scene")
    if exactly is not None and n != exactly:
        raise UnsupportedInput(f"{who} supports exactly {exactly} inputs for now; got N={n}", hint)
    if h < 1 or w < 1:
        raise UnsupportedInput(f"{who} got empty images of size {h}x{w}", "give non-empty images")
    if not images.is_floating_point():
        raise UnsupportedInput(f"{who} needs float luma in [0, 1]; got dtype {images.dtype}",
                               "convert the images to float32 in [0, 1]")
    if not bool(torch.isfinite(images).all()):
        raise UnsupportedInput(f"{who} got inputs with NaN or infinite values", "check how the inputs were loaded")


def to_numpy(images: Tensor) -> np.ndarray:
    """``[N,1,H,W]`` tensor -> ``[N,H,W]`` float64 numpy array (a copy, on the CPU)."""
    return images.detach().to(device="cpu", dtype=torch.float64).numpy()[:, 0].copy()


def to_maps(maps: np.ndarray, like: Tensor) -> Tensor:
    """``[N,H,W]`` numpy maps -> ``[N,1,H,W]`` float32 tensor on ``like``'s device."""
    return torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None].to(like.device)

