"""The training spec (``fusionkit train TRAIN.yaml``): its pydantic model and its loader.

It is read by the same machinery as run and ablation specs (:mod:`fusionkit.specfile`): ``file:line`` in every
message, ``--set`` overrides, two validation passes (the structure below, then the model, its training options and
the losses against the plugin catalog), did-you-mean, JSON Schema (``fusionkit schema --kind train``). Cross-field
rules: ``steps`` or ``epochs`` (one of them); every loss's ``needs`` provided by the model; loss names unique; at
least one loss with a weight above 0; data folders and exclusion lists that exist; validation metrics and the
downsampler installed; ``data.crop`` divisible by ``data.scale``.

Training ``phases`` (optional; FAP-SR §III-E): each phase has its own budget and losses (the rules above apply per
phase, and the top level then has neither), trains the named parameter groups of the model
(``TrainableModel.parameter_groups``; checked by building the model once), and inherits the top-level
``optimizer`` and ``schedule`` field by field where it does not set them; the resolved spec records every phase in
full. Relative data paths are resolved against the spec file's folder (the current folder for ``--set`` and dicts).
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import SpecError
from ..spec import ComponentRef, LossTerm
from ..specfile import (MISSING, SpecContext, apply_overrides, json_schema, model_defaults, overlay,
                        read_yaml, resolve_component, resolve_path, shell_set, translate)

NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(ComponentRef):
    """The network to train (kind model): its architecture ``params`` (recorded with the weights) and its
    ``training`` options (the model's TrainingParams; not recorded as architecture)."""

    name: str = Field("udpnet", description="registered model name, see `fusionkit plugins list --kind model`")
    training: dict[str, Any] = Field(default_factory=dict, description="the model's training options (e.g. "
                                     "udpnet's keep_probability), checked against its TrainingParams")


class DataSource(_Strict):
    """One source of training stacks. ``stacks``: a folder of real focal stacks without ground truth
    (NN_A/NN_B[/NN_GT] or NN_1..NN_k, as `fusionkit eval` reads); ``synthetic``: a folder of all-in-focus images
    from which stacks are made on the fly by the rules of `fusionkit synth` (with ground truth)."""

    kind: Literal["stacks", "synthetic"] = Field(description="stacks: real focal stacks; synthetic: all-in-focus "
                                                             "images made into stacks on the fly")
    path: str = Field(description="the folder, relative to the training spec")
    weight: float = Field(1.0, gt=0.0, description="relative share of this source in every batch")
    exclude: list[str] = Field(default_factory=list, description="item ids never used (e.g. a test subset)")
    exclude_list: str | None = Field(None, description="a text file of item ids never used: on each line not "
                                     "starting with #, the last word (relative to the training spec)")
    limit: int | None = Field(None, ge=1, description="use only the first N items (after exclusions)")
    blur: Literal["gaussian", "disk"] = Field("gaussian", description="synthetic only: the defocus PSF, as "
                                              "`fusionkit synth --blur`")
    strength: list[float] = Field([1.0, 4.0], min_length=2, max_length=2, description="synthetic only: blur "
                                  "strength (pixels per depth-layer step) drawn uniformly from [low, high] per stack")
    pattern: Literal["depth_layers", "binary_regions"] = Field(
        "depth_layers", description="synthetic only: depth_layers: `fusionkit synth`'s smooth depth layers, blur "
        "growing with the layer distance; binary_regions: FAP-SR Eq. 21 for K inputs, a random partition into K "
        "regions bounded by contours, input k sharp in region k and blurred (one strength per stack) elsewhere")
    validation_ids: list[str] | None = Field(None, description="these item ids are this source's validation "
                                             "items (instead of a validation.fraction drawn by the seed); the "
                                             "rest train")

    @model_validator(mode="after")
    def _strength_order(self) -> "DataSource":
        lo, hi = self.strength
        if not 0 < lo <= hi <= 50:
            raise ValueError(f"strength must be [low, high] with 0 < low <= high <= 50, got {self.strength}")
        return self


class AugmentSpec(_Strict):
    flips: bool = Field(True, description="random horizontal and vertical flips of every crop")
    rotations: bool = Field(True, description="random rotations by multiples of 90 degrees")
    shuffle_inputs: bool = Field(True, description="random order of a stack's inputs")


class DataSpec(_Strict):
    """What the network sees: random crops of K-input stacks from the sources, luma (BT.601 Y) in [0, 1]."""

    sources: list[DataSource] = Field(min_length=1, description="the data sources (stacks and/or synthetic)")
    crop: int = Field(60, ge=8, le=2048, description="side of the square random crops (the paper: 60); with "
                      "scale s, of the high-resolution crops (divisible by s; the inputs are crop/s)")
    scale: int = Field(1, ge=1, le=8, description="super-resolution factor s: the inputs are the crops "
                       "downsampled by `downsampler` (what `fusionkit eval --protocol mfisrf` does), the batch "
                       "also carries them at high resolution, and the model's fused image is s times larger")
    downsampler: str = Field("bicubic", description="resampler (kind resampler) that makes the low-resolution "
                             "inputs when scale > 1; bicubic is the mfisrf protocol's default")
    stack_size: int = Field(2, ge=2, le=64, description="K, inputs per training stack (a stack with more "
                                                        "inputs contributes random subsets of K)")
    augment: AugmentSpec = Field(default_factory=AugmentSpec, description="random augmentation of every crop")


class ValidationSpec(_Strict):
    """A fixed validation split, scored every ``every`` steps: the losses, the model's fused image by the fusion
    ``metrics`` against its sources, and PSNR against the ground truth where the data has one."""

    every: int = Field(250, ge=0, description="score the validation split every N steps (0: only at the end)")
    fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of each source's items held out (at least "
                                                             "one item when above 0)")
    size: int = Field(256, ge=0, le=4096, description="centre crop of each validation stack (0: whole images)")
    metrics: list[str] = Field(default_factory=lambda: ["q_g", "q_y"], description="fusion metrics of the "
                               "fused validation stacks (kind metric)")
    keep: Literal["last", "best"] = Field("last", description="the weights written as weights.pt: the last "
                                          "step's, or those of the validation with the best `best_by` score (with "
                                          "phases, among the last phase's validations); the last step's are then "
                                          "kept as weights-last.pt")
    best_by: str = Field("auto", description="the validation score `keep: best` ranks by: loss (lower is better), "
                         "psnr, ssim or one of `metrics` (in its own direction); auto: psnr where the data has a "
                         "ground truth, else the first of `metrics`, else loss")


