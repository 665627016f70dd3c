"""FAP-SR (plugins/fapsr): shapes for any K and scale, the N rule (maps >= 0 summing to 1, equivariant under a
permutation of the inputs), the phases, Eq. 14's hole filling, the losses (Eqs. 17-20) against hand computations
and their refusal of batches without ground truth, the parameter groups, a tiny training run, weights and the
fuser/focus-measure roles. Tiny widths and images: the file runs in seconds on one thread."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from fusionkit import testing, weights
from fusionkit.interfaces import TrainingBatch, UnsupportedInput
from fusionkit_plugins.fapsr.hole_filling import fill_label_map, hole_fill
from fusionkit_plugins.fapsr.losses import (FusionLoss, GradientLoss, MaskLoss, ReconstructionLoss, SSIMLoss,
                                            ssim)
from fusionkit_plugins.fapsr.model import FAPSR, PHASES, combine_pairs, pair_indices
from fusionkit_plugins.fapsr.roles import BUILTIN_WEIGHTS, FAPSRFuser, FAPSRMasks

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(width=4, growth=2, dense_blocks=1, fapn_width=4, fr_blocks=1, head_convs=1, attention_pool=4)
LOSSES = (MaskLoss, GradientLoss, SSIMLoss, ReconstructionLoss, FusionLoss)


def model(scale: int = 2, **kw) -> FAPSR:
    torch.manual_seed(0)
    return FAPSR(params={**TINY, "scale": scale, **kw})


def batch(b: int = 2, k: int = 2, h: int = 16, w: int = 16, scale: int = 2, seed: int = 0, phase=None,
          truth: bool = True) -> TrainingBatch:
    """A synthetic Eq. 21 batch: an HR texture, input i sharp on the i-th vertical band and blurred elsewhere; LR
    by ``scale``×``scale`` averaging; the GT masks the bands. Extra fields set as attributes (the dataclass gains
    them in fusionkit.interfaces)."""
    g = torch.Generator().manual_seed(seed)
    sh, sw = scale * h, scale * w
    hr = F.avg_pool2d(torch.rand(b, 1, sh + 2, sw + 2, generator=g), 3, stride=1)          # a smooth-ish texture
    blurred = F.avg_pool2d(F.pad(hr, (3, 3, 3, 3), mode="replicate"), 7, stride=1)
    band_hr = (torch.arange(sw) * k // sw).view(1, 1, 1, sw)
    hr_sources = torch.stack([torch.where(band_hr == i, hr, blurred) for i in range(k)], dim=1)   # [B,K,1,sH,sW]
    down = (lambda x: F.avg_pool2d(x, scale)) if scale > 1 else (lambda x: x)
    sources = torch.stack([down(hr_sources[:, i]) for i in range(k)], dim=1)
    band = (torch.arange(w) * k // w).view(1, 1, 1, w)
    masks = torch.stack([(band == i).float().expand(b, 1, h, w) for i in range(k)], dim=1)
    out = TrainingBatch(sources, down(hr) if truth else None, torch.Generator().manual_seed(1))
    extra = dict(scale=scale, hr_sources=hr_sources if truth else None, hr_truth=hr if truth else None,
                 masks=masks if truth else None, phase=phase)
    for key, value in extra.items():
        setattr(out, key, value)
    return out


# ------------------------------------------------------------------------------------------------ networks

def test_registered_names():
    from fusionkit.registry import default_catalog

    catalog = default_catalog()
    assert catalog.get("model", "fapsr").cls is FAPSR
    assert catalog.get("fuser", "fapsr").cls is FAPSRFuser
    assert catalog.get("focus_measure", "fapsr").cls is FAPSRMasks
    assert [c.name for c in LOSSES] == ["fapsr_mask", "fapsr_gradient", "fapsr_ssim", "fapsr_reconstruction",
                                        "fapsr_fusion"]
    for cls in LOSSES:
        assert catalog.get("training_loss", cls.name).cls is cls
        assert set(cls.needs) <= set(FAPSR.provides)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("scale", [2, 4])
def test_shapes_for_any_k_and_scale(k, scale):
    net = model(scale)
    b = batch(2, k, 12, 10, scale)
    out = net.training_outputs(b)
    assert set(out) == set(FAPSR.provides)
    assert out["maps"].shape == out["pred_masks"].shape == (2, k, 1, 12, 10)
    assert out["fused_lr"].shape == (2, 1, 12, 10)
    assert out["sr"].shape == (2, k, 1, 12 * scale, 10 * scale)
    assert out["fused_hr"].shape == (2, 1, 12 * scale, 10 * scale)
    net.eval()
    with torch.no_grad():
        fused, maps = net.fuse(b.sources[:1])
    assert fused.shape == (1, 1, 12 * scale, 10 * scale) and maps.shape == (1, k, 1, 12, 10)
    for m in (out["maps"], out["pred_masks"], maps):
        assert (m >= 0).all() and torch.allclose(m.sum(dim=1), torch.ones_like(m[:, 0]), atol=1e-5)
    assert set(torch.unique(maps).tolist()) <= {0.0, 1.0}          # hole-filled maps are binary


def test_odd_sizes_and_scale_three():
    net = model(3).eval()
    with torch.no_grad():
        fused, maps = net.fuse(torch.rand(1, 2, 1, 7, 9))
    assert fused.shape == (1, 1, 21, 27) and maps.shape == (1, 2, 1, 7, 9)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_n_rule_is_equivariant_under_a_permutation_of_the_inputs(k):
    net = model().eval()
    s = batch(1, k, 12, 12).sources
    perm = torch.tensor(list(reversed(range(k))))
    with torch.no_grad():
        maps = net.decision_maps(s)
        permuted = net.decision_maps(s[:, perm])
    assert torch.allclose(permuted, maps[:, perm], atol=1e-5)
    assert torch.allclose(maps.sum(dim=1), torch.ones(1, 1, 12, 12), atol=1e-5)


def test_combine_pairs_is_the_pair_rule_for_two_inputs_and_the_minimum_for_more():
    h = w = 1
    # K = 2: pairs (0,1), (1,0); FPM(0,1) = (0.8, 0.3), FPM(1,0) = (0.4, 0.6)
    pm = torch.tensor([[0.8, 0.3], [0.4, 0.6]]).view(1, 2, 2, h, w)
    p01, p10 = 0.5 * (0.8 + 0.6), 0.5 * (0.4 + 0.3)
    out = combine_pairs(pm, 2).flatten()
    assert torch.allclose(out, torch.tensor([p01, p10]) / (p01 + p10))
    # K = 3: input 0 wins against 1 (0.9) but loses against 2 (0.2) -> its score is the minimum, 0.2
    ii, jj = pair_indices(3)
    table = {(0, 1): 0.9, (1, 0): 0.1, (0, 2): 0.2, (2, 0): 0.8, (1, 2): 0.5, (2, 1): 0.5}
    pm = torch.stack([torch.tensor([table[(i, j)], 1 - table[(i, j)]]) for i, j in zip(ii.tolist(), jj.tolist())])
    out = combine_pairs(pm.view(1, 6, 2, 1, 1), 3).flatten()
    scores = torch.tensor([min(0.2, 0.9), min(0.1, 0.5), min(0.8, 0.5)])
    assert torch.allclose(out, scores / scores.sum())
    # every score ~0: uniform
    assert torch.allclose(combine_pairs(torch.zeros(1, 6, 2, 1, 1), 3).flatten(), torch.full((3,), 1 / 3))


def test_phases_compute_only_what_they_need_and_joint_freezes_fapn():
    net = model()
    for phase in ("fapn", "srn", "joint"):
        out = net.training_outputs(batch(phase=phase))
        assert set(out) == set(PHASES[phase]), phase
    out = net.training_outputs(batch(phase="joint"))
    FusionLoss()(out, batch(phase="joint")).backward()
    groups = net.parameter_groups()
    assert all(p.grad is None for p in groups["fapn"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups["fusion"].parameters())
    with pytest.raises(UnsupportedInput, match="no training phase 'warmup'"):
        net.training_outputs(batch(phase="warmup"))
    with pytest.raises(UnsupportedInput, match="built for x2"):
        net.training_outputs(batch(scale=4))


def test_parameter_groups_cover_every_parameter_once():
    net = model()
    ids = [id(p) for g in net.parameter_groups().values() for p in g.parameters()]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in net.parameters()}
    assert set(net.parameter_groups()) == {"fapn", "srn", "fusion"}


def test_refuses_a_single_input():
    with pytest.raises(UnsupportedInput, match="K >= 2"):
        model().fuse(torch.rand(1, 1, 1, 8, 8))


# ------------------------------------------------------------------------------------------------ hole filling

def test_hole_filling_removes_a_small_island_and_keeps_big_regions():
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[:, 10:] = 1              # two big halves
    labels[4:6, 2:4] = 1            # a 4-pixel island of 1 inside 0
    labels[14, 15] = 0              # a 1-pixel hole of 0 inside 1
    out = fill_label_map(labels, 2, min_size=10)
    expected = np.zeros((20, 20), dtype=np.int64)
    expected[:, 10:] = 1
    assert (out == expected).all()
    assert (fill_label_map(labels, 2, min_size=1) == labels).all()
    # K = 3, through the tensor interface: fraction 0.01 of 400 pixels = 4 -> the 1-pixel island of 2 goes
    maps = torch.zeros(1, 3, 1, 20, 20)
    lab = torch.from_numpy(expected.copy())
    lab[15:, :5] = 2               # a big region of input 2 (25 pixels)
    lab[3, 3] = 2                  # a 1-pixel island of input 2
    maps.scatter_(1, lab.view(1, 1, 1, 20, 20), 1.0)
    filled = hole_fill(maps * 0.7 + 0.1, 0.01)
    assert filled[0, 2, 0, 3, 3] == 0 and filled[0, 0, 0, 3, 3] == 1
    assert (filled[0, 2, 0, 15:, :5] == 1).all()
    assert torch.equal(filled.sum(dim=1), torch.ones(1, 1, 20, 20))
    assert torch.equal(hole_fill(maps, 0.0), maps)


# ------------------------------------------------------------------------------------------------ losses

def _outputs(**t):
    return dict(t)


def test_mask_loss_by_hand():
    maps = torch.tensor([0.2, 0.8, 0.6, 0.4]).view(1, 2, 1, 1, 2)      # [B=1, K=2, 1, 1, 2]
    gt = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 2, 1, 1, 2)
    b = batch(1, 2, 1, 2)
    b.masks = gt
    expected = (0.2 + 0.2 + 0.4 + 0.4) / (1 * 1 * 2)
    assert MaskLoss()(_outputs(maps=maps), b).item() == pytest.approx(expected)


def test_gradient_loss_by_hand():
    fused = torch.tensor([[0.0, 1.0], [0.5, 0.5]]).view(1, 1, 2, 2)
    truth = torch.tensor([[0.0, 0.5], [0.0, 1.0]]).view(1, 1, 2, 2)
    b = batch(1, 2, 2, 2)
    b.truth = truth
    # dx: fused (1, 0), truth (0.5, 1) -> |0.5| + |-1|; dy: fused (0.5, -0.5), truth (0, 0.5) -> 0.5 + 1
    expected = (0.5 + 1.0 + 0.5 + 1.0) / 4
    assert GradientLoss()(_outputs(fused_lr=fused), b).item() == pytest.approx(expected)


def test_ssim_loss_against_skimage():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    y = 0.5 * x + 0.5 * y
    ref = np.mean([structural_similarity(x[i, 0].double().numpy(), y[i, 0].double().numpy(), data_range=1.0,
                                         gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                   for i in range(2)])
    assert ssim(x, y).mean().item() == pytest.approx(ref, abs=1e-4)
    b = batch(2, 2, 16, 16)
    b.truth = y
    assert SSIMLoss()(_outputs(fused_lr=x), b).item() == pytest.approx(1 - ref, abs=1e-4)
    assert SSIMLoss()(_outputs(fused_lr=y), b).item() == pytest.approx(0.0, abs=1e-6)


def test_reconstruction_loss_by_hand():
    sr = torch.tensor([0.0, 1.0, 0.5, 0.5]).view(1, 2, 1, 1, 2)
    hr = torch.tensor([0.5, 1.0, 0.0, 0.0]).view(1, 2, 1, 1, 2)
    b = batch(1, 2, 1, 1)
    b.hr_sources = hr
    assert ReconstructionLoss()(_outputs(sr=sr), b).item() == pytest.approx((0.5 + 0 + 0.5 + 0.5) / 2)


def test_fusion_loss_by_hand():
    fused = torch.tensor([0.5, 1.0]).view(1, 1, 1, 2)
    truth = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    hr = torch.tensor([0.25, 0.0, 1.0, 0.5]).view(1, 2, 1, 1, 2)
    pred = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 2, 1, 1, 2)     # same size: no resize
    b = batch(1, 2, 1, 2, scale=1)
    b.hr_truth, b.hr_sources = truth, hr
    # |0.5| + |0| + input 0 where M_0 = 1 (pixel 0): |0.5 - 0.25| + input 1 where M_1 = 1 (pixel 1): |1 - 0.5|
    expected = (0.5 + 0.25 + 0.5) / 2
    assert FusionLoss()(_outputs(fused_hr=fused, pred_masks=pred), b).item() == pytest.approx(expected)
    with_half = (0.5 + 0.5 * (0.25 + 0.5)) / 2
    assert FusionLoss(focus_weight=0.5)(_outputs(fused_hr=fused, pred_masks=pred), b).item() == \
        pytest.approx(with_half)


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.name)
def test_losses_refuse_a_batch_without_ground_truth(cls):
    net = model()
    out = net.training_outputs(batch(truth=True))
    with pytest.raises(UnsupportedInput) as exc:
        cls()(out, batch(truth=False))
    assert "this batch has none" in exc.value.message and "synthetic" in exc.value.hint


def test_a_loss_in_the_wrong_phase_says_which_phase():
    out = model().training_outputs(batch(phase="srn"))
    with pytest.raises(UnsupportedInput, match="did not compute") as exc:
        MaskLoss()(out, batch(phase="srn"))
    assert "fapn phase" in exc.value.hint


# ------------------------------------------------------------------------------------------------ training

def test_a_tiny_training_run_lowers_the_loss():
    net = model()
    b = batch(4, 2, 12, 12, seed=5)
    terms = [(MaskLoss(), 0.8), (GradientLoss(), 0.1), (SSIMLoss(), 0.1), (ReconstructionLoss(), 1.0),
             (FusionLoss(), 1.0)]
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def total():
        out = net.training_outputs(b)
        return sum(w * loss(out, b) for loss, w in terms)

    losses = []
    for _ in range(12):
        opt.zero_grad()
        value = total()
        value.backward()
        opt.step()
        losses.append(value.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses


def _x1_model_class():
    """fapsr at x1 with tiny defaults: what fusionkit.testing's checks (written for same-size fusers) can call."""
    class TinyX1(FAPSR):
        """FAP-SR at x1, tiny (for fusionkit.testing's contract checks)."""

        class Params(FAPSR.Params):
            scale: int = 1
            width: int = 4
            growth: int = 2
            dense_blocks: int = 1
            fapn_width: int = 4
            fr_blocks: int = 1
            head_convs: int = 1
            attention_pool: int = 4

    return TinyX1


