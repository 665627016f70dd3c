"""The learned_kernel resampler (a downsampler whose kernel DFP estimates): normalisation, geometry, the priors by
hand, gradients, a blind kernel fit on a known Gaussian degradation, and the engine's extension point (optimiser
groups, warm-up freeze, prior in the loss, kernel files and manifest entry)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import fusionkit
from fusionkit.interfaces import Resampler, TrainableGroup
from fusionkit.optimisation import Loop
from fusionkit.registry import build_catalog
from fusionkit.synthetic import make_stack, sample_image
from fusionkit.tiling import Blender, TileResult, tile_downsamplers
from fusionkit_plugins.upsamplers import BicubicResampler, Lanczos2Resampler, LearnedKernelResampler, kernels
from fusionkit_plugins.upsamplers.learned_kernel import gaussian_width
from fusionkit_plugins.upsamplers.separable import separable_down


pytestmark = pytest.mark.usefixtures("one_thread")


# -- the kernel -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("param", ["signed", "softmax"])
@pytest.mark.parametrize("f", [2, 3, 4])
def test_kernel_sums_to_one_and_has_the_factors_parity(param, f):
    res = LearnedKernelResampler(parameterisation=param)
    k = res.kernel(f)
    assert k.shape == (4 * f - (f % 2),) * 2            # support 2: 8x8 at x2, 11x11 at x3, 16x16 at x4
    assert float(k.sum()) == pytest.approx(1, abs=1e-6)
    if param == "softmax":
        assert (k > 0).all()
    # any trainable values still give a kernel summing to one (by construction, not by a penalty)
    res.trainable_parameters(f, "cpu")
    with torch.no_grad():
        res._raw[f].add_(torch.randn_like(res._raw[f]) * 3)
    assert float(res.kernel(f).detach().sum()) == pytest.approx(1, abs=1e-5)


def test_signed_lanczos2_start_is_the_lanczos2_downsampler():
    """The default starts exactly at DFP's fixed loss kernel: the same taps, the same output away from borders."""
    res = LearnedKernelResampler()
    taps = Lanczos2Resampler().down_taps(2)
    torch.testing.assert_close(res.initial_kernel(2), torch.outer(taps, taps))
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(res.down(x, 2)[..., 3:-3, 3:-3], Lanczos2Resampler().down(x, 2)[..., 3:-3, 3:-3])
    bic = LearnedKernelResampler(init="bicubic")
    b = BicubicResampler().down_taps(2)
    torch.testing.assert_close(bic.initial_kernel(2), torch.outer(b, b))


def test_up_is_bicubic():
    x = torch.rand(1, 1, 6, 6)
    torch.testing.assert_close(LearnedKernelResampler().up(x, 3), BicubicResampler().up(x, 3))


def test_a_centred_kernel_keeps_a_ramp_at_the_low_res_pixel_centres():
    """Geometry: a symmetric kernel samples the ramp u = x at the low-res centres (i + 0.5) f - 0.5."""
    for f in (2, 3, 4):
        h = 12 * f
        ramp = torch.arange(h, dtype=torch.float32).view(1, 1, 1, h).expand(1, 1, h, h).contiguous()
        got = LearnedKernelResampler().down(ramp, f)[0, 0, 0]
        want = (torch.arange(12, dtype=torch.float32) + 0.5) * f - 0.5
        torch.testing.assert_close(got[3:-3], want[3:-3], atol=1e-4, rtol=0)


def test_borders_are_reflected_and_tiny_images_replicated():
    res = LearnedKernelResampler()
    x = torch.rand(1, 1, 16, 16)
    pad = kernels.down_pad(8, 2)
    manual = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (pad,) * 4, mode="reflect"),
                                        res.kernel(2).view(1, 1, 8, 8), stride=2)
    torch.testing.assert_close(res.down(x, 2), manual)
    assert res.down(torch.rand(1, 1, 4, 4), 4).shape == (1, 1, 1, 1)    # pad 6 > 4: replicated, no error


# -- the priors, by hand -----------------------------------------------------------------------------------------------


def _box(rows: slice, cols: slice) -> torch.Tensor:
    k = torch.zeros(4, 4, dtype=torch.float64)
    k[rows, cols] = 0.25
    return k


