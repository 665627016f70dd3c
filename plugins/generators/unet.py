"""A small padded U-Net generator (same-size convolutions, output shape = input shape)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusionkit.interfaces import Generator

from ._blocks import PadToMultiple, PaddedConv2d, conv_block, upsample2x
from ..params.generators import UNetParams


class _Up(nn.Module):
    """``x2`` upsampling that halves the channels: bilinear + 1 x 1 conv, or a 2 x 2 stride-2 transposed conv."""

    def __init__(self, in_channels: int, out_channels: int, mode: str, bias: bool):
        super().__init__()
        self.mode = mode
        if mode == "transposed":
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=bias)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "transposed":
            return self.conv(x)
        # a 1 x 1 conv commutes with bilinear interpolation (both linear, weights summing to 1): convolve first,
        # on 4x fewer pixels
        return upsample2x(self.conv(x), "bilinear", align_corners=False)


class UNet(Generator):
    """A padded U-Net: ``depth`` 2 x 2 max-pool downsamplings, channels doubling per scale from ``base_channels``.

    Each scale has a double conv (``k x k`` conv -> BN -> act, twice; "same" padding, so no cropping of skips as in
    the original unpadded U-Net). The decoder upsamples x2 while halving the channels (bilinear + 1 x 1 conv, or a
    transposed conv), concatenates the encoder features of that scale and applies a double conv. A 1 x 1 conv maps
    to ``out_channels``, then a sigmoid. Any ``H x W`` works: the input is padded (centred; reflection, replicate
    where too small) to a multiple of ``2**depth`` and the output cropped back.
    Convolutions feeding a batch norm have no bias (it would be cancelled by the norm).
    """

    name = "unet"
    summary = "Small padded U-Net (double conv + max-pool, bilinear or transposed-conv upsampling), any input size"
    reference = ("Ronneberger et al., 'U-Net: Convolutional Networks for Biomedical Image Segmentation', MICCAI 2015, "
                 "with same-size (padded) convolutions and batch norm; an alternative generator for DFP (§3.2.1)")

    Params = UNetParams

    def __init__(self, in_channels: int, out_channels: int, params: Params | dict | None = None, **overrides):
        super().__init__(in_channels, out_channels, params, **overrides)
        p = self.params
        block = dict(padding=p.padding, batch_norm=p.batch_norm, slope=p.activation, bias=not p.batch_norm)

        def double(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(conv_block(cin, cout, p.kernel, **block), conv_block(cout, cout, p.kernel, **block))

        chans = [p.base_channels * 2 ** i for i in range(p.depth + 1)]
        self.encoders = nn.ModuleList(double(cin, cout) for cin, cout in zip([in_channels] + chans[:-2], chans[:-1]))
        self.bottleneck = double(chans[-2], chans[-1])
        self.ups = nn.ModuleList(_Up(chans[i + 1], chans[i], p.upsample, bias=True) for i in reversed(range(p.depth)))
        self.decoders = nn.ModuleList(double(2 * chans[i], chans[i]) for i in reversed(range(p.depth)))
        self.head = PaddedConv2d(chans[0], out_channels, 1)
        self._sigmoid = p.sigmoid
        self._pad = PadToMultiple(2 ** p.depth, p.memory_format)

    def forward(self, z: Tensor) -> Tensor:
        h, geom = self._pad.pad(z)
        skips = []
        for enc in self.encoders:
            h = enc(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.bottleneck(h)
        for up, dec, s in zip(self.ups, self.decoders, reversed(skips)):
            h = dec(torch.cat((s, up(h)), dim=1))
        return self._pad.finish(self.head(h), geom, self._sigmoid)
