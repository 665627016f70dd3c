"""Contract checks for components, shipped with fusionkit so that a plugin's own test suite can run them.

In a plugin's tests (no fusionkit source checkout needed)::

    import fusionkit_myplugin
    from fusionkit.testing import check_plugin

    def test_fusionkit_contract():
        check_plugin(fusionkit_myplugin, "fusionkit-myplugin")

:func:`check_plugin` registers the module in strict mode (as an installed entry point would be) and runs
:func:`check_component` on every component it registers. Each check raises ``AssertionError`` saying what is wrong;
a case a component declares unsupported (``UnsupportedInput``, e.g. a pairwise measure given N = 3) is allowed,
and the per-kind checks return the reason instead. fusionkit's own contract tests (``tests/test_contracts.py``)
run these same functions over every installed component. Inputs are tiny (24x24), so the checks take seconds.
"""
from __future__ import annotations

import math
import tempfile
import typing
from pathlib import Path

from .interfaces import KINDS, UnsupportedInput

if typing.TYPE_CHECKING:  # pragma: no cover
    from .registry import Catalog

__all__ = ["check_plugin", "check_component", "check_identity", "check_params", "check_focus_measure",
           "check_resampler", "check_estimated_resampler", "check_generator", "check_loss", "check_metric",
           "check_metric_ideal",
           "check_light_field", "check_fuser", "check_model", "check_training_loss"]


def check_plugin(module: object, dist: str = "local-plugin") -> "Catalog":
    """Register ``module`` (a plugin's entry-point module, or any object with hook implementations) in strict mode
    and check every component it registers; returns the catalog. Fails if it registers nothing."""
    from .registry import build_catalog

    catalog = build_catalog(load_entry_points=False, extra_plugins=[(module, dist)], strict=True)
    mine = [i for i in catalog.all() if i.dist == dist]
    assert mine, f"{getattr(module, '__name__', module)!r} registered no component (is each hook decorated with " \
                 "fusionkit.registry.hookimpl and spelt as in docs/plugins.md?)"
    for info in mine:
        check_component(info.cls)
    return catalog


def check_component(cls: type) -> None:
    """Every check that applies to ``cls``: identity and documentation, ``Params``, and its kind's contract."""
    check_identity(cls)
    check_params(cls)
    kind = cls.kind
    if kind == "focus_measure":
        check_focus_measure(cls, 2)
        check_focus_measure(cls, 3)
    elif kind == "resampler":
        for factor in (1, 2, 3, 4):
            check_resampler(cls, factor)
    elif kind == "generator":
        for channels in ((3, 3), (1, 1)):
            check_generator(cls, channels)
    elif kind == "loss":
        for c in (1, 3):
            check_loss(cls, c)
    elif kind == "metric":
        for colour in ("gray", "rgb"):
            check_metric(cls, colour)
            check_metric_ideal(cls, colour)
    elif kind == "light_field":
        check_light_field(cls)
    elif kind == "fuser":
        check_fuser(cls)
    elif kind == "model":
        check_model(cls)
    # a training_loss needs a model that provides what it reads: check_training_loss(cls, model_cls)


# ------------------------------------------------------------------------------------------------ every kind


def check_identity(cls: type) -> None:
    """``name``, ``kind``, a one-line ``summary``, a ``reference`` and a docstring of the class's own."""
    kind = getattr(cls, "kind", None)
    assert kind in KINDS, f"{cls.__name__}.kind is {kind!r}, not one of {', '.join(KINDS)}"
    assert issubclass(cls, KINDS[kind]), f"{cls.__name__} does not subclass fusionkit.interfaces.{KINDS[kind].__name__}"
    for attr in ("name", "summary", "reference"):
        value = getattr(cls, attr, None)
        assert isinstance(value, str) and value.strip(), f"{cls.__name__}.{attr} is missing or empty"
    assert "\n" not in cls.summary, "summary is one line (it is a row of `fusionkit plugins list`)"
    doc = cls.__dict__.get("__doc__")
    assert doc and doc.strip(), f"{cls.__name__} has no docstring of its own (the equation, inputs and outputs)"


def check_params(cls: type) -> None:
    """``Params()`` works, round-trips through JSON (as in a manifest), refuses unknown keys, and every field says
    what it is."""
    from pydantic import ValidationError

    params = cls.Params()
    assert cls.Params.model_validate_json(params.model_dump_json()) == params, "Params do not round-trip through JSON"
    try:
        cls.Params(definitely_not_a_parameter=1)
    except ValidationError as exc:
        assert "definitely_not_a_parameter" in str(exc)
    else:
        raise AssertionError(f"{cls.__name__}.Params accepts unknown keys (subclass fusionkit.interfaces.Params)")
    for fname, field in cls.Params.model_fields.items():
        assert field.description, f"{cls.name}: parameter {fname!r} has no description"


