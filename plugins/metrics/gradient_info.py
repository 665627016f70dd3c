"""Source-based fusion-quality metrics from Zheng Liu's MATLAB toolbox (gradient, information and SSIM families).

The metrics reproduce the MATLAB toolbox of Z. Liu et al. (TPAMI 34(1) 2012), in the copy corrected by Yu Liu
that was used for the multi-focus survey of Liu et al. (Inf. Fusion 64, 2020). Where the two differ, the corrected
copy is used. The values match the survey's published per-image values on our own grey and Lytro pairs
(``shared/data/metric-vectors``). Everything here is written from the formulas in ``shared/notes/metrics.md``:

* ``q_g``: Q^{AB/F} of Xydeas & Petrović, with Yu Liu's constants and joint pooling;
* ``mi``: MI(A,F) + MI(B,F) (Qu et al. 2002);
* ``q_mi``: Hossny's normalised MI (MEFB, MFIFB and UDPNet call it "NMI");
* ``q_ncie``: nonlinear correlation information entropy (Wang et al.);
* ``q_y``: Yang's SSIM-based metric, with the flat-window guard;
* ``q_c``: Cvejić's covariance-weighted UIQI metric;
* ``q_s``: Piella's fusion quality index (Liu toolbox ``metricPeilla`` with sw = 1).

Shared conventions (each class's ``Params`` has them):

* **Scale.** The toolbox reads 8-bit files as doubles in 0–255. Here images are float in [0, 1], so they are scaled by
  255. By default (``quantize=True``) they are also rounded to integers, half away from zero, as saving to 8 bits
  would round them. The exact ``== 0`` tests of the toolbox (Sobel responses, variances) only behave as in MATLAB on
  integer data.
* **Colour.** ``color="gray"`` (default) converts every RGB image separately with MATLAB ``rgb2gray``:
  Y = 0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B, rounded to 8 bits when ``quantize``. This is
  what the survey's ``evaluate_color.m`` did, so it reproduces the published Lytro values.
  ``color="channel_mean"`` evaluates each RGB channel separately and averages the scores (VIFB / MFIFB / MEFB / FAPSR
  convention). A grey image is used for all three channels there.
* **Flat windows.** The SSIM-family metrics (``q_y``, ``q_c``, ``q_s``) find windows that are exactly constant
  (local max == local min) and set their variances and covariances to exactly 0. MATLAB computes these as
  E[x²] − μ², which leaves round-off noise, and the tiny constants of these metrics (2e-16) turn that noise into
  arbitrary scores. The published Q_Y values on pairs with many flat windows carry that noise (see
  ``metric-vectors/tolerances.csv``).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Sequence

import numpy as np
from pydantic import Field

from . import _prepare
from ._prepare import ColourParams, PlaneMetric, prepare
from ._prepare import round_half_away as _round_half_away

LIU_TOOLBOX = ("Z. Liu, E. Blasch, Z. Xue, J. Zhao, R. Laganière, W. Wu, 'Objective assessment of multiresolution "
               "image fusion algorithms for context enhancement in night vision: a comparative study', IEEE TPAMI "
               "34(1) 2012, 94-109; toolbox copy corrected by Yu Liu, used in Y. Liu, L. Wang, J. Cheng, C. Li, "
               "X. Chen, "
               "'Multi-focus image fusion: a survey of the state of the art', Inf. Fusion 64 (2020) 71-91")


class _ToolboxMetric(PlaneMetric):
    """Most toolbox metrics compare A with B, so 2 sources unless a class says otherwise."""

    max_sources: ClassVar[int | None] = 2


# ---------------------------------------------------------------------------------------------- histogram helpers


def normalize1(x: np.ndarray) -> np.ndarray:
    """The toolbox's ``normalize1`` as integer levels, ready to index the histograms."""
    return _prepare.normalize1(x).astype(np.int64)


def _levels(x: np.ndarray) -> np.ndarray:
    """Integer grey levels 0..255 for the histograms when no normalisation is asked for."""
    return np.clip(_round_half_away(x), 0, 255).astype(np.int64)


