"""The component contracts. Every plugin subclasses one of these.

A component class declares, as class attributes:

- ``name``: snake_case, unique within its kind (what a spec writes);
- ``kind``: one of :data:`KINDS` (set by the base class);
- ``summary``: one line for ``fusionkit plugins list``;
- ``reference``: the paper and equation it implements;
- ``Params``: a nested pydantic model with ``extra="forbid"``, defaults, bounds and descriptions.

Tensors are float32, shape ``[B, C, H, W]``, values in [0, 1] unless said otherwise. Components never read files
or specs: they get plain tensors and a validated ``Params`` instance.

Importing this module does not import torch (``fusionkit validate`` and ``plugins list`` stay light): only
:class:`Generator` and :class:`TrainableModel`, ``nn.Module``s, need it, and they are created on first use
(``from fusionkit.interfaces import Generator`` works as usual).
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .errors import FusionkitError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor


class Params(BaseModel):
    """Base of every component's parameter model: unknown keys are errors, never silently ignored, and numbers are
    finite (a NaN or infinite parameter is refused with "expected a finite number")."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class Component(ABC):
    """What every component shares: identity, documentation and validated parameters."""

    name: ClassVar[str]
    kind: ClassVar[str]
    summary: ClassVar[str]
    reference: ClassVar[str]
    Params: ClassVar[type[Params]] = Params

    def _init_params(self, params: Params | dict | None, overrides: dict) -> None:
        if params is None:
            params = self.Params(**overrides)
        elif isinstance(params, dict):
            params = self.Params(**{**params, **overrides})
        elif overrides:
            params = params.model_copy(update=overrides)
        self.params = params


class FocusMeasure(Component):
    """Maps a stack of luma images to per-input decision maps.

    ``__call__(images[N,1,H,W]) -> maps[N,1,H,W]`` with maps >= 0 summing to 1 per pixel (binary for hard
    measures). ``N >= 2``; a measure that supports fewer cases must raise :class:`UnsupportedInput` saying so.
    The maps are not differentiated through.
    """

    kind = "focus_measure"

    def __init__(self, params: Params | dict | None = None, **overrides: Any):
        self._init_params(params, overrides)

    @abstractmethod
    def __call__(self, images: Tensor) -> Tensor: ...


@dataclass
class TrainableGroup:
    """Tensors a component asks the fusion loop to optimise jointly with the generator (one Adam parameter group).

    ``params``: leaf tensors with ``requires_grad``; ``lr``: their own base learning rate (the loop's schedule
    scales it as it scales the generator's); ``frozen_for``: the fraction of the loop's iterations, from the start,
    during which they are held fixed (so the generator first fits a sensible image).
    """

    params: list
    lr: float
    frozen_for: float = 0.0


class Resampler(Component):
    """Integer-factor resampling. ``down`` is differentiable (it sits inside the loss); ``up`` makes inputs and
    baselines. Both keep batch and channel dimensions: ``down([B,C,sH,sW], s) -> [B,C,H,W]`` and
    ``up([B,C,H,W], s) -> [B,C,sH,sW]``.

    A resampler may also be *estimated* during the fusion (a downsampler whose kernel is learnt jointly with the
    generator). Four optional methods make that extension point; their defaults describe a fixed resampler, so a
    resampler that does not override them is used exactly as before:

    - ``trainable_parameters(factor, device) -> list[TrainableGroup]``: called once by the fusion loop before it
      builds its optimiser; the resampler makes its parameters for ``factor`` on ``device`` and returns them;
    - ``prior_loss() -> Tensor | None``: a scalar penalty on those parameters, added to the fusion loss at every
      iteration (None: no penalty);
    - ``report() -> dict | None``: JSON-able facts about what was estimated, for the run's manifest;
    - ``artifacts() -> dict[str, numpy array]``: arrays the run folder keeps (``downsampler/NAME.npy``, and a PNG
      view of each 2-D one).
    """

    kind = "resampler"

    def __init__(self, params: Params | dict | None = None, **overrides: Any):
        self._init_params(params, overrides)

    @abstractmethod
    def down(self, x: Tensor, factor: int) -> Tensor: ...

    @abstractmethod
    def up(self, x: Tensor, factor: int) -> Tensor: ...

    def trainable_parameters(self, factor: int, device: Any) -> list[TrainableGroup]:
        """The tensors the fusion loop optimises with the generator (default: none; a fixed resampler)."""
        return []

    def prior_loss(self) -> Tensor | None:
        """A scalar penalty on the trainable parameters, added to the fusion loss (default: none)."""
        return None

    def report(self) -> dict | None:
        """JSON-able facts about the estimated parameters for the manifest (default: none)."""
        return None

    def artifacts(self) -> dict[str, Any]:
        """``{name: numpy array}`` to keep in the run folder (default: none)."""
        return {}


