"""Source-based fusion metrics of ``fusionkit_plugins.metrics.gradient_info``: q_g, mi, q_mi, q_ncie, q_y, q_c, q_s.

Three layers: values worked out by hand on tiny arrays (each formula and constant), properties (F = A = B gives the
ideal, symmetry in the two sources, N-source handling, colour conventions, input errors), and the published
per-image values of Yu Liu's survey on our own grey and Lytro pairs (``shared/data/metric-vectors``), each within its
``tolerances.csv`` bound. The real-data tests skip when ``shared/data`` is absent.
"""
from __future__ import annotations

import csv
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from fusionkit.interfaces import Metric, UnsupportedInput
from fusionkit.io import read_image
from fusionkit_plugins.metrics import gradient_info as gi
from fusionkit_plugins.metrics.gradient_info import MI, QC, QG, QMI, QNCIE, QS, QY

from conftest import texture as shared_texture

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VECTORS = DATA / "metric-vectors"

ALL = [QG, MI, QMI, QNCIE, QY, QC, QS]
QG_MAX = 0.9994 / (1 + math.exp(-15 * 0.5)) * 0.9879 / (1 + math.exp(-22 * 0.2))


def texture(seed: int, size: int = 32, smooth: int = 2) -> np.ndarray:
    return shared_texture(seed, size, smooth)


@pytest.fixture(scope="module")
def abf():
    """A multi-focus-like triple: A sharp on the left, B sharp on the right, F a patchwork."""
    sharp = texture(0, 48, 1)
    blur = texture(0, 48, 1)
    pad = np.pad(blur, 3, mode="edge")
    c = np.cumsum(np.cumsum(np.pad(pad, ((1, 0), (1, 0))), 0), 1)
    blur = (c[7:, 7:] - c[:-7, 7:] - c[7:, :-7] + c[:-7, :-7]) / 49.0
    left = np.arange(48) < 24
    a = np.where(left, sharp, blur)
    b = np.where(left, blur, sharp)
    f = np.where(np.arange(48) < 20, sharp, np.where(np.arange(48) < 28, 0.5 * (sharp + blur), sharp))
    return a, b, f


# ------------------------------------------------------------------------------------------------- registration


def test_module_exports_every_metric_with_its_contract():
    assert gi.METRICS == (QG, MI, QMI, QNCIE, QY, QC, QS)
    assert [c.name for c in gi.METRICS] == ["q_g", "mi", "q_mi", "q_ncie", "q_y", "q_c", "q_s"]
    for cls in gi.METRICS:
        assert issubclass(cls, Metric) and cls.kind == "metric" and cls.requires == "sources"
        assert cls.higher_is_better is True
        assert "ideal" in cls.__dict__, f"{cls.name} states its ideal value"
        assert cls.Params().color == "gray" and cls.Params().quantize is True
    assert QG.ideal == pytest.approx(0.974794, abs=5e-7) and QMI.ideal == 2.0
    assert QY.ideal == QC.ideal == QS.ideal == 1.0 and MI.ideal is None and QNCIE.ideal is None


def test_params_reject_unknown_values():
    with pytest.raises(ValidationError):
        QG(color="luma")
    with pytest.raises(ValidationError):
        MI(unit="bans")
    with pytest.raises(ValidationError):
        QS(window="gaussian7")
    with pytest.raises(ValidationError):
        QC(clip="both")


# ------------------------------------------------------------------------------------------- small helpers by hand


def test_round_half_away_from_zero_like_matlab():
    x = np.array([0.5, 1.5, 2.5, 2.4999, -0.5, -1.5, 254.5])
    np.testing.assert_array_equal(gi._round_half_away(x), [1, 2, 3, 2, -1, -2, 255])


def test_normalize1_stretches_and_rounds():
    x = np.array([[10.0, 20.0], [30.0, 10.0 + 20.0 * 0.5 / 255 * 2]])
    # (x - 10) / 20 * 255: 0, 127.5 -> 128, 255, 1.0 -> 1
    np.testing.assert_array_equal(gi.normalize1(x), [[0, 128], [255, 1]])
    np.testing.assert_array_equal(gi.normalize1(np.zeros((2, 2))), np.zeros((2, 2)))
    np.testing.assert_array_equal(gi.normalize1(np.full((2, 2), 7.0)), np.zeros((2, 2)))


