"""Built-in focus measures: the contract, accuracy and polarity on synthetic multi-focus data, each DoubleReblur
equation on hand-made arrays, N-way max_gradient, parameter validation and registration.

Synthetic pair: ``skimage.data.astronaut()`` as luma, resized to 96x96; input A is sharp on the left half and
Gaussian-blurred (sigma 2) on the right, input B the opposite, so the true ``maps[0]`` is the left half.
"Accuracy" is the fraction of pixels whose binary ``maps[0]`` agrees with that truth, counted only in the columns
at least 8 px away from the seam (columns 0-39 and 56-95).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from skimage import color, data, transform

from fusionkit.interfaces import UnsupportedInput
from fusionkit.registry import build_catalog
from fusionkit_plugins.focus_measures import DoubleReblur, MaxGradient
from fusionkit_plugins.focus_measures import double_reblur as dr
from fusionkit_plugins.focus_measures import max_gradient as mg

SIZE = 96
SEAM = SIZE // 2
MARGIN = 8


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    ksize = 2 * int(np.ceil(3 * sigma)) + 1
    return dr.gaussian(img.astype(np.float64), ksize, sigma).astype(np.float32)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    img = color.rgb2gray(data.astronaut())
    return transform.resize(img, (SIZE, SIZE), anti_aliasing=True).astype(np.float32)


@pytest.fixture(scope="module")
def pair(scene) -> torch.Tensor:
    """[2,1,96,96]: A sharp left / blurred right, B the opposite."""
    blurred = _blur(scene, 2.0)
    a, b = scene.copy(), scene.copy()
    a[:, SEAM:] = blurred[:, SEAM:]
    b[:, :SEAM] = blurred[:, :SEAM]
    return torch.from_numpy(np.stack([a, b]))[:, None]


@pytest.fixture(scope="module")
def noise_pair() -> torch.Tensor:
    """The same construction on a dense random texture (no flat areas): the literal pipeline's easy case."""
    rng = np.random.default_rng(0)
    img = dr.gaussian(rng.random((SIZE, SIZE)), 5, 0.7)
    img = ((img - img.min()) / (img.max() - img.min())).astype(np.float32)
    blurred = _blur(img, 2.0)
    a, b = img.copy(), img.copy()
    a[:, SEAM:] = blurred[:, SEAM:]
    b[:, :SEAM] = blurred[:, :SEAM]
    return torch.from_numpy(np.stack([a, b]))[:, None]


def truth0() -> np.ndarray:
    t = np.zeros((SIZE, SIZE), bool)
    t[:, :SEAM] = True
    return t


def away_from_seam() -> np.ndarray:
    m = np.ones((SIZE, SIZE), bool)
    m[:, SEAM - MARGIN:SEAM + MARGIN] = False
    return m


def accuracy(maps: torch.Tensor) -> float:
    m0 = maps[0, 0].cpu().numpy() > 0.5
    return float((m0 == truth0())[away_from_seam()].mean())


MEASURES = {
    "double_reblur": lambda: DoubleReblur(),
    "double_reblur_code": lambda: DoubleReblur(variant="code"),
    "double_reblur_absolute": lambda: DoubleReblur(decision="absolute"),
    "double_reblur_code_absolute": lambda: DoubleReblur(variant="code", decision="absolute"),
    "max_gradient": lambda: MaxGradient(),
    "max_gradient_laplacian_w5": lambda: MaxGradient(gradient="laplacian", window=5),
    "max_gradient_forward": lambda: MaxGradient(gradient="forward"),
}


# -- the contract ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", MEASURES)
def test_contract_shape_dtype_device_sum_binary(key, pair):
    maps = MEASURES[key]()(pair)
    assert maps.shape == pair.shape
    assert maps.dtype == torch.float32
    assert maps.device == pair.device
    assert torch.equal(maps.sum(0), torch.ones_like(maps[0]))
    assert bool(((maps == 0) | (maps == 1)).all())


