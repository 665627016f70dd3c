"""Built-in resamplers: taps, pixel-centre geometry (checked against torch), borders, gradients, errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from fusionkit.errors import InputError
from fusionkit.registry import build_catalog
from fusionkit_plugins.upsamplers import (BicubicResampler, BilinearResampler, BoxResampler, Lanczos2Resampler,
                                          Lanczos3Resampler, ResampleError)
from fusionkit_plugins.upsamplers import kernels

ALL = [Lanczos2Resampler, Lanczos3Resampler, BicubicResampler, BilinearResampler, BoxResampler]
SMOOTH = [Lanczos2Resampler, Lanczos3Resampler, BicubicResampler]
FACTORS = range(1, 9)
#: taps of `down` per unit of factor at even factors (DIP's phase 0.5): 4f, 6f, 4f, 2f, f
TAPS_PER_FACTOR = {"lanczos2": 4, "lanczos3": 6, "bicubic": 4, "bilinear": 2, "box": 1}
ids = [c.name for c in ALL]


def margin(res) -> int:
    """Low-res pixels next to each border that see the replicated padding."""
    return math.ceil(res.support) + 1


# -- taps -------------------------------------------------------------------------------------------------------------

def test_lanczos2_x2_taps_match_deep_image_prior():
    taps = Lanczos2Resampler().down_taps(2)
    expected = torch.tensor([-0.0089, -0.0419, 0.1165, 0.4343, 0.4343, 0.1165, -0.0419, -0.0089], dtype=torch.float64)
    assert taps.shape == (8,)
    torch.testing.assert_close(taps, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("cls", ALL, ids=ids)
def test_down_taps_length_sum_and_symmetry(cls):
    res = cls()
    for f in FACTORS:
        taps = res.down_taps(f)
        n = TAPS_PER_FACTOR[cls.name] * f
        # even f: phase 0.5, exactly n taps. odd f: the two end samples fall on the support edge (weight 0), dropped.
        expected = n if f % 2 == 0 or cls is BoxResampler else n - 1
        assert taps.numel() == expected, (f, taps.numel())
        assert taps.sum().item() == pytest.approx(1.0, abs=1e-12)
        torch.testing.assert_close(taps, taps.flip(0))


@pytest.mark.parametrize("cls", ALL, ids=ids)
def test_up_phases_sum_to_one(cls):
    for f in FACTORS:
        w, pad = cls().up_phases(f)
        assert w.shape == (f, 2 * pad + 1)
        torch.testing.assert_close(w.sum(1), torch.ones(f, dtype=torch.float64))


def test_box_down_is_block_mean_and_up_is_nearest():
    assert BoxResampler().down_taps(3).tolist() == pytest.approx([1 / 3] * 3)
    x = torch.rand(1, 2, 6, 9)
    torch.testing.assert_close(BoxResampler().down(x, 3), F.avg_pool2d(x, 3))
    torch.testing.assert_close(BoxResampler().up(x, 3), x.repeat_interleave(3, -2).repeat_interleave(3, -1))


# -- implementation = dense reference ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", ALL, ids=ids)
def test_convolution_equals_dense_matrix_reference_including_borders(cls):
    """The strided / polyphase convolutions equal the clamped-index matrices of :mod:`kernels` everywhere."""
    res = cls()
    g = torch.Generator().manual_seed(0)
    for f in (2, 3, 5, 8):
        h, w = 3, 4
        hi = torch.rand(1, 1, h * f, w * f, dtype=torch.float64, generator=g)
        taps = res.down_taps(f)
        ref = kernels.down_matrix(taps, f, h) @ hi[0, 0] @ kernels.down_matrix(taps, f, w).T
        torch.testing.assert_close(res.down(hi, f)[0, 0], ref)
        lo = torch.rand(1, 1, h, w, dtype=torch.float64, generator=g)
        phases, pad = res.up_phases(f)
        ref = kernels.up_matrix(phases, pad, f, h) @ lo[0, 0] @ kernels.up_matrix(phases, pad, f, w).T
        torch.testing.assert_close(res.up(lo, f)[0, 0], ref)


# -- shapes, constants, identity --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", ALL, ids=ids)
def test_shapes_and_constants_all_factors(cls):
    res = cls()
    for f in FACTORS:
        hi = torch.full((2, 3, 3 * f, 2 * f), 0.37)
        lo = res.down(hi, f)
        assert lo.shape == (2, 3, 3, 2) and lo.dtype == torch.float32
        torch.testing.assert_close(lo, torch.full_like(lo, 0.37))
        up = res.up(torch.full((2, 3, 3, 2), 0.61), f)
        assert up.shape == (2, 3, 3 * f, 2 * f)
        torch.testing.assert_close(up, torch.full_like(up, 0.61))


@pytest.mark.parametrize("cls", ALL, ids=ids)
def test_factor_one_is_identity(cls):
    x = torch.rand(1, 3, 5, 7)
    assert cls().down(x, 1) is x and cls().up(x, 1) is x


def test_one_pixel_images():
    x = torch.rand(2, 1, 1, 1)
    out = Lanczos3Resampler().up(x, 8)
    torch.testing.assert_close(out, x.expand(2, 1, 8, 8))
    torch.testing.assert_close(Lanczos3Resampler().down(out, 8), x)


# -- geometry ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", ALL, ids=ids)
def test_down_of_a_ramp_is_the_ramp_at_low_res_pixel_centres(cls):
    """Symmetric normalised taps keep a ramp a ramp; its values sit at the low-res centres (i + 0.5) f - 0.5."""
    res = cls()
    for f in FACTORS:
        n = 16
        coord = torch.arange(n * f, dtype=torch.float64)
        hi = (0.3 * coord[:, None] - 0.2 * coord[None, :]).expand(1, 1, -1, -1)
        centre = (torch.arange(n, dtype=torch.float64) + 0.5) * f - 0.5
        expected = 0.3 * centre[:, None] - 0.2 * centre[None, :]
        m = margin(res)
        torch.testing.assert_close(res.down(hi, f)[0, 0, m:-m, m:-m], expected[m:-m, m:-m])


@pytest.mark.parametrize("cls", SMOOTH, ids=[c.name for c in SMOOTH])
def test_up_then_down_returns_a_smooth_image(cls):
    res = cls()
    n = 32
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64),
                            indexing="ij")
    x = (0.5 + 0.25 * torch.sin(2 * math.pi * xx / 16) * torch.cos(2 * math.pi * yy / 13)).expand(1, 1, -1, -1)
    for f in (2, 3, 4):
        back = res.down(res.up(x, f), f)
        m = 2 * margin(res)
        assert (back - x)[..., m:-m, m:-m].abs().max().item() < 1e-2


@pytest.mark.parametrize("f", [2, 3, 4, 5, 8])
def test_bicubic_up_matches_torch_with_a_minus_075(f):
    x = torch.rand(1, 2, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(f))
    ours = BicubicResampler(a=-0.75).up(x, f)
    theirs = F.interpolate(x, scale_factor=f, mode="bicubic", align_corners=False)
    m = 2 * f
    torch.testing.assert_close(ours[..., m:-m, m:-m], theirs[..., m:-m, m:-m])
    torch.testing.assert_close(ours, theirs)  # torch also clamps indices at the border


@pytest.mark.parametrize("f", [2, 3, 7])
def test_bilinear_and_box_up_match_torch(f):
    x = torch.rand(1, 1, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(BilinearResampler().up(x, f),
                               F.interpolate(x, scale_factor=f, mode="bilinear", align_corners=False))
    torch.testing.assert_close(BoxResampler().up(x, f), F.interpolate(x, scale_factor=f, mode="nearest"))


@pytest.mark.parametrize("f", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("cls,mode", [(BilinearResampler, "bilinear"), (BicubicResampler, "bicubic")])
def test_down_matches_torch_antialias_in_the_interior(cls, mode, f):
    """torch's antialiased resize (PIL's algorithm, Keys a = -0.5) uses the same stretched kernel and centres, for
    odd factors too. Only the borders differ: torch truncates and renormalises, and we replicate."""
    x = torch.rand(1, 1, 10 * f, 10 * f, dtype=torch.float64, generator=torch.Generator().manual_seed(f))
    ours = cls().down(x, f)
    theirs = F.interpolate(x, scale_factor=1 / f, mode=mode, antialias=True, align_corners=False)
    m = margin(cls())
    torch.testing.assert_close(ours[..., m:-m, m:-m], theirs[..., m:-m, m:-m])


# -- gradients --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,f", [(Lanczos2Resampler, 2), (Lanczos3Resampler, 3), (BicubicResampler, 2),
                                   (BilinearResampler, 3), (BoxResampler, 2)])
def test_gradcheck(cls, f):
    res = cls()
    hi = torch.rand(1, 2, 2 * f, 3 * f, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: res.down(t, f), (hi,))
    lo = torch.rand(1, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: res.up(t, f), (lo,))


def test_gradient_reaches_the_input_in_float32():
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    Lanczos2Resampler().down(x, 4).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# -- cache and params -------------------------------------------------------------------------------------------------

def test_filters_are_cached_constants_and_follow_params():
    res = BicubicResampler()
    x = torch.rand(1, 1, 8, 8)
    a = res.up(x, 2)
    assert len(res._cache) == 1
    res.up(x, 2)
    assert len(res._cache) == 1
    assert all(not t.requires_grad for v in res._cache.values() for t in v[:2])
    res.down(x.double(), 2)
    assert len(res._cache) == 2  # per (op, factor, dtype, device, params)
    res.params.a = -0.75
    b = res.up(x, 2)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(b, BicubicResampler(a=-0.75).up(x, 2))


def test_params_are_validated():
    with pytest.raises(ValidationError):
        BicubicResampler(a=-2.0)
    with pytest.raises(ValidationError):
        Lanczos2Resampler(support=3)


# -- errors -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("factor,fix", [(0, "between 1 and 8"), (9, "between 1 and 8"), (2.5, "integer scale"),
                                        (True, "integer scale"), ("2", "integer scale"),
                                        (float("nan"), "integer scale"), (float("inf"), "integer scale")])
def test_bad_factor_raises_with_the_fix(factor, fix):
    res = Lanczos2Resampler()
    for op, x in ((res.down, torch.rand(1, 1, 8, 8)), (res.up, torch.rand(1, 1, 4, 4))):
        with pytest.raises(InputError) as err:
            op(x, factor)
        assert isinstance(err.value, ValueError)
        assert fix in str(err.value) and "Fix:" in str(err.value)


def test_integral_float_factor_is_accepted():
    assert Lanczos2Resampler().down(torch.rand(1, 1, 8, 8), 2.0).shape == (1, 1, 4, 4)


def test_down_size_not_divisible_names_the_crop():
    with pytest.raises(ResampleError) as err:
        BicubicResampler().down(torch.rand(1, 1, 9, 8), 2)
    text = str(err.value)
    assert "height 9 is not a multiple of 2" in text
    assert "crop the image to a multiple of 2 (e.g. 8x8)" in text
    with pytest.raises(ResampleError, match="are not multiples of 3"):
        BicubicResampler().down(torch.rand(1, 1, 10, 11), 3)


def test_bad_tensor_raises():
    with pytest.raises(ResampleError, match=r"\[B, C, H, W\]"):
        BoxResampler().down(torch.rand(8, 8), 2)
    with pytest.raises(ResampleError, match="floating-point"):
        BoxResampler().up(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 2)


# -- registration -----------------------------------------------------------------------------------------------------

def test_all_five_are_in_the_catalog():
    catalog = build_catalog()
    for cls in ALL:
        info = catalog.get("resampler", cls.name)
        assert info.cls is cls and info.dist == "fusionkit"
        assert info.summary and "\n" not in info.summary and info.reference
        res = info.cls()
        assert res.down(torch.rand(1, 3, 8, 8), 2).shape == (1, 3, 4, 4)