class TrainOptimizerSpec(_Strict):
    name: Literal["adam", "adamw"] = Field("adam", description="the optimiser")
    lr: float = Field(2e-4, gt=0.0, le=1.0, description="learning rate (the paper: 2e-4)")
    betas: list[float] = Field([0.9, 0.999], min_length=2, max_length=2, description="Adam's betas")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="weight decay (decoupled for adamw)")
    grad_clip: float | None = Field(None, gt=0.0, description="clip the gradient norm to this (none: no clipping)")


class ScheduleSpec(_Strict):
    """The learning-rate schedule over the steps: a linear warm-up, then constant, cosine or step decay."""

    name: Literal["constant", "cosine", "step"] = Field("constant", description="the shape after the warm-up")
    warmup: int = Field(0, ge=0, description="steps of linear warm-up from 0")
    min_ratio: float = Field(0.05, ge=0.0, le=1.0, description="cosine: the final learning rate as a fraction "
                                                               "of lr")
    step_every: int = Field(1000, ge=1, description="step: multiply the rate by gamma every N steps")
    gamma: float = Field(0.5, gt=0.0, le=1.0, description="step: the factor")


class PhaseSpec(_Strict):
    """One phase of a phased training (e.g. FAP-SR §III-E: the focus network, then the SR network with it frozen,
    then the SR network and the decoder together): its own budget and losses, the parameter groups it trains, a
    fresh optimiser and its own schedule over its own steps."""

    name: str = Field(pattern=NAME_PATTERN, description="phase name, unique; the model sees it as batch.phase")
    steps: int | None = Field(None, ge=1, le=100_000_000, description="optimisation steps of this phase (or give "
                              "epochs)")
    epochs: float | None = Field(None, gt=0.0, description="instead of steps: epochs of this phase (an epoch is "
                                 "one random crop of every training item)")
    losses: list[LossTerm] = Field(default_factory=list, description="the weighted losses of this phase (kind "
                                   "training_loss); at least one with a weight above 0")
    train: list[str] | None = Field(None, description="the model's parameter groups this phase trains (see "
                                    "`parameter_groups`); every other parameter is frozen and its modules in eval "
                                    "mode. None: every parameter")
    optimizer: TrainOptimizerSpec | None = Field(None, description="this phase's optimiser (fresh at the phase's "
                                                 "start); fields not given are the top-level optimizer's")
    schedule: ScheduleSpec | None = Field(None, description="this phase's learning-rate schedule over its own "
                                          "steps; fields not given are the top-level schedule's")


