"""Built-in generators: any-size shapes, gradients, params validation, determinism, fitting, registration."""
from __future__ import annotations

import time

import pytest
import torch
from pydantic import ValidationError

from fusionkit.registry import build_catalog
from fusionkit_plugins.generators import SkipNet, UNet
from fusionkit_plugins.generators._blocks import PadToMultiple, PaddedConv2d, padded_size

SIZES = [(17, 23), (32, 32), (40, 71), (7, 9)]
#: exact parameter count of the default (released-configuration) SKIPnet with 3 input and 3 output channels
DEFAULT_SKIPNET_PARAMS = 1_550_755


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def tiny(cls, depth: int, cin: int = 2, cout: int = 3, **kw):
    if cls is SkipNet:
        return SkipNet(cin, cout, channels=[4] * depth, **kw)
    return UNet(cin, cout, base_channels=2, depth=depth, **kw)


# -- shapes -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("variant", ["skip-code", "skip-paper", "unet-bilinear", "unet-transposed"])
def test_output_shape_equals_input_shape(variant, depth, size):
    torch.manual_seed(0)
    if variant.startswith("skip"):
        g = tiny(SkipNet, depth, layout=variant.split("-")[1])
    else:
        g = tiny(UNet, depth, upsample=variant.split("-")[1])
    h, w = size
    y = g(torch.rand(1, 2, h, w))
    assert y.shape == (1, 3, h, w)
    assert y.dtype == torch.float32 and y.is_contiguous()
    assert torch.isfinite(y).all()
    assert (y > 0).all() and (y < 1).all()


def test_batch_and_single_pixel_inputs():
    torch.manual_seed(0)
    g = tiny(SkipNet, 3)
    assert g(torch.rand(2, 2, 5, 6)).shape == (2, 3, 5, 6)
    assert g(torch.rand(1, 2, 1, 1)).shape == (1, 3, 1, 1)
    assert tiny(UNet, 3)(torch.rand(1, 2, 1, 1)).shape == (1, 3, 1, 1)


def test_no_sigmoid_gives_unbounded_output():
    torch.manual_seed(0)
    y = SkipNet(2, 3, channels=[4, 4], sigmoid=False)(torch.rand(1, 2, 16, 16) * 10)
    assert (y < 0).any() or (y > 1).any()


def test_padded_size_rules():
    assert padded_size(17, 23, 8) == (24, 24)
    assert padded_size(32, 64, 32) == (32, 64)
    assert padded_size(20, 20, 32) == (32, 64)     # deepest map would be 1x1: widened so batch norm can train
    assert padded_size(7, 9, 1) == (7, 9)


def test_pad_is_reflection_where_possible_and_crop_inverts_it():
    prep = PadToMultiple(4, "contiguous")
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 6, 5).contiguous()   # 6x5 -> 8x8: 1 top/bottom, 1/2 cols
    y, geom = prep.pad(x)
    assert geom == (1, 1, 1, 2) and y.shape == (1, 1, 8, 8)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([1.0, 0, 1, 2, 3, 4, 3, 2]))   # reflection, no edge repeat
    torch.testing.assert_close(PadToMultiple.finish(y.clone(), geom, sigmoid=False), x)
    tiny_img = torch.rand(1, 1, 2, 3)                                       # too small to reflect: replicate
    y, geom = PadToMultiple(8, "contiguous").pad(tiny_img)
    assert y.shape == (1, 1, 8, 16)
    assert (y[..., :geom[0], geom[2]:geom[2] + 3] == tiny_img[..., :1, :]).all()


def test_prepared_input_is_cached_for_the_same_unmodified_tensor():
    prep = PadToMultiple(8, "auto")
    z = torch.rand(1, 3, 13, 13)
    a, _ = prep.pad(z)
    b, _ = prep.pad(z)
    assert a is b
    z.add_(1.0)                       # in-place change: the cache must notice
    c, _ = prep.pad(z)
    assert c is not a and torch.equal(c[..., 1:14, 1:14], z.contiguous())
    zg = torch.rand(1, 3, 13, 13, requires_grad=True)
    assert prep.pad(zg)[0] is not prep.pad(zg)[0]


