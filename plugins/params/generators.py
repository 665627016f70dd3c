"""Parameters of the built-in generators.

Kept apart from the networks and importable without torch, so that validating a spec (``fusionkit validate``)
does not import it. Each generator's ``Params`` is one of these classes.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from fusionkit.interfaces import Params

Channels = Annotated[int, Field(ge=1, le=1024)]
SkipChannels = Annotated[int, Field(ge=0, le=1024)]
#: the memory format the layers run in (see ``_blocks.PadToMultiple``)
MemoryFormat = Literal["auto", "channels_last", "contiguous"]


def _odd(name: str, k: int) -> int:
    if k % 2 != 1:
        raise ValueError(f"{name} must be odd (a 'same' convolution needs a centre tap), got {k}")
    return k


class SkipNetParams(Params):
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


class UNetParams(Params):
    base_channels: int = Field(16, ge=1, le=256, description="channels at the finest scale (doubled per scale)")
    depth: int = Field(4, ge=1, le=7, description="number of x2 downsamplings (inputs are padded to a multiple "
                                                  "of 2**depth internally)")
    kernel: int = Field(3, ge=1, le=15, description="odd kernel size of the double convolutions")
    upsample: Literal["bilinear", "transposed"] = Field(
        "bilinear", description="decoder upsampling: bilinear + 1x1 conv, or 2x2 stride-2 transposed conv")
    activation: float = Field(0.2, ge=0.0, le=1.0, description="LeakyReLU negative slope (0 = ReLU)")
    padding: Literal["reflection", "zeros"] = Field("reflection", description="border padding of the convs")
    batch_norm: bool = Field(True, description="batch normalisation after every k x k convolution")
    sigmoid: bool = Field(True, description="sigmoid on the output, so values lie in (0, 1)")
    memory_format: MemoryFormat = Field(
        "auto", description="memory format the layers run in: 'auto' = channels_last on CPU (10-20 % faster "
                            "there), the input's own elsewhere; the output is always contiguous NCHW")

    @field_validator("kernel")
    @classmethod
    def _kernel_odd(cls, k: int) -> int:
        if k % 2 != 1:
            raise ValueError(f"kernel must be odd (a 'same' convolution needs a centre tap), got {k}")
        return k