# ------------------------------------------------------------------------------------------------- tensors


def _rand(*shape: int, seed: int = 0, device: str = "cpu"):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g).to(device)


def luma_stack(n: int, size: int = 24, device: str = "cpu"):
    """``n`` views of one random texture, view ``i`` blurred everywhere except the ``i``-th vertical band."""
    import torch
    import torch.nn.functional as F

    sharp = _rand(1, 1, size, size)
    blurred = F.avg_pool2d(F.pad(sharp, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    band = (torch.arange(size) * n // size).view(1, 1, 1, size)
    return torch.cat([torch.where(band == i, sharp, blurred) for i in range(n)]).to(device)


def check_focus_measure(cls: type, n: int = 2, device: str = "cpu") -> str | None:
    """Maps ``[N,1,H,W]`` float32 on the input's device, finite, >= 0, summing to 1 per pixel; None, or why the
    measure declares ``n`` inputs unsupported (allowed for ``n`` > 2)."""
    import torch

    images = luma_stack(n, device=device)
    try:
        maps = cls()(images)
    except UnsupportedInput as exc:
        assert n > 2, f"{cls.name} refuses {n} inputs ({exc.message}); every measure must take 2"
        return f"{cls.name} supports fewer inputs: {exc.message}"
    h, w = images.shape[-2:]
    assert isinstance(maps, torch.Tensor), f"{cls.name} returned {type(maps).__name__}, not a tensor"
    assert maps.shape == (n, 1, h, w), f"{cls.name}: maps of shape {tuple(maps.shape)}, expected {(n, 1, h, w)}"
    assert maps.dtype == torch.float32, f"{cls.name}: maps are {maps.dtype}, not float32"
    assert maps.device == images.device, f"{cls.name}: maps on {maps.device}, the input on {images.device}"
    assert torch.isfinite(maps).all() and (maps >= 0).all(), f"{cls.name}: maps are negative or not finite"
    assert torch.allclose(maps.sum(dim=0), torch.ones(1, h, w, device=maps.device), atol=1e-5), \
        f"{cls.name}: maps do not sum to 1 at every pixel"
    return None


def check_resampler(cls: type, factor: int) -> None:
    """``down`` and ``up`` keep batch and channels, give the right size in float32, and pass finite gradients."""
    import torch

    res = cls()
    x = _rand(1, 3, 24, 24).requires_grad_()
    down = res.down(x, factor)
    assert down.shape == (1, 3, 24 // factor, 24 // factor) and down.dtype == torch.float32, \
        f"{cls.name}.down(x, {factor}) gave {tuple(down.shape)} {down.dtype}"
    down.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, \
        f"{cls.name}.down passes no finite gradient back (it sits inside the loss)"
    y = _rand(1, 3, 24, 24, seed=1).requires_grad_()
    up = res.up(y, factor)
    assert up.shape == (1, 3, 24 * factor, 24 * factor) and up.dtype == torch.float32, \
        f"{cls.name}.up(x, {factor}) gave {tuple(up.shape)} {up.dtype}"
    up.square().sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0, \
        f"{cls.name}.up passes no finite gradient back"
    check_estimated_resampler(cls, factor)


def check_estimated_resampler(cls: type, factor: int) -> None:
    """The optional extension point of an estimated resampler (``trainable_parameters``, ``prior_loss``, ``report``,
    ``artifacts``): the groups are well formed, gradients of ``down`` and of the prior reach every trainable tensor,
    and the report is JSON. A fixed resampler (no trainable parameters) passes trivially, but must report nothing."""
    import json

    import numpy as np
    import torch

    from .interfaces import TrainableGroup

    res = cls()
    groups = res.trainable_parameters(factor, torch.device("cpu"))
    assert isinstance(groups, list) and all(isinstance(g, TrainableGroup) for g in groups), \
        f"{cls.name}.trainable_parameters must return a list of fusionkit.interfaces.TrainableGroup"
    if not groups:
        assert res.prior_loss() is None and res.report() is None and not res.artifacts(), \
            f"{cls.name} has no trainable parameters but reports a prior, a report or artifacts"
        return
    params = [p for g in groups for p in g.params]
    for g in groups:
        assert g.lr > 0 and 0 <= g.frozen_for < 1, f"{cls.name}: a group has lr {g.lr}, frozen_for {g.frozen_for}"
    assert params and all(isinstance(p, torch.Tensor) and p.is_leaf and p.requires_grad for p in params), \
        f"{cls.name}.trainable_parameters must give leaf tensors that require grad"
    x = _rand(1, 3, 24, 24)
    loss = (res.down(x, factor) - x[:, :, ::factor, ::factor]).square().mean()
    prior = res.prior_loss()
    assert prior is None or (isinstance(prior, torch.Tensor) and prior.dim() == 0 and torch.isfinite(prior)), \
        f"{cls.name}.prior_loss must be None or a finite 0-d tensor"
    (loss + (prior if prior is not None else 0)).backward()
    missing = [i for i, p in enumerate(params) if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{cls.name}: no finite gradient reaches trainable tensors {missing}"
    assert any(p.grad.abs().sum() > 0 for p in params), f"{cls.name}: all gradients of its parameters are zero"
    report = res.report()
    assert report is None or isinstance(report, dict), f"{cls.name}.report must return a dict or None"
    json.dumps(report, allow_nan=False)
    arts = res.artifacts()
    assert isinstance(arts, dict) and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in arts.items()), \
        f"{cls.name}.artifacts must return {{name: numpy array}}"


def check_generator(cls: type, channels: tuple[int, int] = (3, 3)) -> None:
    """Same spatial size out as in (for an odd size too), finite, in [0, 1] when ``sigmoid``, and a gradient for
    every trainable parameter."""
    import torch

    torch.manual_seed(0)
    gen = cls(*channels)
    assert isinstance(gen, torch.nn.Module) and (gen.in_channels, gen.out_channels) == channels
    out = gen(_rand(1, channels[0], 20, 28))
    assert out.shape == (1, channels[1], 20, 28) and out.dtype == torch.float32, \
        f"{cls.name}: output {tuple(out.shape)} {out.dtype} for a [1,{channels[0]},20,28] input"
    assert torch.isfinite(out).all(), f"{cls.name}: output not finite"
    if getattr(gen.params, "sigmoid", False):
        assert out.min() >= 0 and out.max() <= 1, f"{cls.name}: output outside [0, 1] with sigmoid on"
    out.mean().backward()
    params = [(n, p) for n, p in gen.named_parameters() if p.requires_grad]
    assert params, f"{cls.name} has no trainable parameters"
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"{cls.name}: no gradient reaches {missing}"
    assert all(torch.isfinite(p.grad).all() for _, p in params), f"{cls.name}: non-finite gradients"
    assert any(p.grad.abs().sum() > 0 for _, p in params), f"{cls.name}: all gradients are zero"


def fusion_context(n: int, c: int, scale: int = 2, h: int = 12, w: int = 16):
    """The fusion stage's context: output ``[1,C,sH,sW]``, its downsampled copy, inputs ``[N,C,H,W]``, soft maps."""
    import torch
    import torch.nn.functional as F

    from .interfaces import LossContext

    output = _rand(1, c, scale * h, scale * w, seed=1).requires_grad_()
    maps = torch.softmax(_rand(n, 1, h, w, seed=2) * 4, dim=0)
    ctx = LossContext(output=output, output_low=F.avg_pool2d(output, scale), inputs=_rand(n, c, h, w, seed=3),
                      maps=maps, scale=scale, stage="fusion")
    return ctx, output


def embedding_context(n: int, h: int = 12, w: int = 16):
    """The decision-embedding stage's context: predicted soft maps as output, handcrafted maps, luma inputs."""
    import torch

    from .interfaces import LossContext

    predicted = torch.softmax(_rand(n, 1, h, w, seed=4) * 4, dim=0).detach().requires_grad_()
    target = (torch.arange(n).view(n, 1, 1, 1) == _rand(1, 1, h, w, seed=5).mul(n).long()).float()
    ctx = LossContext(output=predicted, output_low=predicted, inputs=_rand(n, 1, h, w, seed=6), maps=target,
                      scale=1, stage="embedding")
    return ctx, predicted


def check_loss(cls: type, c: int = 1) -> str | None:
    """A finite 0-d float32 tensor, differentiable in ``ctx.output``, in the fusion stage (``c`` channels) or, for
    a decision-embedding loss, in that stage; None, or why this case does not apply."""
    import torch

    loss = cls()
    ctx, output = fusion_context(2, c)
    try:
        value = loss(ctx)
    except UnsupportedInput as fusion_exc:  # not a fusion-stage loss: it must take the embedding context
        if c != 1:
            return f"{cls.name} is a decision-embedding loss; that stage works on luma"
        ctx, output = embedding_context(2)
        try:
            value = loss(ctx)
        except UnsupportedInput as exc:
            raise AssertionError(f"{cls.name} accepts neither the fusion context ({fusion_exc.message}) nor the "
                                 f"decision-embedding context ({exc.message})") from None
    assert isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype == torch.float32, \
        f"{cls.name} returned {type(value).__name__} {getattr(value, 'shape', '')}, not a 0-d float32 tensor"
    assert torch.isfinite(value), f"{cls.name} returned {float(value)}"
    value.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all(), \
        f"{cls.name} is not differentiable in ctx.output"
    return None


METRIC_SIZE = 64


def metric_image(colour: str, seed: int):
    import numpy as np

    shape = (METRIC_SIZE, METRIC_SIZE) if colour == "gray" else (METRIC_SIZE, METRIC_SIZE, 3)
    return np.random.default_rng(seed).random(shape)


def metric_call(metric, fused, sources, reference):
    return metric(fused, sources, reference if type(metric).requires == "reference" else None)


def check_metric(cls: type, colour: str = "gray") -> None:
    """``requires`` and ``higher_is_better`` declared; a finite Python float on random images; the same value
    from a ``Params`` model and from its dict."""
    cls_requires = getattr(cls, "requires", None)
    assert cls_requires in ("sources", "reference"), f"{cls.name}: requires is {cls_requires!r}"
    assert isinstance(cls.higher_is_better, bool), f"{cls.name}: higher_is_better must be True or False"
    ideal = getattr(cls, "ideal", None)
    assert ideal is None or isinstance(ideal, (int, float)), f"{cls.name}: ideal must be a number or None"
    f, a, b, r = (metric_image(colour, seed) for seed in range(4))
    value = metric_call(cls(), f, [a, b], r)
    assert isinstance(value, float), f"{cls.name} returned {type(value).__name__}, not float"
    assert math.isfinite(value), f"{cls.name} returned {value} on random {colour} images"
    params = cls.Params()
    again = cls.Params.model_validate_json(params.model_dump_json())
    from_model = metric_call(cls(again), f, [a, b], r)
    from_dict = metric_call(cls(params.model_dump()), f, [a, b], r)
    assert from_model == from_dict or (math.isnan(from_model) and math.isnan(from_dict)), \
        f"{cls.name}: {from_model} from a Params model but {from_dict} from its dict"


def check_metric_ideal(cls: type, colour: str = "gray") -> str | None:
    """Identical fused image, sources and reference give the metric's declared ``ideal`` (None: no such value)."""
    ideal = getattr(cls, "ideal", None)
    if ideal is None:
        return f"{cls.name} declares no ideal value"
    x = metric_image(colour, seed=7)
    value = metric_call(cls(), x, [x.copy(), x.copy()], x.copy())
    if math.isinf(ideal):
        assert value == ideal, f"{cls.name}: identical inputs gave {value}, ideal {ideal}"
    else:
        assert abs(value - ideal) <= 1e-6, f"{cls.name}: identical inputs gave {value}, ideal {ideal}"
    return None


def check_light_field(cls: type) -> None:
    """An empty or a missing folder raises :class:`~fusionkit.errors.InputError` with a fix, whatever the layout."""
    from .errors import InputError

    with tempfile.TemporaryDirectory() as tmp:
        for folder in (Path(tmp), Path(tmp) / "missing"):
            try:
                cls()(folder)
            except InputError as exc:
                assert exc.hint, f"{cls.name}: the error for {folder} names no fix"
            else:
                raise AssertionError(f"{cls.name} accepted the empty or missing folder {folder}")


def check_fuser(cls: type) -> str | None:
    """``unavailable()`` is a reason or None; when available, a fused ``[1,C,H,W]`` float32 image in [0, 1], and
    ``fuse(images, 2)`` either that (the pipeline upsamples it) or ``[1,C,2H,2W]`` (a super-resolving fuser)."""
    import torch

    reason = cls.unavailable()
    assert reason is None or (isinstance(reason, str) and reason), f"{cls.name}.unavailable() returned {reason!r}"
    if reason:
        return f"{cls.name} cannot run here: {reason}"
    images = luma_stack(2).repeat(1, 3, 1, 1)
    out = cls()(images)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 24, 24), \
        f"{cls.name} returned {getattr(out, 'shape', type(out).__name__)}, expected (1, 3, 24, 24)"
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1, \
        f"{cls.name}: output {out.dtype} in [{float(out.min())}, {float(out.max())}], expected float32 in [0, 1]"
    out2 = cls().fuse(images, 2)
    assert isinstance(out2, torch.Tensor) and tuple(out2.shape) in ((1, 3, 24, 24), (1, 3, 48, 48)), \
        f"{cls.name}.fuse(images, 2) returned {getattr(out2, 'shape', type(out2).__name__)}, expected (1, 3, 24, 24) " \
        "or, super-resolved, (1, 3, 48, 48)"
    assert out2.dtype == torch.float32 and out2.min() >= 0 and out2.max() <= 1, \
        f"{cls.name}.fuse(images, 2): {out2.dtype} in [{float(out2.min())}, {float(out2.max())}], expected [0, 1]"
    return None


def model_outputs(cls: type, k: int = 2):
    """``(model, outputs, batch)``: a freshly made model's training outputs on a batch of two ``k``-input 20x20
    luma stacks, with a seeded generator.

    The batch is supervised, as a ``synthetic`` source gives it: the all-in-focus truth, the exact decision maps and,
    for a model whose ``params.scale`` is s > 1, the high-resolution ``[.., 20s, 20s]`` truth and inputs whose
    s x s block means are the 20x20 ones (so a loss needing any of them can be checked)."""
    import torch
    import torch.nn.functional as F

    from .interfaces import TrainingBatch

    torch.manual_seed(0)
    model = cls()
    s = int(getattr(model.params, "scale", 1) or 1)
    size = 20 * s
    hr_sharp = _rand(2, 1, size, size)                                                     # [2, 1, 20s, 20s]
    hr_blurred = F.avg_pool2d(F.pad(hr_sharp, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    band = (torch.arange(size) * k // size).view(1, 1, 1, size)
    hr_masks = torch.stack([(band == i).float().expand(2, 1, size, size) for i in range(k)], dim=1)
    hr_sources = hr_masks * hr_sharp.unsqueeze(1) + (1 - hr_masks) * hr_blurred.unsqueeze(1)   # [2, K, 1, 20s, 20s]

    def low(x: torch.Tensor) -> torch.Tensor:
        return x if s == 1 else F.avg_pool2d(x.flatten(0, -4), s).view(*x.shape[:-2], 20, 20)

    batch = TrainingBatch(low(hr_sources), low(hr_sharp), torch.Generator().manual_seed(0), scale=s,
                          hr_sources=hr_sources, hr_truth=hr_sharp, masks=low(hr_masks))
    return model, model.training_outputs(batch), batch


def check_model(cls: type) -> None:
    """An ``nn.Module`` with its ``TrainingParams``; ``training_outputs`` returns every name in ``provides``;
    ``fuse`` takes K = 2 and 3 inputs and gives a ``[1,1,sH,sW]`` image (s: the model's ``params.scale``, 1 when it
    has none) and ``[1,K,1,H,W]`` maps >= 0 summing to 1."""
    import torch

    model, outputs, _batch = model_outputs(cls)
    s = int(getattr(model.params, "scale", 1) or 1)
    assert isinstance(model, torch.nn.Module) and isinstance(model.training_params, cls.TrainingParams)
    assert set(cls.provides) <= set(outputs), f"{cls.name} does not return all it provides"
    for k in (2, 3):
        with torch.no_grad():
            fused, maps = model.fuse(luma_stack(k, size=20).unsqueeze(0))
        assert fused.shape == (1, 1, 20 * s, 20 * s) and maps.shape == (1, k, 1, 20, 20), \
            f"{cls.name}.fuse gave {tuple(fused.shape)} and {tuple(maps.shape)} for K = {k}"
        assert torch.allclose(maps.sum(dim=1), torch.ones(1, 1, 20, 20), atol=1e-5) and (maps >= 0).all(), \
            f"{cls.name}.fuse: maps are not >= 0 summing to 1"


def check_training_loss(cls: type, model_cls: type) -> None:
    """A finite 0-d tensor on ``model_cls``'s training outputs, whose gradient reaches the model's parameters."""
    import torch

    model, outputs, batch = model_outputs(model_cls)
    value = cls()(outputs, batch)
    assert isinstance(value, torch.Tensor) and value.dim() == 0 and torch.isfinite(value), \
        f"{cls.name} returned {value!r}, expected a finite 0-d tensor"
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), \
        f"{cls.name}: no gradient reaches {model_cls.name}'s parameters"
