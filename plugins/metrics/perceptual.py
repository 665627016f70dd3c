"""Perceptual, feature and multiscale fusion-quality metrics: Q_CB, Q_CV, Q_P, Q_M, VIF(-p) and VIFF.

Written from the formulas in ``shared/notes/metrics.md`` (§3.3, 3.5, 3.6, 3.11, 3.15); no code was copied. The
toolbox metrics follow Zheng Liu's MATLAB toolbox (the functions named per class), which Yu Liu's multi-focus
survey used, and reproduce the survey's published per-image values on our own grey and Lytro pairs
(``shared/data/metric-vectors``: Q_P, Q_CB and Q_CV):

* ``q_cb``: Chen & Blum's human-perception metric (CSF filtering, local contrast, masking; higher is better);
* ``q_cv``: Chen & Varshney's regional CSF-weighted difference (**lower is better**, 0 for a perfect fusion);
* ``q_p``: Zhao, Laganière & Liu's phase-congruency metric (phase congruency and its moments, see
  :mod:`fusionkit_plugins.metrics.phase`);
* ``q_m``: Wang & Liu's multiscale Haar-wavelet edge-preservation metric (range [0, 3]);
* ``vif``: Sheikh & Bovik's pixel-domain VIF (``vifp_mscale``) of each source (reference) against the fused image
  (distorted), **summed** over the sources by default: the "VIF" of Tang's / CDDFuse's evaluators and UDPNet;
* ``viff``: Han et al.'s fusion VIF (VIFF): per pixel the source with the smaller gain (MEFB's "VIF").

Shared conventions (each class's ``Params`` has ``color`` and ``quantize``; the same as ``gradient_info.py``):

* **Scale.** Images are float in [0, 1]; the toolbox reads 8-bit files as doubles 0-255, so they are scaled by 255
  and, with ``quantize=True`` (default), rounded to integers half away from zero, as saving to 8 bits would.
* **Colour.** ``color="gray"`` (default) converts each RGB image separately with MATLAB ``rgb2gray``
  (Y = 0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B, rounded to 8 bits when ``quantize``) and
  evaluates once: what the survey's ``evaluate_color.m`` did, so it reproduces the published Lytro values; the
  regression values of VIF-p/VIFF use it too. ``color="channel_mean"`` evaluates each RGB channel and averages the
  scores (VIFB / MFIFB / MEFB / FAPSR). A grey image is used for all three channels there.
* **normalize1.** Q_CB and Q_CV first stretch every image to integers 0-255 (min-max, round half away from zero),
  as the toolbox does; a constant non-zero image (MATLAB: 0/0 = NaN) becomes all zeros.
* **N > 2 sources.** Every metric here has a natural N-source form, documented per class; for N = 2 each is
  exactly the toolbox formula (including its tie rules).
* **Undefined cases** (MATLAB NaN) are stated per class; a score that is mathematically undefined for the input
  (e.g. Q_P when no source has any phase-congruency feature) is returned as NaN.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import Field
from scipy import fft as sfft
from scipy import ndimage

from ._prepare import ColourParams, PlaneMetric, normalize1
from .phase import DEFAULTS as PC_DEFAULTS
from .phase import phase_congruency

LIU_TOOLBOX = ("Z. Liu, E. Blasch, Z. Xue, J. Zhao, R. Laganière, W. Wu, 'Objective assessment of multiresolution "
               "image fusion algorithms for context enhancement in night vision: a comparative study', IEEE TPAMI "
               "34(1) 2012, 94-109 (MATLAB toolbox); values as published in Y. Liu, L. Wang, J. Cheng, C. Li, "
               "X. Chen, 'Multi-focus image fusion: a survey of the state of the art', Inf. Fusion 64 (2020) 71-91")


# ----------------------------------------------------------------------------------------------- small helpers


def _gaussian_taps(n: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', n, sigma)`` (normalised; the kernel is its outer product)."""
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _corr_same(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """``filter2(outer(taps, taps), x, 'same')``: separable correlation, zero padding, odd tap count."""
    y = ndimage.correlate1d(x, taps, axis=0, mode="constant", cval=0.0)
    return ndimage.correlate1d(y, taps, axis=1, mode="constant", cval=0.0)


def _corr_valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """``filter2(outer(taps, taps), x, 'valid')`` (odd tap count)."""
    h = len(taps) // 2
    y = _corr_same(x, taps)
    return y[h:y.shape[0] - h, h:y.shape[1] - h]


def _flat_valid(x: np.ndarray, n: int) -> np.ndarray:
    """True for every 'valid' n x n window in which ``x`` is exactly constant (max == min)."""
    h = n // 2
    hi = ndimage.maximum_filter1d(ndimage.maximum_filter1d(x, n, axis=0), n, axis=1)
    lo = ndimage.minimum_filter1d(ndimage.minimum_filter1d(x, n, axis=0), n, axis=1)
    return (hi == lo)[h:x.shape[0] - h, h:x.shape[1] - h]


def _sobel_magnitude(x: np.ndarray) -> np.ndarray:
    """|∇| from ``filter2`` (correlation, zero padding, 'same') with [-1 0 1; -2 0 2; -1 0 1] and its transpose."""
    p = np.pad(x, 1)
    dx = p[:, 2:] - p[:, :-2]
    sx = dx[:-2] + 2.0 * dx[1:-1] + dx[2:]
    dy = p[2:, :] - p[:-2, :]
    sy = dy[:, :-2] + 2.0 * dy[:, 1:-1] + dy[:, 2:]
    return np.sqrt(sx * sx + sy * sy)


def _freqspace_radius(rows: int, cols: int, divisor: float) -> np.ndarray:
    """r = √(u² + v²) on MATLAB's ``freqspace([rows, cols], 'meshgrid')`` grid scaled by u·cols/divisor,
    v·rows/divisor, returned in FFT layout (``ifftshift``), ready to multiply ``fft2(image)``."""
    fu = (np.arange(cols) - cols // 2) * (2.0 / cols) * (cols / divisor)
    fv = (np.arange(rows) - rows // 2) * (2.0 / rows) * (rows / divisor)
    u, v = np.meshgrid(fu, fv)
    return np.fft.ifftshift(np.sqrt(u * u + v * v))


def _freq_filter(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``ifft2(ifftshift(fftshift(fft2(x)) .* S))`` with S already in FFT layout (real, even => real result)."""
    return sfft.ifft2(sfft.fft2(x) * response).real


def _block_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sums over n x n blocks; partial blocks at the bottom/right are zero-padded (MATLAB ``blkproc``)."""
    h, w = x.shape
    hb, wb = -(-h // n), -(-w // n)
    p = np.zeros((hb * n, wb * n))
    p[:h, :w] = x
    return p.reshape(hb, n, wb, n).sum(axis=(1, 3))


def _nan_ratio(num: float, den: float) -> float:
    return float(num / den) if den != 0 else float("nan")


# ------------------------------------------------------------------------------------------------------ Q_CB


@lru_cache(maxsize=16)
def _dog_csf(rows: int, cols: int, divisor: float, f0: float, f1: float, a: float) -> np.ndarray:
    r = _freqspace_radius(rows, cols, divisor)
    out = np.exp(-(r / f0) ** 2) - a * np.exp(-(r / f1) ** 2)
    out.flags.writeable = False                        # cached: shared between calls
    return out


_CB_OFFSETS = np.arange(-15, 16, dtype=np.float64)


def _cb_contrast(x: np.ndarray) -> np.ndarray:
    """|G1⋆I / G2⋆I - 1| with the toolbox's 31x31 *unnormalised* Gaussians exp(-r²/2σ²)/(2πσ²), σ = 2 and 4,
    ``filter2 'same'`` (zero padding). The kernels are separable, so they are applied as two 31-tap passes."""
    out = []
    for sigma in (2.0, 4.0):
        taps = np.exp(-(_CB_OFFSETS ** 2) / (2.0 * sigma * sigma))
        out.append(_corr_same(x, taps) / (2.0 * math.pi * sigma * sigma))
    return np.abs(out[0] / out[1] - 1.0)


class QCB(PlaneMetric):
    """Q_CB, Chen & Blum's perceptual fusion metric (the toolbox's ``metricChenBlum``).

    1. ``normalize1`` every image (integers 0-255).
    2. Contrast-sensitivity filtering in the frequency domain (circular, as the toolbox's ``fft2``) with the DoG
       S(r) = e^{-(r/f0)²} - a·e^{-(r/f1)²}, f0 = 15.3870, f1 = 1.3456, a = 0.7622, r on MATLAB's ``freqspace`` grid
       scaled by W/``csf_divisor``, H/``csf_divisor`` (30: the toolbox's active "DoG1"; the paper's DoG2/DoG3 are 4
       and 8).
    3. Local contrast C = |G1⋆I′ / G2⋆I′ - 1|, 31x31 unnormalised Gaussians σ = 2 and 4, zero-padded 'same'.
    4. Masking C′ = k·C^p / (h·C^q + Z), k = h = 1, p = 3 (``p``; the paper also uses 2.4), q = 2, Z = 1e-4.
    5. Q_XF = the smaller of C′_X, C′_F over the larger; saliency λ_X = C′_X² / Σ_Y C′_Y².
    6. Q_CB = mean over pixels of Σ_X λ_X·Q_XF.

    N sources: λ normalises over all N (for N = 2 the toolbox formula). Where both C′ are 0, Q_XF = 1, and where
    all sources' C′ are 0, λ = 1/N (MATLAB: NaN; never happens on real images). F = A = B gives 1 (``ideal``).
    Reproduces the survey's published values to ~1e-14. Colour: see ``color``.
    """

    name = "q_cb"
    summary = "Q_CB Chen-Blum perceptual metric (DoG CSF, local contrast, masking), toolbox constants"
    reference = ("Y. Chen, R.S. Blum, 'A new automated quality assessment algorithm for image fusion', Image and "
                 "Vision Computing 27 (2009) 1421-1432, Eqs. 1-10; metricChenBlum.m of " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = 1.0

    class Params(ColourParams):
        """Colour handling, 8-bit rounding, CSF scaling and the masking exponent."""

        csf_divisor: float = Field(30.0, gt=0, le=1000, description="the DoG CSF's frequency grid is scaled by "
                                   "W/csf_divisor, H/csf_divisor: 30 = the toolbox's DoG1 (published values); "
                                   "4 and 8 are the paper's DoG2 and DoG3")
        p: float = Field(3.0, gt=0, le=10, description="masking exponent p in C' = C^p/(C^q + Z): 3 in the toolbox "
                         "(published values), 2.4 in one of the paper's settings")

    def _score(self, f, sources):
        p = self.params
        csf = _dog_csf(f.shape[0], f.shape[1], float(p.csf_divisor), 15.3870, 1.3456, 0.7622)

        def masked(x):
            c = _cb_contrast(_freq_filter(normalize1(x), csf))
            return c ** p.p / (c ** 2 + 1e-4)

        cf = masked(f)
        cs = [masked(s) for s in sources]
        sq = [c * c for c in cs]
        total = sum(sq)
        n = len(cs)
        ok = total > 0
        q = np.zeros_like(cf)
        for c, c2 in zip(cs, sq):
            lo, hi = np.minimum(c, cf), np.maximum(c, cf)
            qxf = np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0), 1.0)
            lam = np.where(ok, c2 / np.where(ok, total, 1.0), 1.0 / n)
            q += lam * qxf
        return float(q.mean())


# ------------------------------------------------------------------------------------------------------ Q_CV


@lru_cache(maxsize=16)
def _mannos_sakrison(rows: int, cols: int, divisor: float) -> np.ndarray:
    r = _freqspace_radius(rows, cols, divisor)
    out = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    out.flags.writeable = False                        # cached: shared between calls
    return out


class QCV(PlaneMetric):
    """Q_CV, Chen & Varshney's regional perceptual difference (the toolbox's ``metricChen``). **Lower is better.**

    1. ``normalize1`` every image; Sobel magnitude G (zero-padded 'same' correlation).
    2. Regions: ``window`` x ``window`` blocks (16; partial blocks at the bottom/right are zero-padded, as
       MATLAB ``blkproc``); saliency λ_X = Σ_block G_X^α, α = ``alpha`` (5).
    3. D_X = mean over the (padded) block of (CSF ∗ (X - F))², with the Mannos-Sakrison CSF
       2.6·(0.0192 + 0.144 r)·e^{-(0.144 r)^1.1} applied in the frequency domain on MATLAB's ``freqspace`` grid
       scaled by W/8, H/8 (``csf_divisor``).
    4. Q_CV = Σ_blocks Σ_X λ_X·D_X / Σ_blocks Σ_X λ_X.

    N sources: the sums run over all of them (the toolbox formula for N = 2). F = A = B gives 0 (``ideal``). NaN
    when every source has zero gradient everywhere (all-zero sources). Values are in squared grey levels (a few to a
    few hundred). Reproduces the survey's published values to ~1e-13 relative. Colour: see ``color``.
    """

    name = "q_cv"
    summary = "Q_CV Chen-Varshney regional CSF-filtered difference (lower is better), toolbox constants"
    reference = ("H. Chen, P.K. Varshney, 'A human perception inspired quality metric for image fusion based on "
                 "regional information', Information Fusion 8 (2007) 193-207; metricChen.m of " + LIU_TOOLBOX)
    higher_is_better = False
    ideal = 0.0

    class Params(ColourParams):
        """Colour handling, 8-bit rounding, region size, saliency exponent and CSF scaling."""

        window: int = Field(16, ge=2, le=256, description="region (block) size in pixels; 16 in the toolbox")
        alpha: float = Field(5.0, gt=0, le=20, description="saliency exponent: λ = Σ_block |∇|^alpha; 5 in the "
                             "toolbox (its comments list 1-5, 10, 15 as alternatives)")
        csf_divisor: float = Field(8.0, gt=0, le=1000, description="the CSF's frequency grid is scaled by "
                                   "W/csf_divisor, H/csf_divisor; 8 in the toolbox (its 'length 3'; 2 and 4 are "
                                   "commented-out alternatives)")

    def _score(self, f, sources):
        p = self.params
        n = int(p.window)
        fn = normalize1(f)
        csf = _mannos_sakrison(f.shape[0], f.shape[1], float(p.csf_divisor))
        num = 0.0
        den = 0.0
        for s in sources:
            sn = normalize1(s)
            lam = _block_sum(_sobel_magnitude(sn) ** p.alpha, n)
            d = _block_sum(_freq_filter(sn - fn, csf) ** 2, n) / (n * n)
            num += float(np.sum(lam * d))
            den += float(np.sum(lam))
        return _nan_ratio(num, den)


# ------------------------------------------------------------------------------------------------------- Q_P


_QP_TAPS = _gaussian_taps(11, 1.5)
_QP_C = 1e-4


def _qp_feature(src_maps: list[np.ndarray], max_map: np.ndarray, fused_map: np.ndarray,
                masks: list[np.ndarray], max_mask: np.ndarray) -> float:
    """One factor of Q_P: Σ_pixels max_X r_X / |mask_max| (the toolbox's ``correlation_coeffcient``)."""
    mu_f = _corr_same(fused_map, _QP_TAPS)
    var_f = _corr_same(fused_map * fused_map, _QP_TAPS) - mu_f * mu_f
    best = None
    for x, mask in zip([*src_maps, max_map], [*masks, max_mask]):
        xm = x * mask
        mu = _corr_same(xm, _QP_TAPS)
        var = _corr_same(xm * xm, _QP_TAPS) - mu * mu
        cov = _corr_same(xm * fused_map, _QP_TAPS) - mu * mu_f
        r = np.where(mask, (cov + _QP_C) / (np.sqrt(np.abs(var * var_f)) + _QP_C), 0.0)
        best = r if best is None else np.maximum(best, r)
    return _nan_ratio(float(best.sum()), float(max_mask.sum()))


class QP(PlaneMetric):
    """Q_P, Zhao, Laganière & Liu's phase-congruency metric (the toolbox's ``metricZhao`` + ``myphasecong3``).

    1. Per image: phase congruency PC, maximum moment M and minimum moment m (see
       :mod:`fusionkit_plugins.metrics.phase`; toolbox parameters nscale 4, norient 6, minWaveLength 3, mult 2.1,
       sigmaOnf 0.55, dThetaOnSigma 1.2, k 2, cutOff 0.5, g 10) on the grey values 0-255 (not normalised).
    2. The "max" maps: per pixel PC, M and m of the source with the larger PC (ties go to the later source, as the
       toolbox's ``pc1 > pc2``). Feature masks: PC_X > ``threshold`` (0.1) per source and PC_max > threshold.
    3. For each feature k ∈ {PC, M, m}: local correlation r_X = (σ_XF + C)/(√|σ_X² σ_F²| + C), C = 1e-4, with an
       11x11 Gaussian (σ = 1.5, zero-padded 'same'), where the source maps X ∈ {sources, max} are multiplied by their
       masks and the fused map is not; r_X = 0 outside mask_X; P_k = Σ_pixels max_X r_X / |mask_max|.
    4. Q_P = P_PC · P_M · P_m.

    F = A = B does not give 1 (0.955 on clock: the fused map is not masked and C > 0), so ``ideal`` is None.
    N sources: max over all sources and the max map (the toolbox formula for N = 2). NaN when no pixel of any
    source has PC above the threshold. The cost is three phase-congruency maps (24 complex FFTs each), about 0.6 s
    at 520x520 on one core (x3 with ``channel_mean``). Reproduces the survey's published values to ~1e-12.
    Colour: see ``color``.
    """

    name = "q_p"
    summary = "Q_P phase-congruency fusion metric of Zhao et al. (PC and its moments, myphasecong3 parameters)"
    reference = ("J. Zhao, R. Laganière, Z. Liu, 'Performance assessment of combinative pixel-level image fusion "
                 "based on an absolute feature measurement', Int. J. Innovative Computing, Information and Control "
                 "3(6A) 2007, 1433-1447; P. Kovesi, 'Image features from phase congruency', Videre 1(3) 1999; "
                 "metricZhao.m/myphasecong3.m of " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = None
    min_size = 2

    class Params(ColourParams):
        """Colour handling, 8-bit rounding, the feature threshold and the phase-congruency parameters."""

        threshold: float = Field(0.1, ge=0, lt=1, description="feature mask threshold on PC (0.1 in the toolbox)")
        nscale: int = Field(PC_DEFAULTS["nscale"], ge=1, le=8, description="number of log-Gabor scales")
        norient: int = Field(PC_DEFAULTS["norient"], ge=1, le=16, description="number of filter orientations")
        min_wavelength: float = Field(PC_DEFAULTS["min_wavelength"], ge=2, le=64,
                                      description="wavelength of the smallest-scale filter, pixels")
        mult: float = Field(PC_DEFAULTS["mult"], gt=1, le=4, description="scaling factor between successive "
                            "filter wavelengths")
        sigma_onf: float = Field(PC_DEFAULTS["sigma_onf"], gt=0, lt=1, description="ratio of the log-Gabor's "
                                 "standard deviation to its centre frequency (bandwidth)")
        d_theta_on_sigma: float = Field(PC_DEFAULTS["d_theta_on_sigma"], gt=0, le=10, description="ratio of the "
                                        "orientation spacing to the angular Gaussian's standard deviation")
        k: float = Field(PC_DEFAULTS["k"], ge=0, le=20, description="noise threshold: standard deviations of the "
                         "noise energy above its mean")
        cut_off: float = Field(PC_DEFAULTS["cut_off"], ge=0, le=1, description="fractional frequency spread below "
                               "which phase congruency is penalised")
        g: float = Field(PC_DEFAULTS["g"], gt=0, le=100, description="sharpness of the frequency-spread penalty")

    def _pc(self, x: np.ndarray):
        p = self.params
        return phase_congruency(x, nscale=p.nscale, norient=p.norient, min_wavelength=p.min_wavelength,
                                mult=p.mult, sigma_onf=p.sigma_onf, d_theta_on_sigma=p.d_theta_on_sigma, k=p.k,
                                cut_off=p.cut_off, g=p.g)

    def _score(self, f, sources):
        t = self.params.threshold
        pf = self._pc(f)
        ps = [self._pc(s) for s in sources]
        pc_max, big_max, small_max = ps[0].pc, ps[0].max_moment, ps[0].min_moment
        for nxt in ps[1:]:
            keep = pc_max > nxt.pc                     # the toolbox's mask = (pc1 > pc2): ties take the later one
            pc_max = np.where(keep, pc_max, nxt.pc)
            big_max = np.where(keep, big_max, nxt.max_moment)
            small_max = np.where(keep, small_max, nxt.min_moment)
        masks = [x.pc > t for x in ps]
        max_mask = pc_max > t
        result = 1.0
        for attr, mx in (("pc", pc_max), ("max_moment", big_max), ("min_moment", small_max)):
            result *= _qp_feature([getattr(x, attr) for x in ps], mx, getattr(pf, attr), masks, max_mask)
        return result


# ------------------------------------------------------------------------------------------------------- Q_M


def _haar_level(x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One level of matlabPyrTools' ``buildWpyr(x, ., 'haar')``: filters [1 1]/√2 and [-1 1]/√2 on the sample
    pairs (1,2), (3,4), ... of each axis (an odd last sample is dropped, so no border handling is involved).
    Returns the low-pass image and the three detail bands."""
    r, c = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:r, :c]
    s = 1.0 / math.sqrt(2.0)
    lo = (x[0::2] + x[1::2]) * s
    hi = (x[1::2] - x[0::2]) * s
    lolo = (lo[:, 0::2] + lo[:, 1::2]) * s
    lohi = (hi[:, 0::2] + hi[:, 1::2]) * s
    hilo = (lo[:, 1::2] - lo[:, 0::2]) * s
    hihi = (hi[:, 1::2] - hi[:, 0::2]) * s
    return lolo, (lohi, hilo, hihi)


class QM(PlaneMetric):
    """Q_M, Wang & Liu's multiscale (Haar wavelet) edge-preservation metric (the toolbox's ``metricPWW``).

    Two-level Haar decomposition of A, B and F on the raw grey values 0-255 (matlabPyrTools ``buildWpyr(.,2,'haar')``
    alignment: coefficient pairs (1,2), (3,4), ..., no border handling for the Haar filter). Per level s and
    source X, with the detail bands H, V, D:
    EP_X = e^{-|H_X - H_F|} + e^{-|V_X - V_F|} + e^{-|D_X - D_F|} (a sum, 0..3), W_X = H_X² + V_X² + D_X²,
    Q_s = Σ Σ_X EP_X·W_X / Σ Σ_X W_X; **Q_M = Q_1^{2/3} · Q_2^{1/3}**. Range [0, 3]; F = A = B gives 3 (``ideal``).

    Very sensitive by design (exp of un-normalised coefficient differences): decision-map fusions score 2.3-2.7,
    blending methods far lower. There are no published per-image values; the notes' pywt-Haar regression values
    (clock/CNN 2.33701, Lytro-01/CNN 2.39761) are reproduced. N sources: the sums run over all of them. NaN when all
    sources have no detail at a level. Images of at least 4x4. Colour: see ``color``.
    """

    name = "q_m"
    summary = "Q_M Wang-Liu multiscale Haar-wavelet edge-preservation metric (metricPWW), range [0, 3]"
    reference = ("P.-W. Wang, B. Liu, 'A novel image fusion metric based on multi-scale analysis', ICSP 2008, "
                 "965-968; metricPWW.m of " + LIU_TOOLBOX)
    higher_is_better = True
    ideal = 3.0
    min_size = 4

    class Params(ColourParams):
        """Colour handling and 8-bit rounding (levels, wavelet and weights 2/3, 1/3 are fixed by the reference)."""

    def _score(self, f, sources):
        levels_f = []
        x = f
        for _ in range(2):
            x, bands = _haar_level(x)
            levels_f.append(bands)
        num = [0.0, 0.0]
        den = [0.0, 0.0]
        for s in sources:
            x = s
            for lev in range(2):
                x, bands = _haar_level(x)
                w = sum(b * b for b in bands)
                ep = sum(np.exp(-np.abs(b - bf)) for b, bf in zip(bands, levels_f[lev]))
                num[lev] += float(np.sum(ep * w))
                den[lev] += float(np.sum(w))
        q1, q2 = _nan_ratio(num[0], den[0]), _nan_ratio(num[1], den[1])
        return q1 ** (2.0 / 3.0) * q2 ** (1.0 / 3.0)


# ------------------------------------------------------------------------------------------------ VIF family


def _vif_min_size() -> int:
    """The smallest side for which all four VIF scales have at least one 'valid' window (41)."""
    for n in range(3, 200):
        size, ok = n, True
        for scale in range(1, 5):
            w = 2 ** (5 - scale) + 1
            if scale > 1:
                size = size - w + 1
                if size < 1:
                    ok = False
                    break
                size = (size + 1) // 2
            if size < w:
                ok = False
                break
        if ok:
            return n
    return 200  # pragma: no cover


def _vif_scales(ref: np.ndarray, dist: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per scale (g, σ_ref², σ_v²) of the Gaussian-scale-mixture channel model of ``vifp_mscale`` / Han's
    ``ComVidVindG``: 4 scales, Gaussian windows N = 2^{5-s}+1 (17, 9, 5, 3) with σ = N/5, 'valid' filtering; at
    s > 1 the images are first filtered with that window ('valid') and subsampled by 2. The gain/noise guards are
    the reference code's (1e-10 thresholds, negative gains clipped). Exactly constant windows get variance and
    covariance exactly 0 (MATLAB leaves round-off noise there, which these thresholds then remove anyway)."""
    out = []
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        taps = _gaussian_taps(n, n / 5.0)
        if scale > 1:
            ref = _corr_valid(ref, taps)[::2, ::2]
            dist = _corr_valid(dist, taps)[::2, ::2]
        mu1 = _corr_valid(ref, taps)
        mu2 = _corr_valid(dist, taps)
        s1 = _corr_valid(ref * ref, taps) - mu1 * mu1
        s2 = _corr_valid(dist * dist, taps) - mu2 * mu2
        s12 = _corr_valid(ref * dist, taps) - mu1 * mu2
        flat1, flat2 = _flat_valid(ref, n), _flat_valid(dist, n)
        s1[flat1] = 0.0
        s2[flat2] = 0.0
        s12[flat1 | flat2] = 0.0
        s1[s1 < 0] = 0.0
        s2[s2 < 0] = 0.0
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        m1 = s1 < 1e-10
        g[m1] = 0.0
        sv[m1] = s2[m1]
        s1[m1] = 0.0
        m2 = s2 < 1e-10
        g[m2] = 0.0
        sv[m2] = 0.0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0.0
        sv[sv <= 1e-10] = 1e-10
        out.append((g, s1, sv))
    return out


_VIF_MIN = _vif_min_size()


class VIF(PlaneMetric):
    """VIF-p: Sheikh & Bovik's pixel-domain visual information fidelity of each source against the fused image,
    **summed over the sources** by default (``pooling``).

    VIF(X, F) = Σ_s Σ log10(1 + g²σ_X²/(σ_v² + σ_n²)) / Σ_s Σ log10(1 + σ_X²/σ_n²) with the source X as the
    reference and F as the distorted image, σ_n² = 2 (for 0-255 data), the 4-scale Gaussian statistics of
    ``vifp_mscale`` (windows 17, 9, 5, 3, σ = N/5, 'valid', subsampling by 2).

    ``pooling="sum"`` (default): Σ_X VIF(X, F), the "VIF" of Tang's and CDDFuse's evaluators and of UDPNet's tables
    (values ≈ 1.0-1.4 on Lytro); F = A = B gives N (2 for a pair), so ``ideal`` is None. ``pooling="mean"``: the
    average, 1 for F = A = B. Reproduces the notes' self-computed regression values (clock/CNN 1.43551,
    Lytro-01/CNN 1.43135, both grey via rgb2gray); there are no published per-image values. Not to be confused with
    Han et al.'s fusion VIF (``viff``). NaN when a source is completely flat (VIF undefined). Images of at least
    41x41. Colour: see ``color``.
    """

    name = "vif"
    summary = "pixel-domain VIF (Sheikh-Bovik vifp) of each source vs the fused image, summed over sources"
    reference = ("H.R. Sheikh, A.C. Bovik, 'Image information and visual quality', IEEE TIP 15(2) 2006, 430-444 "
                 "(pixel-domain version vifp_mscale); summed over the sources as in Tang et al.'s / CDDFuse's "
                 "fusion evaluators")
    higher_is_better = True
    ideal = None
    min_size = _VIF_MIN

    class Params(ColourParams):
        """Colour handling, 8-bit rounding, pooling over the sources and the noise variance."""

        pooling: Literal["sum", "mean"] = Field(
            "sum", description="sum: Σ_X VIF(X, F) (Tang/CDDFuse/UDPNet 'VIF', 2 for F = A = B); mean: the average "
            "over the sources (1 for F = A = B)")
        sigma_n2: float = Field(2.0, gt=0, le=1e4, description="HVS noise variance σ_n² on the 0-255 scale "
                                "(2 in vifp_mscale)")

    def _score(self, f, sources):
        sn2 = self.params.sigma_n2
        vals = []
        for s in sources:
            num = den = 0.0
            for g, s1, sv in _vif_scales(s, f):
                num += float(np.sum(np.log10(1.0 + g * g * s1 / (sv + sn2))))
                den += float(np.sum(np.log10(1.0 + s1 / sn2)))
            vals.append(_nan_ratio(num, den))
        return float(np.sum(vals) if self.params.pooling == "sum" else np.mean(vals))


_VIFF_WEIGHTS = (1.0 / 2.15, 0.0, 0.15 / 2.15, 1.0 / 2.15)


class VIFF(PlaneMetric):
    """VIFF, Han et al.'s fusion metric based on visual information fidelity (Han's ``VIFF_Public``; MEFB's "VIF").

    The same 4-scale Gaussian channel statistics as VIF-p for each (source, fused) pair, with visual noise
    σ_N² = 0.005·255² = 325.125. Per scale and pixel: VID_X = log10(1 + g_X²σ_X²/(σ_v,X² + σ_N²)) and
    VIND_X = log10(1 + σ_X²/σ_N²), taken from the source with the **smaller** gain g (the code's ``L = G1 < G2``:
    ties go to the later source); F_s = Σ(VID + C)/Σ(VIND + C), C = 1e-7; **VIFF = Σ_s p_s F_s with
    p = [1, 0, 0.15, 1]/2.15**. F = A = B gives 1 (``ideal``).

    N sources: the per-pixel choice runs over all sources in order with the same tie rule. Colour: the author's code
    converts RGB to CIELAB L*, but MEFB (and the regression values) evaluate single grey channels, so this class
    uses ``color`` like the others. Reproduces the notes' self-computed regression values (clock/CNN 0.91316,
    Lytro-01/CNN 0.96247); no published per-image values exist. Images of at least 41x41.
    """

    name = "viff"
    summary = "VIFF fusion visual-information-fidelity metric of Han et al. (MEFB 'VIF'), 4 scales"
    reference = ("Y. Han, Y. Cai, Y. Cao, X. Xu, 'A new image fusion performance metric based on visual information "
                 "fidelity', Information Fusion 14(2) 2013, 127-135 (author code VIFF_Public.m, as used by MEFB)")
    higher_is_better = True
    ideal = 1.0
    min_size = _VIF_MIN

    class Params(ColourParams):
        """Colour handling and 8-bit rounding (noise, constant and scale weights are fixed by the reference)."""

    def _score(self, f, sources):
        sn2 = 0.005 * 255.0 * 255.0
        per_source = [_vif_scales(s, f) for s in sources]
        total = 0.0
        for scale in range(4):
            g_best = vid = vind = None
            for stats in per_source:
                g, s1, sv = stats[scale]
                z = np.log10(1.0 + g * g * s1 / (sv + sn2))
                m = np.log10(1.0 + s1 / sn2)
                if g_best is None:
                    g_best, vid, vind = g, z, m
                else:
                    keep = g_best < g
                    g_best = np.where(keep, g_best, g)
                    vid = np.where(keep, vid, z)
                    vind = np.where(keep, vind, m)
            f_s = float(np.sum(vid + 1e-7)) / float(np.sum(vind + 1e-7))
            total += _VIFF_WEIGHTS[scale] * f_s
        return total


METRICS = (QCB, QCV, QP, QM, VIF, VIFF)
