"""Slice chunking for big stacks: work on a few slices at a time so temporaries do not grow with N.

The engine and the built-in losses reduce over the N slices of a stack (weighted sums, means, maxima). Done in one
tensor expression, each reduction first materialises an ``[N, ...]`` temporary (at the output resolution for the
generator input). :func:`slice_chunks` splits the slice axis so that one chunk's temporary stays under a byte
budget; when the whole stack fits (the usual case, and always for small N) there is exactly one chunk and the
callers run their original one-expression code, so results do not change.

The budget is ``FUSIONKIT_CHUNK_MIB`` mebibytes (default 256), read at call time.
"""
from __future__ import annotations

import os

from torch import Tensor

from .errors import RunError

DEFAULT_CHUNK_MIB = 256


def chunk_budget() -> int:
    """The temporary-size budget in bytes, from ``FUSIONKIT_CHUNK_MIB`` (a positive number; default 256)."""
    raw = os.environ.get("FUSIONKIT_CHUNK_MIB", "")
    if not raw:
        return DEFAULT_CHUNK_MIB * 2**20
    try:
        mib = float(raw)
    except ValueError:
        mib = -1.0
    if not mib > 0:
        raise RunError(f"FUSIONKIT_CHUNK_MIB={raw!r} is not a positive number of mebibytes",
                       f"unset it, or set it to e.g. {DEFAULT_CHUNK_MIB}")
    return int(mib * 2**20)


def slice_chunks(n: int, bytes_per_slice: int, budget: int | None = None) -> list[slice]:
    """Consecutive slices of ``range(n)`` whose temporaries (``bytes_per_slice`` each) fit ``budget`` bytes.

    One chunk ``[slice(0, n)]`` when everything fits; never fewer than one slice per chunk.
    """
    budget = chunk_budget() if budget is None else budget
    per = max(1, int(budget // max(1, bytes_per_slice)))
    if per >= n:
        return [slice(0, n)]
    return [slice(i, min(i + per, n)) for i in range(0, n, per)]


def nbytes_per_slice(x: Tensor, scale: int = 1) -> int:
    """Bytes of one slice of ``x`` ``[N, C, H, W]`` at ``scale`` x its resolution (for :func:`slice_chunks`)."""
    return x[0].numel() * x.element_size() * scale * scale


def weighted_sum(maps: Tensor, x: Tensor) -> Tensor:
    """``sum_i maps_i * x_i`` over the slice axis, ``[1, C, H, W]``, chunked (exactly ``(maps * x).sum(0)`` when one
    chunk fits)."""
    chunks = slice_chunks(x.shape[0], nbytes_per_slice(x))
    if len(chunks) == 1:
        return (maps * x).sum(0, keepdim=True)
    out = None
    for c in chunks:
        part = (maps[c] * x[c]).sum(0, keepdim=True)
        out = part if out is None else out + part
    return out