def test_matlab_rgb2gray_weights_and_rounding():
    px = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [100 / 255, 150 / 255, 200 / 255]]])
    planes = gi.prepare(px, [px, px], QG.Params(), "test")
    f, _ = planes[0]
    # 255*0.298936 = 76.229 -> 76; 149.696 -> 150; 29.075 -> 29; 29.894 + 88.056 + 22.804 = 140.754 -> 141
    np.testing.assert_array_equal(f, [[76, 150, 29, 141]])
    unrounded = gi.prepare(px, [px, px], QG.Params(quantize=False), "test")[0][0]
    np.testing.assert_allclose(unrounded[0, :3], [76.22868543, 149.69598396, 29.07533059], atol=1e-7)


def test_sobel_is_zero_padded_correlation():
    x = np.arange(12, dtype=float).reshape(3, 4) ** 2
    sx, sy = gi._sobel(x)
    p = np.pad(x, 1)
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
    ref_x = np.array([[np.sum(kx * p[i:i + 3, j:j + 3]) for j in range(4)] for i in range(3)])
    ref_y = np.array([[np.sum(kx.T * p[i:i + 3, j:j + 3]) for j in range(4)] for i in range(3)])
    np.testing.assert_array_equal(sx, ref_x)
    np.testing.assert_array_equal(sy, ref_y)


def test_separable_valid_filter_matches_fspecial_correlation():
    rng = np.random.default_rng(3)
    x = rng.random((15, 13)) * 255
    g = gi._gaussian_taps(7, 1.5)
    yy, xx = np.mgrid[-3:4, -3:4]
    k = np.exp(-(xx ** 2 + yy ** 2) / (2 * 1.5 ** 2))
    k /= k.sum()
    ref = np.array([[np.sum(k * x[i:i + 7, j:j + 7]) for j in range(13 - 6)] for i in range(15 - 6)])
    np.testing.assert_allclose(gi._filter_valid(x, g), ref, rtol=1e-13, atol=1e-11)


# ------------------------------------------------------------------------------------------------ MI family by hand


def halves():
    """A: left 0 / right 1; B: top 0 / bottom 1 (independent of A, 1 bit each)."""
    a = np.zeros((4, 4))
    a[:, 2:] = 1.0
    b = np.zeros((4, 4))
    b[2:, :] = 1.0
    return a, b


def test_mi_and_q_mi_by_hand():
    a, b = halves()
    # F = A: MI(A,F) = H(A) = H(F) = 1 bit; MI(B,F) = 0 (the quadrants are equally likely)
    assert MI()(a, [a, b]) == pytest.approx(1.0, abs=1e-12)
    assert MI(unit="nats")(a, [a, b]) == pytest.approx(math.log(2), abs=1e-12)
    assert QMI()(a, [a, b]) == pytest.approx(2 * (1 / (1 + 1) + 0), abs=1e-12)
    # F = A = B = A: 2 * (1/2 + 1/2)
    assert QMI()(a, [a, a]) == pytest.approx(2.0, abs=1e-12)
    # N sources: MI sums over them; q_mi is pairwise only
    assert MI()(a, [a, b, a]) == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(UnsupportedInput, match="exactly 2 sources"):
        QMI()(a, [a, b, a])


def test_q_mi_is_invariant_to_affine_changes_of_f_by_normalize1():
    a, b = halves()
    assert QMI()(0.2 + 0.5 * a, [a, b]) == pytest.approx(QMI()(a, [a, b]), abs=1e-12)
    # without normalisation the two levels 0 and 255 are binned as they are and nothing changes either
    assert QMI(normalize=False)(a, [a, b]) == pytest.approx(1.0, abs=1e-12)


def test_constant_images_give_the_identity_limit_not_nan():
    c = np.full((4, 4), 0.3)
    assert QMI()(c, [c, c]) == 2.0
    assert MI()(c, [c, c]) == 0.0


