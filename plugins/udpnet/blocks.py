"""UDPNet's building blocks: the small encoder-decoder with skip connections that every sub-network is made of, and
the non-local block at the image estimator's bottleneck.

The paper (§III-B/C) says only "an encoder-decoder convolutional structure with skip connection blocks", a sigmoid
for the mask networks and "a standard non-local module [70]" in the image estimator's bottleneck; the sizes below are
fusionkit's choice (documented in the model's docstring), sized to the paper's 0.39 M parameters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusionkit_plugins.generators._blocks import PadToMultiple, PaddedConv2d


def _conv(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> PaddedConv2d:
    return PaddedConv2d(cin, cout, kernel, stride, bias=True, padding="reflection")


class NonLocal(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al. 2018, Eq. 1-3): ``z = x + W softmax(θ(x)ᵀ φ(x)) g(x)``.

    θ, φ, g are 1×1 convolutions to ``channels // 2``; W maps back and starts at zero, so the block starts as the
    identity (the reference's zero-initialised BN scale). Keys and values are max-pooled ×2 (the reference's
    subsampling trick) and, on big images, average-pooled further to at most ``max_keys`` positions, so inference on
    a 512² image costs as much attention as a 128² one; at the 60×60 training crops nothing beyond the ×2 pooling
    applies.
    """

    def __init__(self, channels: int, max_keys: int = 256):
        super().__init__()
        inner = max(1, channels // 2)
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.w = nn.Conv2d(inner, channels, 1)
        nn.init.zeros_(self.w.weight)
        nn.init.zeros_(self.w.bias)
        self.max_keys = max_keys
        self.scale = inner ** -0.5

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)                      # [B, HW, C']
        kv = F.max_pool2d(x, 2, ceil_mode=True) if min(h, w) >= 2 else x
        kh, kw = kv.shape[-2:]
        if kh * kw > self.max_keys:
            side = max(1, int(self.max_keys ** 0.5))
            kv = F.adaptive_avg_pool2d(kv, (min(kh, side), min(kw, side)))
        k = self.phi(kv).flatten(2)                                        # [B, C', K]
        v = self.g(kv).flatten(2).transpose(1, 2)                          # [B, K, C']
        # The reference's embedded Gaussian has no 1/sqrt(d); it is added here so the softmax does not saturate at
        # initialisation (a per-block constant the learned θ, φ could absorb anyway).
        attn = torch.softmax(torch.bmm(q, k) * self.scale, dim=-1)
        y = torch.bmm(attn, v).transpose(1, 2).reshape(b, -1, h, w)
        return x + self.w(y)


class EncoderDecoder(nn.Module):
    """Three scales, skip connections by addition, LeakyReLU(0.2); any H×W (padded to a multiple of 4 inside).

    ``in -> conv(c1) -> [stride-2 conv(c2) -> conv(c2)] -> [stride-2 conv(c3) -> conv(c3) -> (non-local) ->
    conv(c3)] -> up ×2 (1×1 conv to c2) + skip -> conv(c2) -> up ×2 (1×1 to c1) + skip -> conv(c1) -> conv(out)``.
    ``output``: ``"sigmoid"`` (masks in (0, 1)), ``"residual"`` (the input's first channel plus the output: a
    proximal step that refines its argument) or ``"linear"``.
    """

    def __init__(self, in_channels: int, out_channels: int, widths: tuple[int, int, int], *, non_local: bool = False,
                 max_keys: int = 256, output: str = "sigmoid"):
        super().__init__()
        c1, c2, c3 = widths
        self.inc = _conv(in_channels, c1)
        self.down1 = _conv(c1, c2, stride=2)
        self.enc1 = _conv(c2, c2)
        self.down2 = _conv(c2, c3, stride=2)
        self.enc2 = _conv(c3, c3)
        self.non_local = NonLocal(c3, max_keys) if non_local else None
        self.mid = _conv(c3, c3)
        self.up2 = nn.Conv2d(c3, c2, 1)
        self.dec1 = _conv(c2, c2)
        self.up1 = nn.Conv2d(c2, c1, 1)
        self.dec0 = _conv(c1, c1)
        self.out = _conv(c1, out_channels)
        self.output = output
        self.act = nn.LeakyReLU(0.2)
        self._pad = PadToMultiple(4, "auto")

    def forward(self, x: Tensor) -> Tensor:
        a = self.act
        h, geom = self._pad.pad(x)
        s0 = a(self.inc(h))
        s1 = a(self.enc1(a(self.down1(s0))))
        z = a(self.enc2(a(self.down2(s1))))
        if self.non_local is not None:
            z = self.non_local(z)
        z = a(self.mid(z))
        u = F.interpolate(self.up2(z), scale_factor=2.0, mode="bilinear", align_corners=False) + s1
        u = a(self.dec1(u))
        u = F.interpolate(self.up1(u), scale_factor=2.0, mode="bilinear", align_corners=False) + s0
        y = self.out(a(self.dec0(u)))
        y = PadToMultiple.finish(y, geom, sigmoid=False)
        if self.output == "sigmoid":
            return torch.sigmoid(y)
        if self.output == "residual":
            return x[:, :y.shape[1]] + y
        return y
