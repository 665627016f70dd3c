"""Perceptual / feature / multiscale metrics of ``fusionkit_plugins.metrics.perceptual``: q_cb, q_cv, q_p, q_m, vif,
viff (and the phase-congruency block of ``fusionkit_plugins.metrics.phase``).

Three layers: values worked out by hand on tiny arrays, properties (F = A = B gives the ideal, symmetry in the two
sources, N-source handling, colour conventions, input errors), and real data: the published per-image values of Yu
Liu's survey (``shared/data/metric-vectors/values.csv``, Q_P / Q_CB / Q_CV) within their ``tolerances.csv`` bound,
plus self-computed regression values (``regression_values.csv`` and ``shared/notes/metrics.md`` §4.4-4.5) for the
metrics that have no published values (Q_M, VIF-p, VIFF). The real-data tests skip when ``shared/data`` is absent; a
small subset runs by default, the full 40-row sweep is marked ``slow``.
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
from fusionkit_plugins.metrics import perceptual as pm
from fusionkit_plugins.metrics.perceptual import QCB, QCV, QM, QP, VIF, VIFF
from fusionkit_plugins.metrics.phase import phase_congruency

from conftest import texture as shared_texture

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VECTORS = DATA / "metric-vectors"

ALL = [QCB, QCV, QP, QM, VIF, VIFF]


def texture(seed: int, size: int = 64, smooth: int = 1) -> np.ndarray:
    return shared_texture(seed, size, smooth)


def box_blur(x: np.ndarray, r: int = 3) -> np.ndarray:
    k = 2 * r + 1
    c = np.cumsum(np.cumsum(np.pad(np.pad(x, r, mode="edge"), ((1, 0), (1, 0))), 0), 1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


@pytest.fixture(scope="module")
def abf():
    """A multi-focus-like 64x64 triple: A sharp on the left, B sharp on the right, F a patchwork."""
    sharp = texture(0)
    blur = box_blur(sharp)
    cols = np.arange(64)
    a = np.where(cols < 32, sharp, blur)
    b = np.where(cols < 32, blur, sharp)
    f = np.where((cols >= 28) & (cols < 36), 0.5 * (sharp + blur), sharp)
    return a, b, f


# ------------------------------------------------------------------------------------------------- registration


def test_module_exports_every_metric_with_its_contract():
    assert pm.METRICS == (QCB, QCV, QP, QM, VIF, VIFF)
    assert [c.name for c in pm.METRICS] == ["q_cb", "q_cv", "q_p", "q_m", "vif", "viff"]
    for cls in pm.METRICS:
        assert issubclass(cls, Metric) and cls.kind == "metric" and cls.requires == "sources"
        assert "ideal" in cls.__dict__, f"{cls.name} states its ideal value"
        assert cls.summary and cls.reference and cls.__doc__
        params = cls.Params()
        assert params.color == "gray" and params.quantize is True
        for fname, field in cls.Params.model_fields.items():
            assert field.description, f"{cls.name}.{fname} is described"
    assert [c.higher_is_better for c in pm.METRICS] == [True, False, True, True, True, True]
    assert (QCB.ideal, QCV.ideal, QP.ideal, QM.ideal, VIF.ideal, VIFF.ideal) == (1.0, 0.0, None, 3.0, None, 1.0)


def test_params_reject_unknown_and_out_of_range_values():
    with pytest.raises(ValidationError):
        QCB(color="luma")
    with pytest.raises(ValidationError):
        QCB(window=8)                         # unknown key
    with pytest.raises(ValidationError):
        QCV(window=1)
    with pytest.raises(ValidationError):
        QP(nscale=0)
    with pytest.raises(ValidationError):
        QP(threshold=1.5)
    with pytest.raises(ValidationError):
        VIF(pooling="max")
    with pytest.raises(ValidationError):
        VIFF(sigma_n2=3.0)                    # fixed by the reference: not a parameter of viff


# ---------------------------------------------------------------------------------------------- hand-worked cases


def test_q_m_single_impulse_by_hand():
    # A = B: 4x4 zeros with c at (3, 3); F = 0. Level 1: the Haar block [[0,0],[0,c]] gives |H|=|V|=|D| = c/2 at one
    # position (LL = c/2 there); level 2 gives c/4. With F = 0: Q_1 = 3e^{-c/2}, Q_2 = 3e^{-c/4}, so
    # Q_M = Q_1^{2/3} Q_2^{1/3} = 3 e^{-5c/12}; c = 2.4 grey levels gives 3/e.
    c = 2.4
    a = np.zeros((4, 4))
    a[3, 3] = c / 255.0
    value = QM(quantize=False)(np.zeros((4, 4)), [a, a])
    assert value == pytest.approx(3.0 / math.e, rel=1e-12)
    # the impulse in the other corner of its 2x2 block gives the same magnitudes
    a2 = np.zeros((4, 4))
    a2[2, 2] = c / 255.0
    assert QM(quantize=False)(np.zeros((4, 4)), [a2, a2]) == pytest.approx(3.0 / math.e, rel=1e-12)


def test_q_m_ignores_a_constant_offset_and_odd_edges():
    x = texture(3, 40) * 0.8
    # details are invariant to adding a constant: F = A + 0.1 keeps every coefficient -> Q_M = 3
    assert QM(quantize=False)(x + 0.1, [x, x]) == pytest.approx(3.0, abs=1e-12)
    # odd sizes drop the last row/column at each level (matlabPyrTools Haar pairing): 41x43 == its 40x40 crop
    # (level 1 uses rows 0-39 and columns 0-41 -> 20x21, level 2 then drops that odd column)
    y = texture(4, 48)[:41, :43]
    z = texture(5, 48)[:41, :43]
    f = 0.5 * (y + z)
    assert QM()(f, [y, z]) == pytest.approx(QM()(f[:40, :42], [y[:40, :42], z[:40, :42]]), abs=1e-12)
    assert QM()(f, [y, z]) != pytest.approx(QM()(f[:40, :40], [y[:40, :40], z[:40, :40]]), abs=1e-6)


def test_q_cv_is_zero_when_f_equals_the_only_source_with_edges():
    x = texture(6)
    # B all zero: normalize1 leaves it, its Sobel saliency is 0, so only D_A = 0 counts
    assert QCV()(x, [x, np.zeros_like(x)]) == 0.0
    assert QCV()(x, [x, x]) == 0.0


def test_csf_responses_at_zero_frequency():
    # DoG S(0) = 1 - a; Mannos-Sakrison at r = 0: 2.6 * 0.0192
    assert pm._dog_csf(8, 8, 30.0, 15.3870, 1.3456, 0.7622)[0, 0] == pytest.approx(1 - 0.7622, abs=1e-15)
    assert pm._mannos_sakrison(8, 6, 8.0)[0, 0] == pytest.approx(2.6 * 0.0192, abs=1e-15)
    # freqspace grid: f_k = (k - floor(n/2)) * 2/n, scaled by n/divisor -> in FFT layout r[0, 1] = 2/divisor
    assert pm._freqspace_radius(8, 8, 30.0)[0, 1] == pytest.approx(2 / 30.0, abs=1e-15)
    assert pm._freqspace_radius(7, 9, 8.0)[1, 0] == pytest.approx(2 / 8.0, abs=1e-15)


def test_normalize1_follows_matlab():
    x = np.array([[10.0, 20.0], [30.0, 40.0]])
    # (x - 10)/30*255 = 0, 85, 170, 255
    assert np.array_equal(pm.normalize1(x), [[0, 85], [170, 255]])
    # half away from zero: (1/2)*255 = 127.5 -> 128
    assert pm.normalize1(np.array([0.0, 1.0, 2.0]))[1] == 128
    assert np.array_equal(pm.normalize1(np.zeros((2, 2))), np.zeros((2, 2)))
    assert np.array_equal(pm.normalize1(np.full((2, 2), 7.0)), np.zeros((2, 2)))


def test_vif_limits_by_hand(abf):
    a, b, _ = abf
    # F = A: g = 1, σ_v² ≈ 0 -> VIF(A, A) = 1; a constant offset does not change the statistics
    assert VIF(pooling="mean")(a, [a, a]) == pytest.approx(1.0, abs=1e-8)
    assert VIF(pooling="mean", quantize=False)(a * 0.8 + 0.1, [a * 0.8, a * 0.8]) == pytest.approx(1.0, abs=1e-8)
    assert VIF()(a, [a, a]) == pytest.approx(2.0, abs=1e-8)          # sum pooling: N
    # a flat fused image carries no information: g = 0 everywhere
    flat = np.full_like(a, 0.5)
    assert VIF()(flat, [a, b]) == 0.0
    assert VIFF()(flat, [a, b]) < 1e-5         # only the constant C = 1e-7 per pixel remains
    # contrast enhancement (gain > 1) pushes VIF above 1, as in Sheikh & Bovik
    assert VIF(pooling="mean", quantize=False)(a * 0.9, [a * 0.45, a * 0.45]) > 1.0


def test_phase_congruency_step_edge_and_constant():
    im = np.zeros((64, 64))
    im[:, 32:] = 100.0
    pc = phase_congruency(im)
    row = pc.pc[32]
    # the step (and its circular wrap-around at the border) are the only features; 0 far from them
    assert row[31] == pytest.approx(row[32]) and row[31] > 0.6
    assert row[0] == pytest.approx(row[63]) and row[0] > 0.6
    assert np.all(row[10:22] < 1e-3) and np.all(row[42:54] < 1e-3)
    assert np.all(pc.pc >= 0) and np.all(pc.pc <= 1)
    assert np.all(pc.max_moment >= pc.min_moment)
    # a constant image has no responses at all: PC and moments are 0 (MATLAB would give NaN moments)
    flat = phase_congruency(np.full((32, 32), 7.0))
    assert np.all(flat.pc == 0) and np.all(np.isfinite(flat.max_moment)) and np.all(np.isfinite(flat.min_moment))


# ----------------------------------------------------------------------------------------------------- properties


def test_identical_images_give_the_ideal(abf):
    a = abf[0]
    assert QCB()(a, [a, a]) == pytest.approx(1.0, abs=1e-12)
    assert QCV()(a, [a, a]) == 0.0
    assert QM()(a, [a, a]) == pytest.approx(3.0, abs=1e-12)
    assert VIFF()(a, [a, a]) == pytest.approx(1.0, abs=1e-8)
    assert VIF()(a, [a, a, a]) == pytest.approx(3.0, abs=1e-8)       # sum over N = 3 sources
    # Q_P has no ideal: the fused map is not masked and C > 0, so F = A = B stays below 1
    q = QP()(a, [a, a])
    assert 0.9 < q < 1.0


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_symmetric_in_the_two_sources(cls, abf):
    a, b, f = abf
    m = cls()
    assert m(f, [a, b]) == pytest.approx(m(f, [b, a]), abs=1e-12)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_scores_order_a_good_fusion_above_a_bad_one(cls, abf):
    a, b, f = abf
    bad = box_blur(texture(0))                # blurred everywhere: the in-focus halves of both sources are lost
    good, worse = cls()(f, [a, b]), cls()(bad, [a, b])
    assert (good > worse) if cls.higher_is_better else (good < worse)


def test_n_sources(abf):
    a, b, f = abf
    # max-based rules (Q_P's max map, VIFF's smallest-gain choice) ignore a duplicated source
    assert QP()(f, [a, b, b]) == pytest.approx(QP()(f, [a, b]), abs=1e-12)
    assert VIFF()(f, [a, b, b]) == pytest.approx(VIFF()(f, [a, b]), abs=1e-12)
    # weighted poolings count every source: finite and in range
    for cls in (QCB, QCV, QM):
        v = cls()(f, [a, b, texture(9)])
        assert np.isfinite(v)
    assert 0 < QCB()(f, [a, b, b]) <= 1
    assert VIF()(f, [a, b, b]) == pytest.approx(VIF()(f, [a, b]) + VIF(pooling="mean")(f, [b, b]), abs=1e-12)


def test_colour_conventions(abf):
    a, b, f = abf
    rgb = lambda x: np.repeat(x[:, :, None], 3, axis=2)               # noqa: E731
    for cls in (QCB, QCV, QM, VIFF):
        grey = cls()(f, [a, b])
        # R = G = B: rgb2gray (rounded) returns the grey image; channel_mean averages three equal scores
        assert cls()(rgb(f), [rgb(a), rgb(b)]) == pytest.approx(grey, abs=1e-12)
        assert cls(color="channel_mean")(rgb(f), [rgb(a), rgb(b)]) == pytest.approx(grey, abs=1e-12)
    # a real colour image: the two conventions differ
    tint = np.stack([f, box_blur(f, 1), f ** 2], axis=2)
    srcs = [np.stack([a, box_blur(a, 1), a ** 2], axis=2), np.stack([b, box_blur(b, 1), b ** 2], axis=2)]
    assert QCB()(tint, srcs) != pytest.approx(QCB(color="channel_mean")(tint, srcs), abs=1e-6)
    # stacked [N, H, W] arrays are accepted as the sources
    assert QM()(f, np.stack([a, b])) == QM()(f, [a, b])


def test_input_errors(abf):
    a, b, f = abf
    with pytest.raises(UnsupportedInput, match="at least 2 sources"):
        QCB()(f, [a])
    with pytest.raises(UnsupportedInput, match="fused image is 64x64"):
        QP()(f, [a, b[:32]])
    with pytest.raises(UnsupportedInput, match="at least 41x41"):
        VIF()(f[:40, :40], [a[:40, :40], b[:40, :40]])
    with pytest.raises(UnsupportedInput, match="shape"):
        QM()(np.zeros((8, 8, 2)), [a, b])
    with pytest.raises(UnsupportedInput, match="NaN"):
        QCV()(np.full((8, 8), np.nan), [np.zeros((8, 8)), np.zeros((8, 8))])
    # undefined cases are NaN, not errors
    z = np.zeros((16, 16))
    assert math.isnan(QP()(z, [z, z]))
    assert math.isnan(QCV()(z, [z, z]))


# ------------------------------------------------------------------------------------------------------ real data


def need_data():
    if not (VECTORS / "values.csv").is_file():
        pytest.skip(f"real data not available: {VECTORS} (clone with ../shared beside the checkout)")


@lru_cache(maxsize=None)
def load(rel: str) -> np.ndarray:
    return read_image(DATA / rel)[0]


@lru_cache(maxsize=1)
def published() -> dict:
    """{(dataset, pair, method, metric): (fused, source_a, source_b, value, abs_tol)} for Q_P, Q_CB and Q_CV."""
    tol = {}
    with open(VECTORS / "tolerances.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            tol[(r["dataset"], r["pair"], r["method"], r["metric"])] = float(r["abs_tol"])
    out = {}
    with open(VECTORS / "values.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            key = (r["dataset"], r["pair"], r["method"], r["metric"])
            if r["metric"] in ("Q_P", "Q_CB", "Q_CV"):
                out[key] = (r["fused_file"], r["source_a"], r["source_b"], float(r["value"]), tol[key])
    return out


METRIC_OF = {"Q_P": QP, "Q_CB": QCB, "Q_CV": QCV}
#: default subset: tiny and non-square grey pairs (incl. odd sizes at the second Haar/pyramid level), and one Lytro
#: RGB pair (converted with MATLAB rgb2gray); every other row runs in the slow sweep
QUICK = [("grayscale", "10", "cnn"), ("grayscale", "10", "dwt"), ("grayscale", "05", "dwt"), ("grayscale", "09", "gff"),
         ("lytro", "01", "cnn")]


def check_published(dataset: str, pair: str, method: str, metric: str):
    need_data()
    key = (dataset, pair, method, metric)
    fused, sa, sb, value, tol = published()[key]
    got = METRIC_OF[metric]()(load(fused), [load(sa), load(sb)])
    assert abs(got - value) <= tol, f"{key}: {got!r} vs published {value!r} (tol {tol})"


@pytest.mark.parametrize("metric", ["Q_P", "Q_CB", "Q_CV"])
@pytest.mark.parametrize("dataset,pair,method", QUICK, ids=lambda v: v)
def test_published_values_subset(dataset, pair, method, metric):
    check_published(dataset, pair, method, metric)


def _all_rows():
    if not (VECTORS / "values.csv").is_file():
        return [pytest.param(None, None, None, None, marks=pytest.mark.skip(reason="shared/data not available"))]
    return [pytest.param(*k, id="-".join(k)) for k in sorted(published())]


@pytest.mark.slow
@pytest.mark.parametrize("dataset,pair,method,metric", _all_rows())
def test_published_values_full_sweep(dataset, pair, method, metric):
    check_published(dataset, pair, method, metric)


@lru_cache(maxsize=1)
def regression() -> dict:
    with open(VECTORS / "regression_values.csv", newline="") as fh:
        return {(r["dataset"], r["pair"], r["method"], r["metric"]): (r, float(r["value"])) for r in csv.DictReader(fh)}


@pytest.mark.parametrize("dataset,pair", [("grayscale", "01"), ("lytro", "01")])
def test_regression_values_vif_viff_q_m(dataset, pair):
    """Self-computed (unpublished) values: VIFP_sum and VIFF from ``regression_values.csv`` (same convention: grey
    via MATLAB rgb2gray, 0-255, source = reference), Q_M from the notes §4.5 (pywt Haar, equal to matlabPyrTools'
    pairing on these even sizes). Printed to 5 decimals, so the tolerance is 6e-6."""
    need_data()
    row, vifp = regression()[(dataset, pair, "cnn", "VIFP_sum")]
    _, viff = regression()[(dataset, pair, "cnn", "VIFF")]
    f, a, b = load(row["fused_file"]), load(row["source_a"]), load(row["source_b"])
    assert VIF()(f, [a, b]) == pytest.approx(vifp, abs=6e-6)
    assert VIFF()(f, [a, b]) == pytest.approx(viff, abs=6e-6)
    q_m = {"grayscale": 2.33701, "lytro": 2.39761}[dataset]
    assert QM()(f, [a, b]) == pytest.approx(q_m, abs=6e-6)


def test_regression_q_m_clock_dwt():
    need_data()
    f, a, b = load("metric-vectors/grayscale/01_dwt.tif"), load("grayscale/01_A.tif"), load("grayscale/01_B.tif")
    assert QM()(f, [a, b]) == pytest.approx(1.7261, abs=6e-5)                # notes §3.6, 4 decimals


@pytest.mark.parametrize("case", ["F=A=B", "F=A", "F=avg"])
def test_regression_identity_rows_on_clock(case):
    """Notes §4.4 (A, B = clock; rows 2-3 are the note author's verified re-derivation, i.e. regression values)."""
    need_data()
    a, b = load("grayscale/01_A.tif"), load("grayscale/01_B.tif")
    if case == "F=A=B":
        f, srcs = a, [a, a]
        want = {QP: 0.95544, QCB: 1.0, QCV: 0.0, VIFF: 1.0, VIF: 2.0}
    elif case == "F=A":
        f, srcs = a, [a, b]
        want = {QP: 0.71567, QCB: 0.66918, QCV: 297.548, VIFF: 0.57677, VIF: 1.30759}
    else:
        f = np.floor((np.round(a * 255) + np.round(b * 255)) / 2 + 0.5) / 255      # MATLAB round((A+B)/2)
        srcs = [a, b]
        want = {QP: 0.66874, QCB: 0.56851, QCV: 101.027, VIFF: 0.70001, VIF: 1.20747}
    for cls, value in want.items():
        tol = 6e-4 if cls is QCV else 6e-6
        assert cls()(f, srcs) == pytest.approx(value, abs=tol), cls.name


def test_lytro_channel_mean_differs_from_gray():
    """The Lytro values need MATLAB rgb2gray; the per-channel mean (VIFB/MFIFB) is a different number."""
    need_data()
    f, a, b = load("metric-vectors/lytro/01_cnn.tif"), load("lytro/01_A.jpg"), load("lytro/01_B.jpg")
    gray, per_channel = QCB()(f, [a, b]), QCB(color="channel_mean")(f, [a, b])
    assert gray == pytest.approx(published()[("lytro", "01", "cnn", "Q_CB")][3], abs=1e-6)
    assert abs(gray - per_channel) > 1e-4