def test_inputs_are_not_modified(pair):
    before = pair.clone()
    DoubleReblur()(pair)
    MaxGradient(window=3)(pair)
    assert torch.equal(pair, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("key", ["double_reblur", "max_gradient"])
def test_maps_come_back_on_the_input_device(key, pair):
    maps = MEASURES[key]()(pair.cuda())
    assert maps.device.type == "cuda"
    torch.testing.assert_close(maps.cpu(), MEASURES[key]()(pair))


@pytest.mark.parametrize("cls", [DoubleReblur, MaxGradient])
@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (2, 3, 16, 16), (2, 16, 16)])
def test_bad_stacks_are_unsupported(cls, shape):
    with pytest.raises(UnsupportedInput):
        cls()(torch.rand(shape))


@pytest.mark.parametrize("cls", [DoubleReblur, MaxGradient])
def test_non_finite_inputs_are_unsupported(cls):
    x = torch.rand(2, 1, 8, 8)
    x[0, 0, 3, 3] = float("nan")
    with pytest.raises(UnsupportedInput, match="NaN"):
        cls()(x)


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (8, 8), (7, 30)])
def test_tiny_images_work(hw):
    x = torch.rand(2, 1, *hw)
    for m in (DoubleReblur(), DoubleReblur(variant="code"), MaxGradient(window=5)):
        maps = m(x)
        assert maps.shape == x.shape
        assert torch.equal(maps.sum(0), torch.ones_like(maps[0]))


# -- accuracy and polarity on the synthetic pair -----------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["paper", "code"])
def test_double_reblur_defaults_get_the_pair_right(variant, pair):
    # measured: paper 0.999, code 1.000 (astronaut 96^2, blur sigma 2, >= 8 px from the seam)
    assert accuracy(DoubleReblur(variant=variant)(pair)) >= 0.95


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_double_reblur_literal_pipeline_polarity(variant, noise_pair):
    # decision='absolute' is the paper's single-image Eq. (17); on a dense texture it is right, with the right
    # polarity in both variants (the paper's map is input 1's, the code's input 0's). Measured: 0.97 and 1.00.
    st = DoubleReblur(variant=variant, decision="absolute").stages(noise_pair)
    assert st["owner"] == (1 if variant == "paper" else 0)
    assert accuracy(DoubleReblur(variant=variant, decision="absolute")(noise_pair)) >= 0.9


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_double_reblur_swapping_inputs_swaps_maps(variant, pair):
    m = DoubleReblur(variant=variant)
    a, b = m(pair), m(pair.flip(0))
    agree = float((a[0] == b[1]).float().mean())
    assert agree >= 0.97          # not exact: t > 0 and Eq. (19) shape input 0's map (measured 0.979 / 0.993)
    assert accuracy(b.flip(0)) >= 0.95


def test_max_gradient_gets_the_pair_right(pair):
    # the paper's pixelwise rule is speckled (measured 0.67); a 7x7 window cleans it up (measured 0.89)
    assert accuracy(MaxGradient()(pair)) >= 0.6
    assert accuracy(MaxGradient(window=7)(pair)) >= 0.85


def test_max_gradient_swapping_inputs_swaps_maps(pair):
    split = MaxGradient(ties="split", window=3)
    assert torch.equal(split(pair), split(pair.flip(0)).flip(0))
    first = MaxGradient(window=3)
    energy = first.energy(pair)
    untied = energy[0] != energy[1]
    assert torch.equal(first(pair)[0][untied], first(pair.flip(0))[1][untied])


def test_max_gradient_three_inputs(scene):
    blurred = _blur(scene, 2.0)
    stack = []
    for k in range(3):
        s = blurred.copy()
        s[:, 32 * k:32 * (k + 1)] = scene[:, 32 * k:32 * (k + 1)]
        stack.append(s)
    x = torch.from_numpy(np.stack(stack))[:, None]
    label = np.repeat(np.arange(3), 32)[None].repeat(SIZE, 0)
    away = np.ones((SIZE, SIZE), bool)
    for c in (32, 64):
        away[:, c - 6:c + 6] = False
    for params, floor in (({}, 0.6), ({"window": 7}, 0.85)):   # measured 0.68 and 0.90
        maps = MaxGradient(**params)(x)
        assert maps.shape == (3, 1, SIZE, SIZE)
        assert torch.equal(maps.sum(0), torch.ones_like(maps[0]))
        pick = maps[:, 0].argmax(0).numpy()
        assert (pick == label)[away].mean() >= floor
        for k in range(3):
            assert (pick == label)[away & (label == k)].mean() > 0.5


