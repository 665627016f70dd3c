"""The DFP evaluation metrics: MG, EI, IE, MGA, ECO and their relative forms RMG, REI, RIE, RMGA, RECO.

Deep Fusion Prior (DFP), §4.2, Eqs. (24a)-(28). Each absolute metric X is a property of one image; DFP compares the
fused (MFISRF) image F with the ground truths of its two inputs (GT¹, GT²: the full-resolution multi-focus sources):

    RX = | X(F) − (X(GT¹) + X(GT²)) / 2 |                        (Eqs. 24b, 25b, 26b, 27b)
    RECO = | 2 − (ECO_F + C)/(ECO_GT¹ + C) − (ECO_F + C)/(ECO_GT² + C) |   (Eq. 28)

In fusionkit the GTs are the metric's ``sources`` (the interface's full-resolution sources of the super-resolution
protocol). **N sources:** RX = |X(F) − mean_i X(S_i)| and RECO = 2·|1 − mean_i (ECO_F + C)/(ECO_i + C)|; both equal
the paper's formulas for N = 2 (RECO keeps the factor 2 so that N = 2 gives Eq. 28's values). The relative metrics
are symmetric in the sources, 0 when F and all sources are identical (``ideal = 0``) and **lower is better**.
The absolute metrics ``mg, ei, ie, mga, eco`` look at the fused image only and ignore ``sources``; they have no ideal
value (``ideal = None``).

Where the paper is ambiguous this module follows ``shared/notes/metrics.md`` §3.14, and each choice is a parameter:

* **Intensity scale** (``scale``, default 255): images in [0, 1] are multiplied by 255 before MG, EI, MGA and ECO.
  DFP's Table 1 (×2, DFP: RMG 0.5840, REI 6.3614, RMGA 0.5324) only makes sense on 0–255 data (RMGA up to 18 grey
  levels; MG of natural images is 2–6 and EI 30–60 there, against 0.01–0.2 on [0, 1]). IE always uses 256 grey
  levels, whatever ``scale``.
* **MG** (Eq. 24a) is printed as (1/HW) ΣΣ (∇x I + ∇y I), a signed sum that telescopes to ≈ 0, so it must mean a
  gradient magnitude. Default ``form="average_gradient"``: the usual average gradient (VIFB ``metricsAvg_gradient``)
  with MATLAB ``gradient`` (central differences inside, one-sided at the borders),
  MG = Σ sqrt((gx² + gy²)/2) / ((H−1)(W−1)). ``form="abs_sum"``: the printed formula with absolute values,
  (1/HW) Σ (|gx| + |gy|), same differences.
* **EI** (Eq. 25a) is printed as (1/HW) sqrt(Σ[(I∗sx)² + (I∗sy)²]), which is ≈ 0.1 for a 520² image and cannot give
  REI = 2–27. Default ``form="mean"``: the standard edge intensity (VIFB ``metricsEdge_intensity``),
  EI = (1/HW) Σ sqrt((I∗sx)² + (I∗sy)²), Sobel sx = [1 0 −1; 2 0 −2; 1 0 −1], sy = sxᵀ (MATLAB ``fspecial('sobel')``;
  the sign and flip do not matter for the magnitude), replicate padding. ``form="rms"``: the 1/(HW) moved inside the
  square root, sqrt((1/HW) Σ[...]); ``form="printed"``: Eq. 25a literally.
* **IE** (Eq. 26a) is a 2-D entropy of the "characteristic binary group" (i, j): i = the pixel's grey level, j = the
  grey level of its neighbourhood, f(i, j) their joint count, IE = −Σ p log p with p = f(i, j)/(HW).
  Choices: grey levels i = round(255·Y) (0..255, half away from zero); j = the mean of the **3 x 3 window including the
  pixel** (``neighbourhood="3x3"``; ``"8"``: the 8 neighbours without it), replicate padding at the borders so every
  one of the H·W pixels counts, rounded the same way; **log base 10**, since the paper writes "lg" (``log_base=2``
  gives bits; the conversion is a constant factor, IE₂ = IE₁₀ / lg 2). With ``log_base=2`` this reproduces the
  notes' 9.5059 bits on clock/CNN (2.8615 in lg). ``neighbourhood="none"`` drops j: the ordinary 1-D entropy.
  Caveat: the 2-D entropy reacts strongly to blur. On MFI-WHU-like tests (a decision-map fusion, bicubic ×2/×4
  down-up, against the two sources) it gives RIE ≈ 0.1/0.5 in lg, several times DFP's Table 1 (0.018/0.060 for
  CNN+bicubic), while the 1-D entropy in bits gives ≈ 0.006/0.048; DFP's numbers may come from a different entropy
  than its Eq. 26a. The default follows the equation.
* **MGA** (Eq. 27a): the mean grey value (1/HW) ΣΣ I on the ``scale`` (0–255).
* **ECO** (polar edge coherence, Baroncini et al., EUSIPCO 2009, DFP ref. [69]): Laguerre–Gauss circular harmonics
  of orders 1 and 3, σ = 2, sampled on a 17 x 17 grid with coordinates ``linspace(-8.5, 8.5, 17)`` (spacing
  1.0625), written with z = (x − iy)/σ, g = exp(−(x² + y²)/2σ²)/(σ√π):
  L₁ = −g·z, L₃ = −g·z³/6 (= the notes' −(1/(σ√π)) e^{−r²/2σ²} (r/σ)ⁿ e^{−inγ} with 1/6 for n = 3);
  y₁ = I ∗ L₁, y₃ = I ∗ L₃ (real and imaginary parts convolved separately, scipy ``mode='reflect'`` padding,
  d c b a | a b c d); ECO = Σ over pixels of −|y₃|·|y₁|·cos(∠y₃ − 3∠y₁). It is a sum, not a mean (it grows with
  the image size and with scale², so C = 1 in RECO is negligible only on the 0–255 scale); the formula is invariant
  to rotations and mirrorings of the kernel grid, so the axis conventions do not matter. ``c`` is RECO's constant C
  (default 1). (Evaluated as sums of separable 1-D filters, which equal the 2-D convolution to rounding.)
* **Magnitudes against DFP's Table 1.** With these choices, a decision-map fusion of MFI-WHU pairs degraded by
  bicubic ×2 / ×4 and compared with its two sources gives RMG ≈ 0.4 / 2.5, REI ≈ 1.7 / 21, RMGA ≈ 0.14, close to
  Table 1's CNN+bicubic rows (0.72 / 2.59, 3.67 / 22.79, 0.17), which supports the 0–255 scale and the MG/EI forms.
  RIE is larger than Table 1 (see IE) and RECO is of order 0.4–0.9 against Table 1's 0.005–0.15: Table 1's RECO
  cannot be reproduced with this ECO (nor with the per-pixel mean or the [0, 1] scale); treat RECO values as
  fusionkit's own, not comparable with the paper's.
* **Colour** (``color``): ``"luma"`` (default) full-range BT.601 Y = 0.299 R + 0.587 G + 0.114 B, unrounded;
  ``"gray"`` MATLAB ``rgb2gray`` rounded to 8 bits (the convention of ``metric-vectors/regression_values.csv``);
  ``"channel_mean"``: X is computed on each RGB channel and the three values are averaged (a grey image counts as
  three equal channels); the relative forms then compare these channel means. DFP does not say which it used.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy import ndimage

from fusionkit.interfaces import Metric, Params, UnsupportedInput

from ._prepare import as_image, as_sources, round_half_away
from .reference import to_gray

DFP = ("Deep Fusion Prior (DFP), Gu et al., 'Deep Fusion Prior for Multi-Focus Image Super Resolution Fusion', "
       "§4.2")
ECO_REF = ("V. Baroncini, L. Capodiferro, E. D. Di Claudio, G. Jacovitti, 'The polar edge coherence: a quasi "
           "blind metric for video quality assessment', EUSIPCO 2009, 564-568")


# ---------------------------------------------------------------------------------------------------- parameters


COLOR_HELP = ("luma: full-range BT.601 Y (0.299, 0.587, 0.114), unrounded; gray: MATLAB rgb2gray rounded to 8 bits "
              "(regression_values.csv); channel_mean: compute on each RGB channel and average the values")


class DFPParams(Params):
    """Colour handling and intensity scale, shared by every DFP metric."""

    color: Literal["luma", "gray", "channel_mean"] = Field("luma", description=COLOR_HELP)
    scale: float = Field(255.0, gt=0, le=65535, description="multiplies the [0, 1] intensities before computing "
                         "(255: the 0-255 scale DFP's tables imply; 1: the [0, 1] scale)")


class MGParams(DFPParams):
    form: Literal["average_gradient", "abs_sum"] = Field(
        "average_gradient", description="average_gradient: sum sqrt((gx^2+gy^2)/2) / ((H-1)(W-1)) (VIFB); abs_sum: "
        "Eq. 24a with absolute values, mean(|gx|+|gy|); both with MATLAB gradient() differences")


class EIParams(DFPParams):
    form: Literal["mean", "rms", "printed"] = Field(
        "mean", description="mean: mean of the Sobel magnitude (VIFB); rms: sqrt(mean(gx^2+gy^2)) (1/HW inside "
        "the root); printed: Eq. 25a literally, sqrt(sum(gx^2+gy^2))/(HW)")


class IEParams(Params):
    color: Literal["luma", "gray", "channel_mean"] = Field("luma", description=COLOR_HELP)
    log_base: float = Field(10.0, gt=1, le=1000, description="base of the logarithm: 10 = the paper's 'lg' "
                            "(default), 2 = bits, 2.718281828459045 = nats")
    neighbourhood: Literal["3x3", "8", "none"] = Field(
        "3x3", description="j = rounded mean of the 3x3 window including the pixel (3x3) or of its 8 neighbours (8), "
        "replicate padding at the borders; none: no j, the ordinary 1-D grey-level entropy (EN)")


class ECOParams(DFPParams):
    c: float = Field(1.0, ge=0, le=1e12, description="the regularising constant C of Eq. 28, on ECO's scale "
                     "(intensity scale squared)")


# ------------------------------------------------------------------------------------------------------ features


def mean_gradient(x: np.ndarray, form: str = "average_gradient") -> float:
    """MG of one plane (already on its intensity scale); see the module docstring."""
    h, w = x.shape
    gx = np.gradient(x, axis=1) if w > 1 else np.zeros_like(x)
    gy = np.gradient(x, axis=0) if h > 1 else np.zeros_like(x)
    if form == "abs_sum":
        return float(np.mean(np.abs(gx) + np.abs(gy)))
    if h < 2 or w < 2:
        raise UnsupportedInput(f"mg: the average gradient divides by (H-1)(W-1); the image is {h}x{w}",
                               "evaluate on images of at least 2x2")
    return float(np.sum(np.sqrt((gx * gx + gy * gy) / 2.0)) / ((h - 1) * (w - 1)))


_SOBEL = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def edge_intensity(x: np.ndarray, form: str = "mean") -> float:
    """EI of one plane: Sobel magnitude with replicate padding; see the module docstring."""
    gy = ndimage.correlate(x, _SOBEL, mode="nearest")
    gx = ndimage.correlate(x, _SOBEL.T, mode="nearest")
    sq = gx * gx + gy * gy
    if form == "rms":
        return float(np.sqrt(np.mean(sq)))
    if form == "printed":
        return float(np.sqrt(np.sum(sq)) / sq.size)
    return float(np.mean(np.sqrt(sq)))


def information_entropy(x01: np.ndarray, log_base: float = 10.0, neighbourhood: str = "3x3") -> float:
    """IE of one plane in [0, 1]: 2-D entropy of (grey level, neighbourhood grey level), 256 levels."""
    i = round_half_away(np.clip(x01, 0.0, 1.0) * 255.0)
    if neighbourhood == "none":
        counts = np.bincount(i.astype(np.int64).ravel(), minlength=256)
        p = counts[counts > 0] / i.size
        return float(-(p * np.log(p)).sum() / math.log(log_base))
    box = ndimage.uniform_filter(i, size=3, mode="nearest")
    j = box if neighbourhood == "3x3" else (9.0 * box - i) / 8.0
    j = round_half_away(np.clip(j, 0.0, 255.0))
    codes = (i.astype(np.int64) * 256 + j.astype(np.int64)).ravel()
    counts = np.bincount(codes, minlength=65536)
    p = counts[counts > 0] / codes.size
    return float(-(p * np.log(p)).sum() / math.log(log_base))


ECO_SIGMA, ECO_TAPS, ECO_HALF = 2.0, 17, 8.5


def eco_kernels(sigma: float = ECO_SIGMA, taps: int = ECO_TAPS,
                half: float = ECO_HALF) -> tuple[np.ndarray, np.ndarray]:
    """The Laguerre-Gauss circular harmonics L1 and L3 (complex ``[taps, taps]``, rows = y, columns = x).

    Only for reference and tests: :func:`edge_coherence` applies them as sums of separable filters."""
    t = np.linspace(-half, half, taps)
    xx, yy = np.meshgrid(t, t)
    z = (xx - 1j * yy) / sigma
    g = np.exp(-(xx * xx + yy * yy) / (2.0 * sigma * sigma)) / (sigma * math.sqrt(math.pi))
    return -g * z, -g * z ** 3 / 6.0


def eco_responses(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y1 = x * L1 and y3 = x * L3 (2-D convolution, 'reflect' padding), computed separably.

    With g(t) = exp(-t^2/2 sigma^2), c = 1/(sigma sqrt(pi)) and (x - iy)^3 = (x^3 - 3xy^2) + i(y^3 - 3x^2 y), every
    part of L1 and L3 is a sum of products f(x) h(y); 'reflect' extends each axis independently, so the separable
    passes give the 2-D convolution (to rounding) with 10 one-dimensional filters instead of four 17x17 ones."""
    s = ECO_SIGMA
    t = np.linspace(-ECO_HALF, ECO_HALF, ECO_TAPS)
    g = np.exp(-(t * t) / (2.0 * s * s))
    c = 1.0 / (s * math.sqrt(math.pi))

    def along_x(w: np.ndarray) -> np.ndarray:
        return ndimage.convolve1d(x, w, axis=1, mode="reflect")

    def along_y(a: np.ndarray, w: np.ndarray) -> np.ndarray:
        return ndimage.convolve1d(a, w, axis=0, mode="reflect")

    x0, x1, x2, x3 = (along_x(g * t ** k) for k in range(4))
    re1 = -c / s * along_y(x1, g)
    im1 = c / s * along_y(x0, g * t)
    k3 = -c / (6.0 * s ** 3)
    re3 = k3 * (along_y(x3, g) - 3.0 * along_y(x1, g * t * t))
    im3 = k3 * (along_y(x0, g * t ** 3) - 3.0 * along_y(x2, g * t))
    return re1 + 1j * im1, re3 + 1j * im3


