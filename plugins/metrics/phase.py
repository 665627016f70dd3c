"""Phase congruency (Kovesi's PC_2 measure, in the variant of Zheng Liu's fusion-metric toolbox).

A building block for the Q_P metric of :mod:`fusionkit_plugins.metrics.perceptual`; this module registers no
metric. Written from the algorithm descriptions in P. Kovesi, "Image features from phase congruency", Videre 1(3)
1999 and "Phase congruency detects corners and edges", DICTA 2003, and from the parameter/variant notes on the
toolbox function ``myphasecong3`` (a modification of Kovesi's ``phasecong2``) in ``shared/notes/metrics.md`` §3.5.

Per image (float, any scale; the toolbox passes grey values 0-255), with ``nscale`` log-Gabor scales and
``norient`` orientations, all filtering done by one FFT of the image and circular convolution:

* frequency grid: x, y in [-0.5, 0.5) (``(k - n/2)/n`` for even n, ``(k - (n-1)/2)/(n-1)`` for odd n), radius r
  (1 at the zero frequency), angle θ = atan2(-y, x);
* radial part: log-Gabor exp(-ln²(r/f_s) / (2 ln² σ_onf)) with f_s = 1/(minWaveLength·mult^s), times the
  Butterworth low-pass 1/(1 + (r/0.45)^30), zero at DC;
* angular part: exp(-Δθ²/(2 σ_θ²)) around θ_o = o·π/norient, σ_θ = π/norient/dThetaOnSigma;
* per orientation: responses EO_s = ifft2(fft2(I)·filter), amplitudes A_s = |EO_s|; energy
  Σ_s (e·ē + o·ō - |e·ō - o·ē|) with (ē, ō) the unit vector of (Σ e, Σ o) (+ε in its norm);
* noise: from the median of |EO_1|², the Rayleigh model and the filters' spatial autocorrelation
  (Σ_s Σ_x h_s², Σ_{i<j} Σ_x h_i h_j of the real parts of the spatial filters, scaled by √(rows·cols)); threshold
  T = (μ + k·σ)/1.7 (the "/1.7" is Kovesi's empirical rescaling for the PC_2 measure); energy floored at 0 after
  subtracting T;
* frequency-spread weighting 1/(1 + e^{g(cutOff - width)}), width = Σ_s A_s / (max_s A_s + ε) / nscale;
* **PC = Σ_o W_o·⌊E_o - T_o⌋ / (Σ_o Σ_s A_s + ε)** (the overall measure, as the toolbox returns it);
* moments of the per-orientation maps PC_o = W_o⌊E_o - T_o⌋/Σ_s A_s: covx² = Σ (PC_o cos θ_o)², covy² likewise,
  covxy = Σ PC_o² cos θ_o sin θ_o; covx², covy² divided by norient/2 and covxy by norient (the toolbox's
  normalisation; Kovesi's phasecong2 uses 4/norient for covxy); maximum moment
  M = (covx² + covy² + d)/2 and minimum moment m = (covx² + covy² - d)/2 with d = √(covxy² + (covx² - covy²)²) + ε.

ε = 1e-4. Where Σ_s A_s = 0 for an orientation (an exactly constant image), PC_o is taken as 0 (MATLAB: NaN).
The image-independent parts (filters, noise autocorrelation sums) are cached per image size and parameters, and
the spatial-filter sums are evaluated with Parseval's theorem instead of inverse FFTs (equal up to round-off).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

EPSILON = 1e-4

#: the toolbox defaults of ``myphasecong3`` (Kovesi's phasecong2 defaults)
DEFAULTS = dict(nscale=4, norient=6, min_wavelength=3.0, mult=2.1, sigma_onf=0.55, d_theta_on_sigma=1.2,
                k=2.0, cut_off=0.5, g=10.0)


@dataclass(frozen=True)
class PhaseCongruency:
    """The three maps the Q_P metric uses: overall phase congruency, maximum and minimum moment."""

    pc: np.ndarray
    max_moment: np.ndarray
    min_moment: np.ndarray


def _axis_range(n: int) -> np.ndarray:
    if n % 2:
        return (np.arange(n, dtype=np.float64) - (n - 1) / 2.0) / max(n - 1, 1)
    return (np.arange(n, dtype=np.float64) - n / 2.0) / n


def _negate_freq(a: np.ndarray) -> np.ndarray:
    """a(-k) for an array in FFT layout (index negation modulo the size on both axes)."""
    return np.roll(a[::-1, ::-1], (1, 1), axis=(0, 1))


@dataclass(frozen=True)
class _Bank:
    filters: tuple            # filters[o][s], real, FFT layout
    em_n: tuple               # Σ filter_{o,0}² per orientation
    sum_an2: tuple            # Σ_s Σ_x ifftFilt_s² per orientation
    sum_aiaj: tuple           # Σ_{i<j} Σ_x ifftFilt_i ifftFilt_j per orientation
    angles: tuple


@lru_cache(maxsize=8)
def _bank(rows: int, cols: int, nscale: int, norient: int, min_wavelength: float, mult: float,
          sigma_onf: float, d_theta_on_sigma: float) -> _Bank:
    x, y = np.meshgrid(_axis_range(cols), _axis_range(rows))
    radius = np.sqrt(x * x + y * y)
    lowpass = np.fft.ifftshift(1.0 / (1.0 + (radius / 0.45) ** 30))     # Kovesi's lowpassfilter(.45, 15)
    radius[rows // 2, cols // 2] = 1.0
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    radius = np.fft.ifftshift(radius)
    sin_t, cos_t = np.sin(theta), np.cos(theta)

    log_sig = 2.0 * math.log(sigma_onf) ** 2
    log_gabor = []
    for s in range(nscale):
        fo = 1.0 / (min_wavelength * mult ** s)
        lg = np.exp(-(np.log(radius / fo) ** 2) / log_sig) * lowpass
        lg[0, 0] = 0.0
        log_gabor.append(lg)

    theta_sigma = math.pi / norient / d_theta_on_sigma
    filters, em_n, sum_an2, sum_aiaj, angles = [], [], [], [], []
    for o in range(norient):
        angl = o * math.pi / norient
        ds = sin_t * math.cos(angl) - cos_t * math.sin(angl)
        dc = cos_t * math.cos(angl) + sin_t * math.sin(angl)
        dtheta = np.abs(np.arctan2(ds, dc))
        spread = np.exp(-(dtheta * dtheta) / (2.0 * theta_sigma * theta_sigma))
        fo_list = tuple(lg * spread for lg in log_gabor)
        for h in fo_list:
            h.flags.writeable = False                  # cached: shared between calls
        # real(ifft2(H))·√N has spectrum (H(k) + H(-k))/2; by Parseval Σ_x of products = Σ_k of spectrum products.
        even = [0.5 * (h + _negate_freq(h)) for h in fo_list]
        an2 = float(sum(np.sum(e * e) for e in even))
        aiaj = float(sum(np.sum(even[i] * even[j]) for i in range(nscale - 1) for j in range(i + 1, nscale)))
        filters.append(fo_list)
        em_n.append(float(np.sum(fo_list[0] ** 2)))
        sum_an2.append(an2)
        sum_aiaj.append(aiaj)
        angles.append(angl)
    return _Bank(tuple(filters), tuple(em_n), tuple(sum_an2), tuple(sum_aiaj), tuple(angles))


def phase_congruency(image: np.ndarray, *, nscale: int = 4, norient: int = 6, min_wavelength: float = 3.0,
                     mult: float = 2.1, sigma_onf: float = 0.55, d_theta_on_sigma: float = 1.2, k: float = 2.0,
                     cut_off: float = 0.5, g: float = 10.0) -> PhaseCongruency:
    """Phase congruency, maximum and minimum moment of a 2-D float image (see the module docstring)."""
    im = np.asarray(image, dtype=np.float64)
    if im.ndim != 2:
        raise ValueError(f"phase_congruency expects a 2-D image, got shape {im.shape}")
    rows, cols = im.shape
    bank = _bank(rows, cols, int(nscale), int(norient), float(min_wavelength), float(mult), float(sigma_onf),
                 float(d_theta_on_sigma))
    spectrum = sfft.fft2(im)
    total_energy = np.zeros_like(im)
    total_sum_an = np.zeros_like(im)
    covx2 = np.zeros_like(im)
    covy2 = np.zeros_like(im)
    covxy = np.zeros_like(im)
    log_half = math.log(0.5)
    for o in range(norient):
        sum_e = np.zeros_like(im)
        sum_o = np.zeros_like(im)
        sum_an = np.zeros_like(im)
        max_an = None
        responses = []
        median_e2n = 0.0
        for s in range(nscale):
            eo = sfft.ifft2(spectrum * bank.filters[o][s], overwrite_x=True)
            e, od = eo.real, eo.imag
            an = np.abs(eo)
            sum_an += an
            sum_e += e
            sum_o += od
            if s == 0:
                max_an = an
                median_e2n = float(np.median(an * an))
            else:
                max_an = np.maximum(max_an, an)
            responses.append((e, od))
        x_energy = np.sqrt(sum_e * sum_e + sum_o * sum_o) + EPSILON
        mean_e = sum_e / x_energy
        mean_o = sum_o / x_energy
        energy = np.zeros_like(im)
        for e, od in responses:
            energy += e * mean_e + od * mean_o - np.abs(e * mean_o - od * mean_e)

        mean_e2n = -median_e2n / log_half
        noise_power = mean_e2n / bank.em_n[o]
        est_noise_energy2 = 2.0 * noise_power * bank.sum_an2[o] + 4.0 * noise_power * bank.sum_aiaj[o]
        tau = math.sqrt(max(est_noise_energy2, 0.0) / 2.0)
        est_noise_energy = tau * math.sqrt(math.pi / 2.0)
        est_noise_sigma = math.sqrt((2.0 - math.pi / 2.0) * tau * tau)
        threshold = (est_noise_energy + k * est_noise_sigma) / 1.7
        energy = np.maximum(energy - threshold, 0.0)

        width = sum_an / (max_an + EPSILON) / nscale
        weight = 1.0 / (1.0 + np.exp((cut_off - width) * g))
        energy_o = weight * energy
        total_sum_an += sum_an
        total_energy += energy_o

        nonzero = sum_an != 0
        pc_o = np.where(nonzero, energy_o / np.where(nonzero, sum_an, 1.0), 0.0)
        angl = bank.angles[o]
        cx = pc_o * math.cos(angl)
        cy = pc_o * math.sin(angl)
        covx2 += cx * cx
        covy2 += cy * cy
        covxy += cx * cy

    pc = total_energy / (total_sum_an + EPSILON)
    covx2 /= norient / 2.0
    covy2 /= norient / 2.0
    covxy /= norient
    denom = np.sqrt(covxy * covxy + (covx2 - covy2) ** 2) + EPSILON
    big = (covy2 + covx2 + denom) / 2.0
    small = (covy2 + covx2 - denom) / 2.0
    return PhaseCongruency(pc, big, small)
