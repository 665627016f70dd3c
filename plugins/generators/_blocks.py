"""Building blocks shared by the built-in generators: size-aware padded convolutions, conv-BN-act blocks, and
padding an input to a multiple of the network's total stride (then cropping the output back).

Everything here is allocation-lean: the only per-forward tensors are the ones the layers produce (and the
explicit border padding, which ``nn.Conv2d(padding_mode="reflect")`` would allocate just the same).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..params.generators import MemoryFormat

PaddingMode = Literal["reflection", "zeros"]


class PaddedConv2d(nn.Conv2d):
    """A "same" ``k x k`` convolution (odd ``k``) whose border padding is reflection or zeros.

    Reflection needs the feature map to be larger than the pad on each side; on tinier maps (the deepest levels of
    a deep net on a small image) it falls back to replicate padding instead of failing. With stride 2 and an even
    input size ``n`` the output is exactly ``n / 2``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, *, bias: bool = True,
                 padding: PaddingMode = "reflection"):
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {kernel}")
        self.pad = kernel // 2
        self.reflect = padding == "reflection" and self.pad > 0
        # zeros padding is done by the convolution itself (no extra tensor); reflection is done in forward
        super().__init__(in_channels, out_channels, kernel, stride=stride, bias=bias,
                         padding=0 if self.reflect else self.pad)

    def forward(self, x: Tensor) -> Tensor:
        if self.reflect:
            p = self.pad
            mode = "reflect" if x.shape[-2] > p and x.shape[-1] > p else "replicate"
            x = F.pad(x, (p, p, p, p), mode=mode)
        return self._conv_forward(x, self.weight, self.bias)


def conv_block(in_channels: int, out_channels: int, kernel: int, stride: int = 1, *, bias: bool = True,
               padding: PaddingMode = "reflection", batch_norm: bool = True, slope: float = 0.2) -> nn.Sequential:
    """``conv -> BN -> LeakyReLU(slope)`` (BN left out when ``batch_norm`` is false; slope 0 is a ReLU)."""
    layers: list[nn.Module] = [PaddedConv2d(in_channels, out_channels, kernel, stride, bias=bias, padding=padding)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(activation(slope))
    return nn.Sequential(*layers)


def activation(slope: float) -> nn.Module:
    """LeakyReLU with ``slope`` (in place: its input is always a fresh BN/conv output); ``slope == 0``: ReLU."""
    return nn.ReLU(inplace=True) if slope == 0 else nn.LeakyReLU(slope, inplace=True)


def norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The smallest ``(H', W') >= (H, W)`` that are multiples of ``multiple``, and not both equal to it.

    The second rule keeps the deepest feature map larger than 1 x 1: batch norm in training mode cannot
    normalise a single value per channel (batch 1), so e.g. a 20 x 20 image in a depth-5 net is padded to 32 x 64.
    """
    hp = -(-height // multiple) * multiple
    wp = -(-width // multiple) * multiple
    if multiple > 1 and hp == multiple and wp == multiple:
        wp = 2 * multiple
    return hp, wp


def _pad_dim(x: Tensor, before: int, after: int, dim: int) -> Tensor:
    """Pad one spatial dimension (``-2``: height, ``-1``: width): reflection where the size allows, else
    replicate."""
    if before == 0 and after == 0:
        return x
    pads = (before, after, 0, 0) if dim == -1 else (0, 0, before, after)
    mode = "reflect" if max(before, after) < x.shape[dim] else "replicate"
    return F.pad(x, pads, mode=mode)



class PadToMultiple:
    """Prepares a generator's input (padding, memory format) and crops its output back.

    The input is padded so its height and width fit a net with total stride ``multiple``: centred, reflection
    where the image is large enough and replicate where it is not (per dimension). It is also put in
    ``channels_last`` memory format when asked (``"auto"``: on CPU, where oneDNN's NHWC convolutions make a
    forward+backward of SKIPnet 10-20 % faster; the layers then all run NHWC). The prepared copy of the last input
    is kept, so a generator fed the same, unmodified input tensor every iteration (the usual case: fixed noise or
    a fixed mean image) prepares it once, not once per iteration. Inputs that require grad are never cached.
    """

    def __init__(self, multiple: int, memory_format: MemoryFormat = "auto"):
        self.multiple = multiple
        self.memory_format = memory_format
        self.clear()

    @staticmethod
    def _version(t: Tensor) -> int | None:
        try:
            return t._version
        except RuntimeError:  # inference-mode tensors track no version: never trust a cache for them
            return None

    def geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` padding for an ``height x width`` input."""
        hp, wp = padded_size(height, width, self.multiple)
        top, left = (hp - height) // 2, (wp - width) // 2
        return top, hp - height - top, left, wp - width - left

    def _nhwc(self, x: Tensor) -> bool:
        if self.memory_format == "auto":
            return x.device.type == "cpu" and x.dim() == 4
        return self.memory_format == "channels_last" and x.dim() == 4

    def pad(self, x: Tensor) -> tuple[Tensor, tuple[int, int, int, int]]:
        """The prepared (padded, possibly NHWC) input and its ``(top, bottom, left, right)`` padding."""
        geom = self.geometry(x.shape[-2], x.shape[-1])
        nhwc = self._nhwc(x)
        if geom == (0, 0, 0, 0) and (not nhwc or x.is_contiguous(memory_format=torch.channels_last)):
            return x, geom
        version = self._version(x)
        if self._src is x and version is not None and version == self._src_version:
            return self._prepared, geom
        top, bottom, left, right = geom
        prepared = _pad_dim(_pad_dim(x, top, bottom, -2), left, right, -1)
        if nhwc:
            prepared = prepared.contiguous(memory_format=torch.channels_last)
        if version is not None and not x.requires_grad:
            self._src, self._src_version, self._prepared = x, version, prepared
        else:
            self.clear()
        return prepared, geom

    @staticmethod
    def finish(y: Tensor, geom: tuple[int, int, int, int], sigmoid: bool) -> Tensor:
        """``y`` cropped back to the input's size, as a contiguous NCHW tensor, through a sigmoid if asked.

        ``y`` must be a fresh layer output nothing else holds (the sigmoid may run in place on it).
        """
        top, bottom, left, right = geom
        if geom != (0, 0, 0, 0):
            y = y[..., top:y.shape[-2] - bottom, left:y.shape[-1] - right]
        y = y.contiguous()
        return y.sigmoid_() if sigmoid else y

    def clear(self) -> None:
        """Drop the cached prepared input."""
        self._src: Tensor | None = None
        self._src_version = -1
        self._prepared: Tensor | None = None


def upsample2x(x: Tensor, mode: str, align_corners: bool) -> Tensor:
    """Exact ``x2`` upsampling (nearest or bilinear)."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=align_corners)
