"""UDPNet (plugins/udpnet): the networks F and G (shapes, any K, permutation of the inputs), the unrolling's
gradients (Eqs. 10-11) against autograd, the blind-spot perturbation's statistics (Eq. 4), and the three training
losses (Eqs. 5, 13, 15) against hand computations. Tiny widths and images: the whole file takes seconds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionkit.interfaces import TrainingBatch, UnsupportedInput
from fusionkit_plugins.focus_measures.max_gradient import MaxGradient
from fusionkit_plugins.udpnet.blind_spot import blind_spot, neighbour_fraction
from fusionkit_plugins.udpnet.losses import BlindSpotMaskLoss, FusionConsistencyLoss, StageMaskLoss
from fusionkit_plugins.udpnet.model import (UDPNet, compose, gradient_image, gradient_masks, initial_masks,
                                            objective)

TINY = dict(predictor_widths=[4, 6, 8], mask_widths=[4, 6, 8], image_widths=[4, 6, 8], stages=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def stack(b: int, k: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """``k`` views of random textures, view i sharp on the i-th vertical band and box-blurred elsewhere."""
    g = torch.Generator().manual_seed(seed)
    sharp = torch.rand(b, 1, 1, h, w, generator=g)
    blurred = torch.nn.functional.avg_pool2d(sharp.view(b, 1, h, w), 5, stride=1, padding=2,
                                             count_include_pad=False).view(b, 1, 1, h, w)
    band = (torch.arange(w) * k // w).view(1, 1, 1, 1, w)
    return torch.cat([torch.where(band == i, sharp, blurred) for i in range(k)], dim=1)


def model(**kw) -> UDPNet:
    torch.manual_seed(0)
    return UDPNet(params={**TINY, **kw})


# ------------------------------------------------------------------------------------------------ networks

def test_registered_names():
    from fusionkit.registry import default_catalog

    catalog = default_catalog()
    assert catalog.get("model", "udpnet").cls is UDPNet
    assert catalog.get("training_loss", "blind_spot_mask").cls is BlindSpotMaskLoss
    assert catalog.get("training_loss", "stage_mask").cls is StageMaskLoss
    assert catalog.get("training_loss", "fusion_consistency").cls is FusionConsistencyLoss


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("size", [(24, 24), (30, 34), (13, 9)])
def test_training_outputs_shapes_and_ranges(k, size):
    h, w = size
    net = model()
    s = stack(2, k, h, w)
    out = net.training_outputs(TrainingBatch(s, None, torch.Generator().manual_seed(1)))
    assert set(out) == set(UDPNet.provides)
    for name in ("initial_masks", "blind_keep", "blind_predictions", "predictor_masks"):
        assert out[name].shape == (2, k, 1, h, w), name
    assert out["stage_masks"].shape == (2, 2, k, 1, h, w)
    assert out["fused"].shape == (2, 1, h, w)
    for name in ("blind_predictions", "predictor_masks", "stage_masks"):
        assert out[name].min() > 0 and out[name].max() < 1, f"{name} is a sigmoid output"
    assert set(out["initial_masks"].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out["initial_masks"].sum(dim=1), torch.ones(2, 1, h, w))


def test_every_parameter_gets_a_gradient():
    net = model()
    out = net.training_outputs(TrainingBatch(stack(2, 2, 20, 20), None, torch.Generator().manual_seed(0)))
    losses = [BlindSpotMaskLoss(), StageMaskLoss(), FusionConsistencyLoss()]
    total = sum(fn(out, None) for fn in losses)
    total.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient reaches {missing}"


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("masks", ["fuser", "predictor"])
def test_fuse_composes_normalised_maps_for_any_k(k, masks):
    net = model().eval()
    s = stack(1, k, 28, 20, seed=3)
    with torch.no_grad():
        fused, maps = net.fuse(s, masks=masks)
    assert fused.shape == (1, 1, 28, 20) and maps.shape == (1, k, 1, 28, 20)
    assert (maps >= 0).all() and torch.allclose(maps.sum(dim=1), torch.ones(1, 1, 28, 20), atol=1e-5)
    assert torch.allclose(fused, (maps * s).sum(dim=1), atol=1e-6), "inference is Eq. 1 with the maps"


def test_inputs_permuted_permute_the_maps():
    """Shared weights over the K inputs: G is equivariant to the input order (Remark 1's K-way model)."""
    net = model().eval()
    s = stack(1, 3, 24, 24, seed=5)
    s = s + 0.01 * torch.rand(s.shape, generator=torch.Generator().manual_seed(6))  # no exact ties in Eq. 3
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        fused, maps = net.fuse(s)
        fused_p, maps_p = net.fuse(s[:, perm])
    assert torch.allclose(maps_p, maps[:, perm], atol=1e-5)
    assert torch.allclose(fused_p, fused, atol=1e-5)


def test_a_single_input_is_refused_clearly():
    with pytest.raises(UnsupportedInput, match="K >= 2"):
        model().fuse(torch.rand(1, 1, 1, 8, 8))


def test_parameter_count_is_the_papers_order():
    """The default architecture: about 0.31 M parameters (the paper's model: 0.39 M)."""
    n = sum(p.numel() for p in UDPNet().parameters())
    assert 200_000 < n < 390_000


# ------------------------------------------------------------------------------------------------ equations

def test_initial_masks_are_the_max_gradient_rule():
    s = stack(2, 3, 16, 18, seed=2)
    m = initial_masks(s)
    for b in range(2):
        assert torch.equal(m[b], MaxGradient()(s[b]))


def test_unrolling_gradients_match_autograd():
    """Eqs. 10-11 are the gradients of h(A, M) = λ‖A − Σ M_k S_k‖² + ‖1 − Σ M_k‖² (K = 3, λ = 0.7)."""
    g = torch.Generator().manual_seed(4)
    s = torch.rand(2, 3, 1, 5, 6, generator=g, dtype=torch.float64)
    m = torch.rand(2, 3, 1, 5, 6, generator=g, dtype=torch.float64).requires_grad_()
    a = torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64).requires_grad_()
    ga, gm = torch.autograd.grad(objective(a, m, s, 0.7), (a, m))
    assert torch.allclose(gradient_masks(a, m, s, 0.7), gm)
    assert torch.allclose(gradient_image(a, m, s, 0.7), ga)