@dataclass
class LossContext:
    """Everything a loss may look at during one iteration.

    ``stage`` says which optimisation the loss is in. In the ``"fusion"`` stage (Algorithm 1): ``output`` is the
    generated image at x``scale`` resolution ``[1,C,sH,sW]`` (what is optimised), ``output_low`` it downsampled by
    the spec's downsampler ``[1,C,H,W]``, ``inputs`` the low-resolution stack ``[N,C,H,W]`` and ``maps`` the
    decision maps ``[N,1,H,W]`` summing to 1 per pixel (C is 1 for luma fusion, 3 with ``colour: rgb``; RGB is
    converted to luma with :data:`fusionkit.imaging.LUMA`). In the ``"embedding"`` stage (Algorithm 2, the
    ``decision_embedding.loss``): ``output`` and ``output_low`` are the predicted soft maps ``[N,1,H,W]``, ``maps``
    the handcrafted target maps and ``inputs`` the luma stack; ``scale`` is 1.

    ``cache`` is a dict for quantities computed from ``inputs`` and ``maps`` only (never from ``output``), so that
    they are computed once instead of every iteration. It lives for one stage of one run (a new context, with an
    empty cache, per stage); keys are tuples that start with the loss's name (``("content", "weights")``), so
    that losses sharing the context never collide, and an entry should be recomputed if the tensors it came from
    were replaced (compare shapes, or keep a reference as the built-in losses do).
    """

    output: Tensor
    output_low: Tensor
    inputs: Tensor
    maps: Tensor
    scale: int
    cache: dict = field(default_factory=dict)
    stage: str = "fusion"   # "fusion" (Algorithm 1) or "embedding" (Algorithm 2)


class Loss(Component):
    """``__call__(ctx: LossContext) -> scalar tensor`` (differentiable in ``ctx.output``)."""

    kind = "loss"

    def __init__(self, params: Params | dict | None = None, **overrides: Any):
        self._init_params(params, overrides)

    @abstractmethod
    def __call__(self, ctx: LossContext) -> Tensor: ...


class Metric(Component):
    """A fusion-quality score: ``__call__(fused, sources, reference=None) -> float``.

    Images are float numpy arrays in [0, 1], ``[H, W]`` (gray) or ``[H, W, 3]`` (RGB), all the same size:
    ``sources`` are the N >= 2 images the fused one was made from (at the fused image's resolution; for the
    super-resolution protocol, the full-resolution sources), ``reference`` a ground truth when one exists.
    ``requires`` says what the metric needs ("sources", "reference"); ``higher_is_better`` orders results.
    Each metric states its colour handling (luma, or per-channel mean) in its docstring and Params.
    """

    kind = "metric"
    requires: ClassVar[str] = "sources"
    higher_is_better: ClassVar[bool] = True

    def __init__(self, params: Params | dict | None = None, **overrides: Any):
        self._init_params(params, overrides)

    @abstractmethod
    def __call__(self, fused: Any, sources: Any, reference: Any = None) -> float: ...


class Fuser(Component):
    """A complete fuser: an external program, a trained network, or a joint fusion + super-resolution network.

    ``__call__(images[N,C,H,W]) -> fused[1,C,H,W]``: the fused image at the inputs' resolution, values in [0, 1];
    C is 1 or 3 (RGB, the inputs as given: a fuser does its own colour handling). The images come on the CPU.

    ``fuse(images[N,C,H,W], scale) -> [1,C,H,W] or [1,C,scale*H,scale*W]``: what the engine calls (``method:
    fuser``, and ``generator.warm_start`` for DFP's first guess). The default returns ``self(images)``, at the
    inputs' resolution, and the engine upsamples it with the spec's ``upsampler``, so a fuser that only implements
    ``__call__`` works unchanged. A super-resolving fuser overrides ``fuse`` and returns ``[1, C, scale*H,
    scale*W]``, used as it is; any other shape is a :class:`~fusionkit.errors.PluginError` naming the fuser. The
    run's manifest says which of the two happened.

    ``unavailable()`` returns why the fuser cannot run here (e.g. its program is not installed) or ``None``:
    pipelines are validated without running it, and a run that needs an unavailable fuser fails before any work
    with that reason. A fuser that cannot handle some inputs (e.g. N > 2) raises :class:`UnsupportedInput`.
    """

    kind = "fuser"

    def __init__(self, params: Params | dict | None = None, **overrides: Any):
        self._init_params(params, overrides)

    @classmethod
    def unavailable(cls) -> str | None:
        return None

    @abstractmethod
    def __call__(self, images: Tensor) -> Tensor: ...

    def fuse(self, images: Tensor, scale: int) -> Tensor:
        """The fused image for an output ``scale`` times the inputs' size: ``[1,C,H,W]`` (the default:
        ``self(images)``; the engine upsamples it) or ``[1,C,scale*H,scale*W]`` (a super-resolving fuser)."""
        return self(images)


