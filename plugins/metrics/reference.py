"""Full-reference metrics: PSNR and SSIM of the fused image against a ground truth (kind ``metric``).

Both are computed by scikit-image (``skimage.metrics.peak_signal_noise_ratio`` and
``skimage.metrics.structural_similarity``); this module only fixes their settings, which change the numbers, and
documents them. It also holds the colour conversions ``to_gray`` / ``to_rgb`` that
:mod:`fusionkit_plugins.metrics.dfp_relative` shares (validation and rounding live in ``_prepare``).

Conventions shared by the two metrics:

* **Data range.** Images are floats in [0, 1] and ``data_range=1`` is always passed. PSNR and SSIM are invariant to a
  common rescaling of both images and the data range, so the values equal those of 8-bit images with L = 255.
* **Colour** (``color``):

  - ``"luma"`` (default): full-range BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B (``fusionkit.imaging.LUMA``), not
    rounded; a grey image is used as is;
  - ``"y_studio"``: studio-swing BT.601 Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255 (MATLAB ``rgb2ycbcr``, the
    super-resolution convention "PSNR on Y"); a grey image g is mapped the same way as R = G = B = g;
  - ``"gray"``: MATLAB ``rgb2gray`` (0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B), rounded to
    8-bit levels (half away from zero) as MATLAB does on uint8 input: the Liu-toolbox / MFIF-survey convention, also
    the default of the source-based metrics in ``gradient_info.py``; a grey image is used as is;
  - ``"rgb"``: the three channels. PSNR takes the MSE over all pixels *and* channels; SSIM is computed per channel
    (``channel_axis=-1``) and the three values are averaged. A grey image is repeated into three channels.

* **Border crop** (``crop``): pixels removed from every side before computing (the SR convention crops ``scale``).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fusionkit.imaging import LUMA
from fusionkit.interfaces import Metric, Params, UnsupportedInput

from ._prepare import RGB2GRAY, as_image, check_same_size, rgb2gray, to_8bit  # noqa: F401 (RGB2GRAY: re-exported)

#: MATLAB ``rgb2ycbcr`` luma row for [0, 1] input, on the 0-255 scale: Y = 16 + 65.481 R + 128.553 G + 24.966 B.
Y_STUDIO = (65.481, 128.553, 24.966)

WANG_SSIM = ("Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, 'Image quality assessment: from error "
             "visibility to structural similarity', IEEE TIP 13(4) 2004, 600-612")


# ---------------------------------------------------------------------------------------------- shared helpers


def to_gray(x: np.ndarray, color: str) -> np.ndarray:
    """One ``[H, W]`` plane in the [0, 1] scale for ``color`` in luma / y_studio / gray (see the module docstring)."""
    if color == "y_studio":
        rgb = x if x.ndim == 3 else np.repeat(x[:, :, None], 3, axis=2)
        return (16.0 + Y_STUDIO[0] * rgb[:, :, 0] + Y_STUDIO[1] * rgb[:, :, 1] + Y_STUDIO[2] * rgb[:, :, 2]) / 255.0
    if x.ndim == 2:
        return x
    if color == "luma":
        return LUMA[0] * x[:, :, 0] + LUMA[1] * x[:, :, 1] + LUMA[2] * x[:, :, 2]
    if color == "gray":
        return to_8bit(255.0 * rgb2gray(x)) / 255.0
    raise ValueError(f"unknown colour mode {color!r}")  # pragma: no cover - Params forbid it


def to_rgb(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 3 else np.repeat(x[:, :, None], 3, axis=2)


# ------------------------------------------------------------------------------------------------- the metrics


class ReferenceParams(Params):
    """Colour handling and border crop, shared by ``psnr`` and ``ssim``."""

    color: Literal["luma", "y_studio", "gray", "rgb"] = Field(
        "luma", description="luma: full-range BT.601 Y (0.299, 0.587, 0.114), unrounded; y_studio: studio-swing "
        "BT.601 Y = (16 + 65.481R + 128.553G + 24.966B)/255 (SR 'Y channel' convention); gray: MATLAB rgb2gray "
        "rounded to 8 bits (Liu toolbox); rgb: all three channels (PSNR: MSE over pixels and channels; SSIM: mean of "
        "the per-channel values)")
    crop: int = Field(0, ge=0, le=64, description="pixels removed from each border of both images before "
                      "computing (SR papers often crop the scale factor)")


class _ReferenceMetric(Metric):
    requires: ClassVar[str] = "reference"
    ideal: ClassVar[float | None] = None
    Params: ClassVar[type[Params]] = ReferenceParams

    def _pair(self, fused: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
        """The fused image and the reference, colour-converted and cropped: ``[h, w]`` or ``[h, w, 3]``."""
        if reference is None:
            raise UnsupportedInput(f"{self.name} compares the fused image with a reference (ground truth); none given",
                                   "evaluate on data with a ground truth, or use a source-based metric")
        f = as_image(fused, self.name, "the fused image")
        r = as_image(reference, self.name, "the reference")
        check_same_size(self.name, f, [r], "reference")
        p = self.params
        if p.color == "rgb":
            f, r = (to_rgb(f), to_rgb(r)) if (f.ndim == 3 or r.ndim == 3) else (f, r)
        else:
            f, r = to_gray(f, p.color), to_gray(r, p.color)
        c = p.crop
        if c:
            if min(f.shape[:2]) <= 2 * c:
                raise UnsupportedInput(f"{self.name}: crop={c} leaves nothing of a {f.shape[0]}x{f.shape[1]} image",
                                       "lower crop")
            f, r = f[c:-c, c:-c], r[c:-c, c:-c]
        return f, r


class PSNR(_ReferenceMetric):
    """Peak signal-to-noise ratio of the fused image F against the reference R, in dB.

    PSNR = 10 log10(L² / MSE(F, R)) with L = 1 (``data_range=1``: images in [0, 1], identical to L = 255 on 8-bit
    values). Computed by ``skimage.metrics.peak_signal_noise_ratio(R, F, data_range=1.0)``; the MSE runs over all
    pixels (and all channels with ``color="rgb"``). Colour: BT.601 luma by default, see ``color``.

    Identical images have MSE = 0 and PSNR = +inf (``ideal = inf``, as MATLAB ``psnr`` and scikit-image define it);
    set ``max_db`` to cap it instead (then identical images give ``max_db``). Symmetric in F and R. Higher is better.
    """

    name = "psnr"
    summary = "PSNR of the fused image against the ground truth, dB (scikit-image, data_range 1, BT.601 luma default)"
    reference = ("standard PSNR = 10 log10(L^2/MSE); computed by skimage.metrics.peak_signal_noise_ratio; as used "
                 "with a ground truth in MFI-WHU / UDPNet Table I")
    higher_is_better = True
    ideal: ClassVar[float | None] = math.inf

    class Params(ReferenceParams):
        max_db: float | None = Field(None, gt=0, le=1000, description="cap on the result in dB (identical images "
                                     "give this instead of +inf); None: no cap")

    def __call__(self, fused: Any, sources: Any = None, reference: Any = None) -> float:
        f, r = self._pair(fused, reference)
        if np.array_equal(f, r):                    # skimage would divide by zero (warning, then inf)
            value = math.inf
        else:
            value = float(peak_signal_noise_ratio(r, f, data_range=1.0))
        if self.params.max_db is not None:
            value = min(value, float(self.params.max_db))
        return value


class SSIM(_ReferenceMetric):
    """Structural similarity of the fused image F and the reference R (Wang et al. 2004), mean over the image.

    SSIM(x, y) = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), C1 = (0.01 L)², C2 = (0.03 L)²,
    L = 1 (``data_range=1``), local statistics in a sliding window, averaged over the windows that lie inside the
    image (scikit-image crops the (win-1)/2 border, which equals MATLAB ``ssim_index``'s 'valid' mean).

    Computed by ``skimage.metrics.structural_similarity(R, F, data_range=1.0, ...)`` with, for ``window``:

    * ``"gaussian"`` (default, Wang's ``ssim_index``): ``gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False`` (an 11 x 11 window: scikit-image truncates the Gaussian at 3.5 sigma);
    * ``"uniform"``: scikit-image's own defaults, a 7 x 7 box window with sample (N-1) covariances.

    Colour: BT.601 luma by default; ``color="rgb"`` passes ``channel_axis=-1``, i.e. the mean of the three per-channel
    SSIMs. Images must be at least the window's size (11 or 7 pixels a side after ``crop``).

    Identical images give 1 (``ideal = 1``). Symmetric in F and R. Higher is better (at most 1).
    With ``color="gray"`` and the default window, SSIM(F, A) + SSIM(F, B) reproduces the regression values
    ``SSIM_sum`` of ``shared/data/metric-vectors/regression_values.csv``.
    """

    name = "ssim"
    summary = "SSIM of the fused image against the ground truth (scikit-image; Wang's 11x11 Gaussian sigma 1.5 default)"
    reference = WANG_SSIM + "; computed by skimage.metrics.structural_similarity"
    higher_is_better = True
    ideal: ClassVar[float | None] = 1.0

    class Params(ReferenceParams):
        window: Literal["gaussian", "uniform"] = Field(
            "gaussian", description="gaussian: Wang's ssim_index (gaussian_weights=True, sigma=1.5, "
            "use_sample_covariance=False, 11x11); uniform: scikit-image defaults (7x7 box, sample covariance)")

    def __call__(self, fused: Any, sources: Any = None, reference: Any = None) -> float:
        f, r = self._pair(fused, reference)
        gaussian = self.params.window == "gaussian"
        side = 11 if gaussian else 7
        if min(f.shape[:2]) < side:
            raise UnsupportedInput(f"ssim needs images of at least {side}x{side} (its window); got "
                                   f"{f.shape[0]}x{f.shape[1]}", "evaluate on larger images or lower crop")
        kw: dict[str, Any] = {"data_range": 1.0}
        if gaussian:
            kw.update(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        if f.ndim == 3:
            kw["channel_axis"] = -1
        return float(structural_similarity(r, f, **kw))


METRICS = (PSNR, SSIM)
