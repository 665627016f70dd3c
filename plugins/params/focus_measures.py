"""Parameters of the built-in focus measures.

Kept apart from the measures themselves and importable without torch, numpy or OpenCV, so that validating a spec
(``fusionkit validate``) does not import them. Each measure's ``Params`` is one of these classes.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from fusionkit.interfaces import Params


def require_odd(value: int, what: str) -> int:
    """Pydantic field-validator body: kernel sizes must be odd so that the kernel has a centre pixel."""
    if value % 2 != 1:
        raise ValueError(f"{what} must be odd (a kernel with a centre pixel), got {value}; try {value + 1}")
    return value


class DoubleReblurParams(Params):
    gaussian_kernel: int = Field(5, ge=1, le=99, description="k_g: side of the Gaussian reblur kernel G in "
                                 "Eq. (16), odd (paper default 5)")
    gaussian_sigma: float | None = Field(None, gt=0.0, le=50.0, description="sigma of G in pixels; None: derived "
                                         "from k_g as OpenCV does, 0.3((k_g-1)/2-1)+0.8 (the released code)")
    dilate: int = Field(3, ge=1, le=99, description="k_d: side of the dilation rectangle in the closing of "
                        "Eq. (18), odd; 1 = no dilation (paper default 3)")
    erode: int = Field(3, ge=1, le=99, description="k_e: side of the erosion rectangle in the closing of "
                       "Eq. (18), odd; 1 = no erosion (paper default 3)")
    threshold: float = Field(0.01, ge=0.0, lt=1.0, description="t of Eq. (17), strict s > t (paper default "
                             "0.01). decision='absolute': on fusionkit's full-range luma scale; "
                             "decision='contrast': a relative margin on the normalised contrast in [-1, 1]")
    largest_region: bool = Field(True, description="f of Eq. (19): keep the largest connected region and fill "
                                 "its holes (paper default true); for N >= 3 each slice's holes are filled but "
                                 "all its regions kept")
    psf_radius: int = Field(5, ge=1, le=32, description="r: the estimated kernel is the central (2r-1)x(2r-1) "
                            "crop of the inverse transform (5 -> 9x9, the released code)")
    eps: float = Field(1e-3, gt=0.0, le=1e3, description="Wiener regularisation of the spectral ratio: "
                       "N conj(D) / (|D|^2 + eps mean|D|^2); guards against near-zero spectra")
    spectral_lowpass: float | None = Field(0.25, gt=0.0, le=1.0, description="width (sigma, cycles/pixel; "
                                           "Nyquist is 0.5) of the Gaussian low-pass T applied to the spectral "
                                           "ratio in Eq. (14); None: no low-pass (the released code)")
    variant: Literal["paper", "code"] = Field("paper", description="'paper': Eqs. (13)-(16) as printed "
                                              "(normalised PSF, Gaussian on the reblurred image); 'code': the "
                                              "released code (unnormalised |PSF|, input 0 reblurred, Gaussian "
                                              "on the difference map)")
    decision: Literal["contrast", "absolute"] = Field("contrast", description="'contrast': threshold the "
                                                      "normalised local contrast of both inputs' sharpness "
                                                      "(robust, fusionkit's default); 'absolute': the literal "
                                                      "Eq. (17) on one image's sharpness")
    contrast_window: int = Field(9, ge=1, le=99, description="side of the box window that averages each "
                                 "input's sharpness before the contrast (decision='contrast' only), odd")

    @field_validator("gaussian_kernel", "dilate", "erode", "contrast_window")
    @classmethod
    def _odd(cls, v: int, info) -> int:
        return require_odd(v, info.field_name)


class MaxGradientParams(Params):
    gradient: Literal["sobel", "forward", "laplacian"] = Field("sobel", description="discrete |grad S_k|: "
                                                               "3x3 Sobel magnitude, forward differences, or "
                                                               "|4-neighbour Laplacian|")
    window: int = Field(1, ge=1, le=99, description="side of the box window averaging |grad S_k| before the "
                        "comparison, odd; 1 = pixelwise (the paper's Eq. 3)")
    ties: Literal["first", "split"] = Field("first", description="a pixel where inputs tie goes to the lowest "
                                            "index ('first', binary maps) or is shared equally ('split')")

    @field_validator("window")
    @classmethod
    def _odd(cls, v: int, info) -> int:
        return require_odd(v, info.field_name)


class UniformParams(Params):
    pass