def test_max_gradient_ties():
    x = torch.rand(1, 1, 12, 12).repeat(3, 1, 1, 1)       # identical inputs: every pixel ties
    first = MaxGradient()(x)
    assert torch.equal(first[0], torch.ones_like(first[0])) and not first[1:].any()
    split = MaxGradient(ties="split")(x)
    torch.testing.assert_close(split, torch.full_like(split, 1 / 3))
    assert torch.equal(MaxGradient(ties="split")(torch.zeros(2, 1, 4, 4)), torch.full((2, 1, 4, 4), 0.5))


def test_gradient_operators_on_a_ramp():
    ramp = torch.arange(8.0).view(1, 1, 1, 8).repeat(1, 1, 8, 1)     # d/dx = 1 everywhere inside
    fwd = mg.gradient_magnitude(ramp, "forward")
    torch.testing.assert_close(fwd[..., :-1], torch.ones_like(fwd[..., :-1]))
    sob = mg.gradient_magnitude(ramp, "sobel")
    torch.testing.assert_close(sob[..., 1:-1], torch.full_like(sob[..., 1:-1], 8.0))   # Sobel gain 8
    lap = mg.gradient_magnitude(ramp, "laplacian")
    torch.testing.assert_close(lap[..., 1:-1], torch.zeros_like(lap[..., 1:-1]))
    box = mg.box_mean(torch.eye(5).view(1, 1, 5, 5), 5)
    assert box.shape == (1, 1, 5, 5) and box[0, 0, 2, 2].item() == pytest.approx(5 / 25)


# -- DoubleReblur, one equation at a time ------------------------------------------------------------------------------

def test_double_reblur_three_inputs_give_a_partition(pair):
    # N >= 3 is the stack rule (tests/test_n_images.py has its accuracy); a duplicated slice ties with its twin
    x = torch.cat([pair, pair[:1]])
    maps = DoubleReblur()(x)
    assert maps.shape == (3, 1, SIZE, SIZE)
    assert torch.equal(maps.sum(0), torch.ones_like(maps[0]))
    assert not maps[2].any()                       # ties go to the lower index, so the copy of input 0 gets nothing
    assert float((maps[0] == DoubleReblur()(pair)[0]).float().mean()) >= 0.9


def test_eq17_threshold_is_strict():
    s = np.array([[0.0, 0.01, 0.0100001, 0.5]])
    assert dr.threshold(s, 0.01).tolist() == [[False, False, True, True]]
    assert dr.threshold(np.zeros((2, 2)), 0.0).sum() == 0


def test_eq18_closing_fills_one_pixel_gaps():
    d = np.zeros((9, 12), bool)
    d[4, 1:11] = True
    d[4, 6] = False                                  # a 1-px gap in a line
    closed = dr.close(d, 3, 3)
    assert closed[4, 1:11].all()
    blocks = np.zeros((10, 11), bool)
    blocks[2:8, 1:5] = blocks[2:8, 6:10] = True        # two blocks, a 1-px column between them
    assert dr.close(blocks, 3, 3)[2:8, 1:10].all()
    assert not dr.close(blocks, 1, 1)[2:8, 5].any()     # k = 1: no morphology
    edge = np.zeros((8, 8), bool)
    edge[:, :4] = True                                   # a region on the border is not eaten by the erosion
    assert np.array_equal(dr.close(edge, 3, 3), edge)


def test_eq19_largest_region_and_hole_fill():
    d = np.zeros((12, 12), bool)
    d[1:8, 1:8] = True                                   # big region with a hole
    d[4, 4] = False
    d[10:12, 10:12] = True                               # small region, dropped
    m = dr.largest_region_fill(d)
    expected = np.zeros_like(d)
    expected[1:8, 1:8] = True
    assert np.array_equal(m, expected)
    assert np.array_equal(dr.largest_region(np.zeros((4, 4), bool)), np.zeros((4, 4), bool))


