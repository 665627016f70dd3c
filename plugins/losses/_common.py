"""Helpers shared by the built-in losses: run-cache look-ups and cheap shape checks (no host round trips)."""
from __future__ import annotations

from typing import Callable, Hashable

import torch
from torch import Tensor

from fusionkit.interfaces import LossContext, UnsupportedInput


def _version(t: Tensor) -> int:
    """The in-place modification counter; -1 for inference-mode tensors, which do not track one."""
    try:
        return t._version
    except RuntimeError:
        return -1


def _same_source(ref: Tensor, version: int, src: Tensor) -> bool:
    """Whether ``src`` is (a view with the same layout of) the very tensor ``ref`` and unmodified since."""
    if ref is src:
        return _version(src) == version
    return (ref.device == src.device and ref.dtype == src.dtype and ref.shape == src.shape
            and ref.stride() == src.stride() and ref.data_ptr() == src.data_ptr()
            and _version(src) == version)


def cached_from_inputs_and_maps(ctx: LossContext, key: Hashable, compute: Callable[[Tensor, Tensor], object]):
    """``compute(ctx.inputs, ctx.maps)``, computed once per run (no autograd) and kept in ``ctx.cache[key]``;
    recomputed when either tensor is replaced or modified in place (the same checks as
    :func:`cached_from_inputs`)."""
    src, maps = ctx.inputs, ctx.maps
    entry = ctx.cache.get(key)
    if (entry is not None and _same_source(entry[0], entry[1], src)
            and _same_source(entry[2], entry[3], maps)):
        return entry[4]
    with torch.no_grad():
        value = compute(src, maps)
    ctx.cache[key] = (src, _version(src), maps, _version(maps), value)
    return value


def cached_from_inputs(ctx: LossContext, key: Hashable, compute: Callable[[Tensor], Tensor]) -> Tensor:
    """``compute(ctx.inputs)``, computed once per run and kept in ``ctx.cache[key]``.

    The entry remembers the inputs tensor it was computed from (a reference, so its memory cannot be reused) and
    that tensor's version counter; if a later context carries different inputs, or the inputs were modified in
    place, the value is recomputed and replaced. The check compares pointers, shapes and counters only: no
    device synchronisation. The value is computed without autograd (inputs are constants of the optimisation).
    """
    src = ctx.inputs
    entry = ctx.cache.get(key)
    if entry is not None and _same_source(entry[0], entry[1], src):
        return entry[2]
    with torch.no_grad():
        value = compute(src)
    ctx.cache[key] = (src, _version(src), value)
    return value


def check_stack(ctx: LossContext, image: Tensor, loss: str) -> None:
    """Shape agreement between ``image`` ``[1,C,H,W]``, ``ctx.inputs`` ``[N,C,H,W]`` and ``ctx.maps`` ``[N,1,H,W]``."""
    inputs, maps = ctx.inputs, ctx.maps
    if inputs.dim() != 4 or image.dim() != 4:
        raise UnsupportedInput(
            f"loss {loss!r} expects 4-D tensors, got image {tuple(image.shape)} and inputs {tuple(inputs.shape)}",
            "pass [1,C,H,W] images and an [N,C,H,W] input stack")
    if image.shape[0] != 1 or image.shape[1:] != inputs.shape[1:]:
        raise UnsupportedInput(
            f"loss {loss!r}: image {tuple(image.shape)} does not match the input stack {tuple(inputs.shape)} "
            f"(expected [1,{inputs.shape[1]},{inputs.shape[2]},{inputs.shape[3]}])",
            "compare the output downsampled to the inputs' resolution, with the same colour channels")
    if maps is not None and (maps.dim() != 4 or maps.shape[0] != inputs.shape[0] or maps.shape[1] != 1
                             or maps.shape[2:] != inputs.shape[2:]):
        raise UnsupportedInput(
            f"loss {loss!r}: decision maps {tuple(maps.shape)} do not match the input stack {tuple(inputs.shape)}",
            f"give one [1,H,W] map per input: [{inputs.shape[0]},1,{inputs.shape[2]},{inputs.shape[3]}]")


def mean_abs(x: Tensor) -> Tensor:
    """``mean(|x|)``, or an exact (graph-connected) 0 when ``x`` is empty (e.g. a difference along a size-1 axis)."""
    return x.abs().mean() if x.numel() else x.sum()