def test_fusionkit_contract_checks(monkeypatch):
    cls = _x1_model_class()
    testing.check_identity(FAPSR)
    testing.check_params(FAPSR)
    testing.check_model(cls)

    def supervised_outputs(model_cls, k: int = 2):
        torch.manual_seed(0)
        m = model_cls()
        b = batch(2, k, 20, 20, scale=m.params.scale)
        return m, m.training_outputs(b), b

    monkeypatch.setattr(testing, "model_outputs", supervised_outputs)
    for loss in LOSSES:
        testing.check_identity(loss)
        testing.check_params(loss)
        testing.check_training_loss(loss, cls)


# ------------------------------------------------------------------------------------------------ weights and roles

@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> str:
    """Weights of an untrained tiny x2 FAP-SR (what is loaded is checked, not how well it fuses)."""
    net = model(2)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    weights.save(path, model="fapsr", architecture=net.params.model_dump(mode="json"), state_dict=net.state_dict(),
                 training={"steps": 0})
    return str(path)


def test_weights_round_trip_and_architecture_mismatch(tiny_weights):
    from fusionkit.trained import load_trained

    params = FAPSRFuser.Params(**TINY, scale=2, weights=tiny_weights)
    net = load_trained(FAPSR, params)
    ref = model(2)
    for (k, a), (k2, b2) in zip(net.state_dict().items(), ref.state_dict().items()):
        assert k == k2 and torch.equal(a, b2)
    with pytest.raises(ValidationError) as exc:
        FAPSRFuser.Params(**TINY, scale=4, weights=tiny_weights)
    assert "scale: the weights have 2, configured 4" in str(exc.value) and "scale=2" in str(exc.value)
    with pytest.raises(ValidationError, match="dense_blocks: the weights have 1, configured 10"):
        FAPSRMasks.Params(**{**TINY, "dense_blocks": 10}, weights=tiny_weights)