def test_eq19_hole_fill_does_not_assume_the_corner_is_background():
    d = np.zeros((10, 10), bool)
    d[:, :6] = True                                      # the region covers pixel (0, 0)
    d[4:6, 2:4] = False                                  # a hole inside it
    d[0:3, 8] = True                                     # a background bay that touches the border stays open
    m = dr.fill_holes(dr.largest_region(d))
    assert m[:, :6].all()
    assert not m[:, 6:].any()
    bay = np.ones((6, 6), bool)
    bay[0:3, 2] = False                                  # a notch open to the top border is not a hole
    assert np.array_equal(dr.fill_holes(bay), bay)


def test_eq14_normalised_psf_sums_to_one_and_recovers_a_known_kernel():
    rng = np.random.default_rng(1)
    sharp = rng.random((64, 64))
    g = np.exp(-((np.arange(9) - 4.0) ** 2) / (2 * 1.2 ** 2))
    kernel = np.outer(g, g)
    kernel /= kernel.sum()
    padded = np.zeros((64, 64))
    padded[32 - 4:32 + 5, 32 - 4:32 + 5] = kernel
    blurred = np.real(np.fft.ifft2(np.fft.fft2(sharp) * np.fft.fft2(np.fft.ifftshift(padded))))  # Eq. (11), circular
    est = dr.estimate_psf(blurred, sharp, radius=5, eps=1e-9, lowpass=None)
    assert est.shape == (9, 9)
    assert est.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(est, kernel, atol=1e-3)
    smooth = dr.estimate_psf(blurred, sharp, radius=5, eps=1e-3, lowpass=0.25)
    assert smooth.sum() == pytest.approx(1.0, abs=1e-12) and (smooth >= 0).all()
    assert dr.estimate_psf(blurred, sharp, radius=3).shape == (5, 5)
    assert dr.estimate_psf(blurred[:4, :6], sharp[:4, :6], radius=5).shape == (3, 5)   # clamped crop


@pytest.mark.parametrize("den", [np.zeros((16, 16)), np.full((16, 16), 0.5)])
def test_division_guard_is_finite_when_a_spectrum_has_zeros(den):
    num = np.random.default_rng(2).random((16, 16))
    ratio = dr.spectral_ratio(num, den, 1e-3)
    assert np.isfinite(ratio).all()
    psf = dr.estimate_psf(num, den)
    assert np.isfinite(psf).all() and psf.sum() == pytest.approx(1.0)
    assert np.isfinite(dr.estimate_psf(num, den, normalise=False)).all()
    assert np.isfinite(dr.estimate_psf(den, den)).all()               # 0/0
    maps = DoubleReblur()(torch.from_numpy(np.stack([num, den]).astype(np.float32))[:, None])
    assert torch.isfinite(maps).all()


def test_eq14_lowpass_keeps_dc_and_attenuates_high_frequencies():
    ratio = np.ones((16, 16), complex)
    assert dr.spectral_lowpass(ratio, None) is ratio
    lp = dr.spectral_lowpass(ratio, 0.1)
    assert lp[0, 0] == 1.0 and abs(lp[8, 8]) < 1e-6


def test_eq15_reblur_is_a_convolution():
    psf = np.zeros((3, 3))
    psf[0, 0], psf[1, 1] = 0.25, 0.75                   # asymmetric
    impulse = np.zeros((9, 9))
    impulse[4, 4] = 1.0
    np.testing.assert_allclose(dr.reblur(impulse, psf)[3:6, 3:6], psf, atol=1e-12)        # true convolution
    np.testing.assert_allclose(dr.reblur(impulse, psf, convolve=False)[3:6, 3:6], psf[::-1, ::-1], atol=1e-12)
    delta = np.zeros((9, 9))
    delta[4, 4] = 1.0
    img = np.random.default_rng(3).random((10, 10))
    np.testing.assert_allclose(dr.reblur(img, delta), img, atol=1e-12)