class FocalStack:
    """What a light-field source returns: N refocused images and how they were made.

    ``images``: ``[N, C, H, W]`` float32 in [0, 1] (C = 1 or 3, RGB); ``disparities``: the N refocus disparities,
    in pixels per view step at the views' original resolution; ``bit_depth``: 8 or 16, as the views were (what
    outputs are written with when ``bit_depth: auto``); ``info``: JSON-able facts for the manifest (grid, centre
    view, views used, downsampling).
    """

    def __init__(self, images: Tensor, disparities: list[float], bit_depth: int = 8, info: dict | None = None):
        self.images = images
        self.disparities = [float(d) for d in disparities]
        self.bit_depth = bit_depth
        self.info = dict(info or {})


class LightFieldSource(Component):
    """Turns one light-field capture into a focal stack: ``__call__(folder) -> FocalStack``.

    This is the one kind that reads files. A light field is not one image but a folder of sub-aperture views
    whose names carry their grid positions, and the layout conventions (naming, ordering, flips) belong to the
    source, not to the pipeline. A source must raise :class:`~fusionkit.errors.InputError` with the fix for any
    problem with the folder (missing views, sizes that differ), and return at least two refocused images.
    """

    kind = "light_field"

    def __init__(self, params: Params | dict | None = None, **overrides: Any):
        self._init_params(params, overrides)

    @abstractmethod
    def __call__(self, folder: "str | os.PathLike") -> FocalStack: ...


@dataclass
class TrainingBatch:
    """One training step's data, as a trainable model and its losses see it.

    ``sources``: ``[B, K, 1, h, w]`` luma crops in [0, 1] (K >= 2 inputs of one scene each), the model's inputs
    (low-resolution when ``scale > 1``); ``truth``: the all-in-focus ``[B, 1, h, w]`` at the inputs' resolution where
    the data has one (synthetic stacks), else None; ``generator``: a seeded CPU ``torch.Generator`` for the model's
    random training operations (e.g. blind-spot masks), so a step is reproducible from the seed and the step alone.

    For joint fusion and super-resolution (``data.scale`` s in the training spec): ``hr_sources`` ``[B, K, 1, sh,
    sw]`` is each input at high resolution (``sources`` is it downsampled by the spec's ``data.downsampler``) and
    ``hr_truth`` ``[B, 1, sh, sw]`` the all-in-focus image at high resolution (None without ground truth). At scale
    1 they are the very tensors ``sources`` and ``truth``. ``masks``: ``[B, K, 1, h, w]`` the ground-truth decision
    maps at the inputs' resolution (the high-resolution region masks area-averaged; >= 0, summing to 1 over K), for
    synthetic data only, else None. ``phase``: the name of the current training phase (None when the spec has no
    ``phases``), so a model computes only what that phase needs.
    """

    sources: Tensor
    truth: Tensor | None
    generator: Any
    scale: int = 1
    hr_sources: Tensor | None = None
    hr_truth: Tensor | None = None
    masks: Tensor | None = None
    phase: str | None = None


class TrainingLoss(Component):
    """One term of a training objective: ``__call__(outputs, batch) -> scalar tensor``.

    ``outputs`` is what the model's ``training_outputs`` returned; ``needs`` names the outputs this loss reads
    (a training spec pairing it with a model that does not provide them is refused before anything runs).
    A loss is normalised per pixel and per sample, so its weight does not depend on the crop or batch size.
    """

    kind = "training_loss"
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Params | dict | None = None, **overrides: Any):
        self._init_params(params, overrides)

    @abstractmethod
    def __call__(self, outputs: dict[str, Tensor], batch: TrainingBatch) -> Tensor: ...


class UnsupportedInput(FusionkitError):
    """A component was given inputs it cannot handle (e.g. N > 2 for a pairwise-only measure)."""


def _make_generator() -> type[Component]:
    from torch import nn

    class Generator(Component, nn.Module):
        """An image generator ``G(z)``: ``forward(z[1,in_channels,H,W]) -> [1,out_channels,H,W]`` in [0, 1].

        Output spatial size equals input size for any H, W (a generator pads and crops inside if it must).
        """

        kind = "generator"

        def __init__(self, in_channels: int, out_channels: int, params: Params | dict | None = None,
                     **overrides: Any):
            nn.Module.__init__(self)
            self._init_params(params, overrides)
            self.in_channels = in_channels
            self.out_channels = out_channels

    Generator.__qualname__ = "Generator"
    Generator.__module__ = __name__
    return Generator