def test_q_ncie_by_hand():
    a, b = halves()
    # NCC(A,B) = (1 + 1 - 2)/8 = 0, NCC(A,F) = (1 + 1 - 1)/8 = 1/8, NCC(B,F) = 0
    r = np.array([[1, 0, 1 / 8], [0, 1, 0], [1 / 8, 0, 1]])
    lam = np.linalg.eigvalsh(r) / 3
    expected = 1 + np.sum(lam * np.log(lam) / np.log(256))
    assert QNCIE()(a, [a, b]) == pytest.approx(expected, abs=1e-12)
    # F = A = B: R = [[1, 1/8, 1/8], ...] (NCC(X, X) = H(X)/8), so Q_NCIE(A, A, A) is not 1
    r = np.full((3, 3), 1 / 8) + np.eye(3) * (1 - 1 / 8)
    lam = np.linalg.eigvalsh(r) / 3
    assert QNCIE()(a, [a, a]) == pytest.approx(1 + np.sum(lam * np.log(lam) / np.log(256)), abs=1e-12)
    # N = 3 sources: a 4x4 matrix (K = 4)
    r4 = np.array([[1, 0, 1 / 8, 1 / 8], [0, 1, 0, 0], [1 / 8, 0, 1, 1 / 8], [1 / 8, 0, 1 / 8, 1]])
    lam = np.linalg.eigvalsh(r4) / 4
    assert QNCIE()(a, [a, b, a]) == pytest.approx(1 + np.sum(lam * np.log(lam) / np.log(256)), abs=1e-12)


# ---------------------------------------------------------------------------------------------------- Q_G by hand


def q_edge(g_rel, a_rel):
    return 0.9994 / (1 + np.exp(-15 * (g_rel - 0.5))) * 0.9879 / (1 + np.exp(-22 * (a_rel - 0.8)))


def test_q_g_of_a_halved_edge_image_by_hand():
    """F = A/2 halves every Sobel strength and keeps every orientation: G = 0.5, A = 1 wherever g_A > 0; flat
    pixels (g = 0 everywhere) count with G = A = 1 and weight 1e-5."""
    a = np.zeros((9, 9))
    a[:, 5:] = 1.0
    a[6:, :] += 0.5
    a /= a.max()
    f = 0.5 * a
    gx, gy = gi._sobel(a * 255)
    g = np.hypot(gx, gy)
    w = np.where(g == 0, 1e-5, g)
    expected = np.sum(np.where(g > 0, q_edge(0.5, 1.0), q_edge(1.0, 1.0)) * w) / np.sum(w)
    # 1e-7: where s_x = 0 the orientations are atan(s_y/1e-5) for A and atan(s_y/2e-5)-ish for F, not exactly equal
    assert QG(quantize=False)(f, [a, a]) == pytest.approx(expected, abs=1e-7)
    assert q_edge(0.5, 1.0) == pytest.approx(0.9994 / 2 * 0.9879 / (1 + math.exp(-4.4)), abs=1e-15)


def test_q_g_of_a_rotated_ramp_loses_the_orientation_term():
    """Ramp along x vs ramp along y: equal strengths (G = 1) but orthogonal orientations (A = 0) inside, where
    Q = 0.9994/(1+e^{-7.5}) · 0.9879/(1+e^{17.6}) ~ 2e-8; only the zero-padded border scores."""
    y, x = np.mgrid[0:16, 0:16] / 15.0
    assert q_edge(1.0, 0.0) < 3e-8
    assert QG()(y, [x, x]) < 0.25 < 0.95 < QG()(x, [x, x])


def test_q_g_maximum_is_0_974794():
    t = texture(1)
    assert QG()(t, [t, t]) == pytest.approx(QG_MAX, abs=1e-12)
    assert QG_MAX == pytest.approx(0.974794, abs=5e-7)     # the notes round it to 0.97479
    assert QG()(t, [t, t, t]) == pytest.approx(QG_MAX, abs=1e-12)   # N sources: joint pooling over all


def test_q_g_pools_jointly_over_the_sources(abf):
    a, b, f = abf
    # with F = A, the A terms are at the maximum and B's terms are weighted by B's strengths
    ga = np.hypot(*gi._sobel(np.round(a * 255)))
    gb = np.hypot(*gi._sobel(np.round(b * 255)))
    v = QG()(a, [a, b])
    lo = QG_MAX * ga.sum() / (ga.sum() + gb.sum())
    assert lo < v < QG_MAX