class CheckpointSpec(_Strict):
    every: int = Field(250, ge=1, description="write a checkpoint every N steps (and at the end, and on Ctrl-C)")
    keep: int = Field(2, ge=1, le=1000, description="checkpoints kept (older ones are deleted)")


class TrainOutputSpec(_Strict):
    dir: str = Field("runs/train-{name}", description="the training folder; {name} is the spec name. Never "
                                                      "silently overwritten: an existing folder gets a numbered "
                                                      "sibling (use --resume DIR to continue one)")


class TrainSpec(_Strict):
    """A training run: the model, its losses, the data and the budget. See docs/training.md."""

    name: str = Field("train", pattern=NAME_PATTERN, description="training name; fills {name} in output.dir")
    model: ModelSpec = Field(default_factory=ModelSpec, description="the network to train (kind model)")
    losses: list[LossTerm] = Field(default_factory=lambda: [
        LossTerm(name="blind_spot_mask", weight=1.0), LossTerm(name="stage_mask", weight=0.2),
        LossTerm(name="fusion_consistency", weight=0.2)],
        description="the weighted training losses (kind training_loss); names unique. With phases: each phase "
                    "lists its own (the resolved spec has [] here)")
    data: DataSpec = Field(description="the training data")
    batch: int = Field(16, ge=1, le=65536, description="crops per step over all processes (the paper: 16)")
    steps: int | None = Field(None, ge=1, le=100_000_000, description="optimisation steps (or give epochs); "
                              "with phases: none (each phase has its budget)")
    epochs: float | None = Field(None, gt=0.0, description="instead of steps: an epoch is one random crop of "
                                 "every training item; resolved into steps")
    optimizer: TrainOptimizerSpec = Field(default_factory=TrainOptimizerSpec, description="the optimiser (with "
                                          "phases: what a phase's optimizer inherits)")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="the learning-rate schedule (with "
                                   "phases: what a phase's schedule inherits)")
    phases: list[PhaseSpec] | None = Field(None, description="training phases, run in order, each with its own "
                                           "budget, losses, trained parameter groups, optimiser and schedule "
                                           "(none: one phase training everything with the top-level losses)")
    validation: ValidationSpec = Field(default_factory=ValidationSpec, description="the fixed validation split")
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec, description="checkpoints for --resume")
    seed: int = Field(0, ge=0, description="seed of the initialisation, the split and every step's crops")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU")
    threads: int | None = Field(None, ge=1, le=1024, description="torch threads per process (none: torch's "
                                                                 "default); results depend on it")
    deterministic: bool = Field(True, description="torch.use_deterministic_algorithms (what makes --resume "
                                                  "continue bit for bit)")
    output: TrainOutputSpec = Field(default_factory=TrainOutputSpec, description="where the results go")