def test_eq16_sharpness_is_zero_on_flat_and_large_on_detail():
    flat = np.full((12, 12), 0.3)
    assert np.abs(dr.sharpness_paper(flat, 5)).max() < 1e-12
    assert np.abs(dr.sharpness_code(flat, flat, 5)).max() < 1e-12
    step = np.zeros((12, 12))
    step[:, 6:] = 1.0
    s = dr.sharpness_paper(step, 5)
    assert s[:, 5:7].min() > 0.1 and s[:, :2].max() < 1e-9
    c = dr.local_contrast(np.full((5, 5), 2.0), np.ones((5, 5)), 3)
    np.testing.assert_allclose(c, 1 / 3, atol=1e-5)


def test_stages_expose_every_step(pair):
    st = DoubleReblur().stages(pair)
    assert st["psf"].shape == (9, 9)
    assert st["reblurred"].shape == st["sharpness"].shape == (2, SIZE, SIZE)
    for k in ("score", "decision", "closed", "region"):
        assert st[k].shape == (SIZE, SIZE)
    assert st["decision"].dtype == bool and st["owner"] == 0
    np.testing.assert_array_equal(DoubleReblur()(pair)[0, 0].numpy(), st["region"].astype(np.float32))
    code = DoubleReblur(variant="code").stages(pair)["psf"]
    assert abs(code.sum() - 1.0) > 1e-3                   # the released code's PSF is not normalised
    off = DoubleReblur(largest_region=False).stages(pair)
    assert np.array_equal(off["region"], off["closed"])


# -- parameters --------------------------------------------------------------------------------------------------------

def test_double_reblur_defaults_are_the_papers():
    p = DoubleReblur().params
    assert [p.gaussian_kernel, p.dilate, p.erode, p.threshold, p.largest_region] == [5, 3, 3, 0.01, True]
    assert (p.psf_radius, p.variant, p.decision) == (5, "paper", "contrast")
    assert DoubleReblur({"threshold": 0.02}, dilate=5).params.dilate == 5


@pytest.mark.parametrize("bad", [{"gaussian_kernel": 4}, {"gaussian_kernel": 0}, {"dilate": 2}, {"erode": 4},
                                 {"contrast_window": 8}, {"threshold": -0.01}, {"psf_radius": 0}, {"eps": 0},
                                 {"spectral_lowpass": -1}, {"variant": "matlab"}, {"decision": "soft"},
                                 {"kernel": 5}])
def test_double_reblur_rejects_bad_params(bad):
    with pytest.raises(ValidationError):
        DoubleReblur(**bad)


@pytest.mark.parametrize("bad", [{"window": 4}, {"window": 0}, {"gradient": "scharr"}, {"ties": "random"},
                                 {"threshold": 0.1}])
def test_max_gradient_rejects_bad_params(bad):
    with pytest.raises(ValidationError):
        MaxGradient(**bad)


def test_even_kernel_message_says_odd():
    with pytest.raises(ValidationError, match="must be odd"):
        DoubleReblur(gaussian_kernel=6)


# -- registration ------------------------------------------------------------------------------------------------------

def test_both_register_as_focus_measures():
    catalog = build_catalog()
    assert {"double_reblur", "max_gradient"} <= set(catalog.names("focus_measure"))
    assert catalog.get("focus_measure", "double_reblur").cls is DoubleReblur
    assert catalog.get("focus_measure", "max_gradient").cls is MaxGradient
    assert catalog.get("focus_measure", "double_reblur").dist == "fusionkit"
    assert not [f for f in catalog.failures if "focus" in f.plugin]
    for cls in (DoubleReblur, MaxGradient):
        assert cls.kind == "focus_measure" and cls.summary and cls.reference and "\n" not in cls.summary


def test_uniform_gives_the_mean():
    from fusionkit_plugins.focus_measures import Uniform

    images = torch.rand(3, 1, 5, 7)
    maps = Uniform()(images)
    assert maps.shape == images.shape and torch.allclose(maps, torch.full_like(images, 1 / 3))
    assert torch.allclose((maps * images).sum(0), images.mean(0))