def test_reflection_conv_falls_back_to_replicate_on_tiny_maps():
    conv = PaddedConv2d(1, 1, 5)
    assert conv(torch.rand(1, 1, 2, 2)).shape == (1, 1, 2, 2)
    assert conv(torch.rand(1, 1, 4, 3)).shape == (1, 1, 4, 3)


def test_memory_formats_agree():
    torch.manual_seed(0)
    g = SkipNet(3, 3, channels=[8, 16, 32])
    z = torch.rand(1, 3, 24, 40)
    y_cl = g(z)
    g._pad = PadToMultiple(8, "contiguous")
    y_nchw = g(z)
    torch.testing.assert_close(y_cl, y_nchw, atol=1e-5, rtol=1e-4)


# -- gradients ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: SkipNet(3, 3, channels=[8, 16, 32]),
    lambda: SkipNet(3, 3, channels=[8, 16, 32], layout="paper"),
    lambda: SkipNet(3, 1, channels=[8, 16, 32], skip=[0, 0, 4]),
    lambda: SkipNet(3, 3, channels=[8, 16], batch_norm=False, padding="zeros", upsample="nearest"),
    lambda: UNet(3, 3, base_channels=4, depth=3),
    lambda: UNet(3, 3, base_channels=4, depth=3, upsample="transposed", batch_norm=False),
], ids=["skip-code", "skip-paper", "skip-mask", "skip-plain", "unet", "unet-transposed-plain"])
def test_gradients_reach_every_parameter(make):
    torch.manual_seed(0)
    g = make()
    y = g(torch.rand(1, 3, 21, 27))
    (y * torch.rand_like(y)).sum().backward()
    bn = getattr(g.params, "batch_norm", True)
    dead = []
    for name, p in g.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if p.grad.abs().max() <= 1e-6:
            dead.append(name)
    # a bias followed (through convs, which map a per-channel constant to a per-channel constant under reflection
    # padding) by a training-mode batch norm is cancelled by its mean subtraction, so its gradient is ~0 by
    # construction: the conv biases of SKIPnet's released configuration and the beta of the BN after each concat.
    # Every weight must learn.
    allowed = {n for n, _ in g.named_parameters() if n.endswith(".bias") and n != "head.bias"} if bn else set()
    assert set(dead) <= allowed, sorted(set(dead) - allowed)


def test_input_gradient_flows_through_padding():
    torch.manual_seed(0)
    g = tiny(SkipNet, 3)
    z = torch.rand(1, 2, 11, 13, requires_grad=True)
    g(z).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


# -- params -------------------------------------------------------------------------------------------------------------

def test_skipnet_defaults_are_the_released_configuration():
    p = SkipNet.Params()
    assert p.channels == [8, 16, 32, 64, 128] and p.skip == 4 and p.skip_channels == [4] * 5
    assert (p.kernel, p.skip_kernel, p.upsample, p.activation) == (5, 1, "bilinear", 0.2)
    assert (p.padding, p.batch_norm, p.sigmoid, p.layout, p.bias) == ("reflection", True, True, "code", True)
    assert p.depth == 5


def test_skip_broadcast_and_lists():
    assert SkipNet.Params(channels=[8, 16, 32], skip=2).skip_channels == [2, 2, 2]
    assert SkipNet.Params(skip=[0, 0, 0, 4, 4]).skip_channels == [0, 0, 0, 4, 4]
    g = SkipNet(3, 1, skip=[0, 0, 0, 4, 4])
    assert [lvl.skip is None for lvl in g.levels] == [True, True, True, False, False]
    g0 = SkipNet(3, 3, channels=[8, 16], skip=0)
    assert all(lvl.skip is None for lvl in g0.levels)
    assert g0(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)