# ------------------------------------------------------------------------------------------------ the result

#: what a resumed run may change: where the results go (nothing that changes the numbers)
RESUMABLE_CHANGES = ("output",)


@dataclass
class ResolvedTrainSpec:
    """A validated training spec with every default and path filled in, and where it came from."""

    spec: TrainSpec
    source: str | None
    base_dir: Path
    overrides: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.spec.model_dump(mode="json")

    def to_yaml(self) -> str:
        head = [f"# resolved by fusionkit from {self.source or 'a Python dict'}"]
        if self.overrides:
            head.append("# overrides: " + " ".join(f"--set {o}" for o in self.overrides))
        return "\n".join(head) + "\n" + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None,
                                                       allow_unicode=True, width=110)

    def fingerprint(self) -> str:
        """Hash of everything the trained numbers depend on (not where they are written)."""
        data = {k: v for k, v in self.to_dict().items() if k not in RESUMABLE_CHANGES}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def train_json_schema() -> dict:
    """JSON Schema of :class:`TrainSpec` (``fusionkit schema --kind train``)."""
    return json_schema(TrainSpec)


# ------------------------------------------------------------------------------------------------ loading

def load_train_spec(source: str | os.PathLike | Mapping, overrides: Sequence[str] = (), *,
                    catalog=None) -> ResolvedTrainSpec:
    """Read ``source`` (a YAML path or a dict), apply ``overrides`` and validate; see the module docstring.

    Raises :class:`SpecError` listing every problem. ``epochs`` is resolved into ``steps`` later, when the data
    has been counted (:func:`fusionkit.training.data.load_data`).
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    ctx = SpecContext()
    if isinstance(source, Mapping):
        ctx.file = "<dict>"
        data: Any = copy.deepcopy(dict(source))
        base_dir, abs_source = Path.cwd(), None
    else:
        path = Path(source)
        ctx.file = str(source)
        base_dir, abs_source = path.resolve().parent, str(path.resolve())
        data = read_yaml(path, ctx)
        if data is MISSING:
            raise SpecError(ctx.problems, source=ctx.file)
    ctx.original = copy.deepcopy(data)
    defaults = model_defaults(TrainSpec)
    apply_overrides(data, list(overrides), ctx, defaults=defaults, is_slot=_is_slot,
                    examples=f"e.g. --set steps=500, --set optimizer.lr=1e-4 or {shell_set('losses[stage_mask].weight=0')}")
    if catalog is None:
        from ..registry import default_catalog
        catalog = default_catalog()
    _inherit(data)

    model: TrainSpec | None = None
    try:
        model = TrainSpec.model_validate(data)
    except ValidationError as exc:
        for loc, message, hint in translate(exc, TrainSpec, data):
            ctx.add(loc, message, hint)
    view = model.model_dump(mode="json") if model is not None else overlay(defaults, data)
    _resolve_components(view, ctx, catalog)
    _cross_checks(view, ctx, catalog, base_dir)
    _phase_checks(view, data, ctx, catalog)
    if ctx.problems:
        raise SpecError(ctx.sorted_problems(), source=ctx.file)
    spec = TrainSpec.model_validate(view)
    return ResolvedTrainSpec(spec=spec, source=abs_source, base_dir=base_dir, overrides=list(overrides))


def _is_slot(loc: tuple) -> bool:
    loc = tuple(loc)
    return loc == ("model",) or (len(loc) == 2 and loc[0] == "losses" and isinstance(loc[1], int)) or \
        (len(loc) == 4 and loc[0] == "phases" and loc[2] == "losses" and isinstance(loc[3], int))


def _inherit(data: Any) -> None:
    """A phase's ``optimizer`` and ``schedule``: the top-level ones with the phase's own fields on top (the
    resolved spec then records every phase in full)."""
    if not isinstance(data, dict) or not isinstance(data.get("phases"), list):
        return
    for key in ("optimizer", "schedule"):
        top = data.get(key, {})
        if not isinstance(top, dict):
            continue
        for phase in data["phases"]:
            if isinstance(phase, dict) and (phase.get(key) is None or isinstance(phase.get(key), dict)):
                phase[key] = {**copy.deepcopy(top), **(phase.get(key) or {})}


def _resolve_components(view: dict, ctx: SpecContext, catalog) -> None:
    resolve_component(view, ("model",), "model", catalog, ctx)
    model = view.get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str) and catalog.has("model", model["name"]) \
            and isinstance(model.get("training"), dict):
        cls = catalog.get("model", model["name"]).cls
        try:
            model["training"] = cls.TrainingParams.model_validate(model["training"]).model_dump(mode="json")
        except ValidationError as exc:
            see = f"See `fusionkit plugins show {model['name']}` for its training options."
            for ploc, message, hint in translate(exc, cls.TrainingParams, model["training"],
                                                 owner=f"{model['name']} (training options)"):
                ctx.add(("model", "training") + ploc, message, f"{hint + ' ' if hint else ''}{see}")
    losses = view.get("losses")
    if isinstance(losses, list):
        for i in range(len(losses)):
            resolve_component(view, ("losses", i), "training_loss", catalog, ctx)
    for p, phase in enumerate(view.get("phases") or []):
        if isinstance(phase, dict) and isinstance(phase.get("losses"), list):
            for i in range(len(phase["losses"])):
                resolve_component(view, ("phases", p, "losses", i), "training_loss", catalog, ctx)


def _cross_checks(view: dict, ctx: SpecContext, catalog, base_dir: Path) -> None:
    phased = view.get("phases") is not None
    if not phased:
        _budget_check(view, (), ctx)
        losses = view.get("losses") if isinstance(view.get("losses"), list) else []
        _loss_checks(losses, ("losses",), view, ctx, catalog)
    if isinstance(view.get("validation"), dict):
        for i, m in enumerate(view["validation"].get("metrics") or []):
            if isinstance(m, str) and not catalog.has("metric", m):
                guess = catalog.suggest("metric", m)
                ctx.add(("validation", "metrics", i), f"unknown metric {m!r}",
                        (f"did you mean {guess!r}? " if guess else "") + "See `fusionkit plugins list --kind metric`")
        by = view["validation"].get("best_by", "auto")
        metrics = view["validation"].get("metrics", ValidationSpec.model_fields["metrics"].default_factory())
        metrics = [m for m in metrics if isinstance(m, str)] if isinstance(metrics, list) else []
        if isinstance(by, str) and by not in ("auto", "loss", "psnr", "ssim", *metrics):
            ctx.add(("validation", "best_by"), f"{by!r} is not a validation score",
                    "use auto, loss, psnr, ssim or one of validation.metrics " + str(list(metrics)))
    data = view.get("data") if isinstance(view.get("data"), dict) else {}
    for i, src in enumerate(data.get("sources") or []):
        if not isinstance(src, dict) or not isinstance(src.get("path"), str):
            continue
        src["path"] = resolve_path(src["path"], ("data", "sources", i, "path"), base_dir, ctx)
        if not Path(src["path"]).is_dir():
            hint = ("make one with `fusionkit synth` or point to a folder of NN_A/NN_B images"
                    if src.get("kind") == "stacks" else "point to a folder of all-in-focus images")
            ctx.add(("data", "sources", i, "path"), f"data folder not found: {src['path']}",
                    f"give the folder relative to the training spec; {hint}")
        if isinstance(src.get("exclude_list"), str):
            src["exclude_list"] = resolve_path(src["exclude_list"], ("data", "sources", i, "exclude_list"),
                                               base_dir, ctx)
            if not Path(src["exclude_list"]).is_file():
                ctx.add(("data", "sources", i, "exclude_list"), f"exclusion list not found: {src['exclude_list']}",
                        "give the text file relative to the training spec")
        if src.get("pattern") == "binary_regions" and src.get("kind") == "stacks":
            ctx.add(("data", "sources", i, "pattern"), "a pattern applies to synthetic sources only (real stacks "
                    "are used as they are)", "remove `pattern` here, or use kind: synthetic")
    crop, scale = data.get("crop"), data.get("scale")
    if isinstance(crop, int) and isinstance(scale, int) and scale > 1:
        if crop % scale:
            lo, hi = crop // scale * scale, (crop // scale + 1) * scale
            ctx.add(("data", "crop"), f"the high-resolution crop {crop} is not divisible by data.scale {scale}",
                    f"use data.crop {hi}" + (f" or {lo}" if lo >= 8 * scale else "") + " (a multiple of the scale)")
        elif crop // scale < 8:
            ctx.add(("data", "crop"), f"crops of {crop} at scale {scale} give inputs of {crop // scale} pixels, "
                    "fewer than 8", f"use data.crop {8 * scale} or more")
    name = data.get("downsampler")
    if isinstance(name, str) and not catalog.has("resampler", name):
        guess = catalog.suggest("resampler", name)
        ctx.add(("data", "downsampler"), f"unknown downsampler {name!r}",
                (f"did you mean {guess!r}? " if guess else "") + "See `fusionkit plugins list --kind resampler`")
    size = (view.get("validation") or {}).get("size") if isinstance(view.get("validation"), dict) else None
    if isinstance(crop, int) and isinstance(size, int) and 0 < size < crop:
        ctx.add(("validation", "size"), f"validation crops ({size}) are smaller than the training crops ({crop})",
                f"use validation.size >= {crop}, or 0 for whole images")


def _budget_check(where: dict, loc: tuple, ctx: SpecContext) -> None:
    """``steps`` or ``epochs``, one of them, at ``loc`` (the top level, or a phase)."""
    steps, epochs = where.get("steps"), where.get("epochs")
    if steps is None and epochs is None:
        ctx.add(loc + ("steps",) if loc else ("steps",), "the training budget is missing" +
                (f" in phase {where.get('name')!r}" if loc else ""), "give `steps: N` (optimisation steps) or "
                "`epochs: E` (one crop of every training item per epoch), e.g. --set "
                + ("phases[NAME]." if loc else "") + "steps=2000")
    elif steps is not None and epochs is not None:
        ctx.add(loc + ("epochs",), "both `steps` and `epochs` are given", "keep one of them")


def _loss_checks(losses: list, loc: tuple, view: dict, ctx: SpecContext, catalog) -> None:
    """Loss names unique, at least one weight above 0, every loss's ``needs`` provided by the model."""
    model = view.get("model") if isinstance(view.get("model"), dict) else {}
    provides = None
    if isinstance(model.get("name"), str) and catalog.has("model", model["name"]):
        provides = set(catalog.get("model", model["name"]).cls.provides)
    where = "losses" if len(loc) == 1 else f"phases[{loc[1]}].losses"
    seen: dict[str, int] = {}
    positive = False
    for i, term in enumerate(losses):
        if not isinstance(term, dict) or not isinstance(term.get("name"), str):
            continue
        name = term["name"]
        if name in seen:
            ctx.add(loc + (i, "name"), f"loss {name!r} appears twice (also {where}[{seen[name]}])",
                    "list each loss once and put the combined weight on it")
        seen.setdefault(name, i)
        if isinstance(term.get("weight"), (int, float)) and term["weight"] > 0:
            positive = True
        if provides is not None and catalog.has("training_loss", name):
            missing = [n for n in catalog.get("training_loss", name).cls.needs if n not in provides]
            if missing:
                ctx.add(loc + (i, "name"), f"loss {name!r} needs {', '.join(missing)}, which the model "
                        f"{model['name']!r} does not provide",
                        f"use losses made for {model['name']!r} (it provides: {', '.join(sorted(provides))})")
    if losses and not positive:
        ctx.add(loc, "every loss weight is 0: nothing would be trained", "give at least one loss a "
                "weight above 0")


