"""SKIPnet: DFP's encoder-decoder generator with skip connections (DFP §3.2.1)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from fusionkit.interfaces import Generator

from ._blocks import PadToMultiple, PaddedConv2d, conv_block, norm, upsample2x
from ..params.generators import SkipNetParams


class _Level(nn.Module):
    """One scale: encoder layers, an optional skip branch, and the decoder layers that merge them."""

    def __init__(self, pre: Optional[nn.Module], skip: Optional[nn.Module], down: nn.Module, merge: nn.Module):
        super().__init__()
        self.pre = pre      # paper layout only: the stride-1 conv whose output feeds the skip and the stride-2 conv
        self.skip = skip    # None where this level has 0 skip channels
        self.down = down
        self.merge = merge


class SkipNet(Generator):
    """SKIPnet (DFP §3.2.1): an encoder-decoder of ``D = len(channels)`` scales with skip connections.

    Per level ``i`` (``c = channels[i]``, ``s = skip[i]``, ``k = kernel``, every conv "same"-padded, every BN
    followed by LeakyReLU except where noted), in the released ("code") layout:

    - skip branch on the level's input: ``skip_kernel`` conv to ``s`` channels -> BN -> act (absent when ``s == 0``);
    - deeper branch: **stride-2** ``k x k`` conv to ``c`` -> BN -> act -> ``k x k`` conv -> BN -> act -> the next
      level -> ``x2`` upsampling;
    - merge: concat(skip, deeper) -> BN (no act) -> ``k x k`` conv to ``c`` -> BN -> act -> ``1 x 1`` conv -> BN -> act.

    The "paper" layout follows the paper's block order instead: encoder = stride-1 ``k x k`` conv -> BN -> act ->
    stride-2 ``k x k`` conv -> BN -> act, with the skip branch taken from the stride-1 conv's output, and the
    decoder's ``1 x 1`` conv replaced by a second ``k x k`` conv. Both end in a ``1 x 1`` conv to ``out_channels``
    and a sigmoid.

    Any ``H x W`` works: the input is padded (centred; reflection, or replicate where the image is too small) to
    the next multiple of ``2**D`` and the output cropped back, so ``forward(z[B,Cin,H,W]) -> [B,Cout,H,W]``. Conv
    padding falls back from reflection to replicate on feature maps too small to reflect. The defaults are the
    released DFP configuration (``skip=[0,0,0,4,4]`` with one output channel is its decision-embedding net).
    """

    name = "skipnet"
    summary = "DFP's SKIPnet: encoder-decoder with 1x1 skip branches, reflection padding, LeakyReLU, BN, sigmoid"
    reference = ("Deep Fusion Prior (DFP), §3.2.1 'SKIPnet Architecture' and Fig. 2; defaults = the released "
                 "configuration (Deep Image Prior's skip network: k=5, [8,16,32,64,128], skip 4, bilinear)")

    Params = SkipNetParams

    def __init__(self, in_channels: int, out_channels: int, params: Params | dict | None = None, **overrides):
        super().__init__(in_channels, out_channels, params, **overrides)
        p = self.params
        block = dict(bias=p.bias, padding=p.padding, batch_norm=p.batch_norm, slope=p.activation)
        paper = p.layout == "paper"
        chans, skips = list(p.channels), p.skip_channels
        levels = []
        c_in = in_channels
        for i, (c, s) in enumerate(zip(chans, skips)):
            deeper = chans[i + 1] if i + 1 < len(chans) else c   # channels coming up from below
            if paper:
                pre = conv_block(c_in, c, p.kernel, **block)
                skip_src = c
                down = conv_block(c, c, p.kernel, stride=2, **block)
                last = conv_block(c, c, p.kernel, **block)
            else:
                pre = None
                skip_src = c_in
                down = nn.Sequential(conv_block(c_in, c, p.kernel, stride=2, **block),
                                     conv_block(c, c, p.kernel, **block))
                last = conv_block(c, c, 1, **block)
            skip = conv_block(skip_src, s, p.skip_kernel, **block) if s > 0 else None
            merge = nn.Sequential(norm(s + deeper, p.batch_norm), conv_block(s + deeper, c, p.kernel, **block), last)
            levels.append(_Level(pre, skip, down, merge))
            c_in = c
        self.levels = nn.ModuleList(levels)
        self.head = PaddedConv2d(chans[0], out_channels, 1, bias=p.bias, padding=p.padding)
        self._sigmoid = p.sigmoid
        self._up_mode = p.upsample
        self._align = p.align_corners
        self._pad = PadToMultiple(2 ** len(chans), p.memory_format)

    def forward(self, z: Tensor) -> Tensor:
        h, geom = self._pad.pad(z)
        skips: list[Optional[Tensor]] = []
        for lvl in self.levels:
            if lvl.pre is not None:
                h = lvl.pre(h)
            skips.append(lvl.skip(h) if lvl.skip is not None else None)
            h = lvl.down(h)
        for lvl, s in zip(reversed(self.levels), reversed(skips)):
            h = upsample2x(h, self._up_mode, self._align)
            if s is not None:
                h = torch.cat((s, h), dim=1)
            h = lvl.merge(h)
        return self._pad.finish(self.head(h), geom, self._sigmoid)