def edge_coherence(x: np.ndarray) -> float:
    """ECO of one plane (already on its intensity scale): sum over pixels of -|y3||y1| cos(angle y3 - 3 angle y1)."""
    y1, y3 = eco_responses(x)
    return float(np.sum(-np.abs(y3) * np.abs(y1) * np.cos(np.angle(y3) - 3.0 * np.angle(y1))))


# ---------------------------------------------------------------------------------------------------- the metrics


class _DFPMetric(Metric):
    """Shared plumbing: validation, colour, scale; subclasses give ``_feature(plane01) -> float``.

    ``relative = False``: X(F). ``relative = True``: |X(F) − mean_i X(S_i)| (``_combine`` may override)."""

    Params: ClassVar[type[Params]] = DFPParams
    relative: ClassVar[bool] = False
    ideal: ClassVar[float | None] = None
    requires: ClassVar[str] = "sources"

    def _feature(self, plane01: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _value(self, image: np.ndarray) -> float:
        """X of one image: on its grey plane, or the mean over the RGB channels for ``color="channel_mean"``."""
        color = self.params.color
        if color == "channel_mean":
            if image.ndim == 2:
                return self._feature(image)
            return float(np.mean([self._feature(image[:, :, c]) for c in range(3)]))
        return self._feature(to_gray(image, color))

    def _combine(self, xf: float, xs: list[float]) -> float:
        return abs(xf - float(np.mean(xs)))

    def __call__(self, fused: Any, sources: Any = None, reference: Any = None) -> float:
        f = as_image(fused, self.name, "the fused image")
        if not self.relative:
            return self._value(f)
        srcs = as_sources(sources, self.name, f, minimum=1)
        return self._combine(self._value(f), [self._value(s) for s in srcs])


class MG(_DFPMetric):
    """Mean gradient MG of the fused image (DFP Eq. 24a), on the 0–255 scale.

    MG = Σ_ij sqrt((gx² + gy²)/2) / ((H−1)(W−1)), gx, gy = MATLAB ``gradient`` (central differences inside,
    one-sided at the borders): the standard average gradient (VIFB), since Eq. 24a's signed sum telescopes to ≈ 0.
    ``form="abs_sum"``: (1/HW) Σ (|gx| + |gy|). Higher means more fine detail (``higher_is_better``); no ideal value.
    Colour: BT.601 luma by default (``color``). Formulas, scale and choices: module docstring.
    """

    name = "mg"
    summary = "DFP mean gradient MG of the fused image (average gradient, 0-255 scale, Eq. 24a)"
    reference = DFP + ", Eq. (24a); read as the average gradient of VIFB metricsAvg_gradient"
    higher_is_better = True
    Params: ClassVar[type[Params]] = MGParams

    def _feature(self, plane01: np.ndarray) -> float:
        return mean_gradient(plane01 * self.params.scale, self.params.form)


class RMG(MG):
    """Relative mean gradient RMG = |MG(F) − mean_i MG(S_i)| (DFP Eq. 24b), S_i = the sources (ground truths).

    MG as in ``mg`` (same Params). Lower is better; 0 for identical images (``ideal = 0``). Symmetric in the sources.
    """

    name = "rmg"
    summary = "DFP relative mean gradient |MG(F) - mean MG(sources)| (Eq. 24b, lower is better)"
    reference = DFP + ", Eq. (24b), N sources by their mean"
    higher_is_better = False
    relative = True
    ideal: ClassVar[float | None] = 0.0


class EI(_DFPMetric):
    """Edge intensity EI of the fused image (DFP Eq. 25a), on the 0–255 scale.

    EI = (1/HW) Σ_ij sqrt((I∗sx)² + (I∗sy)²), 3 x 3 Sobel, replicate padding (VIFB ``metricsEdge_intensity``).
    Eq. 25a as printed puts 1/(HW) outside the root (``form="printed"``, ≈ 0.1 for 520² images, inconsistent with
    DFP's REI values); ``form="rms"`` puts it inside. Higher means stronger edges; no ideal value.
    Colour: BT.601 luma by default. Formulas and choices: module docstring.
    """

    name = "ei"
    summary = "DFP edge intensity EI of the fused image (mean Sobel magnitude, 0-255 scale, Eq. 25a)"
    reference = DFP + ", Eq. (25a); read as the edge intensity of VIFB metricsEdge_intensity"
    higher_is_better = True
    Params: ClassVar[type[Params]] = EIParams

    def _feature(self, plane01: np.ndarray) -> float:
        return edge_intensity(plane01 * self.params.scale, self.params.form)


class REI(EI):
    """Relative edge intensity REI = |EI(F) − mean_i EI(S_i)| (DFP Eq. 25b).

    EI as in ``ei`` (same Params). Lower is better; ``ideal = 0``. Symmetric in the sources.
    """

    name = "rei"
    summary = "DFP relative edge intensity |EI(F) - mean EI(sources)| (Eq. 25b, lower is better)"
    reference = DFP + ", Eq. (25b), N sources by their mean"
    higher_is_better = False
    relative = True
    ideal: ClassVar[float | None] = 0.0


class IE(_DFPMetric):
    """Information entropy IE of the fused image (DFP Eq. 26a): 2-D entropy of (grey level, neighbourhood mean).

    IE = −Σ_ij p_ij lg p_ij, p_ij = f(i, j)/(HW), i = round(255·Y), j = round(mean of the 3 x 3 window) with
    replicate padding; log base 10 (the paper's "lg") unless ``log_base`` says otherwise. Independent of ``scale``
    (256 grey levels always). Higher means more information; no ideal value. Colour: BT.601 luma by default.
    """

    name = "ie"
    summary = "DFP information entropy IE: 2-D entropy of (grey, 3x3-mean grey), 256 levels, log10 (Eq. 26a)"
    reference = DFP + ", Eq. (26a); the usual 2-D image entropy over (pixel, 3x3 neighbourhood mean) pairs"
    higher_is_better = True
    Params: ClassVar[type[Params]] = IEParams

    def _feature(self, plane01: np.ndarray) -> float:
        return information_entropy(plane01, self.params.log_base, self.params.neighbourhood)


class RIE(IE):
    """Relative information entropy RIE = |IE(F) − mean_i IE(S_i)| (DFP Eq. 26b).

    IE as in ``ie`` (same Params, log10 by default). Lower is better; ``ideal = 0``. Symmetric in the sources.
    """

    name = "rie"
    summary = "DFP relative information entropy |IE(F) - mean IE(sources)| (Eq. 26b, lower is better)"
    reference = DFP + ", Eq. (26b), N sources by their mean"
    higher_is_better = False
    relative = True
    ideal: ClassVar[float | None] = 0.0


class MGA(_DFPMetric):
    """Mean grey value MGA of the fused image (DFP Eq. 27a): (1/HW) ΣΣ I on the 0–255 scale.

    A brightness level, not a quality score: ``higher_is_better = True`` is nominal only (use ``rmga`` to compare
    with the sources); no ideal value. Colour: BT.601 luma by default.
    """

    name = "mga"
    summary = "DFP mean grey value MGA of the fused image (0-255 scale, Eq. 27a; brightness, not a quality order)"
    reference = DFP + ", Eq. (27a)"
    higher_is_better = True

    def _feature(self, plane01: np.ndarray) -> float:
        return float(np.mean(plane01) * self.params.scale)


class RMGA(MGA):
    """Relative mean grey value RMGA = |MGA(F) − mean_i MGA(S_i)| (DFP Eq. 27b).

    Lower is better; ``ideal = 0``. Symmetric in the sources.
    """

    name = "rmga"
    summary = "DFP relative mean grey value |MGA(F) - mean MGA(sources)| (Eq. 27b, lower is better)"
    reference = DFP + ", Eq. (27b), N sources by their mean"
    higher_is_better = False
    relative = True
    ideal: ClassVar[float | None] = 0.0


class ECO(_DFPMetric):
    """Polar edge coherence ECO of the fused image (DFP ref. [69]), on the 0–255 scale.

    ECO = Σ_pixels −|y₃|·|y₁|·cos(∠y₃ − 3∠y₁), y_n = I ∗ L_n, L₁ = −g·z, L₃ = −g·z³/6, z = (x − iy)/σ,
    g = exp(−(x² + y²)/2σ²)/(σ√π), σ = 2, 17 x 17 taps at ``linspace(-8.5, 8.5, 17)``, 'reflect' padding.
    A sum over pixels (grows with size and with scale²). Higher means more coherent edges (nominal); no ideal value.
    Colour: BT.601 luma by default.
    """

    name = "eco"
    summary = "polar edge coherence ECO of the fused image (Laguerre-Gauss harmonics, sigma 2, 17x17, 0-255 scale)"
    reference = ECO_REF + "; as used by " + DFP + ", Eq. (28)"
    higher_is_better = True

    def _feature(self, plane01: np.ndarray) -> float:
        return edge_coherence(plane01 * self.params.scale)


class RECO(ECO):
    """Relative edge coherence RECO (DFP Eq. 28), generalised to N sources.

    RECO = 2·|1 − (1/N) Σ_i (ECO_F + C)/(ECO_i + C)|, which for N = 2 is exactly
    |2 − (ECO_F + C)/(ECO_GT¹ + C) − (ECO_F + C)/(ECO_GT² + C)|. C = ``c`` (default 1, on the 0–255 scale where ECO
    is ~1e7 for a 520² image, so C only guards against division by zero). ECO as in ``eco``. Lower is better;
    ``ideal = 0``; symmetric in the sources. Meaningful when the ECO values are positive, as on natural images.
    """

    name = "reco"
    summary = "DFP relative polar edge coherence 2|1 - mean (ECO_F+C)/(ECO_i+C)| (Eq. 28, lower is better)"
    reference = DFP + ", Eq. (28) (= it for N = 2; N sources by the mean ratio); ECO after " + ECO_REF
    higher_is_better = False
    relative = True
    ideal: ClassVar[float | None] = 0.0
    Params: ClassVar[type[Params]] = ECOParams

    def _combine(self, xf: float, xs: list[float]) -> float:
        c = self.params.c
        if any(x + c == 0 for x in xs):
            raise UnsupportedInput("reco: ECO of a source + C is 0, so the ratio of Eq. 28 is undefined",
                                   "raise c, or use rei/rmg on such (flat) images")
        ratios = [(xf + c) / (x + c) for x in xs]
        return 2.0 * abs(1.0 - float(np.mean(ratios)))


METRICS = (MG, EI, IE, MGA, ECO, RMG, REI, RIE, RMGA, RECO)