def test_shipped_weights_fit_their_scale_and_an_unknown_name_is_refused():
    assert BUILTIN_WEIGHTS == "fusionkit_plugins.fapsr:fapsr-x2"
    assert FAPSRFuser.Params().scale == 2
    assert FAPSRFuser.Params(weights="fusionkit_plugins.fapsr:fapsr-x4", scale=4).scale == 4
    with pytest.raises(ValidationError, match="scale"):
        FAPSRFuser.Params(weights="fusionkit_plugins.fapsr:fapsr-x4")          # x4 weights, default scale 2
    with pytest.raises(ValidationError, match="ships no weights named 'fapsr-x3'"):
        FAPSRFuser.Params(weights="fusionkit_plugins.fapsr:fapsr-x3", scale=3)


def test_fuser_role_super_resolves_rgb_and_refuses_another_scale(tiny_weights):
    fuser = FAPSRFuser(params={**TINY, "scale": 2, "weights": tiny_weights})
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 3, 10, 12, generator=g)
    out = fuser.fuse(rgb, 2)
    assert out.shape == (1, 3, 20, 24) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    gray = fuser.fuse(rgb[:, :1], 2)
    assert gray.shape == (1, 1, 20, 24)
    three = fuser.fuse(torch.rand(3, 3, 10, 12, generator=g), 2)
    assert three.shape == (1, 3, 20, 24)
    x1 = fuser(rgb)                                   # the x1 fallback: the x2 result downsampled
    assert x1.shape == (1, 3, 10, 12) and x1.min() >= 0 and x1.max() <= 1
    assert torch.equal(fuser.fuse(rgb, 1), x1)
    with pytest.raises(UnsupportedInput, match="super-resolve x2, the run asks for x4") as exc:
        fuser.fuse(rgb, 4)
    assert "params.scale: 4" in exc.value.hint
    # the chroma: composed by the LR maps, upsampled bicubically; identical inputs give back their own chroma
    from fusionkit.imaging import rgb_to_ycbcr, ycbcr_to_rgb
    same = torch.stack([rgb[0], rgb[0]])
    ycc = rgb_to_ycbcr(same)
    with torch.no_grad():
        y, _ = fuser._network(torch.device("cpu")).fuse(ycc[:, :1].unsqueeze(0), hole_fraction=0.01)
    cbcr = F.interpolate(ycc[:1, 1:], scale_factor=2.0, mode="bicubic", align_corners=False)
    assert torch.allclose(fuser.fuse(same, 2), ycbcr_to_rgb(torch.cat([y, cbcr], dim=1)), atol=1e-5)


def test_focus_measure_role_gives_lr_maps(tiny_weights):
    fm = FAPSRMasks(params={**TINY, "scale": 2, "weights": tiny_weights, "hole_fraction": 0.05})
    maps = fm(batch(1, 3, 14, 14).sources[0])
    assert maps.shape == (3, 1, 14, 14)
    assert torch.equal(maps.sum(dim=0), torch.ones(1, 14, 14))