# -------------------------------------------------------------------------------------------- SSIM family by hand


def ssim_map_ref(x, y, n, sigma, c1, c2):
    """Direct 2-D correlation 'valid' SSIM map with fspecial('gaussian', n, sigma), written out independently."""
    r = (n - 1) // 2
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    k = np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))
    k /= k.sum()
    h, w = x.shape

    def filt(z):
        return np.array([[np.sum(k * z[i:i + n, j:j + n]) for j in range(w - n + 1)] for i in range(h - n + 1)])

    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx ** 2, filt(y * y) - my ** 2, filt(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))


def test_q_s_with_equal_sources_is_the_mean_ssim_index(abf):
    """A = B gives λ = 1/2, so Q_S = mean SSIM(F, A) of Wang's ssim_index (11x11 Gaussian, K = [0.01, 0.03])."""
    a, _, f = abf
    a8, f8 = np.round(a * 255), np.round(f * 255)
    ref = ssim_map_ref(f8, a8, 11, 1.5, (0.01 * 255) ** 2, (0.03 * 255) ** 2).mean()
    assert QS()(f, [a, a]) == pytest.approx(ref, abs=1e-12)
    from skimage.metrics import structural_similarity
    sk = structural_similarity(f8, a8, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                               data_range=255)
    assert QS()(f, [a, a]) == pytest.approx(sk, abs=1e-9)


def test_q_s_box8_is_the_uiqi_variant(abf):
    a, _, f = abf
    a8, f8 = np.round(a * 255), np.round(f * 255)
    c = (1e-6 * 255) ** 2
    box = np.ones((8, 8)) / 64
    h, w = a8.shape

    def filt(z):
        return np.array([[np.sum(box * z[i:i + 8, j:j + 8]) for j in range(w - 7)] for i in range(h - 7)])

    mx, my = filt(f8), filt(a8)
    vx, vy, cxy = filt(f8 * f8) - mx ** 2, filt(a8 * a8) - my ** 2, filt(f8 * a8) - mx * my
    ref = (((2 * mx * my + c) * (2 * cxy + c)) / ((mx ** 2 + my ** 2 + c) * (vx + vy + c))).mean()
    assert QS(window="box8")(f, [a, a]) == pytest.approx(ref, abs=1e-10)


def test_q_s_weights_by_local_variance():
    """A textured, B flat: λ = 1 everywhere, so Q_S = mean SSIM(F, A)."""
    a = texture(4, 24)
    b = np.full_like(a, 0.5)
    f = texture(5, 24)
    ref = ssim_map_ref(np.round(f * 255), np.round(a * 255), 11, 1.5, (0.01 * 255) ** 2, (0.03 * 255) ** 2).mean()
    assert QS()(f, [a, b]) == pytest.approx(ref, abs=1e-12)


def test_q_y_branches_by_hand():
    a = texture(6, 20)
    flat = np.full_like(a, 0.5)
    # SSIM(A, B) ~ 0 < 0.75 everywhere: the max branch. F = A -> max(1, .) = 1; F = B -> max(., 1) = 1, which needs
    # the exact flat-window handling (B and F constant: variances and covariance exactly 0, SSIM = 1).
    assert QY()(a, [a, flat]) == pytest.approx(1.0, abs=1e-12)
    assert QY()(flat, [a, flat]) == pytest.approx(1.0, abs=1e-12)
    # A = B: SSIM(A, B) = 1 >= 0.75, λ = 1/2: Q_Y = mean of SSIM(A, F) with C1 = C2 = 2e-16 (7x7 Gaussian)
    f = texture(7, 20)
    ref = ssim_map_ref(np.round(a * 255), np.round(f * 255), 7, 1.5, 2e-16, 2e-16).mean()
    assert QY()(f, [a, a]) == pytest.approx(ref, abs=1e-12)


