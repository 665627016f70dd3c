"""Eq. 14's hole filling ``M^pred = HF(M)``, K-way: binarise the decision maps, then give every small connected
region (wrongly assigned, "sparsely located" in the paper's words) to the label of its nearest large region.

Not differentiable (scipy on the CPU): used at inference and in the joint phase, where FAPN is frozen.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor


def fill_label_map(labels: np.ndarray, k: int, min_size: int) -> np.ndarray:
    """``labels`` ``[h, w]`` in 0..k-1 with every 4-connected region of fewer than ``min_size`` pixels relabelled
    by the nearest pixel of a region that is kept. For K = 2 this removes small islands of 1 in M_1 and small holes
    of 0 alike (the usual "small region removal" of MFIF decision maps). If no region is large enough, the labels
    are returned as they are."""
    if min_size <= 1:
        return labels
    small = np.zeros(labels.shape, dtype=bool)
    for i in range(k):
        comp, n = ndimage.label(labels == i)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
        sizes[0] = min_size          # background of this label: never "small"
        small |= sizes[comp] < min_size
    if not small.any() or small.all():
        return labels
    _, (iy, ix) = ndimage.distance_transform_edt(small, return_indices=True)
    return labels[iy, ix]


def hole_fill(maps: Tensor, fraction: float) -> Tensor:
    """Eq. 14 on soft maps ``[B, K, 1, h, w]``: one-hot maps (argmax, ties to the first input) with the regions
    smaller than ``fraction`` of the image area (``h·w``) removed by :func:`fill_label_map`; ``fraction = 0``: the
    argmax alone. Same shape, dtype and device; sums to exactly 1 per pixel."""
    b, k, _, h, w = maps.shape
    labels = maps.detach().argmax(dim=1)[:, 0]                      # [B, h, w]
    min_size = int(np.ceil(fraction * h * w)) if fraction > 0 else 0
    if min_size > 1:
        arr = labels.cpu().numpy()
        arr = np.stack([fill_label_map(a, k, min_size) for a in arr])
        labels = torch.from_numpy(arr).to(maps.device)
    idx = torch.arange(k, device=maps.device).view(1, k, 1, 1, 1)
    return (labels.view(b, 1, 1, h, w) == idx).to(maps.dtype)
