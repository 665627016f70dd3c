"""Built-in losses (DFP Eqs. 20, 22-24): hand-computed values, N inputs, caching, gradients, params, registry."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

import fusionkit_plugins.losses.joint_gradient as jg_module
from fusionkit.imaging import LUMA
from fusionkit.interfaces import Loss, LossContext, UnsupportedInput
from fusionkit.registry import build_catalog
from fusionkit_plugins.losses import ContentLoss, DecisionLoss, GradientLimitLoss, JointGradientLoss


def img(rows) -> torch.Tensor:
    """A ``[1,1,H,W]`` float32 tensor from nested lists."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def stack(*images: torch.Tensor) -> torch.Tensor:
    return torch.cat(images, dim=0)


def ctx_low(x_low: torch.Tensor, inputs: torch.Tensor, maps: torch.Tensor | None = None, **kw) -> LossContext:
    """A context at scale 1 (output == output_low), for losses that only look at the low-resolution side."""
    if maps is None:
        n, _, h, w = inputs.shape
        maps = torch.full((n, 1, h, w), 1.0 / n)
    return LossContext(output=x_low, output_low=x_low, inputs=inputs, maps=maps, scale=1, **kw)


# --------------------------------------------------------------------------------------------------- content

X = img([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
M1 = img([[1.0, 1.0, 0.0], [0.0, 0.5, 1.0]])


def content_ctx() -> LossContext:
    inputs = stack(torch.zeros_like(X), torch.ones_like(X))      # |x - I_1| = x, |x - I_2| = 1 - x
    return ctx_low(X, inputs, stack(M1, 1.0 - M1))


def test_content_hand_computed():
    # per pixel m1*x + m2*(1-x): 0.1, 0.2, 0.7 / 0.6, 0.5, 0.6 -> sum 2.7 over 6 pixels
    assert ContentLoss()(content_ctx()).item() == pytest.approx(0.45, abs=1e-6)


def test_content_lambda_weighting():
    # 2*m1*x + 0.5*m2*(1-x): 0.2, 0.4, 0.35 / 0.3, 0.625, 1.2 -> 3.075 / 6
    assert ContentLoss(lambdas=[2.0, 0.5])(content_ctx()).item() == pytest.approx(0.5125, abs=1e-6)
    assert ContentLoss(lambdas=[1.0, 1.0])(content_ctx()).item() == pytest.approx(0.45, abs=1e-6)
    assert ContentLoss(lambdas=[0.0, 0.0])(content_ctx()).item() == 0.0


def test_content_equals_corrected_eq22_for_two_inputs():
    g = torch.Generator().manual_seed(0)
    x, fore, back, m = (torch.rand(1, 1, 5, 7, generator=g) for _ in range(4))
    l1, l2 = 0.7, 1.3
    eq22 = (l1 * m * (x - fore).abs() + l2 * (1 - m) * (x - back).abs()).sum() / (5 * 7)
    got = ContentLoss(lambdas=[l1, l2])(ctx_low(x, stack(fore, back), stack(m, 1 - m)))
    assert got.item() == pytest.approx(eq22.item(), rel=1e-6)


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("c", [1, 3])
def test_content_zero_when_output_reproduces_focused_regions(n, c):
    g = torch.Generator().manual_seed(n * 10 + c)
    inputs = torch.rand(n, c, 6, 5, generator=g)
    owner = torch.randint(0, n, (6, 5), generator=g)
    maps = F.one_hot(owner, n).permute(2, 0, 1).unsqueeze(1).float()     # binary, sum to 1
    x = (maps * inputs).sum(dim=0, keepdim=True)
    assert ContentLoss()(ctx_low(x, inputs, maps)).item() == 0.0
    assert ContentLoss()(ctx_low(x + 0.1, inputs, maps)).item() == pytest.approx(0.1, abs=1e-6)


def test_content_rgb_is_mean_over_channels():
    g = torch.Generator().manual_seed(1)
    x, inputs = torch.rand(1, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    m = torch.rand(1, 1, 4, 4, generator=g)
    maps = stack(m, 1 - m)
    per_channel = [ContentLoss()(ctx_low(x[:, k:k + 1], inputs[:, k:k + 1], maps)) for k in range(3)]
    assert ContentLoss()(ctx_low(x, inputs, maps)).item() == pytest.approx(sum(per_channel).item() / 3, rel=1e-6)


def test_content_lambdas_length_must_match_inputs():
    ctx = content_ctx()
    with pytest.raises(UnsupportedInput, match="3 lambdas but the stack has 2 inputs") as err:
        ContentLoss(lambdas=[1.0, 1.0, 1.0])(ctx)
    assert "give exactly 2 lambdas" in err.value.hint


def test_content_rejects_mismatched_shapes():
    ctx = content_ctx()
    ctx.output_low = torch.zeros(1, 1, 4, 6)     # e.g. the HR output by mistake
    with pytest.raises(UnsupportedInput, match="does not match the input stack"):
        ContentLoss()(ctx)
    ctx = content_ctx()
    ctx.maps = torch.zeros(3, 1, 2, 3)
    with pytest.raises(UnsupportedInput, match="decision maps"):
        ContentLoss()(ctx)


# -------------------------------------------------------------------------------------------- joint gradient

# Replicate-padded 4-neighbour Laplacians of two impulses (worked by hand):
A = img([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
B = img([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
LAP_A = {"replicate": img([[0.0, 1.0, 0.0], [1.0, -3.0, 1.0]]), "zeros": img([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0]])}
LAP_B = {"replicate": img([[-2.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), "zeros": img([[-4.0, 1.0, 0.0], [1.0, 0.0, 0.0]])}
TARGET = {
    ("paper", "replicate"): img([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]),
    ("paper", "zeros"): img([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]),
    ("code", "replicate"): img([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0]]),
    ("code", "zeros"): img([[4.0, 1.0, 0.0], [1.0, 4.0, 1.0]]),
}


@pytest.mark.parametrize("padding", ["replicate", "zeros"])
def test_filters_laplacian_matches_hand_values(padding):
    from fusionkit.filters import laplacian
    assert torch.equal(laplacian(A, padding), LAP_A[padding])
    assert torch.equal(laplacian(B, padding), LAP_B[padding])


@pytest.mark.parametrize("mode", ["paper", "code"])
@pytest.mark.parametrize("padding", ["replicate", "zeros"])
def test_joint_gradient_target_is_max_over_inputs(mode, padding):
    loss = JointGradientLoss(mode=mode, padding=padding)
    target = loss.target(ctx_low(torch.zeros_like(A), stack(A, B)))
    assert target.shape == (1, 1, 2, 3)
    assert torch.equal(target, TARGET[mode, padding])
    la, lb = LAP_A[padding], LAP_B[padding]
    expected = torch.maximum(la, lb) if mode == "paper" else torch.maximum(la.abs(), lb.abs())
    assert torch.equal(target, expected)


@pytest.mark.parametrize("mode", ["paper", "code"])
def test_joint_gradient_target_max_over_three_inputs(mode):
    g = torch.Generator().manual_seed(2)
    inputs = torch.rand(3, 1, 5, 6, generator=g)
    target = JointGradientLoss(mode=mode).target(ctx_low(inputs[:1], inputs))
    laps = [jg_module.laplacian(inputs[i:i + 1], "replicate") for i in range(3)]
    if mode == "code":
        laps = [t.abs() for t in laps]
    assert torch.allclose(target, torch.maximum(torch.maximum(laps[0], laps[1]), laps[2]))


def test_joint_gradient_hand_computed():
    inputs, x = stack(A, B), 0.5 * A
    # paper: lap(x) = [[0,.5,0],[.5,-1.5,.5]] vs [[0,1,0],[1,0,1]] -> |diff| sums to 3 over 6 pixels
    assert JointGradientLoss()(ctx_low(x, inputs)).item() == pytest.approx(0.5, abs=1e-6)
    # code: |lap(x)| = [[0,.5,0],[.5,1.5,.5]] vs [[2,1,0],[1,3,1]] -> 5 / 6
    assert JointGradientLoss(mode="code")(ctx_low(x, inputs)).item() == pytest.approx(5 / 6, abs=1e-6)
    # zero output: the loss is the mean magnitude of the target
    for (mode, padding), t in TARGET.items():
        got = JointGradientLoss(mode=mode, padding=padding)(ctx_low(torch.zeros_like(A), inputs))
        assert got.item() == pytest.approx(t.abs().mean().item(), abs=1e-6)


def test_joint_gradient_uses_bt601_luma_for_rgb():
    g = torch.Generator().manual_seed(3)
    x, inputs = torch.rand(1, 3, 4, 5, generator=g), torch.rand(2, 3, 4, 5, generator=g)
    w = torch.tensor(LUMA).view(1, 3, 1, 1)
    y = lambda t: (t * w).sum(dim=1, keepdim=True)  # noqa: E731
    for mode in ("paper", "code"):
        rgb = JointGradientLoss(mode=mode)(ctx_low(x, inputs))
        luma = JointGradientLoss(mode=mode)(ctx_low(y(x), y(inputs)))
        assert rgb.item() == pytest.approx(luma.item(), rel=1e-5)
    # grey RGB behaves exactly like the single-channel image (the weights sum to 1)
    grey = JointGradientLoss()(ctx_low((0.5 * A).expand(1, 3, 2, 3), stack(A, B).expand(2, 3, 2, 3)))
    assert grey.item() == pytest.approx(0.5, abs=1e-5)


def test_joint_gradient_target_is_computed_once(monkeypatch):
    calls = []
    real = jg_module.laplacian

    def counting(x, padding="replicate"):
        calls.append(x.shape[0])
        return real(x, padding)

    monkeypatch.setattr(jg_module, "laplacian", counting)
    loss = JointGradientLoss()
    cache: dict = {}
    inputs = stack(A, B)
    x = torch.zeros_like(A, requires_grad=True)
    first = loss(LossContext(output=x, output_low=x, inputs=inputs, maps=torch.full((2, 1, 2, 3), 0.5),
                             scale=1, cache=cache))
    assert sorted(calls) == [1, 2]          # the target (on the 2 inputs) and the output
    calls.clear()
    assert len(cache) == 1
    (entry,) = cache.values()
    assert torch.equal(entry[-1], TARGET["paper", "replicate"])
    # a fresh context per iteration sharing the run cache: only the output's Laplacian is computed again
    for _ in range(3):
        again = loss(LossContext(output=x, output_low=x, inputs=inputs, maps=torch.full((2, 1, 2, 3), 0.5),
                                 scale=1, cache=cache))
        assert again.item() == first.item()
    assert calls == [1, 1, 1]
    assert loss.target(ctx_low(x, inputs, cache=cache)) is entry[-1]
    # another loss instance with other params keeps its own entry
    JointGradientLoss(mode="code")(ctx_low(x, inputs, cache=cache))
    assert len(cache) == 2


def test_joint_gradient_cache_follows_the_inputs():
    loss, cache = JointGradientLoss(), {}
    inputs = stack(A, B)
    t1 = loss.target(ctx_low(A, inputs, cache=cache))
    assert loss.target(ctx_low(A, inputs.clone(), cache=cache)) is not t1       # other inputs: recomputed
    t2 = loss.target(ctx_low(A, inputs, cache=cache))
    inputs.mul_(2.0)                                                            # modified in place: recomputed
    t3 = loss.target(ctx_low(A, inputs, cache=cache))
    assert t3 is not t2 and torch.equal(t3, 2.0 * t2)


def test_joint_gradient_cache_with_inference_mode_inputs():
    with torch.inference_mode():
        inputs = stack(A, B).clone()
    loss, cache = JointGradientLoss(), {}
    x = torch.zeros_like(A, requires_grad=True)
    value = loss(ctx_low(x, inputs, cache=cache))
    value.backward()
    assert value.item() == pytest.approx(0.5, abs=1e-6)
    assert loss.target(ctx_low(x, inputs, cache=cache)) is loss.target(ctx_low(x, inputs, cache=cache))


# --------------------------------------------------------------------------------------------- gradient limit

@pytest.mark.parametrize("on", ["high", "low"])
def test_gradient_limit_constant_is_zero_and_ramp_is_slope(on):
    const = torch.full((1, 3, 4, 6), 0.3)
    assert GradientLimitLoss(on=on)(ctx_low(const, const.expand(2, -1, -1, -1))).item() == 0.0
    ramp = (0.05 * torch.arange(6.0)).expand(1, 1, 4, 6)                  # d/dx = 0.05, d/dy = 0
    assert GradientLimitLoss(on=on)(ctx_low(ramp, ramp.expand(2, -1, -1, -1))).item() == pytest.approx(0.05)
    down = ramp.transpose(-1, -2).flip(-2)                                   # d/dy = -0.05
    assert GradientLimitLoss(on=on)(ctx_low(down, down.expand(2, -1, -1, -1))).item() == pytest.approx(0.05)


def test_gradient_limit_hand_computed_and_resolution():
    x = img([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    # dx = [[1,2],[0,0]] -> 0.75; dy = [[2,1,-1]] -> 4/3
    hr_ctx = LossContext(output=x, output_low=img([[0.0, 0.5]]), inputs=torch.zeros(2, 1, 1, 2),
                         maps=torch.full((2, 1, 1, 2), 0.5), scale=2)
    assert GradientLimitLoss()(hr_ctx).item() == pytest.approx(0.75 + 4 / 3, abs=1e-6)
    assert GradientLimitLoss(on="low")(hr_ctx).item() == pytest.approx(0.5, abs=1e-6)   # 1-row image: dy term 0


# ------------------------------------------------------------------------------------------------- decision

def eq20(m_hat, m, fore, back):
    """DFP Eq. (20) literally, for one soft map m_hat and its handcrafted target m."""
    terms = (m_hat - m).abs() + (m_hat * fore - fore).abs() + ((1 - m_hat) * back - back).abs()
    return terms.sum() / (m.shape[-2] * m.shape[-1])


def decision_ctx(m_hat1, m1, fore, back) -> LossContext:
    m_hat = stack(m_hat1, 1 - m_hat1)
    return LossContext(output=m_hat, output_low=m_hat, inputs=stack(fore, back), maps=stack(m1, 1 - m1), scale=1)


def test_decision_hand_computed():
    ctx = decision_ctx(img([[0.8, 0.3]]), img([[1.0, 0.0]]), img([[0.5, 1.0]]), img([[0.2, 0.4]]))
    # pixel 1: 0.2 + 0.2*0.5 + 0.8*0.2 = 0.46; pixel 2: 0.3 + 0.7*1.0 + 0.3*0.4 = 1.12
    assert DecisionLoss()(ctx).item() == pytest.approx(0.79, abs=1e-6)
    assert DecisionLoss(map_weight=2.0, intensity_weight=0.0)(ctx).item() == pytest.approx(0.5, abs=1e-6)
    assert DecisionLoss(map_weight=0.0, intensity_weight=1.0)(ctx).item() == pytest.approx(0.54, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_decision_equals_eq20_for_two_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    m_hat1, fore, back = (torch.rand(1, 1, 6, 7, generator=g) for _ in range(3))
    m1 = (torch.rand(1, 1, 6, 7, generator=g) > 0.5).float()
    got = DecisionLoss()(decision_ctx(m_hat1, m1, fore, back))
    assert got.item() == pytest.approx(eq20(m_hat1, m1, fore, back).item(), rel=1e-6)
    soft = torch.rand(1, 1, 6, 7, generator=g)                       # also for soft targets
    got = DecisionLoss()(decision_ctx(m_hat1, soft, fore, back))
    assert got.item() == pytest.approx(eq20(m_hat1, soft, fore, back).item(), rel=1e-6)


def test_decision_is_zero_for_perfect_all_in_focus_coverage():
    # m_hat == m and m_hat_i = 1 wherever I_i != 0: both parts vanish
    fore, back = img([[0.4, 0.0]]), img([[0.0, 0.9]])
    m1 = img([[1.0, 0.0]])
    assert DecisionLoss()(decision_ctx(m1, m1, fore, back)).item() == 0.0


def test_decision_rejects_mismatched_shapes():
    ctx = decision_ctx(img([[0.8, 0.3]]), img([[1.0, 0.0]]), img([[0.5, 1.0]]), img([[0.2, 0.4]]))
    ctx.output = ctx.output_low = ctx.output[:1]
    with pytest.raises(UnsupportedInput, match="decision"):
        DecisionLoss()(ctx)


# ------------------------------------------------------------------------------- every loss: N, C, gradients

def make_ctx(kind: str, n: int, c: int, scale: int = 2, h: int = 5, w: int = 6):
    g = torch.Generator().manual_seed(100 * n + c)
    maps = torch.softmax(torch.randn(n, 1, h, w, generator=g), dim=0)
    if kind == "decision":
        leaf = torch.softmax(torch.randn(n, 1, h, w, generator=g), dim=0).requires_grad_()
        inputs = torch.rand(n, c, h, w, generator=g)
        return leaf, LossContext(output=leaf, output_low=leaf, inputs=inputs, maps=maps, scale=1)
    leaf = torch.rand(1, c, scale * h, scale * w, generator=g).requires_grad_()
    inputs = torch.rand(n, c, h, w, generator=g)
    return leaf, LossContext(output=leaf, output_low=F.avg_pool2d(leaf, scale), inputs=inputs, maps=maps,
                             scale=scale)


LOSSES = {
    "content": [ContentLoss(), ContentLoss(lambdas=None)],
    "joint_gradient": [JointGradientLoss(), JointGradientLoss(mode="code", padding="zeros")],
    "gradient_limit": [GradientLimitLoss(), GradientLimitLoss(on="low")],
    "decision": [DecisionLoss(), DecisionLoss(map_weight=0.0, intensity_weight=0.0)],
}


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("c", [1, 3])
def test_every_loss_is_a_finite_differentiable_scalar(name, n, c):
    for loss in LOSSES[name]:
        leaf, ctx = make_ctx(name, n, c)
        value = loss(ctx)
        assert isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype == torch.float32
        assert torch.isfinite(value)
        value.backward()
        assert leaf.grad is not None and leaf.grad.shape == leaf.shape
        assert torch.isfinite(leaf.grad).all()
        if value.item() > 0:
            assert leaf.grad.abs().sum() > 0


def test_content_lambdas_for_three_inputs():
    _, ctx = make_ctx("content", 3, 3)
    x, inputs, maps = ctx.output_low, ctx.inputs, ctx.maps
    lam = [0.5, 2.0, 1.0]
    expected = sum(lam[i] * (maps[i] * (x[0] - inputs[i]).abs()).mean() for i in range(3))
    assert ContentLoss(lambdas=lam)(ctx).item() == pytest.approx(expected.item(), rel=1e-6)


# ---------------------------------------------------------------------------------------- params and registry

@pytest.mark.parametrize("cls, bad", [
    (ContentLoss, {"lambdas": [1.0, -0.5]}),
    (ContentLoss, {"lambdas": []}),
    (ContentLoss, {"lambdas": [float("inf"), 1.0]}),
    (ContentLoss, {"lambdas": [float("nan"), 1.0]}),
    (ContentLoss, {"lambdas": "ones"}),
    (ContentLoss, {"lambda": [1.0, 1.0]}),
    (JointGradientLoss, {"mode": "signed"}),
    (JointGradientLoss, {"padding": "reflect"}),
    (JointGradientLoss, {"resolution": "high"}),
    (GradientLimitLoss, {"on": "mid"}),
    (GradientLimitLoss, {"weight": 0.1}),
    (DecisionLoss, {"map_weight": -1.0}),
    (DecisionLoss, {"intensity_weight": 1e9}),
    (DecisionLoss, {"intensity_weight": float("nan")}),
    (DecisionLoss, {"binarize": True}),
])
def test_params_reject_bad_values_and_unknown_keys(cls, bad):
    with pytest.raises(ValidationError):
        cls(bad)
    with pytest.raises(ValidationError):
        cls(**bad)


def test_params_defaults_and_assignment_validation():
    assert ContentLoss().params.lambdas is None
    assert JointGradientLoss().params.model_dump() == {"mode": "paper", "padding": "replicate"}
    assert GradientLimitLoss().params.on == "high"
    assert DecisionLoss().params.model_dump() == {"map_weight": 1.0, "intensity_weight": 1.0}
    p = DecisionLoss().params
    with pytest.raises(ValidationError):
        p.map_weight = -2.0
    for cls in (ContentLoss, JointGradientLoss, GradientLimitLoss, DecisionLoss):
        for name, f in cls.Params.model_fields.items():
            assert f.description, f"{cls.__name__}.Params.{name} has no description"


def test_all_four_register_as_losses():
    catalog = build_catalog()
    expected = {"content": ContentLoss, "joint_gradient": JointGradientLoss, "gradient_limit": GradientLimitLoss,
                "decision": DecisionLoss}
    for name, cls in expected.items():
        info = catalog.get("loss", name)
        assert info.cls is cls and info.kind == "loss" and info.dist == "fusionkit"
        assert issubclass(cls, Loss) and cls.summary and "\n" not in cls.summary
        assert "DFP" in cls.reference and "Eq." in cls.reference
    assert not [f for f in catalog.failures if "loss" in f.plugin]