def test_q_y_flat_in_both_sources_uses_lambda_one_half():
    """A = B flat: SSIM(A,B) = 1 >= 0.75 and σ_A² + σ_B² = 0, so the +0.5 guard gives λ = 1/2 (no NaN); with F
    flat at another level, both SSIMs are the luminance term."""
    a = np.full((9, 9), 0.4)
    f = np.full((9, 9), 0.6)
    # SSIM(A,F) = SSIM(B,F) = luminance term 2·a·f/(a² + f²) on 0-255 values
    av, fv = round(0.4 * 255), round(0.6 * 255)
    lum = (2 * av * fv + 2e-16) / (av ** 2 + fv ** 2 + 2e-16)
    assert QY()(f, [a, a]) == pytest.approx(lum, abs=1e-12)


def q_c_by_hand(a8, b8, f8):
    c = 2e-16
    qa, qb = ssim_map_ref(a8, f8, 7, 1.5, c, c), ssim_map_ref(b8, f8, 7, 1.5, c, c)
    r = 3
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    k = np.exp(-(xx ** 2 + yy ** 2) / (2 * 1.5 ** 2))
    k /= k.sum()
    h, w = a8.shape

    def cov(x, y):
        m = lambda z: np.array([[np.sum(k * z[i:i + 7, j:j + 7]) for j in range(w - 6)] for i in range(h - 6)])
        return m(x * y) - m(x) * m(y)

    caf, cbf = cov(a8, f8), cov(b8, f8)
    sim = caf / (caf + cbf)
    score = sim * qa + (1 - sim) * qb
    return np.where(sim < 0, 0.0, np.where(sim > 1, 1.0, score)).mean()


def test_q_c_by_hand(abf):
    a, b, f = abf
    expected = q_c_by_hand(np.round(a * 255), np.round(b * 255), np.round(f * 255))
    assert QC()(f, [a, b]) == pytest.approx(expected, abs=1e-10)


def test_q_c_clipping_rules_and_their_asymmetry():
    """B = anti-correlated copy of A, F = A: σ_AF = v, σ_BF = -2v, sim = v/(v - 2v) = -1 < 0.

    Toolbox rule: score 0 everywhere. Swapped sources: sim' = 1 - sim = 2 > 1 -> score 1 everywhere. Paper rule:
    sim clipped to 0 -> score SSIM(B, F) (both orders)."""
    t = texture(8, 20)
    a = 0.5 + 0.1 * (t - 0.5)
    b = 0.5 - 0.2 * (t - 0.5)
    assert QC(quantize=False)(a, [a, b]) == pytest.approx(0.0, abs=1e-12)
    assert QC(quantize=False)(a, [b, a]) == pytest.approx(1.0, abs=1e-12)
    paper = QC(quantize=False, clip="weight")
    ssim_bf = ssim_map_ref(b * 255, a * 255, 7, 1.5, 2e-16, 2e-16).mean()
    assert paper(a, [a, b]) == pytest.approx(ssim_bf, abs=1e-9)
    assert paper(a, [b, a]) == pytest.approx(ssim_bf, abs=1e-9)


def test_q_c_undefined_windows_half_or_dropped():
    """F flat on the right half: σ_AF = σ_BF = 0 there, sim = 0/0."""
    a = texture(9, 20)
    b = texture(10, 20)
    f = a.copy()
    f[:, 10:] = 0.5
    half, drop = QC()(f, [a, b]), QC(undefined="drop")(f, [a, b])
    assert 0 < half < 1 and 0 < drop < 1 and half != drop
    c = np.full((12, 12), 0.5)
    assert QC()(c, [c, c]) == 1.0
    assert math.isnan(QC(undefined="drop")(c, [c, c]))


# -------------------------------------------------------------------------------------------------- properties


@pytest.mark.parametrize("cls", [QG, QMI, QY, QC, QS], ids=lambda c: c.name)
def test_identical_fused_and_sources_give_the_ideal(cls):
    t = texture(11)
    assert cls()(t, [t, t]) == pytest.approx(cls.ideal, abs=1e-12)


