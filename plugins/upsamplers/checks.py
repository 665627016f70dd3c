"""Argument checks shared by every resampler. Each failure is one paragraph that names the fix.

A bad factor or size is a user-level problem: a spec asks for ``scale: 3`` on a 1001-pixel image, say. So it raises
:class:`ResampleError`, which the CLI prints as a message, not a traceback. The error is also a ``ValueError``,
so generic callers can catch it as one.
"""
from __future__ import annotations

import math
import numbers

from torch import Tensor

from fusionkit.errors import InputError

#: Integer factors the resamplers accept. 1 is the identity.
MIN_FACTOR, MAX_FACTOR = 1, 8


class ResampleError(InputError, ValueError):
    """A resampler was given a factor or an image size it cannot handle."""


def check_factor(factor: object) -> int:
    """``factor`` as an ``int`` in ``[MIN_FACTOR, MAX_FACTOR]``. Integral floats such as ``2.0`` are accepted."""
    ok_type = isinstance(factor, numbers.Real) and not isinstance(factor, bool)
    if not (ok_type and math.isfinite(factor) and factor == int(factor)):  # type: ignore[arg-type]
        raise ResampleError(
            f"resampling factor {factor!r} is not an integer: fusionkit's resamplers only scale by whole "
            f"factors from {MIN_FACTOR} to {MAX_FACTOR}.",
            "use an integer scale such as 2 or 4. For a non-integer size change, resize the input images "
            "before running fusionkit.")
    f = int(factor)  # type: ignore[arg-type]
    if not MIN_FACTOR <= f <= MAX_FACTOR:
        raise ResampleError(
            f"resampling factor {f} is out of range: fusionkit's resamplers support factors from "
            f"{MIN_FACTOR} to {MAX_FACTOR}.",
            f"use a scale between {MIN_FACTOR} and {MAX_FACTOR} (1 means no resampling).")
    return f


def check_image(x: object, op: str) -> Tensor:
    """``x`` must be a floating-point ``[B, C, H, W]`` tensor."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ResampleError(
            f"{op} expects a 4-D tensor [B, C, H, W]; got {shape}.",
            "add the missing batch/channel dimensions, e.g. x[None, None] for a single-channel [H, W] image.")
    if not x.is_floating_point():
        raise ResampleError(
            f"{op} expects a floating-point tensor; got {x.dtype}.",
            "convert the image first, e.g. x.float() / 255 for 8-bit data.")
    return x


def check_divisible(x: Tensor, factor: int) -> None:
    """``down`` needs both spatial sizes to be multiples of ``factor``, so that the output is exactly ``H/f x W/f``."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        bad = [f"{name} {n}" for name, n in (("height", h), ("width", w)) if n % factor]
        verb = "are not multiples" if len(bad) == 2 else "is not a multiple"
        raise ResampleError(
            f"cannot downsample a {h}x{w} image by {factor}: the {' and '.join(bad)} {verb} of {factor}.",
            f"crop the image to a multiple of {factor} (e.g. {h - h % factor}x{w - w % factor}), or choose a "
            f"scale that divides {h}x{w}.")