def _phase_checks(view: dict, raw: Any, ctx: SpecContext, catalog) -> None:
    """With ``phases``: the budget and the losses are per phase (none at the top level), names unique, every
    phase has losses, and its ``train`` groups are the model's."""
    phases = view.get("phases")
    if phases is None:
        return
    if not isinstance(phases, list):
        return  # the structure pass reported it
    if not phases:
        ctx.add(("phases",), "phases is an empty list", "list at least one phase, or remove `phases` to train "
                "everything with the top-level losses and steps")
        return
    for key in ("steps", "epochs"):
        if view.get(key) is not None:
            ctx.add((key,), f"top-level `{key}` with phases: the budget is per phase",
                    f"remove the top-level `{key}` and give each phase `steps` or `epochs`")
    if isinstance(raw, dict) and raw.get("losses"):
        ctx.add(("losses",), "top-level losses with phases: each phase lists its own losses",
                "move the losses into the phases that use them and remove the top-level `losses`")
    view["losses"] = []
    groups = _model_groups(view, ctx, catalog)
    seen: dict[str, int] = {}
    for p, phase in enumerate(phases):
        if not isinstance(phase, dict):
            continue
        name = phase.get("name")
        if isinstance(name, str):
            if name in seen:
                ctx.add(("phases", p, "name"), f"phase {name!r} appears twice (also phases[{seen[name]}])",
                        "give every phase its own name")
            seen.setdefault(name, p)
        _budget_check(phase, ("phases", p), ctx)
        losses = phase.get("losses")
        if isinstance(losses, list):
            if not losses:
                ctx.add(("phases", p, "losses"), f"phase {name!r} has no losses: it would train nothing",
                        "give the phase `losses: [{name: LOSS, weight: W}, ...]` (see `fusionkit plugins list "
                        "--kind training_loss`)")
            _loss_checks(losses, ("phases", p, "losses"), view, ctx, catalog)
        train = phase.get("train")
        if isinstance(train, list):
            if not train:
                ctx.add(("phases", p, "train"), f"phase {name!r} trains no parameter group",
                        "name the groups it trains" + (f" ({', '.join(groups)})" if groups else "")
                        + ", or remove `train` to train every parameter")
            for j, g in enumerate(train):
                if groups is not None and isinstance(g, str) and g not in groups:
                    close = difflib.get_close_matches(g, groups, n=1, cutoff=0.5)
                    ctx.add(("phases", p, "train", j), f"the model {view['model']['name']!r} has no parameter "
                            f"group {g!r}", (f"did you mean {close[0]!r}? " if close else "")
                            + f"its groups are: {', '.join(groups)}")


_GROUPS: dict[tuple, list[str]] = {}


def _model_groups(view: dict, ctx: SpecContext, catalog) -> list[str] | None:
    """The names of the model's parameter groups (the model is built once, on the CPU, to ask it); None when the
    model cannot be built (its own problem is reported elsewhere)."""
    model = view.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) \
            or not catalog.has("model", model["name"]) or any(p.path.startswith("model") for p in ctx.problems):
        return None
    key = (id(catalog), model["name"], json.dumps(model.get("params"), sort_keys=True, default=str))
    if key not in _GROUPS:
        cls = catalog.get("model", model["name"]).cls
        try:
            import torch

            with torch.device("cpu"):
                instance = cls(params=cls.Params(**(model.get("params") or {})),
                               training=cls.TrainingParams(**(model.get("training") or {})))
            _GROUPS[key] = list(instance.parameter_groups())
        except Exception as exc:  # a model that cannot be built with these params
            ctx.add(("model",), f"the model {model['name']!r} could not be built to list its parameter groups "
                    f"({type(exc).__name__}: {exc})", "check model.params against `fusionkit plugins show "
                    f"{model['name']}`")
            return None
    return _GROUPS[key]