def test_q_s_box8_identity_is_one():
    t = texture(12)
    assert QS(window="box8")(t, [t, t]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("metric", [QG(), MI(), QMI(), QNCIE(), QY(), QS(), QS(window="box8"),
                                    QC(clip="weight")], ids=lambda m: f"{m.name}")
def test_symmetric_in_the_two_sources(metric, abf):
    a, b, f = abf
    assert metric(f, [a, b]) == pytest.approx(metric(f, [b, a]), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("cls", [QMI, QY, QC, QS], ids=lambda c: c.name)
def test_pairwise_metrics_reject_three_sources(cls, abf):
    a, b, f = abf
    with pytest.raises(UnsupportedInput, match="exactly 2 sources"):
        cls()(f, [a, b, a])


@pytest.mark.parametrize("cls", [QG, MI, QNCIE], ids=lambda c: c.name)
def test_n_source_metrics_accept_three(cls, abf):
    a, b, f = abf
    assert np.isfinite(cls()(f, [a, b, 0.5 * (a + b)]))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_input_checks(cls, abf):
    a, b, f = abf
    with pytest.raises(UnsupportedInput, match="at least 2 sources"):
        cls()(f, [a])
    with pytest.raises(UnsupportedInput, match="fused image is"):
        cls()(f, [a, b[:-1]])
    with pytest.raises(UnsupportedInput, match="NaN"):
        cls()(f, [a, np.full_like(b, np.nan)])
    with pytest.raises(UnsupportedInput, match="shape"):
        cls()(f, [a, np.stack([b, b], axis=-1)])
    # [H, W, 1] images and a stacked [N, H, W] source array are accepted and give the same value
    v = cls()(f, [a, b])
    assert cls()(f[..., None], [a[..., None], b[..., None]]) == v
    assert cls()(f, np.stack([a, b])) == v


@pytest.mark.parametrize("cls", [QY, QC, QS], ids=lambda c: c.name)
def test_windowed_metrics_need_a_window_of_pixels(cls):
    tiny = np.random.default_rng(0).random((6, 6))
    with pytest.raises(UnsupportedInput, match="at least"):
        cls()(tiny, [tiny, tiny])


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_colour_conventions(cls, abf):
    a, b, f = abf
    grey = cls()(f, [a, b])
    rgb = [np.repeat(x[..., None], 3, axis=2) for x in (a, b, f)]
    # equal channels: rgb2gray gives the grey image back (weights sum to 1), channel_mean averages 3 equal scores
    assert cls()(rgb[2], rgb[:2]) == pytest.approx(grey, abs=1e-12)
    assert cls(color="channel_mean")(rgb[2], rgb[:2]) == pytest.approx(grey, abs=1e-12)
    # grey sources with an RGB fused image are fine in both modes
    assert cls()(rgb[2], [a, b]) == pytest.approx(grey, abs=1e-12)
    assert cls(color="channel_mean")(rgb[2], [a, b]) == pytest.approx(grey, abs=1e-12)
    # channel_mean really evaluates per channel: permuting the fused channels against the sources changes it
    col = [np.stack([x, np.roll(x, 5, axis=1), x[::-1]], axis=2) for x in (a, b, f)]
    per_channel = [cls()(col[2][..., c], [col[0][..., c], col[1][..., c]]) for c in range(3)]
    assert cls(color="channel_mean")(col[2], col[:2]) == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_quantize_rounds_to_8_bits_like_a_saved_image(abf):
    a, b, f = abf
    f8 = np.round(f * 255) / 255
    for cls in ALL:
        assert cls()(f, [a, b]) == cls()(f8.astype(np.float32), [a, b])


# ------------------------------------------------------------------------------------- published test vectors


PUBLISHED = {"Q_MI": QMI, "Q_NCIE": QNCIE, "Q_G": QG, "Q_Y": QY}


def _published_cases() -> list:
    if not (VECTORS / "values.csv").is_file():
        return [pytest.param(None, id="no-shared-data")]
    with open(VECTORS / "tolerances.csv", newline="") as fh:
        tol = {(r["dataset"], r["pair"], r["method"], r["metric"]): float(r["abs_tol"]) for r in csv.DictReader(fh)}
    cases: dict = {}
    with open(VECTORS / "values.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["metric"] not in PUBLISHED:
                continue
            key = (r["dataset"], r["pair"], r["method"])
            case = cases.setdefault(key, {"files": (r["fused_file"], r["source_a"], r["source_b"]), "expected": {}})
            case["expected"][r["metric"]] = (float(r["value"]), tol[key + (r["metric"],)])
    return [pytest.param(c, id="-".join(k)) for k, c in cases.items()]


@lru_cache(maxsize=8)
def _load(rel: str) -> np.ndarray:
    return read_image(DATA / rel)[0]


@pytest.mark.parametrize("case", _published_cases())
def test_published_survey_values(case):
    """Every (pair, method) row of values.csv for Q_MI, Q_NCIE, Q_G and Q_Y, with the default parameters (MATLAB
    rgb2gray for Lytro, as the survey's evaluate_color.m), within tolerances.csv's abs_tol."""
    if case is None or not DATA.is_dir():
        pytest.skip(f"real data not available: {VECTORS} (clone with ../shared beside the checkout)")
    fused, sa, sb = (_load(p) for p in case["files"])
    failures = []
    for metric, (expected, tol) in case["expected"].items():
        got = PUBLISHED[metric]()(fused, [sa, sb])
        if not abs(got - expected) <= tol:
            failures.append(f"{metric}: got {got:.9f}, published {expected:.9f}, |dev| {abs(got - expected):.2e} "
                            f"> {tol:g}")
    assert not failures, "; ".join(failures)


def _regression_images(dataset: str):
    if not VECTORS.is_dir():
        pytest.skip(f"real data not available: {VECTORS} (clone with ../shared beside the checkout)")
    ext = "tif" if dataset == "grayscale" else "jpg"
    return (_load(f"metric-vectors/{dataset}/01_cnn.tif"), _load(f"{dataset}/01_A.{ext}"),
            _load(f"{dataset}/01_B.{ext}"))


#: self-computed regression values of shared/notes/metrics.md §4.4-4.5 and regression_values.csv (5 decimals):
#: NOT published references, but two independent implementations of the same stated definitions.
REGRESSION = [
    ("grayscale", MI(), 8.30068), ("lytro", MI(), 7.58690),
    ("grayscale", MI(unit="nats"), 5.75359), ("lytro", MI(unit="nats"), 5.25884),
    ("grayscale", QS(), 0.96001), ("lytro", QS(), 0.95451),
    ("grayscale", QS(window="box8"), 0.82491), ("lytro", QS(window="box8"), 0.89250),
    ("grayscale", QC(), 0.79186),
]


@pytest.mark.parametrize("dataset,metric,expected", REGRESSION,
                         ids=[f"{d}-{m.name}-{i}" for i, (d, m, _) in enumerate(REGRESSION)])
def test_regression_values_on_pair_01_cnn(dataset, metric, expected):
    f, a, b = _regression_images(dataset)
    assert metric(f, [a, b]) == pytest.approx(expected, abs=6e-6)


def test_regression_values_on_synthetic_fusions_of_clock():
    """notes §4.4: F = A (B = clock_2) and F = round((A + B)/2) on clock (grey 01)."""
    if not (DATA / "grayscale").is_dir():
        pytest.skip(f"real data not available: {DATA / 'grayscale'}")
    a, b = _load("grayscale/01_A.tif"), _load("grayscale/01_B.tif")
    avg = np.floor((np.round(a * 255) + np.round(b * 255)) / 2 + 0.5) / 255
    table = {QMI(): (1.36954, 0.99622), MI(): (9.49302, 6.93185), QNCIE(): (0.86469, 0.82881),
             QG(): (0.50983, 0.58116), QY(): (0.98776, 0.83450), QS(window="box8"): (0.66965, 0.83775)}
    for metric, (v_a, v_avg) in table.items():
        assert metric(a, [a, b]) == pytest.approx(v_a, abs=6e-6), metric.name
        assert metric(avg, [a, b]) == pytest.approx(v_avg, abs=6e-6), metric.name
    assert QC()(avg, [a, b]) == pytest.approx(0.79747, abs=6e-6)
    assert QMI()(a, [a, a]) == 2.0 and MI()(a, [a, a]) == pytest.approx(13.84842, abs=6e-6)
    assert QNCIE()(a, [a, a]) == pytest.approx(0.93438, abs=6e-6)