def test_priors_by_hand():
    """Support 1 at x2: 4x4 taps at offsets -1.5, -0.5, 0.5, 1.5 (HR pixels), i.e. +-0.25, +-0.75 LR pixels.

    Centred 2x2 box: centre of mass 0; smoothness: 8 neighbour differences of 0.25 -> 8 * 0.0625 = 0.5; every tap
    within free radius 0.5 LR px (rho = sqrt(0.5)/2 = 0.354) -> support penalty 0.
    The same box moved one HR pixel up and left (taps [0:2, 0:2]): centre of mass (-1, -1) -> |mu|^2 = 2;
    smoothness 4 * 0.0625 = 0.25 (the array edge is not a difference); support: taps at rho = |(1.5, 0.5)|/2 (twice)
    and |(1.5, 1.5)|/2, each 0.25 * (rho - 0.5)^2.
    """
    res = LearnedKernelResampler(support=1.0, free_radius=0.5, centre_weight=2.0, smoothness_weight=3.0,
                                 boundary_weight=5.0)
    res.trainable_parameters(2, "cpu")
    res.load_kernel(2, _box(slice(1, 3), slice(1, 3)))
    p = {k: float(v.detach()) for k, v in res.priors(2).items()}
    assert p["centre"] == pytest.approx(0, abs=1e-10)
    assert p["smoothness"] == pytest.approx(0.5, rel=1e-5)
    assert p["boundary"] == pytest.approx(0, abs=1e-10)
    assert float(res.prior_loss().detach()) == pytest.approx(3.0 * 0.5, rel=1e-5)

    res.load_kernel(2, _box(slice(0, 2), slice(0, 2)))
    p = {k: float(v.detach()) for k, v in res.priors(2).items()}
    side, corner = math.hypot(1.5, 0.5) / 2, math.hypot(1.5, 1.5) / 2
    boundary = 0.25 * (2 * (side - 0.5) ** 2 + (corner - 0.5) ** 2)
    assert p["centre"] == pytest.approx(2.0, rel=1e-5)
    assert p["smoothness"] == pytest.approx(0.25, rel=1e-5)
    assert p["boundary"] == pytest.approx(boundary, rel=1e-5)
    assert float(res.prior_loss().detach()) == pytest.approx(2.0 * 2.0 + 3.0 * 0.25 + 5.0 * boundary, rel=1e-5)


