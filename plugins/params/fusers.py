"""Parameters of the built-in fusers.

Kept apart from the fusers and importable without torch, so that validating a spec (``fusionkit validate``) does
not import it. Each fuser's ``Params`` is one of these classes.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from fusionkit.interfaces import Params


class EnfuseParams(Params):
    contrast_window_size: int = Field(5, ge=3, le=99, description="side of the window in which local contrast "
                                      "is measured (odd; enfuse's default 5)")
    hard_mask: bool = Field(True, description="each pixel from the single sharpest input (focus stacking); "
                            "false averages by weight")
    gray_projector: Literal["average", "l-star", "luminance", "pl-star", "value", "anti-value"] = Field(
        "average", description="how RGB becomes the gray image whose contrast is measured")
    levels: int | None = Field(None, ge=1, le=29, description="pyramid levels; none = as many as the size allows")
    timeout_s: float = Field(600.0, gt=0, description="give up after this many seconds")

    @field_validator("contrast_window_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd (a window centred on the pixel), got {v}; use {v + 1}")
        return v
