"""DFP metrics mg, ei, ie, mga, eco and rmg, rei, rie, rmga, reco (DFP §4.2, Eqs. 24-28) and the reference metrics
psnr, ssim: hand-computed values on tiny arrays, ideal values, symmetry, colour handling, regression values on the
shared data, registration.

Regression values: ``shared/data/metric-vectors/regression_values.csv`` rows MG, EI and SSIM_sum (grey 01/cnn,
Lytro 01/cnn) are matched with ``color="gray"`` (MATLAB rgb2gray, 8-bit rounding: the convention of those rows); they
are self-computed values from ``shared/notes/metrics.md`` §4.5, not published references. SSIM_sum is
SSIM(F, A) + SSIM(F, B) with Wang's settings: our ``ssim`` against each source as the "reference", summed here. The
rows MI_bits, MI_nats, VIFP_sum and VIFF belong to other metrics. MGA, IE (log2: 9.5059) and ECO (5.05e7) on
clock/CNN come from the notes' text (§4.5, §3.14), not from the CSV.
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import ndimage

from conftest import shared_data
from fusionkit.imaging import LUMA
from fusionkit.interfaces import Metric, UnsupportedInput
from fusionkit.io import read_image
from fusionkit.registry import build_catalog
from fusionkit_plugins.metrics.dfp_relative import (ECO, EI, IE, MG, MGA, RECO, REI, RIE, RMG, RMGA, eco_kernels,
                                                    eco_responses)
from fusionkit_plugins.metrics.reference import PSNR, SSIM, RGB2GRAY

ABSOLUTE = (MG, EI, IE, MGA, ECO)
RELATIVE = (RMG, REI, RIE, RMGA, RECO)
LG2 = math.log10(2.0)


def rng_image(*shape: int, seed: int = 0, levels: bool = False) -> np.ndarray:
    x = np.random.default_rng(seed).random(shape)
    return np.round(x * 255) / 255 if levels else x


def impulse(size: int = 3, v: float = 1.0) -> np.ndarray:
    x = np.zeros((size, size))
    x[size // 2, size // 2] = v
    return x


def ramp(h: int, w: int, d: float) -> np.ndarray:
    return np.tile(np.arange(w) * d, (h, 1))


def two_level(h: int, w: int, dark_cols: int) -> np.ndarray:
    x = np.ones((h, w))
    x[:, :dark_cols] = 0.0
    return x


# --------------------------------------------------------------------------------------------------------- MG


def test_mg_average_gradient_by_hand():
    # [[0,1],[2,3]]: gx = 1, gy = 2 everywhere (one-sided differences) -> 4 sqrt((1+4)/2) / ((2-1)(2-1))
    x = np.array([[0.0, 1.0], [2.0, 3.0]]) / 255.0
    assert MG()(x, None) == pytest.approx(4 * math.sqrt(2.5), rel=1e-12)
    assert MG(form="abs_sum")(x, None) == pytest.approx(3.0, rel=1e-12)
    # impulse 1 at the centre of 3x3 (scale 1): gx = +-1 at (1,0),(1,2) (one-sided), gy = +-1 at (0,1),(2,1);
    # the centre's central differences are 0 -> sum 4/sqrt(2), divided by (3-1)(3-1)
    assert MG(scale=1.0)(impulse(), None) == pytest.approx(math.sqrt(2) / 2, rel=1e-12)
    assert MG(scale=1.0, form="abs_sum")(impulse(), None) == pytest.approx(4 / 9, rel=1e-12)
    # a ramp of slope d on 3x4: every pixel sqrt(d^2/2), 12 of them over 2*3
    assert MG(scale=1.0)(ramp(3, 4, 0.1), None) == pytest.approx(math.sqrt(2) * 0.1, rel=1e-12)


def test_mg_needs_two_rows_and_columns():
    with pytest.raises(UnsupportedInput, match="2x2"):
        MG()(np.zeros((1, 5)), None)
    assert MG(form="abs_sum", scale=1.0)(np.array([[0.0, 0.5, 1.0]]), None) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------------------- EI


def test_ei_sobel_by_hand():
    # 3x3 impulse (scale 1), replicate padding: edge neighbours see Sobel weight 2, corners weight (1, 1), the centre 0
    sq = [4.0] * 4 + [2.0] * 4 + [0.0]
    assert EI(scale=1.0)(impulse(), None) == pytest.approx((8 + 4 * math.sqrt(2)) / 9, rel=1e-12)
    assert EI(scale=1.0, form="rms")(impulse(), None) == pytest.approx(math.sqrt(sum(sq) / 9), rel=1e-12)
    assert EI(scale=1.0, form="printed")(impulse(), None) == pytest.approx(math.sqrt(sum(sq)) / 9, rel=1e-12)
    assert EI()(impulse(), None) == pytest.approx(255 * (8 + 4 * math.sqrt(2)) / 9, rel=1e-12)


def test_ei_replicate_padding_makes_a_ramp_uniform():
    # a horizontal ramp of slope d: Sobel = (1+2+1) x (difference over 2 columns) = 8d inside; on the first and
    # last columns replicate padding makes it a difference over 1 column: 4d. gy = 0.
    d = 0.1
    x = ramp(4, 5, d)
    per_col = np.array([4 * d, 8 * d, 8 * d, 8 * d, 4 * d])
    assert EI(scale=1.0)(x, None) == pytest.approx(per_col.mean(), rel=1e-12)


# --------------------------------------------------------------------------------------------------------- IE


def test_ie_two_dimensional_entropy_by_hand():
    # 4x4, column 0 dark, columns 1-3 white: pairs (i, j) = (0,85) x4, (255,170) x4, (255,255) x8 -> 1.5 bits
    x = two_level(4, 4, 1)
    assert IE()(x, None) == pytest.approx(1.5 * LG2, rel=1e-12)               # 'lg' = log10 by default
    assert IE(log_base=2)(x, None) == pytest.approx(1.5, rel=1e-12)
    assert IE(log_base=math.e)(x, None) == pytest.approx(1.5 * math.log(2), rel=1e-12)
    assert IE(neighbourhood="8", log_base=2)(x, None) == pytest.approx(1.5, rel=1e-12)     # (0,96),(255,159),(255,255)
    # 1-D entropy: levels 0 (1/4) and 255 (3/4)
    en = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert IE(neighbourhood="none", log_base=2)(x, None) == pytest.approx(en, rel=1e-12)
    # two dark columns: (0,0), (0,85), (255,170), (255,255), four each -> 2 bits
    assert IE(log_base=2)(two_level(4, 4, 2), None) == pytest.approx(2.0, rel=1e-12)
    assert IE()(np.full((5, 6), 0.3), None) == 0.0


def test_ie_neighbourhoods_and_half_away_rounding():
    # 5x5 zeros with grey level 4 at the centre. Its 8 neighbours: 3x3 mean 4/9 -> j = 0, 8-neighbour mean
    # 4/8 = 0.5 -> j = 1 (half away from zero; numpy's round would give 0). The centre: j = round(4/9) = 0 either way.
    x = impulse(5, 4 / 255)
    h3 = -(24 / 25 * math.log2(24 / 25) + 1 / 25 * math.log2(1 / 25))                      # (0,0) x24, (4,0) x1
    h8 = -(16 / 25 * math.log2(16 / 25) + 8 / 25 * math.log2(8 / 25) + 1 / 25 * math.log2(1 / 25))
    assert IE(log_base=2)(x, None) == pytest.approx(h3, rel=1e-12)
    assert IE(log_base=2, neighbourhood="8")(x, None) == pytest.approx(h8, rel=1e-12)
    # a bright pixel: (255, 28) x1, (0, 28) x8, (0, 0) x16 with the 3x3 mean; (255, 0), (0, 32) x8, (0, 0) x16 with 8
    h = -(1 / 25 * math.log2(1 / 25) + 8 / 25 * math.log2(8 / 25) + 16 / 25 * math.log2(16 / 25))
    assert IE(log_base=2)(impulse(5), None) == pytest.approx(h, rel=1e-12)
    assert IE(log_base=2, neighbourhood="8")(impulse(5), None) == pytest.approx(h, rel=1e-12)


def test_ie_ignores_scale_and_rounds_levels():
    x = rng_image(9, 7, seed=3)
    assert IE()(x, None) == IE()(np.round(x * 255) / 255, None)


# -------------------------------------------------------------------------------------------------------- MGA


def test_mga_and_colour_modes():
    red = np.zeros((3, 4, 3))
    red[:, :, 0] = 1.0
    assert MGA()(red, None) == pytest.approx(255 * LUMA[0], rel=1e-12)             # BT.601 luma by default
    assert MGA(color="gray")(red, None) == pytest.approx(76.0)                    # round(255 * 0.298936) = 76
    assert MGA(color="channel_mean")(red, None) == pytest.approx(85.0)              # (255 + 0 + 0) / 3
    assert MGA(scale=1.0)(np.full((2, 2), 0.25), None) == 0.25
    assert round(255 * RGB2GRAY[0]) == 76


# -------------------------------------------------------------------------------------------------------- ECO


def eco_tap_sum(sigma: float = 2.0) -> float:
    """Σ over the 17x17 taps of |L3||L1| = g² |z|⁴ / 6, written out independently of the module."""
    t = np.linspace(-8.5, 8.5, 17)
    r2 = t[None, :] ** 2 + t[:, None] ** 2
    g = np.exp(-r2 / (2 * sigma ** 2)) / (sigma * math.sqrt(math.pi))
    return float(np.sum(g * g * (r2 / sigma ** 2) ** 2 / 6.0))


def test_eco_of_an_impulse_by_hand():
    # y1, y3 of an impulse are the kernels themselves: angle(L3) - 3 angle(L1) = -2 pi, cos = 1,
    # so ECO = -v² Σ|L3||L1| (the image is large enough for the reflections not to reach the impulse)
    k = eco_tap_sum()
    assert ECO(scale=1.0)(impulse(41), None) == pytest.approx(-k, rel=1e-10)
    assert ECO()(impulse(41, 0.5), None) == pytest.approx(-(0.5 * 255) ** 2 * k, rel=1e-10)
    assert ECO()(np.full((20, 20), 0.7), None) == pytest.approx(0.0, abs=1e-12)


def test_eco_separable_filters_equal_the_2d_kernels():
    x = rng_image(23, 30, seed=5)
    l1, l3 = eco_kernels()
    assert l1.shape == l3.shape == (17, 17)
    y1, y3 = eco_responses(x)
    for y, k in ((y1, l1), (y3, l3)):
        ref = ndimage.convolve(x, k.real, mode="reflect") + 1j * ndimage.convolve(x, k.imag, mode="reflect")
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)


def test_eco_scale_and_grid_invariances():
    x = rng_image(21, 21, seed=6)
    e = ECO(scale=1.0)(x, None)
    assert ECO()(x, None) == pytest.approx(255 ** 2 * e, rel=1e-10)            # scales with intensity²
    for y in (np.rot90(x), np.fliplr(x), np.flipud(x), x.T):
        assert ECO(scale=1.0)(np.ascontiguousarray(y), None) == pytest.approx(e, rel=1e-9)


# ---------------------------------------------------------------------------------------------------- relative


def test_relative_metrics_by_hand():
    f, a, b = np.full((3, 4), 0.5), np.full((3, 4), 0.2), np.full((3, 4), 0.4)
    assert RMGA()(f, [a, b]) == pytest.approx(abs(127.5 - 0.5 * (51.0 + 102.0)))      # 51
    # ramps on 3x4: MG = sqrt(2) * slope
    assert RMG(scale=1.0)(ramp(3, 4, 0.2), [ramp(3, 4, 0.1), np.zeros((3, 4))]) == pytest.approx(
        math.sqrt(2) * (0.2 - 0.05), rel=1e-12)
    # impulses: EI is linear in the amplitude
    ei1 = (8 + 4 * math.sqrt(2)) / 9
    assert REI(scale=1.0)(impulse(), [impulse(v=0.5), np.zeros((3, 3))]) == pytest.approx(ei1 * 0.75, rel=1e-12)
    # IE: 1.5 bits against (0 + 2 bits)/2 -> 0.5 bit = 0.5 lg 2
    assert RIE()(two_level(4, 4, 1), [np.full((4, 4), 0.3), two_level(4, 4, 2)]) == pytest.approx(0.5 * LG2, rel=1e-12)
    assert RIE(log_base=2)(two_level(4, 4, 1), [np.full((4, 4), 0.3), two_level(4, 4, 2)]) == pytest.approx(0.5)


def test_reco_is_eq_28_for_two_sources_and_the_mean_ratio_for_n():
    k = eco_tap_sum()
    e_f, e_a, e_b, e_c = -k, -4 * k, -9 * k, -0.25 * k                # ECO of impulses of amplitude 1, 2, 3, 0.5
    f, a, b, c3 = impulse(41), impulse(41, 2.0), impulse(41, 3.0), impulse(41, 0.5)
    c = 10.0
    eq28 = abs(2 - (e_f + c) / (e_a + c) - (e_f + c) / (e_b + c))
    assert RECO(scale=1.0, c=c)(f, [a, b]) == pytest.approx(eq28, rel=1e-9)
    ratios = [(e_f + c) / (e + c) for e in (e_a, e_b, e_c)]
    assert RECO(scale=1.0, c=c)(f, [a, b, c3]) == pytest.approx(2 * abs(1 - np.mean(ratios)), rel=1e-9)
    # the constant C: all-flat images have ECO 0, the ratio is C/C = 1
    flat = np.full((20, 20), 0.4)
    assert RECO()(flat, [flat, np.full((20, 20), 0.9)]) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(UnsupportedInput, match="undefined"):
        RECO(c=0.0)(impulse(20), [flat, flat])


@pytest.mark.parametrize("cls", RELATIVE, ids=lambda c: c.name)
@pytest.mark.parametrize("color", ["luma", "gray", "channel_mean"])
def test_relative_ideal_symmetry_and_n_sources(cls, color):
    x = rng_image(24, 24, 3, seed=1)
    m = cls(color=color)
    assert cls.ideal == 0.0 and cls.higher_is_better is False and cls.requires == "sources"
    assert m(x, [x, x]) == pytest.approx(0.0, abs=1e-12)
    assert m(x, [x, x, x]) == pytest.approx(0.0, abs=1e-9)
    f, a, b, c = (rng_image(24, 24, 3, seed=s) for s in (2, 3, 4, 5))
    a = ndimage.uniform_filter(a, size=(3, 3, 1))                                # sources differ in sharpness
    assert m(f, [a, b]) == pytest.approx(m(f, [b, a]), rel=1e-9, abs=1e-12)   # symmetric in the sources
    assert m(f, [a, b, c]) == pytest.approx(m(f, [c, a, b]), rel=1e-9, abs=1e-12)
    value = m(f, [a, b])
    assert isinstance(value, float) and math.isfinite(value) and value >= 0.0


@pytest.mark.parametrize("cls", RELATIVE, ids=lambda c: c.name)
def test_relative_is_the_absolute_difference(cls):
    base = next(b for b in ABSOLUTE if issubclass(cls, b))
    f, a, b = (rng_image(20, 20, seed=s) for s in (7, 8, 9))
    xf, xa, xb = (base()(im, None) for im in (f, a, b))
    if cls is RECO:
        expected = abs(2 - (xf + 1) / (xa + 1) - (xf + 1) / (xb + 1))
    else:
        expected = abs(xf - (xa + xb) / 2)
    assert cls()(f, [a, b]) == pytest.approx(expected, rel=1e-12)


def test_absolute_metrics_ignore_the_sources():
    x = rng_image(16, 16, seed=2)
    for cls in ABSOLUTE:
        assert cls.ideal is None and cls.higher_is_better is True
        assert cls()(x, None) == cls()(x, []) == cls()(x, [rng_image(16, 16, seed=3)] * 2)


@pytest.mark.parametrize("cls", ABSOLUTE + RELATIVE, ids=lambda c: c.name)
def test_gray_and_rgb_of_a_gray_image_agree(cls):
    g = rng_image(18, 18, seed=4, levels=True)                          # 8-bit levels: gray's rounding is exact
    rgb = np.repeat(g[:, :, None], 3, axis=2)
    srcs = [rng_image(18, 18, seed=5, levels=True), rng_image(18, 18, seed=6, levels=True)]
    for color in ("luma", "gray", "channel_mean"):
        m = cls(color=color)
        assert m(rgb, srcs) == pytest.approx(m(g, srcs), rel=1e-9, abs=1e-9)
        assert m(g[:, :, None], srcs) == m(g, srcs)                      # [H, W, 1] is grey


def test_input_errors():
    x = rng_image(8, 8, seed=0)
    with pytest.raises(UnsupportedInput, match="at least 1 source"):
        RMG()(x, [])
    with pytest.raises(UnsupportedInput, match="is 6x8 but the fused image is 8x8"):
        RMG()(x, [x, rng_image(6, 8)])
    with pytest.raises(UnsupportedInput, match=r"\[H, W\] or \[H, W, 3\]"):
        MG()(np.zeros((8, 8, 2)), None)
    with pytest.raises(UnsupportedInput, match="NaN"):
        MG()(np.full((4, 4), np.nan), None)
    with pytest.raises(ValidationError):
        MG(color="hsv")
    with pytest.raises(ValidationError):
        IE(log_base=1.0)
    with pytest.raises(ValidationError):
        EI(scale=0)


# ------------------------------------------------------------------------------------------------ psnr / ssim


def test_psnr_by_hand():
    zero, tenth = np.zeros((4, 5)), np.full((4, 5), 0.1)
    assert PSNR()(zero, None, tenth) == pytest.approx(20.0, rel=1e-12)          # MSE 0.01, L = 1
    assert PSNR()(tenth, None, zero) == PSNR()(zero, None, tenth)              # symmetric
    a = rng_image(6, 7, 3, seed=1)
    b = a.copy()
    b[:, :, 0] += 0.1                                                           # R off by 0.1 everywhere
    assert PSNR(color="rgb")(b, None, a) == pytest.approx(10 * math.log10(3 / 0.01), rel=1e-9)
    assert PSNR()(b, None, a) == pytest.approx(-20 * math.log10(LUMA[0] * 0.1), rel=1e-9)
    assert PSNR(color="y_studio")(b, None, a) == pytest.approx(-20 * math.log10(65.481 / 255 * 0.1), rel=1e-9)


def test_psnr_identical_is_inf_or_the_cap():
    x = rng_image(8, 8, 3, seed=2)
    assert PSNR.ideal == math.inf and PSNR.requires == "reference" and PSNR.higher_is_better
    assert PSNR()(x, None, x) == math.inf
    assert PSNR(max_db=60)(x, None, x) == 60.0
    assert PSNR(max_db=60)(np.zeros((3, 3)), None, np.full((3, 3), 0.1)) == pytest.approx(20.0)
    y = x.copy()
    y[0, :, :] = 0.0                                                            # differs only on the border
    assert PSNR(crop=1)(y, None, x) == math.inf and PSNR()(y, None, x) < 100
    with pytest.raises(UnsupportedInput, match="reference"):
        PSNR()(x, [x, x])
    with pytest.raises(UnsupportedInput, match="crop"):
        PSNR(crop=4)(x, None, x)


def ssim_window(x: np.ndarray, y: np.ndarray, w: np.ndarray, sample: bool) -> float:
    """SSIM of one window with weights ``w`` (summing to 1), written out from Wang et al. (L = 1)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy, cxy = (w * x * x).sum() - mx * mx, (w * y * y).sum() - my * my, (w * x * y).sum() - mx * my
    if sample:
        n = x.size
        vx, vy, cxy = (v * n / (n - 1) for v in (vx, vy, cxy))
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def test_ssim_by_hand():
    # 11x11: one window inside the image, Gaussian sigma 1.5 weights, population covariances (Wang's ssim_index)
    x, y = rng_image(11, 11, seed=3), rng_image(11, 11, seed=4)
    g = np.exp(-np.arange(-5, 6) ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    assert SSIM()(x, None, y) == pytest.approx(ssim_window(x, y, w, sample=False), rel=1e-9)
    # 7x7: one uniform window, sample covariances (scikit-image's defaults)
    x7, y7 = x[:7, :7], 0.5 * x[:7, :7] + 0.5 * y[:7, :7]
    assert SSIM(window="uniform")(x7, None, y7) == pytest.approx(
        ssim_window(x7, y7, np.full((7, 7), 1 / 49), sample=True), rel=1e-9)


def test_ssim_ideal_symmetry_and_colour():
    x, y = rng_image(16, 16, 3, seed=5), rng_image(16, 16, 3, seed=6)
    assert SSIM.ideal == 1.0 and SSIM.requires == "reference"
    for color in ("luma", "y_studio", "gray", "rgb"):
        assert SSIM(color=color)(x, None, x) == pytest.approx(1.0)
        assert SSIM(color=color)(x, None, y) == pytest.approx(SSIM(color=color)(y, None, x), rel=1e-12)
    per_channel = [SSIM()(x[:, :, c], None, y[:, :, c]) for c in range(3)]
    assert SSIM(color="rgb")(x, None, y) == pytest.approx(np.mean(per_channel), rel=1e-12)
    luma = lambda im: im @ np.array(LUMA)                                      # noqa: E731
    assert SSIM()(x, None, y) == pytest.approx(SSIM()(luma(x), None, luma(y)), rel=1e-12)
    with pytest.raises(UnsupportedInput, match="at least 11x11"):
        SSIM()(x[:10, :10], None, y[:10, :10])
    assert math.isfinite(SSIM(window="uniform")(x[:10, :10], None, y[:10, :10]))


# ------------------------------------------------------------------------------------------------ regression


def regression_rows() -> dict[tuple[str, str], float]:
    path = shared_data("metric-vectors") / "regression_values.csv"
    with open(path, newline="") as fh:
        return {(r["dataset"], r["metric"]): float(r["value"]) for r in csv.DictReader(fh)}


def load_triple(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    root = shared_data("metric-vectors").parent
    if dataset == "grayscale":
        names = ("metric-vectors/grayscale/01_cnn.tif", "grayscale/01_A.tif", "grayscale/01_B.tif")
    else:
        names = ("metric-vectors/lytro/01_cnn.tif", "lytro/01_A.jpg", "lytro/01_B.jpg")
    return tuple(read_image(root / n)[0].astype(np.float64) for n in names)


@pytest.mark.parametrize("dataset", ["grayscale", "lytro"])
def test_regression_values_mg_ei_ssim(dataset):
    rows = regression_rows()
    f, a, b = load_triple(dataset)
    assert MG(color="gray")(f, None) == pytest.approx(rows[(dataset, "MG")], abs=1e-5)
    assert EI(color="gray")(f, None) == pytest.approx(rows[(dataset, "EI")], abs=1e-5)
    ssim = SSIM(color="gray")
    assert ssim(f, None, a) + ssim(f, None, b) == pytest.approx(rows[(dataset, "SSIM_sum")], abs=1e-5)
    if dataset == "lytro":          # the default BT.601 luma (unrounded) is close but not the rows' convention
        assert MG()(f, None) == pytest.approx(rows[(dataset, "MG")], rel=1e-3)
        assert MG()(f, None) != pytest.approx(rows[(dataset, "MG")], abs=1e-5)


def test_notes_values_on_clock():
    """shared/notes/metrics.md §4.5 / §3.14 (self-computed): MGA 77.71377, IE 9.5059 bits / 2.8615 lg, ECO 5.05e7."""
    f, a, b = load_triple("grayscale")
    assert MGA()(f, None) == pytest.approx(77.71377, abs=1e-5)
    assert IE(log_base=2)(f, None) == pytest.approx(9.5059, abs=1e-4)
    assert IE()(f, None) == pytest.approx(2.8615, abs=1e-4)
    assert ECO()(f, None) == pytest.approx(5.05e7, rel=1e-3)
    assert ECO(scale=1.0)(f, None) == pytest.approx(777, rel=1e-3)


# ------------------------------------------------------------------------------------------------ registration


def test_registered_under_kind_metric():
    catalog = build_catalog()
    expected = {cls.name: cls for cls in ABSOLUTE + RELATIVE + (PSNR, SSIM)}
    assert set(expected) == {"mg", "ei", "ie", "mga", "eco", "rmg", "rei", "rie", "rmga", "reco", "psnr", "ssim"}
    for name, cls in expected.items():
        info = catalog.get("metric", name)
        assert info.cls is cls and info.dist == "fusionkit" and issubclass(cls, Metric) and cls.kind == "metric"
        assert cls.ideal is None or isinstance(cls.ideal, float)
