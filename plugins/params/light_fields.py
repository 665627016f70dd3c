"""Parameters of the built-in light-field sources.

Kept apart from the sources and importable without torch or numpy, so that validating a spec
(``fusionkit validate``) does not import them. Each source's ``Params`` is one of these classes.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator, model_validator

from fusionkit.interfaces import Params

#: view file-name patterns ``pattern: auto`` tries, in order
KNOWN_PATTERNS = ("input_Cam{index:03d}.png", "{row:02d}_{col:02d}.png", "{row}_{col}.png", "{row}_{col}.bmp")
Disparity = Annotated[float, Field(ge=-100.0, le=100.0)]


class ViewGridParams(Params):
    pattern: str = Field(
        "auto", min_length=1, max_length=200,
        description="view file names with {index} (one running number, needs `grid`) or {row} and {col} "
                    "placeholders, e.g. input_Cam{index:03d}.png or {row:02d}_{col:02d}.png ({name:0Nd} = "
                    f"exactly N digits); auto = the first of {', '.join(KNOWN_PATTERNS)} that matches")
    grid: Optional[list[Annotated[int, Field(ge=1, le=64)]]] = Field(
        None, min_length=2, max_length=2,
        description="[rows, cols] of views; required with {index}; with {row}/{col} it is read from the names "
                    "(and checked if given)")
    order: Literal["row_major", "column_major"] = Field(
        "row_major", description="with {index}: row_major = index r*cols + c (HCI); column_major = c*rows + r")
    flip_rows: bool = Field(False, description="reverse the angular rows (for captures numbered bottom-up); "
                                               "flips the sign of vertical disparities")
    flip_cols: bool = Field(False, description="reverse the angular columns (numbered right-to-left)")
    disparities: Optional[list[Disparity]] = Field(
        None, min_length=2, max_length=64,
        description="refocus disparities (px per view step, original resolution), one slice each; "
                    "replaces disparity_range and slices")
    disparity_range: Optional[list[Disparity]] = Field(
        [-1.0, 1.0], min_length=2, max_length=2,
        description="[lo, hi] disparities (px per view step, original resolution); `slices` values are "
                    "spread evenly over it, ends included")
    slices: int = Field(5, ge=2, le=64, description="number of refocused slices spread over disparity_range")
    downsample: int = Field(1, ge=1, le=8, description="reduce the views by this integer factor before "
                                                       "refocusing (1 = full resolution)")
    downsampler: Literal["lanczos2", "lanczos3", "bicubic", "bilinear", "box"] = Field(
        "lanczos2", description="the fusionkit resampler used for `downsample` (lanczos2: the DFP loss's "
                                "downsampler, so the low-resolution stack matches the fusion's forward model)")
    aperture: Optional[int] = Field(
        None, ge=1, le=64, description="use only the central aperture x aperture views (a smaller aperture: "
                                       "deeper focus per slice); null = every view")
    border: Literal["normalise", "replicate"] = Field(
        "normalise", description="normalise: average only the views whose sample lies inside them; "
                                 "replicate: clamp samples to the view's edge")

    @model_validator(mode="before")
    @classmethod
    def _one_disparity_source(cls, data):
        if isinstance(data, dict) and data.get("disparities") is not None:
            if data.get("disparity_range") is not None:
                raise ValueError("give either `disparities` (an explicit list) or `disparity_range` (with "
                                 "`slices`), not both")
            data = {**data, "disparity_range": None}
        return data

    @model_validator(mode="after")
    def _some_disparity(self):
        if self.disparities is None and self.disparity_range is None:
            raise ValueError("give `disparities: [d1, d2, ...]` or `disparity_range: [lo, hi]` with `slices`")
        return self

    @field_validator("disparity_range")
    @classmethod
    def _ordered(cls, v):
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"disparity_range must be [lo, hi] with lo < hi, got {v}")
        return v

    @field_validator("disparities")
    @classmethod
    def _distinct(cls, v):
        if v is not None and len(set(v)) != len(v):
            raise ValueError("disparities must be distinct (two equal slices add nothing to a focal stack)")
        return v
