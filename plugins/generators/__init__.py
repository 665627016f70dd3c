"""fusionkit's built-in generators, registered through the ``fusionkit`` entry-point group.

- ``skipnet``: DFP's SKIPnet encoder-decoder with skip branches (§3.2.1), released or paper block order;
- ``unet``: a small padded U-Net.

Both accept any input size (they pad to a multiple of their total stride and crop back inside).
"""
from __future__ import annotations

from fusionkit.registry import hookimpl

from .skipnet import SkipNet
from .unet import UNet

__all__ = ["SkipNet", "UNet", "register_generators"]


@hookimpl
def register_generators(register):
    for cls in (SkipNet, UNet):
        register(cls)