@pytest.mark.parametrize("bad", [
    dict(skip=[4, 4]),                        # length != len(channels)
    dict(channels=[8, 16], skip=[1, 2, 3]),
    dict(kernel=4),
    dict(skip_kernel=2),
    dict(channels=[]),
    dict(channels=[8] * 9),
    dict(channels=[0, 8]),
    dict(skip=-1),
    dict(upsample="bicubic"),
    dict(layout="fancy"),
    dict(padding="circular"),
    dict(activation=-0.1),
    dict(chanels=[8, 16]),                    # unknown key
])
def test_skipnet_params_rejected(bad):
    with pytest.raises(ValidationError):
        SkipNet.Params(**bad)


def test_length_mismatch_message_is_clear():
    with pytest.raises(ValidationError, match="skip has 2 entries but channels has 5"):
        SkipNet(3, 3, skip=[4, 4])


@pytest.mark.parametrize("bad", [dict(kernel=2), dict(depth=0), dict(base_channels=0), dict(upsample="nearest"),
                                 dict(width=3)])
def test_unet_params_rejected(bad):
    with pytest.raises(ValidationError):
        UNet.Params(**bad)


def test_params_dict_and_overrides():
    g = SkipNet(3, 3, {"channels": [8, 16], "skip": 2}, kernel=3)
    assert g.params.channels == [8, 16] and g.params.skip == 2 and g.params.kernel == 3
    assert (g.in_channels, g.out_channels) == (3, 3)


# -- determinism and size -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [SkipNet, UNet])
def test_same_seed_same_output(cls):
    z = torch.rand(1, 3, 19, 26)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        outs.append(cls(3, 3)(z))
    assert torch.equal(outs[0], outs[1])
    torch.manual_seed(124)
    assert not torch.equal(outs[0], cls(3, 3)(z))


def test_default_parameter_counts():
    assert n_params(SkipNet(3, 3)) == DEFAULT_SKIPNET_PARAMS        # the notes' estimate: ~1.55 M
    assert n_params(SkipNet(3, 1, skip=[0, 0, 0, 4, 4])) == 1_544_969   # decision-embedding (mask) net
    assert n_params(SkipNet(3, 3, layout="paper")) == 2_075_031
    assert n_params(UNet(3, 3)) == 1_812_051


# -- fitting ------------------------------------------------------------------------------------------------------------------

def test_small_skipnet_fits_a_target():
    torch.manual_seed(0)
    g = SkipNet(3, 3, channels=[8, 16], skip=4)
    z = torch.rand(1, 3, 32, 32) * 0.1
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    target = torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx) * torch.cos(4 * yy)]).unsqueeze(0)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    with torch.no_grad():
        first = torch.mean((g(z) - target) ** 2).item()
    for _ in range(200):
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((g(z) - target) ** 2)
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = torch.mean((g(z) - target) ** 2).item()
    assert last < first / 5, (first, last)


# -- registration ---------------------------------------------------------------------------------------------------------------

def test_registered_in_catalog():
    catalog = build_catalog()
    for name, cls in (("skipnet", SkipNet), ("unet", UNet)):
        info = catalog.get("generator", name)
        assert info.cls is cls and info.dist == "fusionkit"
        assert cls.summary and cls.reference and cls.__doc__


# -- timing (printed, not asserted) -----------------------------------------------------------------------------------------------

def test_print_default_skipnet_iteration_time(capsys):
    torch.manual_seed(0)
    g = SkipNet(3, 3)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    lines = []
    for size in (128, 256):
        z, target = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
        times = []
        for i in range(4):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            torch.mean((g(z) - target) ** 2).backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        lines.append(f"default skipnet 3->3 at {size}^2: {min(times[1:]) * 1e3:.1f} ms per forward+backward+step "
                     f"({torch.get_num_threads()} threads)")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