def test_step_sizes_start_at_the_configured_values():
    net = UDPNet(params=TINY, training={"initial_step_mask": 0.3, "initial_step_image": 0.2})
    assert torch.allclose(torch.nn.functional.softplus(net.step_mask), torch.full((2,), 0.3))
    assert torch.allclose(torch.nn.functional.softplus(net.step_image), torch.full((2,), 0.2))


# ------------------------------------------------------------------------------------------------ blind spot

def test_neighbour_fraction_by_hand():
    m = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).view(1, 1, 3, 3)
    f = neighbour_fraction(m)[0, 0]
    # centre: neighbours 1,0,0,1,0,0,0,0 -> 2/8; corner (0,0): neighbours (0,1)=0,(1,0)=1,(1,1)=1 -> 2/3
    assert f[1, 1].item() == pytest.approx(2 / 8)
    assert f[0, 0].item() == pytest.approx(2 / 3)
    # (0,1): neighbours (0,0)=1,(0,2)=0,(1,0)=1,(1,1)=1,(1,2)=0 -> 3/5
    assert f[0, 1].item() == pytest.approx(3 / 5)


def test_blind_spot_statistics():
    """Eq. 4: about 1 − p of the pixels are redrawn; a redrawn pixel is 1 with the fraction of ones among its
    8 neighbours (deep inside a region: its value; on the edge of a half-plane of ones: 5/8)."""
    h, w = 64, 64
    mask = torch.zeros(1, 1, h, w)
    mask[..., : w // 2] = 1.0
    masks = mask.expand(400, 1, h, w).contiguous()
    out, keep = blind_spot(masks, 0.9, torch.Generator().manual_seed(0))
    assert torch.equal(out[keep == 1], masks[keep == 1]), "kept pixels are unchanged"
    redrawn = 1.0 - keep.mean().item()
    n = keep.numel()
    assert abs(redrawn - 0.1) < 4 * (0.09 / n) ** 0.5
    interior = (keep == 0)[..., 2:-2, 4:w // 2 - 2]
    assert (out[..., 2:-2, 4:w // 2 - 2][interior] == 1).all()
    edge_sel = (keep == 0)[..., 1:-1, w // 2 - 1]
    edge = out[..., 1:-1, w // 2 - 1][edge_sel]
    assert abs(edge.mean().item() - 5 / 8) < 4 * ((5 / 8 * 3 / 8) / edge.numel()) ** 0.5


def test_blind_spot_is_reproducible_from_the_generator():
    m = (torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    a = blind_spot(m, 0.9, torch.Generator().manual_seed(7))
    b = blind_spot(m, 0.9, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ------------------------------------------------------------------------------------------------ losses

def _outputs(b=2, k=2, h=3, w=4, t=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return {"sources": r(b, k, 1, h, w), "initial_masks": (r(b, k, 1, h, w) > 0.5).double(),
            "blind_keep": (r(b, k, 1, h, w) > 0.3).double(), "blind_predictions": r(b, k, 1, h, w),
            "predictor_masks": r(b, k, 1, h, w), "stage_masks": r(t, b, k, 1, h, w), "fused": r(b, 1, h, w)}


def test_blind_spot_mask_loss_by_hand():
    o = _outputs()
    p, m, keep = (o[n].numpy() for n in ("blind_predictions", "initial_masks", "blind_keep"))
    b, k, _, h, w = p.shape
    recon = sum(((1 - keep[i, j]) * (p[i, j] - m[i, j])) ** 2 for i in range(b) for j in range(k)).sum()
    ones = sum(((p[i].sum(axis=0) - 1) ** 2).sum() for i in range(b))
    expected = (recon + 0.4 * ones) / (b * h * w)
    assert BlindSpotMaskLoss()(o, None).item() == pytest.approx(expected, rel=1e-12)
    assert BlindSpotMaskLoss(alpha=0.0)(o, None).item() == pytest.approx(recon / (b * h * w), rel=1e-12)


def test_stage_mask_loss_by_hand_and_detached():
    o = _outputs()
    st, mf = o["stage_masks"].numpy(), o["predictor_masks"].numpy()
    b, h, w = mf.shape[0], mf.shape[-2], mf.shape[-1]
    expected = sum(2.0 ** (t + 1) * ((st[t] - mf) ** 2).sum() for t in range(st.shape[0])) / (b * h * w)
    assert StageMaskLoss()(o, None).item() == pytest.approx(expected, rel=1e-12)
    o["predictor_masks"].requires_grad_()
    o["stage_masks"].requires_grad_()
    StageMaskLoss()(o, None).backward()
    assert o["predictor_masks"].grad is None, "F is detached in Eq. 13"
    assert o["stage_masks"].grad is not None


def test_fusion_consistency_loss_by_hand_and_not_detached():
    o = _outputs(k=3)
    s, mf, a = o["sources"].numpy(), o["predictor_masks"].numpy(), o["fused"].numpy()
    a_f = (mf * s).sum(axis=1)
    expected = np.abs(a_f - a).sum() / (a.shape[0] * a.shape[-2] * a.shape[-1])
    assert FusionConsistencyLoss()(o, None).item() == pytest.approx(expected, rel=1e-12)
    o["predictor_masks"].requires_grad_()
    FusionConsistencyLoss()(o, None).backward()
    assert o["predictor_masks"].grad is not None, "Eq. 15 trains F too"


def test_compose_is_eq1():
    s = torch.rand(1, 2, 1, 3, 3)
    m = torch.rand(1, 2, 1, 3, 3)
    assert torch.allclose(compose(m, s), m[:, 0] * s[:, 0] + m[:, 1] * s[:, 1])
