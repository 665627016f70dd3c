"""SKIPnet: DFP's encoder-decoder generator with skip connections (DFP §3.2.1)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from fusionkit.interfaces import Generator, Params

from ._blocks import MemoryFormat, PadToMultiple, PaddedConv2d, conv_block, norm, upsample2x

Channels = Annotated[int, Field(ge=1, le=1024)]
SkipChannels = Annotated[int, Field(ge=0, le=1024)]


def _odd(name: str, k: int) -> int:
    if k % 2 != 1:
        raise ValueError(f"{name} must be odd (a 'same' convolution needs a centre tap), got {k}")
    return k


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

    class Params(Params):
        channels: list[Channels] = Field(
            default_factory=lambda: [8, 16, 32, 64, 128], min_length=1, max_length=8,
            description="feature channels per scale, shallow to deep; the depth D is its length (input sizes are "
                        "padded internally to a multiple of 2**D)")
        skip: Union[SkipChannels, list[SkipChannels]] = Field(
            4, description="skip-branch channels per scale: one number for every scale, or one per scale "
                           "(0 = no skip at that scale; DFP's decision-embedding net uses [0, 0, 0, 4, 4])")
        kernel: int = Field(5, ge=1, le=15, description="odd kernel size of the encoder/decoder convolutions")
        skip_kernel: int = Field(1, ge=1, le=15, description="odd kernel size of the skip-branch convolutions")
        upsample: Literal["bilinear", "nearest"] = Field("bilinear", description="x2 upsampling in the decoder")
        align_corners: bool = Field(
            True, description="bilinear upsampling with align_corners=True (DFP's code; Deep Image Prior uses "
                              "False); ignored for nearest")
        activation: float = Field(0.2, ge=0.0, le=1.0, description="LeakyReLU negative slope (0 = ReLU)")
        padding: Literal["reflection", "zeros"] = Field(
            "reflection", description="border padding of the convolutions (reflection falls back to replicate on "
                                      "feature maps too small to reflect)")
        batch_norm: bool = Field(True, description="batch normalisation after every convolution but the last")
        bias: bool = Field(True, description="convolution biases (the released configuration has them)")
        sigmoid: bool = Field(True, description="sigmoid on the output, so values lie in (0, 1)")
        memory_format: MemoryFormat = Field(
            "auto", description="memory format the layers run in: 'auto' = channels_last on CPU (10-20 % faster "
                                "there), the input's own elsewhere; the output is always contiguous NCHW")
        layout: Literal["code", "paper"] = Field(
            "code", description="'code': the released block order (stride-2 conv first; decoder k x k conv + "
                                "1 x 1 conv); 'paper': §3.2.1's order (stride-1 then stride-2 conv in the "
                                "encoder, two k x k convs in the decoder)")

        @field_validator("kernel", "skip_kernel")
        @classmethod
        def _kernel_odd(cls, k: int, info) -> int:
            return _odd(info.field_name, k)

        @model_validator(mode="after")
        def _skip_matches_channels(self):
            if isinstance(self.skip, list) and len(self.skip) != len(self.channels):
                raise ValueError(
                    f"skip has {len(self.skip)} entries but channels has {len(self.channels)} (one per scale): "
                    f"give {len(self.channels)} skip values or a single number for all scales")
            return self

        @property
        def depth(self) -> int:
            return len(self.channels)

        @property
        def skip_channels(self) -> list[int]:
            """``skip`` broadcast to one value per scale."""
            return list(self.skip) if isinstance(self.skip, list) else [self.skip] * len(self.channels)

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