def _entropy(p: np.ndarray) -> float:
    """-sum p log2 p over the non-zero bins (bits)."""
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _mutual_info(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """(MI, H(X,Y), H(X), H(Y)) in bits from the 256x256 joint histogram of two integer 0..255 images."""
    joint = np.bincount((x * 256 + y).ravel(), minlength=65536).astype(np.float64).reshape(256, 256)
    joint /= joint.sum()
    hx = _entropy(joint.sum(axis=1))
    hy = _entropy(joint.sum(axis=0))
    hxy = _entropy(joint.ravel())
    return hx + hy - hxy, hxy, hx, hy


# ----------------------------------------------------------------------------------------------- filter helpers


def _gaussian_taps(n: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', n, sigma)`` (the 2-D kernel is its outer product)."""
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(outer(taps, taps), x, 'valid')`` on the last two axes (separable correlation)."""
    n = len(taps)
    h, w = x.shape[-2:]
    rows = sum(taps[k] * x[..., k:h - n + 1 + k, :] for k in range(n))
    return sum(taps[k] * rows[..., :, k:w - n + 1 + k] for k in range(n))


def _flat_valid(x: np.ndarray, n: int) -> np.ndarray:
    """True for every 'valid' n x n window in which ``x`` is exactly constant (max == min)."""
    h, w = x.shape
    hi = np.maximum.reduce([x[k:h - n + 1 + k, :] for k in range(n)])
    lo = np.minimum.reduce([x[k:h - n + 1 + k, :] for k in range(n)])
    hi = np.maximum.reduce([hi[:, k:w - n + 1 + k] for k in range(n)])
    lo = np.minimum.reduce([lo[:, k:w - n + 1 + k] for k in range(n)])
    return hi == lo


class _LocalStats:
    """Windowed means, variances and covariances ('valid', as ``ssim_index``) of a set of planes.

    Variances and covariances are E[xy] - E[x]E[y], as in MATLAB, except in exactly constant windows, where they
    are set to exactly 0 (MATLAB leaves round-off noise there)."""

    def __init__(self, planes: Sequence[np.ndarray], taps: np.ndarray):
        self.planes = list(planes)
        self.taps = taps
        n = len(taps)
        self.mu = _filter_valid(np.stack(self.planes), taps)
        sq = _filter_valid(np.stack([p * p for p in self.planes]), taps)
        self.flat = [_flat_valid(p, n) for p in self.planes]
        self.var = []
        for i in range(len(self.planes)):
            v = sq[i] - self.mu[i] * self.mu[i]
            v[self.flat[i]] = 0.0
            self.var.append(v)
        self._cov: dict[tuple[int, int], np.ndarray] = {}

    def cov(self, i: int, j: int) -> np.ndarray:
        key = (min(i, j), max(i, j))
        if key not in self._cov:
            c = _filter_valid(self.planes[i] * self.planes[j], self.taps) - self.mu[i] * self.mu[j]
            c[self.flat[i] | self.flat[j]] = 0.0
            self._cov[key] = c
        return self._cov[key]

    def ssim(self, i: int, j: int, c1: float, c2: float) -> np.ndarray:
        """The SSIM map of ``ssim_index`` (its C1 > 0 and C2 > 0 branch)."""
        mi, mj = self.mu[i], self.mu[j]
        m12 = mi * mj
        num = (2 * m12 + c1) * (2 * self.cov(i, j) + c2)
        return num / ((mi * mi + mj * mj + c1) * (self.var[i] + self.var[j] + c2))


def _saliency_weight(va: np.ndarray, vb: np.ndarray) -> np.ndarray:
    """λ = σ_A² / (σ_A² + σ_B²), with the toolbox's guard: +0.5 on both where the sum is exactly 0 (λ = 0.5)."""
    guard = (va + vb == 0) * 0.5
    va = va + guard
    vb = vb + guard
    return va / (va + vb)


# ------------------------------------------------------------------------------------------------------- Q_G


_SOBEL_GAMMA_G, _SOBEL_KAPPA_G, _SOBEL_SIGMA_G = 0.9994, -15.0, 0.5
_SOBEL_GAMMA_A, _SOBEL_KAPPA_A, _SOBEL_SIGMA_A = 0.9879, -22.0, 0.8


def _sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``filter2`` (correlation, zero padding, 'same') with [-1 0 1; -2 0 2; -1 0 1] and its transpose."""
    p = np.pad(x, 1)
    dx = p[:, 2:] - p[:, :-2]
    sx = dx[:-2] + 2.0 * dx[1:-1] + dx[2:]
    dy = p[2:, :] - p[:-2, :]
    sy = dy[:, :-2] + 2.0 * dy[:, 1:-1] + dy[:, 2:]
    return sx, sy


def _strength_orientation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx, sy = _sobel(x)
    g = np.sqrt(sx * sx + sy * sy)
    sx = sx + (sx == 0) * 1e-5
    return g, np.arctan(sy / sx)


class QG(_ToolboxMetric):
    """Q^{AB/F} (Q_G, Qabf): how much of the sources' Sobel edge strength and orientation the fused image keeps.

    Per source X: strengths g and orientations α = atan(s_y/s_x) from the Sobel responses (s_x = 0 -> 1e-5);
    G^{XF} = the smaller of g_X, g_F over the larger (zero strengths -> 1e-5, so a tie gives 1);
    A^{XF} = 1 - |α_X - α_F|·2/π; Q^{XF} = Γ_g/(1+e^{κ_g(G-σ_g)}) · Γ_α/(1+e^{κ_α(A-σ_α)}) with Yu Liu's
    corrected constants Γ_g = 0.9994, κ_g = -15, σ_g = 0.5, Γ_α = 0.9879, κ_α = -22, σ_α = 0.8; joint pooling
    Q = Σ_pixels Σ_X Q^{XF} w_X / Σ_pixels Σ_X w_X with w_X = g_X (L = 1). Zheng Liu's original (κ = -10/-20,
    per-pixel pooling) is a different metric and is not offered.

    N sources: the pooling sums over all sources (the standard N-input form of Eq. 8). Maximum (F = A = B):
    Γ_g/(1+e^{-7.5}) · Γ_α/(1+e^{-4.4}) = 0.974794 (the notes round it to 0.97479), not 1. Colour: see ``color``.
    """

    name = "q_g"
    summary = "Q^{AB/F} (Xydeas-Petrovic) Sobel edge preservation, Yu Liu's corrected constants and pooling"
    reference = ("C.S. Xydeas, V. Petrović, 'Objective image fusion performance measure', Electronics Letters 36(4) "
                 "2000, 308-309, Eqs. 1-8; constants/pooling as corrected by Yu Liu (metricXydeas.m) in " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = (_SOBEL_GAMMA_G / (1.0 + math.exp(_SOBEL_KAPPA_G * (1.0 - _SOBEL_SIGMA_G)))
             * _SOBEL_GAMMA_A / (1.0 + math.exp(_SOBEL_KAPPA_A * (1.0 - _SOBEL_SIGMA_A))))
    max_sources = None

    class Params(ColourParams):
        """Colour handling and 8-bit rounding (the constants are fixed by the reference)."""

    def _score(self, f, sources):
        gf, af = _strength_orientation(f)
        num = 0.0
        den = 0.0
        for i, s in enumerate(sources):
            gx, ax = _strength_orientation(s)
            larger = gx > gf                       # compared before either is patched (gf is patched from i >= 1)
            gx = gx + (gx == 0) * 1e-5
            ratio_1 = gf / gx
            if i == 0:
                gf = gf + (gf == 0) * 1e-5
            ratio_2 = gx / gf
            g_rel = np.where(larger, ratio_1, ratio_2)
            a_rel = 1.0 - np.abs(ax - af) * (2.0 / math.pi)
            q = (_SOBEL_GAMMA_G / (1.0 + np.exp(_SOBEL_KAPPA_G * (g_rel - _SOBEL_SIGMA_G)))
                 * _SOBEL_GAMMA_A / (1.0 + np.exp(_SOBEL_KAPPA_A * (a_rel - _SOBEL_SIGMA_A))))
            num = num + q * gx
            den = den + gx
        return float(np.sum(num) / np.sum(den))


# ------------------------------------------------------------------------------------------------- MI family


class _HistParams(ColourParams):
    normalize: bool = Field(
        True, description="min-max stretch each image to integers 0-255 first (the toolbox's normalize1, which the "
        "published values use); False bins the (rounded) 0-255 values as they are")


class MI(_ToolboxMetric):
    """Mutual information MI = Σ_X MI(X, F) (Qu et al. 2002), in bits by default.

    MI(X, F) = H(X) + H(F) - H(X, F) from the 256x256 joint histogram of the (by default ``normalize1``-stretched)
    integer images: Liu's ``mutual_info`` convention, as published multi-focus tables (UDPNet Table III, values 6-10)
    use. VIFB's "Mutinf" is the same in nats (``unit="nats"`` with ``color="channel_mean"``). Not normalised: the
    value grows with the sources' entropy, so there is no fixed ideal (F = A = B gives 2·H(A)).

    N sources: the sum runs over all of them (Qu's definition is this sum). Colour: see ``color``.
    """

    name = "mi"
    summary = "mutual information MI(A,F) + MI(B,F) (Qu et al.), bits, 256-bin joint histograms"
    reference = ("G. Qu, D. Zhang, P. Yan, 'Information measure for performance of image fusion', Electronics Letters "
                 "38(7) 2002, 313-315; histogram conventions of mutual_info.m/normalize1.m in " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = None
    max_sources = None

    class Params(_HistParams):
        """Colour handling, 8-bit rounding, normalisation and log base."""

        unit: Literal["bits", "nats"] = Field("bits", description="bits: log2 (Liu/Tang MATLAB, UDPNet); nats: natural "
                                              "log (VIFB Mutinf, sklearn) = bits * ln 2")

    def _score(self, f, sources):
        prep = normalize1 if self.params.normalize else _levels
        fi = prep(f)
        total = sum(_mutual_info(prep(s), fi)[0] for s in sources)
        return total * (math.log(2.0) if self.params.unit == "nats" else 1.0)


class QMI(_ToolboxMetric):
    """Q_MI, Hossny et al.'s normalised mutual information; the toolbox's ``metricMI(A, B, F, 1)``.

    Q_MI = 2·[MI(A,F)/(H(A)+H(F)) + MI(B,F)/(H(B)+H(F))], entropies in bits from 256-bin histograms of the
    ``normalize1``-stretched images. Range [0, 2]; F = A = B gives 2 (for non-constant images). The factor 2 is kept
    (some ports drop it and report half).

    **Name:** this is the quantity UDPNet, MEFB and MFIFB report as "NMI", and Yu Liu's survey as "Q_MI". It is
    *not* Studholme's NMI (H(A)+H(B))/H(A,B) (``skimage.metrics.normalized_mutual_information``), nor sklearn's
    normalised MI score. Hossny's and the benchmarks' "NMI" are the same formula, so only ``q_mi`` is registered.

    Only 2 sources (N > 2 raises ``UnsupportedInput``). A term whose two entropies are both 0 (both images constant)
    counts as 1/2, its value for F = X (MATLAB gives 0/0 = NaN). Colour: see ``color``.
    """

    name = "q_mi"
    summary = "Q_MI normalised mutual information of Hossny et al. (the 'NMI' of UDPNet/MEFB/MFIFB), range [0, 2]"
    reference = ("M. Hossny, S. Nahavandi, D. Creighton, 'Comments on \"Information measure for performance of image "
                 "fusion\"', Electronics Letters 44(18) 2008, 1066-1067; metricMI.m (sw=1) in " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = 2.0

    class Params(_HistParams):
        """Colour handling, 8-bit rounding and normalisation."""

    def _score(self, f, sources):
        prep = normalize1 if self.params.normalize else _levels
        fi = prep(f)
        total = 0.0
        for s in sources:
            mi, _, hx, hf = _mutual_info(prep(s), fi)
            total += 0.5 if hx + hf == 0 else mi / (hx + hf)
        return 2.0 * total


class QNCIE(_ToolboxMetric):
    """Q_NCIE, nonlinear correlation information entropy of the sources and the fused image (``metricWang``).

    NCC(X, Y) = H(X) + H(Y) - H(X, Y) with entropies in base 256 from 256-bin histograms of the ``normalize1``-
    stretched images. R is the K x K matrix of NCCs (ones on the diagonal) of the K = N + 1 images (sources, then F);
    with its eigenvalues λ_i, H_R = -Σ (λ_i/K) log_256(λ_i/K) and Q_NCIE = 1 - H_R. For 2 sources K = 3 as in the
    toolbox; N > 2 uses Wang's definition for K variables. Non-positive eigenvalues (MATLAB: NaN or complex) add 0.

    Values are compressed into about 0.80-0.86 and F = A = B does not give 1 (NCC(X, X) = H(X)/8 < 1), so there is
    no fixed ideal. Colour: see ``color``.
    """

    name = "q_ncie"
    summary = "Q_NCIE nonlinear correlation information entropy of sources and fused image (Wang et al.)"
    reference = ("Q. Wang, Y. Shen, J. Jin, 'Performance evaluation of image fusion techniques', ch. 19 of Image "
                 "Fusion: Algorithms and Applications (T. Stathaki ed.), 2008; metricWang.m/NCC.m in " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = None
    max_sources = None

    class Params(_HistParams):
        """Colour handling, 8-bit rounding and normalisation."""

    def _score(self, f, sources):
        prep = normalize1 if self.params.normalize else _levels
        imgs = [prep(s) for s in sources] + [prep(f)]
        k = len(imgs)
        r = np.eye(k)
        for i in range(k):
            for j in range(i + 1, k):
                _, hxy, hx, hy = _mutual_info(imgs[i], imgs[j])
                r[i, j] = r[j, i] = (hx + hy - hxy) / 8.0       # log2(256) = 8
        lam = np.linalg.eigvalsh(r) / k
        lam = lam[lam > 0]
        h_r = -float(np.sum(lam * np.log2(lam))) / 8.0
        return 1.0 - h_r


# ------------------------------------------------------------------------------------------- SSIM-based family


_YANG_C = 2e-16          # C1 = C2 of the toolbox's ssim_yang (UIQI-like)
_YANG_TAPS = _gaussian_taps(7, 1.5)


class QY(_ToolboxMetric):
    """Q_Y, Yang et al.'s SSIM-based metric (``metricYang`` with Yu Liu's NaN guard).

    SSIM maps with a 7x7 Gaussian window (σ = 1.5, 'valid') and C1 = C2 = 2e-16. Per window w, with
    λ = σ_A²/(σ_A²+σ_B²) (+0.5 on both where the sum is exactly 0, so λ = 0.5 on windows flat in both sources):
    λ·SSIM(A,F) + (1-λ)·SSIM(B,F) where SSIM(A,B) >= 0.75, else max(SSIM(A,F), SSIM(B,F)); Q_Y is the mean over
    windows. F = A = B gives 1.

    Exactly constant windows get variance and covariance exactly 0 (see the module notes): on pairs with many
    flat windows the published MATLAB values carry round-off there and match only to 1e-5 ... 4e-3.
    Only 2 sources (N > 2 raises ``UnsupportedInput``); images of at least 7x7. Colour: see ``color``.
    """

    name = "q_y"
    summary = "Q_Y structural-similarity fusion metric of Yang et al. (7x7 Gaussian SSIM, 0.75 threshold)"
    reference = ("C. Yang, J.-Q. Zhang, X.-R. Wang, X. Liu, 'A novel similarity based quality metric for image "
                 "fusion', Information Fusion 9 (2008) 156-160; metricYang.m (Yu Liu's NaN guard) in " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = 1.0
    min_size = 7

    class Params(ColourParams):
        """Colour handling and 8-bit rounding (window, constants and threshold are fixed by the reference)."""

    def _score(self, f, sources):
        a, b = sources
        st = _LocalStats([a, b, f], _YANG_TAPS)
        s_ab = st.ssim(0, 1, _YANG_C, _YANG_C)
        s_af = st.ssim(0, 2, _YANG_C, _YANG_C)
        s_bf = st.ssim(1, 2, _YANG_C, _YANG_C)
        lam = _saliency_weight(st.var[0], st.var[1])
        q = np.where(s_ab >= 0.75, lam * s_af + (1.0 - lam) * s_bf, np.maximum(s_af, s_bf))
        return float(q.mean())


class QC(_ToolboxMetric):
    """Q_C, Cvejić et al.'s similarity metric (``metricCvejic`` with sw = 2; MEFB ``metricsQc``).

    UIQI-like SSIM maps Q(X,F) with a 7x7 Gaussian window (σ = 1.5, 'valid', C1 = C2 = 2e-16);
    sim = σ_AF/(σ_AF + σ_BF) from the local covariances; per window sim·Q(A,F) + (1-sim)·Q(B,F); Q_C is the mean
    over windows. ``clip="score"`` (default) follows the toolbox: the window's *score* is set to 0 where sim < 0
    and to 1 where sim > 1. ``clip="weight"`` follows the paper: sim is clipped to [0, 1] (then Q_C is symmetric
    in A and B; the toolbox rule is not). F = A = B gives 1.

    Where σ_AF + σ_BF = 0 exactly (F flat in the window, or A and B both flat), sim is 0/0. MATLAB gives NaN or a
    ratio of round-off noise there. ``undefined="half"`` (default) uses sim = 0.5, like the toolbox's λ guard in
    Q_Y/Q_E; ``undefined="drop"`` leaves those windows out of the mean, as MEFB's ``metricsQc`` drops NaNs (NaN when
    no window is left). Exactly constant windows get variance and covariance exactly 0 (see the module notes).

    No published per-image values exist for our data. The default reproduces the notes' self-computed regression
    values for clock/CNN (0.79186) and clock/rounded average (0.79747) to all printed digits; Lytro-01/CNN gives
    0.81072 vs 0.81050, because in that port windows that are flat in one image have sim = ±1e-16 noise, which flips
    the toolbox's clipping to a score of 0. Only 2 sources (N > 2 raises ``UnsupportedInput``); images of at least
    7x7. Colour: see ``color``.
    """

    name = "q_c"
    summary = "Q_C covariance-weighted UIQI fusion metric of Cvejic et al. (7x7 Gaussian windows)"
    reference = ("N. Cvejić, A. Łoza, D. Bull, N. Canagarajah, 'A similarity metric for assessment of image fusion "
                 "algorithms', Int. J. Signal Processing 2(3) (2005) 178-182; metricCvejic.m (sw=2) in " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = 1.0
    min_size = 7

    class Params(ColourParams):
        """Colour handling, 8-bit rounding and the out-of-range rule for sim."""

        clip: Literal["score", "weight"] = Field(
            "score", description="score: the toolbox rule (window score 0 where sim < 0, 1 where sim > 1; Liu "
            "toolbox, MEFB); weight: the paper's rule (sim clipped to [0, 1])")
        undefined: Literal["half", "drop"] = Field(
            "half", description="windows where sigma_AF + sigma_BF = 0 (sim = 0/0): half uses sim = 0.5; drop leaves "
            "them out of the mean (MEFB metricsQc)")

    def _score(self, f, sources):
        a, b = sources
        st = _LocalStats([a, b, f], _YANG_TAPS)
        s_af = st.ssim(0, 2, _YANG_C, _YANG_C)
        s_bf = st.ssim(1, 2, _YANG_C, _YANG_C)
        c_af, c_bf = st.cov(0, 2), st.cov(1, 2)
        den = c_af + c_bf
        valid = den != 0
        sim = np.where(valid, c_af / np.where(valid, den, 1.0), 0.5)
        if self.params.clip == "weight":
            sim = np.clip(sim, 0.0, 1.0)
            score = sim * s_af + (1.0 - sim) * s_bf
        else:
            score = sim * s_af + (1.0 - sim) * s_bf
            score = np.where(sim < 0, 0.0, np.where(sim > 1, 1.0, score))
        if self.params.undefined == "half":
            return float(score.mean())
        if not valid.any():
            return float("nan")
        return float(score[valid].mean())


class QS(_ToolboxMetric):
    """Q_S, Piella & Heijmans' fusion quality index (``metricPeilla`` with sw = 1).

    Q0 = the SSIM map; saliency = local variance, λ = σ_A²/(σ_A²+σ_B²) (+0.5 on both where the sum is exactly 0);
    Q_S = mean over windows of λ·Q0(A,F) + (1-λ)·Q0(B,F). F = A = B gives 1.

    ``window="gaussian11"`` (default) is Zheng Liu's original toolbox (``ssim_index`` defaults: 11x11 Gaussian,
    σ = 1.5, K = [0.01, 0.03], L = 255, 'valid'), the "Q_S" of the TPAMI 2012 comparison and of FAPSR.
    ``window="box8"`` is Yu Liu's corrected copy (8x8 box window and K = [1e-6, 1e-6], i.e. the UIQI of the ICIP
    2003 paper). The two give very different values (clock/CNN: 0.960 vs 0.825). No published per-image values
    exist for our data. Exactly constant windows get variance and covariance exactly 0 (see the module notes).
    Only 2 sources (N > 2 raises ``UnsupportedInput``); images at least as large as the window. Colour: see ``color``.
    """

    name = "q_s"
    summary = "Q_S Piella-Heijmans fusion quality index (variance-weighted SSIM/UIQI, metricPeilla sw=1)"
    reference = ("G. Piella, H. Heijmans, 'A new quality metric for image fusion', ICIP 2003, vol. 3, 173-176, Eq. 5 "
                 "(Q); metricPeilla.m (sw=1) with ssim_index.m in " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = 1.0
    min_size = 11

    class Params(ColourParams):
        """Colour handling, 8-bit rounding and the window / constants variant."""

        window: Literal["gaussian11", "box8"] = Field(
            "gaussian11", description="gaussian11: Zheng Liu's toolbox (11x11 Gaussian sigma 1.5, K=[0.01,0.03], "
            "L=255; TPAMI 2012/FAPSR 'Q_S'); box8: Yu Liu's copy (8x8 box, K=[1e-6,1e-6], UIQI as in the paper)")

    def __call__(self, fused: Any, sources: Any, reference: Any = None) -> float:
        n = 11 if self.params.window == "gaussian11" else 8
        planes = prepare(fused, sources, self.params, self.name, max_sources=2, min_size=n)
        return float(np.mean([self._score(f, s) for f, s in planes]))

    def _score(self, f, sources):
        a, b = sources
        if self.params.window == "gaussian11":
            taps, k = _gaussian_taps(11, 1.5), (0.01, 0.03)
        else:
            taps, k = np.full(8, 1.0 / 8.0), (1e-6, 1e-6)
        c1, c2 = (k[0] * 255.0) ** 2, (k[1] * 255.0) ** 2
        st = _LocalStats([a, b, f], taps)
        lam = _saliency_weight(st.var[0], st.var[1])
        q = lam * st.ssim(2, 0, c1, c2) + (1.0 - lam) * st.ssim(2, 1, c1, c2)
        return float(q.mean())


METRICS = (QG, MI, QMI, QNCIE, QY, QC, QS)
