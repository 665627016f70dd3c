"""The component contracts (fusionkit.interfaces), checked on every component the registry knows.

The tests are parametrised over ``default_catalog()`` at collection time, not over a hand-written list: a new
built-in, or any installed third-party plugin, gets all of them without editing this file. Inputs are tiny (24x24)
so the whole file runs in a few seconds on a CPU. The last section guards the built-ins: each has a test file that
names it and an entry in docs/components.md, which must match ``scripts/gen_component_docs.py``'s output.
"""
from __future__ import annotations

import importlib.util
import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from fusionkit.interfaces import KINDS, LossContext, UnsupportedInput
from fusionkit.registry import default_catalog

ROOT = Path(__file__).resolve().parents[1]
CATALOG = default_catalog()
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a loaded machine OpenMP's waiting threads make each
    generator call take seconds instead of milliseconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def each(kind: str | None = None) -> list:
    return [pytest.param(info, id=f"{info.kind}:{info.name}") for info in CATALOG.all(kind)]


def rand(*shape: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g).to(device)


def luma_stack(n: int, size: int = 24, device: str = "cpu") -> torch.Tensor:
    """``n`` views of one random texture, view ``i`` blurred everywhere except the ``i``-th vertical band."""
    sharp = rand(1, 1, size, size)
    blurred = F.avg_pool2d(F.pad(sharp, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    band = (torch.arange(size) * n // size).view(1, 1, 1, size)
    return torch.cat([torch.where(band == i, sharp, blurred) for i in range(n)]).to(device)


# -------------------------------------------------------------------------------------------------- every kind


@pytest.mark.parametrize("info", each())
def test_identity_and_documentation(info):
    cls = info.cls
    assert cls.name == info.name and cls.kind == info.kind and issubclass(cls, KINDS[info.kind])
    for attr in ("name", "summary", "reference"):
        value = getattr(cls, attr)
        assert isinstance(value, str) and value.strip(), f"{cls.__name__}.{attr} is empty"
    assert "\n" not in cls.summary, "summary is one line (it is a row of `fusionkit plugins list`)"
    doc = cls.__dict__.get("__doc__")
    assert doc and doc.strip(), f"{cls.__name__} has no docstring of its own"


@pytest.mark.parametrize("info", each())
def test_params_defaults_and_unknown_keys(info):
    params = info.cls.Params()
    assert info.cls.Params.model_validate_json(params.model_dump_json()) == params   # round trip, as in a manifest
    with pytest.raises(ValidationError, match="definitely_not_a_parameter"):
        info.cls.Params(definitely_not_a_parameter=1)
    for fname, field in info.cls.Params.model_fields.items():
        assert field.description, f"{info.name}: parameter {fname!r} has no description"


# -------------------------------------------------------------------------------------------- focus measures


def check_maps(maps: torch.Tensor, images: torch.Tensor) -> None:
    n, _, h, w = images.shape
    assert isinstance(maps, torch.Tensor)
    assert maps.shape == (n, 1, h, w) and maps.dtype == torch.float32 and maps.device == images.device
    assert torch.isfinite(maps).all() and (maps >= 0).all()
    assert torch.allclose(maps.sum(dim=0), torch.ones(1, h, w, device=maps.device), atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("info", each("focus_measure"))
def test_focus_measure_two_inputs(info, device):
    images = luma_stack(2, device=device)
    check_maps(info.cls()(images), images)


@pytest.mark.parametrize("info", each("focus_measure"))
def test_focus_measure_three_inputs(info):
    images = luma_stack(3)
    try:
        maps = info.cls()(images)
    except UnsupportedInput as exc:
        pytest.skip(f"{info.name} supports fewer inputs: {exc.message}")
    check_maps(maps, images)


# ------------------------------------------------------------------------------------------------ resamplers


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
@pytest.mark.parametrize("info", each("resampler"))
def test_resampler_shapes_and_gradients(info, factor):
    res = info.cls()
    x = rand(1, 3, 24, 24).requires_grad_()
    down = res.down(x, factor)
    assert down.shape == (1, 3, 24 // factor, 24 // factor) and down.dtype == torch.float32
    down.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

    y = rand(1, 3, 24, 24, seed=1).requires_grad_()
    up = res.up(y, factor)
    assert up.shape == (1, 3, 24 * factor, 24 * factor) and up.dtype == torch.float32
    up.square().sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ generators


@pytest.mark.parametrize("channels", [(3, 3), (1, 1)], ids=["3to3", "1to1"])
@pytest.mark.parametrize("info", each("generator"))
def test_generator_shape_range_and_gradients(info, channels):
    torch.manual_seed(0)
    gen = info.cls(*channels)
    assert isinstance(gen, torch.nn.Module) and (gen.in_channels, gen.out_channels) == channels
    z = rand(1, channels[0], 20, 28)
    out = gen(z)
    assert out.shape == (1, channels[1], 20, 28) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    if getattr(gen.params, "sigmoid", False):
        assert out.min() >= 0 and out.max() <= 1
    out.mean().backward()
    params = [(n, p) for n, p in gen.named_parameters() if p.requires_grad]
    assert params, "a generator has trainable parameters"
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    assert all(torch.isfinite(p.grad).all() for _, p in params)
    assert any(p.grad.abs().sum() > 0 for _, p in params)


# ---------------------------------------------------------------------------------------------------- losses


def fusion_context(n: int, c: int, scale: int = 2, h: int = 12, w: int = 16) -> tuple[LossContext, torch.Tensor]:
    """The fusion stage: output ``[1,C,sH,sW]``, its downsampled copy, inputs ``[N,C,H,W]``, soft maps."""
    output = rand(1, c, scale * h, scale * w, seed=1).requires_grad_()
    maps = torch.softmax(rand(n, 1, h, w, seed=2) * 4, dim=0)
    ctx = LossContext(output=output, output_low=F.avg_pool2d(output, scale), inputs=rand(n, c, h, w, seed=3),
                      maps=maps, scale=scale)
    return ctx, output


def embedding_context(n: int, h: int = 12, w: int = 16) -> tuple[LossContext, torch.Tensor]:
    """The decision-embedding stage: predicted soft maps as output, handcrafted maps, luma inputs."""
    predicted = torch.softmax(rand(n, 1, h, w, seed=4) * 4, dim=0).detach().requires_grad_()
    target = (torch.arange(n).view(n, 1, 1, 1) == rand(1, 1, h, w, seed=5).mul(n).long()).float()
    ctx = LossContext(output=predicted, output_low=predicted, inputs=rand(n, 1, h, w, seed=6), maps=target, scale=1)
    return ctx, predicted


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("info", each("loss"))
def test_loss_is_a_finite_differentiable_scalar(info, c):
    loss = info.cls()
    ctx, output = fusion_context(2, c)
    try:
        value = loss(ctx)
    except UnsupportedInput as fusion_exc:          # not a fusion-stage loss: it must take the embedding context
        if c != 1:
            pytest.skip(f"{info.name} is a decision-embedding loss; that stage works on luma")
        ctx, output = embedding_context(2)
        try:
            value = loss(ctx)
        except UnsupportedInput as exc:
            pytest.fail(f"{info.name} accepts neither the fusion context ({fusion_exc.message}) "
                        f"nor the decision-embedding context ({exc.message})")
    assert isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype == torch.float32
    assert torch.isfinite(value)
    value.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all()


# --------------------------------------------------------------------------------------------------- metrics
#
# Metrics take numpy float images in [0, 1], grey [H, W] or RGB [H, W, 3]. Convention: a metric class declares
# ``ideal: ClassVar[float | None]``, the value it gives when the fused image, every source and the reference are the
# same image (0 for DFP's relative metrics, 1 for SSIM, inf for PSNR, ...); None (or no attribute) means no such
# value (e.g. MG, MI) and the identity check is skipped.

METRIC_SIZE = 64


def metric_image(color: str, seed: int) -> np.ndarray:
    shape = (METRIC_SIZE, METRIC_SIZE) if color == "gray" else (METRIC_SIZE, METRIC_SIZE, 3)
    return np.random.default_rng(seed).random(shape)


def metric_call(metric, fused: np.ndarray, sources: list[np.ndarray], reference: np.ndarray):
    return metric(fused, sources, reference if type(metric).requires == "reference" else None)


@pytest.mark.parametrize("info", each("metric"))
def test_metric_params_round_trip(info):
    params = info.cls.Params()
    again = info.cls.Params.model_validate_json(params.model_dump_json())
    assert again == params
    f, a, b, r = (metric_image("gray", seed) for seed in range(4))
    from_model = metric_call(info.cls(again), f, [a, b], r)
    from_dict = metric_call(info.cls(params.model_dump()), f, [a, b], r)
    assert from_model == from_dict or (math.isnan(from_model) and math.isnan(from_dict))


@pytest.mark.parametrize("color", ["gray", "rgb"])
@pytest.mark.parametrize("info", each("metric"))
def test_metric_is_a_finite_float(info, color):
    cls = info.cls
    assert cls.requires in ("sources", "reference"), f"{info.name}: requires is {cls.requires!r}"
    assert isinstance(cls.higher_is_better, bool)
    ideal = getattr(cls, "ideal", None)
    assert ideal is None or isinstance(ideal, (int, float)), f"{info.name}: ideal must be a number or None"
    f, a, b, r = (metric_image(color, seed) for seed in range(4))
    value = metric_call(cls(), f, [a, b], r)
    assert isinstance(value, float), f"{info.name} returned {type(value).__name__}, not float"
    assert math.isfinite(value), f"{info.name} returned {value} on random {color} images"


@pytest.mark.parametrize("color", ["gray", "rgb"])
@pytest.mark.parametrize("info", each("metric"))
def test_metric_identical_inputs_give_the_ideal(info, color):
    ideal = getattr(info.cls, "ideal", None)
    if ideal is None:
        pytest.skip(f"{info.name} declares no ideal value")
    x = metric_image(color, seed=7)
    value = metric_call(info.cls(), x, [x.copy(), x.copy()], x.copy())
    if math.isinf(ideal):
        assert value == ideal, f"{info.name}: identical inputs gave {value}, ideal {ideal}"
    else:
        assert value == pytest.approx(ideal, abs=1e-6), f"{info.name}: identical inputs gave {value}, ideal {ideal}"


# --------------------------------------------------------------------------------------------- light fields


@pytest.mark.parametrize("info", each("light_field"))
def test_light_field_source_reports_a_bad_folder_clearly(info, tmp_path):
    """Whatever its file layout, a source given an empty or missing folder raises InputError with a fix."""
    from fusionkit.errors import InputError
    for folder in (tmp_path, tmp_path / "missing"):
        with pytest.raises(InputError) as exc:
            info.cls()(folder)
        assert exc.value.hint, f"{info.name}: the error for {folder} names no fix"


# ------------------------------------------------------------------------------------- models and their losses


def model_outputs(info, k: int = 2):
    from fusionkit.interfaces import TrainingBatch

    torch.manual_seed(0)
    model = info.cls()
    sources = torch.stack([luma_stack(k, size=20)[:, :, :20, :20] for _ in range(2)])   # [2, K, 1, 20, 20]
    batch = TrainingBatch(sources, None, torch.Generator().manual_seed(0))
    return model, model.training_outputs(batch), batch


@pytest.mark.parametrize("info", each("model"))
def test_model_provides_what_it_declares_and_fuses_any_k(info):
    model, outputs, batch = model_outputs(info)
    assert isinstance(model, torch.nn.Module) and isinstance(model.training_params, info.cls.TrainingParams)
    assert set(info.cls.provides) <= set(outputs), f"{info.name} does not return all it provides"
    for k in (2, 3):
        with torch.no_grad():
            fused, maps = model.fuse(luma_stack(k, size=20).unsqueeze(0))
        assert fused.shape == (1, 1, 20, 20) and maps.shape == (1, k, 1, 20, 20)
        assert torch.allclose(maps.sum(dim=1), torch.ones(1, 1, 20, 20), atol=1e-5) and (maps >= 0).all()


@pytest.mark.parametrize("info", each("training_loss"))
def test_training_loss_is_a_finite_differentiable_scalar(info):
    feeding = [m for m in CATALOG.all("model") if set(info.cls.needs) <= set(m.cls.provides)]
    assert feeding, f"no installed model provides what {info.name} needs ({info.cls.needs})"
    model, outputs, batch = model_outputs(feeding[0])
    value = info.cls()(outputs, batch)
    assert isinstance(value, torch.Tensor) and value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# ---------------------------------------------------------------------------------------------------- guards


BUILTINS = [info for info in CATALOG.all() if info.dist == "fusionkit"]


def load_docs_generator():
    spec = importlib.util.spec_from_file_location("gen_component_docs", ROOT / "scripts" / "gen_component_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("info", [pytest.param(i, id=f"{i.kind}:{i.name}") for i in BUILTINS])
def test_builtin_has_a_component_test(info):
    pattern = re.compile(rf"\b{re.escape(info.name)}\b")
    files = sorted((ROOT / "tests" / "components").glob("test_*.py"))
    assert any(pattern.search(f.read_text()) for f in files), (
        f"no tests/components/test_*.py mentions the built-in {info.kind} {info.name!r} "
        f"({inspect.getsourcefile(info.cls)}): add tests of its equation on small inputs")


@pytest.mark.parametrize("info", [pytest.param(i, id=f"{i.kind}:{i.name}") for i in BUILTINS])
def test_builtin_is_documented(info):
    text = (ROOT / "docs" / "components.md").read_text()
    assert f"`{info.name}`" in text, f"docs/components.md lacks {info.name!r}: run scripts/gen_component_docs.py"


def test_component_docs_are_up_to_date():
    gen = load_docs_generator()
    assert (ROOT / "docs" / "components.md").read_text() == gen.render(gen.builtin_catalog()), (
        "docs/components.md is stale: run `.venv/bin/python scripts/gen_component_docs.py`")