def test_centre_prior_is_zero_for_every_symmetric_start_and_pulls_an_off_centre_kernel_back():
    for f in (2, 3, 4):
        for init in ("lanczos2", "bicubic"):
            res = LearnedKernelResampler(init=init)
            res.trainable_parameters(f, "cpu")
            assert float(res.priors(f)["centre"].detach()) < 1e-12
    res = LearnedKernelResampler(support=1.0, smoothness_weight=0, boundary_weight=0)
    (raw,) = res.trainable_parameters(2, "cpu")[0].params
    res.load_kernel(2, _box(slice(0, 2), slice(0, 2)) + 0.01)
    before = float(res.priors(2)["centre"].detach())
    opt = torch.optim.Adam([raw], lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        res.prior_loss().backward()
        opt.step()
    assert before > 1 and float(res.priors(2)["centre"].detach()) < 0.01 * before


# -- gradients --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("param", ["signed", "softmax"])
def test_gradients_reach_the_kernel_and_the_input(param):
    res = LearnedKernelResampler(parameterisation=param)
    (group,) = res.trainable_parameters(2, "cpu")
    assert isinstance(group, TrainableGroup) and group.lr == res.params.lr
    assert group.frozen_for == res.params.frozen_for
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    (res.down(x, 2).square().mean() + res.prior_loss()).backward()
    (raw,) = group.params
    assert raw.grad is not None and torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_fixed_resampler_has_no_trainable_parameters():
    for res in (Lanczos2Resampler(), BicubicResampler()):
        assert res.trainable_parameters(2, "cpu") == [] and res.prior_loss() is None
        assert res.report() is None and res.artifacts() == {}
    plain = LearnedKernelResampler()        # never asked for trainable parameters: a constant kernel
    assert plain.report() is None and plain.prior_loss() is None
    assert not plain.down(torch.rand(1, 1, 8, 8), 2).requires_grad


# -- blind estimation: the kernel alone, given the HR image and the LR target ------------------------------------------


def _fit(hr: torch.Tensor, lr_img: torch.Tensor, res: LearnedKernelResampler, steps: int = 300) -> None:
    (group,) = res.trainable_parameters(2, "cpu")
    opt = torch.optim.Adam(group.params, lr=0.03)
    for _ in range(steps):
        opt.zero_grad()
        loss = (res.down(hr, 2) - lr_img)[..., 4:-4, 4:-4].abs().mean() + res.prior_loss()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("param", ["signed", "softmax"])
@pytest.mark.parametrize("sigma", [0.8, 1.6])
def test_fitting_the_kernel_recovers_a_known_gaussian_width(sigma, param):
    """An image blurred by a Gaussian of sigma HR pixels and decimated x2; the kernel, fitted alone from the lanczos2
    start (width 0.77 px), ends within 0.1 px of sigma, centred. (The fitted width is the isotropic Gaussian nearest
    to the kernel, the same measure the manifest reports.)"""
    hr = torch.from_numpy(sample_image("astronaut", 64)).permute(2, 0, 1)[None].mean(1, keepdim=True).float()
    lr_img = separable_down(hr, kernels.gaussian_taps(sigma, 2), 2)
    res = LearnedKernelResampler(parameterisation=param)
    start = res.describe(2)["gaussian_sigma_hr"]
    _fit(hr, lr_img, res)
    got = res.describe(2)
    assert abs(start - sigma) > 0.2 or sigma == 0.8      # the lanczos2 start is not already the answer at 1.6
    assert got["gaussian_sigma_hr"] == pytest.approx(sigma, abs=0.1)
    assert max(abs(v) for v in got["centre_of_mass_hr"]) < 0.05
    assert got["sum"] == pytest.approx(1, abs=1e-5)


def test_gaussian_width_of_a_sampled_gaussian_is_its_sigma():
    t = kernels.down_offsets(2, 2)
    for sigma in (0.6, 1.0, 1.5):
        g = kernels.gaussian(t, sigma)
        assert gaussian_width(torch.outer(g, g) / g.sum() ** 2, t) == pytest.approx(sigma, abs=0.011)


# -- the optimisation loop's per-group learning rate -------------------------------------------------------------------


def test_a_group_with_its_own_base_lr_follows_the_schedule():
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([a], lr=1e-3)
    opt.add_param_group({"params": [b], "lr": 0.05, "base_lr": 0.05})
    seen = []

    def step(it):
        seen.append([g["lr"] for g in opt.param_groups])
        return torch.zeros(1)

    Loop(opt, 10, lr=1e-3, schedule="cosine", warmup=0.2, final_lr=0.1).run(step, lambda *args: None)
    for lr_a, lr_b in seen:
        assert lr_b == pytest.approx(lr_a * 50)
    assert seen[0][0] == pytest.approx(0.5e-3) and seen[-1][0] == pytest.approx(1e-4)


# -- the engine -------------------------------------------------------------------------------------------------------


QUICK = ["iterations=20", "device=cpu", "threads=1", "generator.params.channels=[8,16,32]",
         "decision_embedding.enabled=false", "refine.iterations=5"]


@pytest.fixture(scope="module")
def small_pair():
    return make_stack(sample_image("astronaut", 64), n=2, scale=2, blur_sigma=2.5, seed=1)   # 32x32 inputs


def test_engine_estimates_the_kernel_and_writes_it(tmp_path, small_pair):
    spec = {"name": "t", "downsampler": {"name": "learned_kernel", "params": {"frozen_for": 0.25, "lr": 0.05}},
            "output": {"dir": str(tmp_path / "run")}}
    r = fusionkit.run(spec, QUICK, inputs=small_pair.inputs)
    m = json.loads((r.run_dir / "manifest.json").read_text())
    d = m["downsampler"]
    assert d["name"] == "learned_kernel" and len(d["kernels"]) == 1
    k = d["kernels"][0]
    assert k["factor"] == 2 and k["size"] == [8, 8] and k["estimated"]
    assert k["sum"] == pytest.approx(1, abs=1e-5)
    assert {"centre_of_mass_hr", "gaussian_sigma_hr", "initial_gaussian_sigma_hr", "negative_mass",
            "priors"} <= set(k)
    saved = np.load(r.run_dir / "downsampler" / "kernel_x2.npy")
    np.testing.assert_allclose(saved, np.array(k["values"]), atol=1e-5)
    start = LearnedKernelResampler().initial_kernel(2).numpy()
    assert np.abs(saved - start).max() > 1e-4            # it was trained (15 of the 20 iterations)
    assert (r.run_dir / "downsampler" / "kernel_x2.png").is_file()
    assert m["outputs"]["downsampler"] == ["downsampler/kernel_x2.npy", "downsampler/kernel_x2.png"]
    rows = (r.run_dir / "loss.csv").read_text().splitlines()
    assert "downsampler_prior" in rows[0].split(",") and len(rows) == 1 + 20 + 5


def test_engine_keeps_the_kernel_frozen_during_the_warm_up(small_pair):
    spec = {"name": "t", "downsampler": {"name": "learned_kernel", "params": {"frozen_for": 0.99, "lr": 0.05}}}
    r = fusionkit.run(spec, QUICK, inputs=small_pair.inputs, write=False)
    got = np.array(r.manifest["downsampler"]["kernels"][0]["values"])
    np.testing.assert_allclose(got, LearnedKernelResampler().initial_kernel(2).numpy(), atol=1e-6)


def test_a_fixed_downsampler_run_is_unchanged(tmp_path, small_pair):
    spec = {"name": "t", "output": {"dir": str(tmp_path / "run")}}
    r = fusionkit.run(spec, QUICK, inputs=small_pair.inputs)
    m = json.loads((r.run_dir / "manifest.json").read_text())
    assert "downsampler" not in m and "downsampler" not in m["outputs"]
    assert not (r.run_dir / "downsampler").exists()
    assert "downsampler_prior" not in (r.run_dir / "loss.csv").read_text().splitlines()[0]


def test_tiles_report_one_kernel_each():
    k = np.eye(2, dtype=np.float32)
    blend = Blender([(0, 2, 0, 2), (0, 2, 2, 4), (2, 4, 0, 2)], n=2, c=1, h=4, w=4, s=1, overlap=0)

    def tile(report):
        return TileResult(np.zeros((1, 1, 2, 2), np.float32), np.zeros((2, 1, 2, 2), np.float32),
                          np.zeros((2, 1, 2, 2), np.float32), [], [], {}, None, None, report)

    blend.add(0, tile({"report": {"kernels": [1]}, "artifacts": {"kernel_x2": k}}))
    blend.add(1, tile(None))
    blend.add(2, tile({"report": {"kernels": [2]}, "artifacts": {"kernel_x2": k}}))
    out = blend.downsampler()
    assert out["report"] == {"tiles": [{"tile": 0, "kernels": [1]}, {"tile": 2, "kernels": [2]}]}
    assert set(out["artifacts"]) == {"tile_00_kernel_x2", "tile_02_kernel_x2"}
    assert tile_downsamplers({}) is None


def test_registered_with_the_builtins():
    info = build_catalog().get("resampler", "learned_kernel")
    assert info.cls is LearnedKernelResampler and info.dist == "fusionkit"
    assert issubclass(info.cls, Resampler)


def test_a_tiled_run_estimates_one_kernel_per_tile(tmp_path, small_pair):
    spec = {"name": "t", "downsampler": {"name": "learned_kernel"}, "output": {"dir": str(tmp_path / "run")}}
    r = fusionkit.run(spec, [*QUICK, "tiling.tile=32", "tiling.overlap=16", "tiling.workers=1"],
                      inputs=small_pair.inputs)
    m = json.loads((r.run_dir / "manifest.json").read_text())
    assert m["memory"]["mode"] == "tiled"
    tiles = m["downsampler"]["tiles"]
    assert [t["tile"] for t in tiles] == [0, 1, 2, 3] and all(t["kernels"][0]["estimated"] for t in tiles)
    for k in range(4):
        assert (r.run_dir / "downsampler" / f"tile_{k:02d}_kernel_x2.npy").is_file()