def _make_trainable_model() -> type[Component]:
    from torch import nn

    class TrainableModel(Component, nn.Module):
        """A network trained by ``fusionkit train``; its ``Params`` describe the architecture.

        - ``training_outputs(batch) -> {name: tensor}``: the forward pass of one training step; the names are those in
          ``provides``, which the training losses' ``needs`` are checked against when a training spec is validated;
        - ``fuse(sources[B,K,1,H,W]) -> (fused[B,1,H,W], maps[B,K,1,H,W])``: inference on luma stacks of any K >= 2
          (validation scores it): the fused luma and the per-input weight maps (>= 0, summing to 1) it composes;
        - ``TrainingParams``: options of the training procedure only (not the architecture: they are not stored with
          the weights);
        - ``parameter_groups() -> {name: module}`` (optional; default ``{"all": self}``): the named parts a training
          phase may train (``phases[].train``); the parameters of every other part are frozen in that phase and its
          modules put in eval mode. A super-resolving model (``batch.scale`` s) returns ``fused[B,1,sH,sW]`` from
          ``fuse``.

        The weights are data: ``fusionkit.weights`` saves them with the model's name and ``Params`` and refuses to load
        them into a different architecture. A trained model serves a pipeline through components of the existing kinds
        (a ``fuser``, a ``focus_measure``; see ``fusionkit.trained``).
        """

        kind = "model"
        provides: ClassVar[tuple[str, ...]] = ()
        TrainingParams: ClassVar[type[Params]] = Params

        def __init__(self, params: Params | dict | None = None, training: Params | dict | None = None,
                     **overrides: Any):
            nn.Module.__init__(self)
            self._init_params(params, overrides)
            if training is None or isinstance(training, dict):
                training = self.TrainingParams(**(training or {}))
            self.training_params = training

        @abstractmethod
        def training_outputs(self, batch: TrainingBatch) -> dict[str, Tensor]: ...

        def forward(self, batch: TrainingBatch) -> dict[str, Tensor]:
            """``training_outputs``: what DistributedDataParallel calls (its gradient hooks need the forward)."""
            return self.training_outputs(batch)

        @abstractmethod
        def fuse(self, sources: Tensor) -> tuple[Tensor, Tensor]: ...

        def parameter_groups(self) -> "dict[str, nn.Module]":
            """The parts a training phase can train by name (``phases[].train``); one group of everything by
            default. Groups may overlap; a phase trains the union of its groups' parameters."""
            return {"all": self}

    TrainableModel.__qualname__ = "TrainableModel"
    TrainableModel.__module__ = __name__
    return TrainableModel


#: the base classes that are ``nn.Module``s, made on first use (importing the contracts does not import torch)
_TORCH_BASES = {"Generator": _make_generator, "TrainableModel": _make_trainable_model}


def _torch_base(name: str) -> type[Component]:
    """The base class ``name`` (:class:`Generator`, :class:`TrainableModel`), made (once) on first use."""
    if name not in globals():
        globals()[name] = _TORCH_BASES[name]()
    return globals()[name]


def _generator() -> type[Component]:
    return _torch_base("Generator")


def __getattr__(name: str):
    # PEP 562: `Generator` and `TrainableModel` (nn.Modules) are made when first asked for, so that importing the
    # contracts does not import torch. They are then ordinary module attributes.
    if name in _TORCH_BASES:
        return _torch_base(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Kinds(Mapping):
    """kind -> base class. Iterating, ``len`` and ``in`` need no torch; only ``KINDS["generator"]`` and
    ``KINDS["model"]`` make their ``nn.Module`` base."""

    _NAMES = ("focus_measure", "generator", "resampler", "loss", "metric", "fuser", "light_field", "model",
              "training_loss")
    _TORCH = {"generator": "Generator", "model": "TrainableModel"}

    def __getitem__(self, kind: str) -> type[Component]:
        if kind not in self._NAMES:
            raise KeyError(kind)
        return _torch_base(self._TORCH[kind]) if kind in self._TORCH else _LIGHT_KINDS[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._NAMES)

    def __len__(self) -> int:
        return len(self._NAMES)

    def __contains__(self, kind: object) -> bool:
        return kind in self._NAMES

    def __repr__(self) -> str:
        return f"KINDS({', '.join(self._NAMES)})"


_LIGHT_KINDS: dict[str, type[Component]] = {
    "focus_measure": FocusMeasure, "resampler": Resampler, "loss": Loss, "metric": Metric, "fuser": Fuser,
    "light_field": LightFieldSource,
    "training_loss": TrainingLoss,
}

#: Every component kind (in this order) and the base class each plugin subclasses.
KINDS: Mapping[str, type[Component]] = _Kinds()

