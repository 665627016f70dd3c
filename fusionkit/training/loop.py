"""The training loop behind ``fusionkit train``: one process, or every process of a ``torchrun`` launch.

``train(spec)`` validates the spec, reads the data, builds the model, its losses and the optimiser, and runs the
steps; every ``validation.every`` steps it scores the fixed validation split, every ``checkpoint.every`` steps it
writes a checkpoint, the curves and the manifest. Ctrl-C (SIGINT) or SIGTERM stops it at the end of the current
step with a checkpoint, so ``--resume DIR`` continues exactly there.

Steps are numbered over the whole run. A spec without ``phases`` is one implicit phase that trains every parameter
with the top-level losses, optimiser and schedule. With ``phases``, each runs its own steps in order: at its first
step the parameters outside its ``train`` groups get ``requires_grad=False`` and their groups' modules eval mode
(frozen BatchNorm statistics), a fresh optimiser is made over the rest, its schedule counts its own steps, and
``batch.phase`` names it; under torchrun the model is wrapped anew for each phase (DDP tracks the parameters that
require gradients when it wraps, and ``find_unused_parameters`` lets a phase's forward skip trained parts). A
checkpoint records the phase, so a resumed run re-enters it and restores its optimiser. The result is a folder::

    weights.pt            the trained weights (architecture + params + training summary; fusionkit.weights): the
                          last step's, or with ``validation.keep: best`` the best validated step's
    weights-last.pt       with ``validation.keep: best`` (when another step was best): the last step's
    spec.resolved.yaml    the resolved training spec
    manifest.json         data, budget, seed, versions, device(s), wall time, throughput, final scores
    curves/               train.csv/.png, validation.csv/.png
    validation/sheet.png  the fixed validation stacks, their fused images and first maps, at the end
    checkpoints/          step-NNNNNNNN.pt (the newest `checkpoint.keep`)

Only rank 0 writes; the others train and take part in the collectives.
"""
from __future__ import annotations

import gc
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .. import __version__
from .. import weights as _weights
from ..engine import seed_everything
from ..errors import InputError, RunError
from ..interfaces import TrainableModel
from ..io import new_run_dir, write_bytes, write_json, write_text
from ..provenance import environment, utc_now
from ..registry import Catalog, default_catalog
from . import checkpoint as _ckpt
from . import curves as _curves
from . import distributed as _dist
from .data import (TrainingData, ValidationItem, batch_for_step, load_data, resolve_budget, resolve_steps,
                   validation_set)
from .spec import ResolvedTrainSpec, ScheduleSpec, TrainOptimizerSpec, TrainSpec, load_train_spec

#: fields a resumed run may change (they do not change the numbers); `steps` too under a constant schedule
RESUME_FREE = ("output", "checkpoint", "validation.every")


@dataclass
class TrainEvent:
    """A progress report. ``kind``: "start", "phase" (a phase begins), "step", "validation", "checkpoint" or
    "stopping"."""

    kind: str
    step: int
    total: int
    loss: float | None = None
    lr: float | None = None
    crops_per_s: float | None = None
    scores: dict | None = None
    message: str | None = None


@dataclass
class TrainResult:
    """Where the training was written, how it ended ("finished" or "interrupted"), and its manifest."""

    run_dir: Path | None
    status: str
    step: int
    steps: int
    manifest: dict = field(default_factory=dict)

    @property
    def weights(self) -> Path | None:
        return None if self.run_dir is None or self.status != "finished" else self.run_dir / "weights.pt"


# ------------------------------------------------------------------------------------------------ entry point

def train(spec: str | Path | dict | ResolvedTrainSpec, overrides: Sequence[str] = (), *,
          resume: str | Path | None = None, progress: Callable[[TrainEvent], None] | None = None,
          catalog: Catalog | None = None, handle_signals: bool = True) -> TrainResult:
    """Train the model a training spec describes; see the module docstring.

    ``resume``: the folder of an earlier run of the same spec; training continues from its newest checkpoint.
    ``handle_signals``: stop cleanly on SIGINT/SIGTERM (only possible in the main thread).
    """
    catalog = catalog or default_catalog()
    resolved = spec if isinstance(spec, ResolvedTrainSpec) else load_train_spec(spec, overrides, catalog=catalog)
    world = _dist.from_environment()
    device = _dist.device_for(world, resolved.spec.device)
    world = _dist.start(world, device)
    try:
        return _Trainer(resolved, catalog, world, device, progress, resume).run(handle_signals)
    finally:
        _dist.stop(world)


# ------------------------------------------------------------------------------------------------ the loop

@dataclass
class Phase:
    """One phase as run: global steps ``start + 1 .. start + steps``; ``name`` None for the implicit phase of a
    spec without ``phases``; ``train`` None: every parameter; ``losses``: (name, weight, loss, info)."""

    index: int
    name: str | None
    steps: int
    start: int
    losses: list
    train: list[str] | None
    optimizer: TrainOptimizerSpec
    schedule: ScheduleSpec

    @property
    def end(self) -> int:
        return self.start + self.steps


def phases_of(spec: TrainSpec) -> list[dict]:
    """The phases of a spec whose budget is resolved (:func:`.data.resolve_budget`) as plain rows: name, steps,
    first and last global step, trained groups, losses (what ``--dry-run`` prints and the manifest records)."""
    rows, start = [], 0
    if spec.phases is None:
        return [{"name": None, "steps": spec.steps, "first_step": 1, "last_step": spec.steps, "train": None,
                 "losses": [t.name for t in spec.losses]}]
    for p in spec.phases:
        rows.append({"name": p.name, "steps": p.steps, "first_step": start + 1, "last_step": start + p.steps,
                     "train": p.train, "losses": [t.name for t in p.losses]})
        start += p.steps
    return rows


class _Stop:
    """Set by SIGINT/SIGTERM: the loop stops after the current step; a second signal interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def remove(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


class _Trainer:
    def __init__(self, resolved: ResolvedTrainSpec, catalog: Catalog, world: _dist.World, device: torch.device,
                 progress, resume) -> None:
        self.resolved, self.catalog, self.world, self.device = resolved, catalog, world, device
        self.report = progress or (lambda e: None)
        self.resume = Path(resume).resolve() if resume is not None else None
        self.spec: TrainSpec = resolved.spec

    # -------------------------------------------------------------------------------------------- setup

    def run(self, handle_signals: bool) -> TrainResult:
        spec, world = self.spec, self.world
        if spec.threads:
            torch.set_num_threads(spec.threads)
        if spec.batch % world.size:
            raise RunError(f"batch {spec.batch} does not split evenly over {world.size} processes",
                           f"use a batch that is a multiple of {world.size} (e.g. --set batch="
                           f"{max(world.size, spec.batch // world.size * world.size)})")
        seed_everything(spec.seed, spec.deterministic)
        t_data = time.perf_counter()
        self.data: TrainingData = load_data(spec, world.rank, world.size, self.catalog)
        self.data_seconds = round(time.perf_counter() - t_data, 3)
        self.epochs_requested = spec.epochs if spec.phases is None else [p.epochs for p in spec.phases]
        steps = resolve_steps(spec, self.data)
        budget = resolve_budget(spec, self.data)
        if budget is not spec:  # the resolved spec says how many steps run
            self.spec = spec = budget
            self.resolved = ResolvedTrainSpec(spec, self.resolved.source, self.resolved.base_dir,
                                              self.resolved.overrides)
        self.steps = steps
        self.local_batch = spec.batch // world.size

        info = self.catalog.get("model", spec.model.name)
        torch.manual_seed(spec.seed)
        self.model: TrainableModel = info.cls(params=info.cls.Params(**spec.model.params),
                                              training=info.cls.TrainingParams(**spec.model.training))
        self.model.to(self.device)
        self.model_info = info
        self.phased = spec.phases is not None
        self.phases = self._phases()
        self.groups = dict(self.model.parameter_groups()) if self.phased else {}

        self.step = 0
        self.train_rows: list[dict] = []
        self.val_rows: list[dict] = []
        self.phase_stats = [{**row, "steps_done": 0, "wall_seconds": 0.0, "final_loss": None}
                            for row in phases_of(spec)]
        self.wall_before = 0.0
        self.resumed: list[dict] = []
        self.best: dict | None = None     # validation.keep: best: {"step", "by", "score", "state"} so far
        self.started = utc_now()
        self.phase: Phase | None = None
        self.ddp = self.model
        ckpt = None
        if self.resume is not None:
            self.run_dir = self.resume
            ckpt = self._restore()
        else:
            self.run_dir = new_run_dir(self._output_dir()) if world.is_main else None
        self._enter(self._phase_of(self.step + 1), ckpt, announce=False)
        self.validation: list[ValidationItem] = (validation_set(self.data, spec.validation.size)
                                                 if world.is_main else [])
        self.metrics = {m: self.catalog.get("metric", m).cls() for m in spec.validation.metrics} \
            if world.is_main else {}
        self.ssim = self.catalog.get("metric", "ssim").cls() \
            if world.is_main and self.data.scale > 1 and self.catalog.has("metric", "ssim") else None
        if world.is_main:
            write_text(self.run_dir / "spec.resolved.yaml", self.resolved.to_yaml())
        stop = _Stop()
        if handle_signals:
            stop.install()
        try:
            return self._loop(stop)
        finally:
            stop.remove()

    def _phases(self) -> list[Phase]:
        def losses(terms):
            out = []
            for term in terms:
                li = self.catalog.get("training_loss", term.name)
                out.append((term.name, term.weight, li.cls(params=li.cls.Params(**term.params)), li))
            return out

        spec = self.spec
        if spec.phases is None:
            return [Phase(0, None, self.steps, 0, losses(spec.losses), None, spec.optimizer, spec.schedule)]
        out, start = [], 0
        for i, p in enumerate(spec.phases):
            out.append(Phase(i, p.name, p.steps, start, losses(p.losses), p.train, p.optimizer or spec.optimizer,
                             p.schedule or spec.schedule))
            start += p.steps
        return out

    def _phase_of(self, step: int) -> Phase:
        """The phase that runs global step ``step`` (the last one past the end, the first before the start)."""
        for p in self.phases:
            if step <= p.end:
                return p
        return self.phases[-1]

    def _trained(self, phase: Phase) -> list[torch.nn.Parameter]:
        """The parameters ``phase`` trains, in the model's order."""
        if phase.train is None:
            return list(self.model.parameters())
        ids = {id(q) for g in phase.train for q in self.groups[g].parameters()}
        return [q for q in self.model.parameters() if id(q) in ids]

    def _enter(self, phase: Phase, ckpt: dict | None = None, announce: bool = True) -> None:
        """Start ``phase``: freeze what it does not train, a fresh optimiser (its state from ``ckpt`` when the
        checkpoint was written in this phase), and under torchrun a new DDP wrapper."""
        self.phase = phase
        params = self._trained(phase)
        if self.phased:
            keep = {id(q) for q in params}
            for q in self.model.parameters():
                q.requires_grad_(id(q) in keep)
        o = phase.optimizer
        opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        self.params = params
        self.optimizer = opt_cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        if ckpt is not None and int(ckpt.get("phase_index", 0)) == phase.index:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self._train_mode()
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            if self.ddp is not self.model:  # the old wrapper's gradient hooks must go before a new one is made
                self.ddp = self.model
                gc.collect()
            self.ddp = DistributedDataParallel(self.model, find_unused_parameters=True) if self.phased \
                else DistributedDataParallel(self.model)
        if announce:
            self._announce()

    def _announce(self) -> None:
        phase = self.phase
        if self.phased and self.step < self.steps:
            self.report(TrainEvent("phase", self.step, self.steps, message=f"phase {phase.name}: steps "
                                   f"{phase.start + 1}-{phase.end}, training "
                                   f"{', '.join(phase.train) if phase.train else 'every parameter'}"))

    def _train_mode(self) -> None:
        """Training mode, except the modules of the groups the current phase freezes (eval: BatchNorm statistics
        and dropout stay fixed); a module in a trained group is trained even when a frozen group holds it too."""
        self.model.train()
        phase = self.phase
        if not self.phased or phase is None or phase.train is None:
            return
        for name, module in self.groups.items():
            if name not in phase.train:
                module.eval()
        for name in phase.train:
            self.groups[name].train()

    def _output_dir(self) -> Path:
        d = Path(self.spec.output.dir.format(name=self.spec.name))
        return d if d.is_absolute() else Path.cwd() / d

    def _restore(self) -> dict:
        ckpt = _ckpt.load_latest(self.run_dir)
        problems = resume_problems(ckpt.get("spec", {}), self.resolved.to_dict())
        if problems:
            raise InputError(f"{self.run_dir} was trained with a different spec: " + "; ".join(problems),
                             f"resume with the same spec and --set values (they are in {self.run_dir}/"
                             "spec.resolved.yaml), or start a new training without --resume")
        done = int(ckpt["step"])
        if done > self.steps:
            raise InputError(f"{self.run_dir} has a checkpoint at step {done}, beyond the {self.steps} steps "
                             "asked for", f"resume with --set steps={done} or more" if not self.phased else
                             "resume with the phases' budgets it was trained with")
        self.model.load_state_dict(ckpt["model"])
        self.step = int(ckpt["step"])
        self.train_rows = list(ckpt.get("train_rows", []))
        self.val_rows = list(ckpt.get("validation_rows", []))
        self.best = ckpt.get("best")
        self.wall_before = float(ckpt.get("wall_seconds", 0.0))
        for row, old in zip(self.phase_stats, ckpt.get("phase_rows", [])):
            row.update({k: old[k] for k in ("steps_done", "wall_seconds", "final_loss") if k in old})
        self.resumed = list(ckpt.get("resumed", [])) + [{"at_step": self.step, "checkpoint": Path(ckpt["path"]).name,
                                                         "time": utc_now()}]
        if self.phased:
            self.resumed[-1]["phase"] = ckpt.get("phase")
        self.started = ckpt.get("started", self.started)
        if self.step >= self.steps:
            self.resumed[-1]["note"] = "already complete"
        return ckpt

    # -------------------------------------------------------------------------------------------- steps

    def lr_at(self, step: int) -> float:
        p = self.phase
        return rate(p.optimizer.lr, p.schedule, step - p.start, p.steps)

    def _loop(self, stop: _Stop) -> TrainResult:
        spec, world = self.spec, self.world
        self.report(TrainEvent("start", self.step, self.steps, message=str(self.run_dir) if self.run_dir else None))
        self._announce()
        t0 = time.perf_counter()
        status = "finished"
        last_ckpt = self.step if self.resume is not None else -1
        while self.step < self.steps:
            if stop.requested and not world.distributed:  # a signal between steps (several processes agree on
                status = "interrupted"                     # stopping through the all-reduced flag below)
                if last_ckpt != self.step:
                    self._checkpoint(t0, "interrupted")
                self.report(TrainEvent("stopping", self.step, self.steps, message="stopped by a signal; a "
                                       "checkpoint was written"))
                break
            step = self.step + 1
            t_step = time.perf_counter()
            if step > self.phase.end:
                self._enter(self._phase_of(step))
            phase = self.phase
            names = [n for n, _, _, _ in phase.losses]
            lr = self.lr_at(step)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            batch = batch_for_step(self.data, step, self.local_batch, spec.data.augment)
            batch = _to(batch, self.device, phase.name)
            self._train_mode()
            outputs = self.ddp(batch)
            values = torch.stack([fn(outputs, batch) for _, _, fn, _ in phase.losses])
            weights = values.new_tensor([w for _, w, _, _ in phase.losses])
            total = (weights * values).sum()
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if phase.optimizer.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, phase.optimizer.grad_clip)
            self.optimizer.step()
            stats = torch.cat([total.detach().view(1), values.detach(),
                               values.new_tensor([1.0 if stop.requested else 0.0])]).double()
            stats = _dist.all_sum(world, stats)
            total_v = float(stats[0]) / world.size
            if not math.isfinite(total_v):
                raise RunError(f"the training loss became {total_v} at step {step}"
                               + (f" (phase {phase.name})" if self.phased else ""),
                               f"lower the learning rate (now {phase.optimizer.lr:g}) or set optimizer.grad_clip; "
                               "the last checkpoint is kept: resume from it with the fixed spec in a new run")
            self.step = step
            seconds = time.perf_counter() - t_step
            row = {"step": step, **({"phase": phase.name} if self.phased else {}), "total": total_v,
                   **{f"loss/{n}": float(stats[1 + i]) / world.size for i, n in enumerate(names)},
                   "lr": lr, "crops_per_s": spec.batch / max(seconds, 1e-9),
                   "seconds": round(self.wall_before + time.perf_counter() - t0, 3)}
            self.train_rows.append(row)
            self.report(TrainEvent("step", step, self.steps, loss=total_v, lr=lr, crops_per_s=row["crops_per_s"]))
            stopping = stats[-1] > 0
            every = spec.validation.every
            if world.is_main and self.validation and ((every and step % every == 0) or step == self.steps):
                self._validate(step)
            stats_row = self.phase_stats[phase.index]
            stats_row["steps_done"] = step - phase.start
            stats_row["final_loss"] = total_v
            stats_row["wall_seconds"] = round(stats_row["wall_seconds"] + time.perf_counter() - t_step, 3)
            if step % spec.checkpoint.every == 0 or step == self.steps or stopping or step == phase.end:
                self._checkpoint(t0, "interrupted" if stopping and step < self.steps else "running")
                last_ckpt = step
            if stopping and step < self.steps:
                status = "interrupted"
                self.report(TrainEvent("stopping", step, self.steps, message="stopped by a signal; a checkpoint "
                                       "was written"))
                break
        if status == "finished" and world.is_main and self.validation and \
                (not self.val_rows or self.val_rows[-1]["step"] != self.step):
            self._validate(self.step)          # a resumed run that had nothing left to do
        if status == "finished" and last_ckpt != self.step:
            self._checkpoint(t0, "running")
        wall = self.wall_before + time.perf_counter() - t0
        manifest = self._finish(status, wall)
        return TrainResult(self.run_dir, status, self.step, self.steps, manifest)

    # -------------------------------------------------------------------------------------------- validation

    @torch.no_grad()
    def _validate(self, step: int) -> None:
        t = time.perf_counter()
        model = self.model
        model.eval()
        phase = self._phase_of(step)
        s_ = self.data.scale
        sums: dict[str, list[float]] = {}
        for j, item in enumerate(self.validation):
            gen = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + j)
            batch = item.batch(self.data, gen, phase.name, self.device)
            outputs = model.training_outputs(batch)
            total = 0.0
            for name, w, fn, _ in phase.losses:
                v = float(fn(outputs, batch))
                sums.setdefault(f"loss/{name}", []).append(v)
                total += w * v
            sums.setdefault("loss", []).append(total)
            s = batch.sources
            fused, _maps = model.fuse(s)
            want = (s.shape[-2] * s_, s.shape[-1] * s_)
            if tuple(fused.shape[-2:]) != want:
                raise RunError(f"the model {self.spec.model.name!r} fused a {s.shape[-1]}x{s.shape[-2]} validation "
                               f"stack into {fused.shape[-1]}x{fused.shape[-2]}, not {want[1]}x{want[0]} (data.scale "
                               f"{s_})", "make the model's scale parameter equal data.scale, or set data.scale to "
                               "the model's factor")
            # scored at the output's resolution against the sources there, as the mfisrf protocol scores: the
            # high-resolution inputs (the low-resolution ones were made from them) and truth
            f = fused[0, 0].double().cpu().numpy()
            srcs = [batch.hr_sources[0, k, 0].double().cpu().numpy() for k in range(s.shape[1])]
            gt = None if batch.hr_truth is None else batch.hr_truth[0, 0].double().cpu().numpy()
            for name, scorer in self.metrics.items():
                try:
                    sums.setdefault(name, []).append(float(scorer(f, srcs, gt if scorer.requires == "reference"
                                                                  else None)))
                except Exception:  # a metric that cannot score this item is left out of its mean
                    continue
            if gt is not None:
                mse = float(np.mean((np.clip(f, 0, 1) - gt) ** 2))
                sums.setdefault("psnr", []).append(10 * math.log10(1.0 / max(mse, 1e-12)))
                if self.ssim is not None:
                    try:
                        sums.setdefault("ssim", []).append(float(self.ssim(np.clip(f, 0, 1), srcs, gt)))
                    except Exception:  # too small for its window
                        pass
        self._train_mode()
        if not hasattr(self, "reference"):
            self.reference = self._reference_scores()
        row = {"step": step, **({"phase": phase.name} if self.phased else {}),
               **{k: float(np.mean(v)) for k, v in sums.items()},
               "seconds_validation": round(time.perf_counter() - t, 3)}
        self.val_rows.append(row)
        self._consider_best(row, phase)
        self.report(TrainEvent("validation", step, self.steps, scores={k: v for k, v in row.items()
                                                                       if k not in ("step", "phase")}))

    def _consider_best(self, row: dict, phase: Phase) -> None:
        """``validation.keep: best``: keep a copy of the weights when this validation's ``best_by`` score is the
        best so far (with phases, only in the last phase: earlier phases leave parts of the model untrained)."""
        val = self.spec.validation
        if val.keep != "best" or (self.phased and phase.index != len(self.phases) - 1):
            return
        by = val.best_by if val.best_by != "auto" else (
            "psnr" if "psnr" in row else val.metrics[0] if val.metrics else "loss")
        score = row.get(by)
        if score is None or not math.isfinite(score):
            return
        higher = by in ("psnr", "ssim") or (by in self.metrics and self.metrics[by].higher_is_better)
        if self.best is not None and not (score > self.best["score"] if higher else score < self.best["score"]):
            return
        self.best = {"step": row["step"], "by": by, "score": float(score), "higher_is_better": higher,
                     "state": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}}

    def _reference_scores(self) -> dict:
        """The validation metrics of a classical rule on the same stacks (the ``max_gradient`` focus measure's hard
        composite; at scale s then upsampled by the downsampler's ``up``: the two-step baseline), so a learning
        curve can be read against something fixed."""
        if not self.catalog.has("focus_measure", "max_gradient"):
            return {}
        rule = self.catalog.get("focus_measure", "max_gradient").cls()
        s_ = self.data.scale
        sums: dict[str, list[float]] = {}
        for item in self.validation:
            s = item.sources[0].double()                                     # [K, 1, h, w]
            maps = rule(s.float()).double()
            f = (maps * s).sum(0)[0]
            if s_ > 1:
                with torch.no_grad():
                    f = self.data.downsampler.up(f[None, None].float(), s_)[0, 0].clamp(0, 1).double()
            f = f.numpy()
            hr = item.hr_sources[0].double() if item.hr_sources is not None else s
            srcs = [hr[k, 0].numpy() for k in range(hr.shape[0])]
            truth = item.hr_truth if item.hr_truth is not None else item.truth
            gt = None if truth is None else truth[0, 0].double().numpy()
            for name, scorer in self.metrics.items():
                try:
                    sums.setdefault(name, []).append(float(scorer(f, srcs, gt if scorer.requires == "reference"
                                                                  else None)))
                except Exception:
                    continue
            if gt is not None:
                sums.setdefault("psnr", []).append(10 * math.log10(1.0 / max(float(np.mean((f - gt) ** 2)), 1e-12)))
        return {"rule": "max_gradient composite (Eq. 3 masks, pixelwise)" + (
                    f", then x{s_} by {self.spec.data.downsampler} up" if s_ > 1 else ""),
                **{k: float(np.mean(v)) for k, v in sums.items()}}

    # -------------------------------------------------------------------------------------------- writing

    def _replica_check(self) -> list[float]:
        """Every process's parameter checksum: DDP keeps replicas identical, and this says so (or fails)."""
        with torch.no_grad():
            local = float(sum(p.double().sum() for p in self.model.parameters()))
        sums = _dist.gather_floats(self.world, local, self.device)
        if any(s != sums[0] for s in sums):
            raise RunError(f"the model replicas of the {self.world.size} processes differ (checksums {sums})",
                           "this is a bug in the distributed setup; report it with `fusionkit env`")
        return sums

    def _checkpoint(self, t0: float, status: str) -> None:
        sums = self._replica_check()
        if not self.world.is_main:
            return
        wall = self.wall_before + time.perf_counter() - t0
        _ckpt.save(self.run_dir, self.step, {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "phase": self.phase.name, "phase_index": self.phase.index,
            "phase_rows": self.phase_stats, "train_rows": self.train_rows,
            "validation_rows": self.val_rows, "best": self.best, "wall_seconds": wall, "spec": self.resolved.to_dict(),
            "fingerprint": self.resolved.fingerprint(), "started": self.started, "resumed": self.resumed,
        }, self.spec.checkpoint.keep)
        outputs = _curves.write(self.run_dir, self.train_rows, self.val_rows, self._boundaries())
        self.replicas = sums
        self.report(TrainEvent("checkpoint", self.step, self.steps))
        write_json(self.run_dir / "manifest.json", self._manifest(status, wall, outputs))

    def _finish(self, status: str, wall: float) -> dict:
        if not self.world.is_main:
            return {}
        outputs = _curves.write(self.run_dir, self.train_rows, self.val_rows, self._boundaries())
        if status == "finished":
            arch = self.model.params.model_dump(mode="json")
            if self.spec.validation.keep == "best" and self.best is not None and self.best["step"] != self.step:
                _weights.save(self.run_dir / "weights-last.pt", model=self.spec.model.name, architecture=arch,
                              state_dict=self.model.state_dict(), training=self._weights_summary(wall, last=True),
                              dist=self.model_info.dist, version=self.model_info.version)
                outputs["weights_last"] = "weights-last.pt"
                self.model.load_state_dict(self.best["state"])   # the sheet and weights.pt show the chosen step
            digest = _weights.save(self.run_dir / "weights.pt", model=self.spec.model.name, architecture=arch,
                                   state_dict=self.model.state_dict(), training=self._weights_summary(wall),
                                   dist=self.model_info.dist, version=self.model_info.version)
            outputs["weights"] = "weights.pt"
            outputs["weights_sha256"] = digest
            if self.validation:
                outputs["validation_sheet"] = self._sheet()
        manifest = self._manifest(status, wall, outputs)
        write_json(self.run_dir / "manifest.json", manifest)
        return manifest

    def _boundaries(self) -> list[tuple[str, int, int]]:
        """(name, first step, last step) of every phase, for the curves (none without phases)."""
        return [(p.name, p.start + 1, p.end) for p in self.phases] if self.phased else []

    def _weights_summary(self, wall: float, last: bool = False) -> dict:
        return {"spec_name": self.spec.name, "fingerprint": self.resolved.fingerprint(), "steps": self.step,
                "selected": self._selected(last),
                "batch": self.spec.batch, "crop": self.spec.data.crop, "crops": self.step * self.spec.batch,
                **({"scale": self.data.scale} if self.data.scale > 1 else {}),
                **({"phases": [{"name": p.name, "steps": p.steps, "train": p.train} for p in self.phases]}
                   if self.phased else {}),
                "data": [{"kind": s["kind"], "path": s["path"], "train_items": s["train_items"]}
                         for s in self.data.summary()],
                "seed": self.spec.seed, "device": str(self.device), "world_size": self.world.size,
                "wall_seconds": round(wall, 1), "fusionkit": __version__, "finished": utc_now()}

    def _selected(self, last: bool = False) -> dict:
        """Which step's weights weights.pt holds, and why (``validation.keep``)."""
        if last or self.spec.validation.keep == "last" or self.best is None:
            why = ("validation.keep: last" if self.spec.validation.keep == "last" or last else
                   "validation.keep: best, but no validation had the score: the last step")
            return {"step": self.step, "why": why}
        return {"step": self.best["step"], "why": f"validation.keep: best by {self.best['by']} "
                f"({'higher' if self.best['higher_is_better'] else 'lower'} is better)", "score": self.best["score"]}

    def _manifest(self, status: str, wall: float, outputs: dict) -> dict:
        spec = self.spec
        crops = self.step * spec.batch
        rates = [r["crops_per_s"] for r in self.train_rows[-200:]]
        n_params = sum(p.numel() for p in self.model.parameters())
        data = self.data.summary()
        for s in data:
            s["shards"] = [s["train_ids"][r::self.world.size] for r in range(self.world.size)]
        return {
            "fusionkit": __version__, "kind": "training", "status": status, "started": self.started,
            "updated": utc_now(), "spec_file": self.resolved.source, "overrides": list(self.resolved.overrides),
            "spec": self.resolved.to_dict(), "fingerprint": self.resolved.fingerprint(), "seed": spec.seed,
            "model": {"name": spec.model.name, "dist": self.model_info.dist, "version": self.model_info.version,
                      "parameters": n_params},
            "losses": [{"name": n, "weight": w, "dist": li.dist, "version": li.version,
                        **({"phase": p.name} if self.phased else {})}
                       for p in self.phases for n, w, _, li in p.losses],
            "phases": self.phase_stats,
            "data": data, "data_seconds": self.data_seconds,
            "budget": {"steps": self.steps, "batch": spec.batch, "crop": spec.data.crop,
                       "stack_size": spec.data.stack_size, "scale": self.data.scale,
                       "crops": self.steps * spec.batch,
                       "epochs": round(self.steps * spec.batch / max(1, self.data.n_train_items), 3),
                       "epochs_requested": self.epochs_requested},
            "progress": {"step": self.step, "crops_seen": crops},
            "distributed": {"world_size": self.world.size, "backend": self.world.backend,
                            "replica_checksums": getattr(self, "replicas", None)},
            "environment": environment(self.device),
            "wall_seconds": round(wall, 1),
            "throughput": {"crops_per_s": round(float(np.median(rates)), 2) if rates else None,
                           "crops_per_s_overall": round(crops / wall, 2) if wall > 0 else None},
            "final": {"train": self.train_rows[-1] if self.train_rows else None,
                      "validation": self.val_rows[-1] if self.val_rows else None},
            "validation_reference": getattr(self, "reference", None),
            "weights_selected": self._selected(),
            "degradation": self._degradation(),
            "resumed": self.resumed,
            "outputs": {"spec": "spec.resolved.yaml", "checkpoints": "checkpoints/", **outputs},
        }

    def _degradation(self) -> dict | None:
        """How the low-resolution inputs were made (scale > 1): the resampler, its params and its 1-D taps."""
        r = self.data.downsampler
        if r is None:
            return None
        out = {"scale": self.data.scale, "downsampler": self.spec.data.downsampler,
               "params": r.params.model_dump(mode="json"), "clamp": [0, 1], "borders": "replicate",
               "masks": "high-resolution masks area-averaged"}
        if hasattr(r, "down_taps"):
            out["taps"] = [round(float(v), 10) for v in r.down_taps(self.data.scale)]
        return out

    @torch.no_grad()
    def _sheet(self) -> str:
        """``validation/sheet.png``: per validation stack (at most 6), its inputs, the fused image and map 1."""
        rows = []
        self.model.eval()
        for item in self.validation[:6]:
            s = item.sources.to(self.device)
            fused, maps = self.model.fuse(s)
            tiles = [s[0, k, 0] for k in range(s.shape[1])] + [fused[0, 0], maps[0, 0, 0]]
            rows.append([t.clamp(0, 1).cpu().numpy() for t in tiles])
        h = max(t.shape[0] for r in rows for t in r)
        w = max(t.shape[1] for r in rows for t in r)
        canvas = np.ones(((h + 4) * len(rows), (w + 4) * len(rows[0])), np.float32)
        for i, r in enumerate(rows):
            for j, t in enumerate(r):
                canvas[i * (h + 4):i * (h + 4) + t.shape[0], j * (w + 4):j * (w + 4) + t.shape[1]] = t
        import cv2

        ok, buf = cv2.imencode(".png", np.round(canvas * 255).astype(np.uint8))
        write_bytes(self.run_dir / "validation" / "sheet.png", buf.tobytes())
        return "validation/sheet.png"


# ------------------------------------------------------------------------------------------------ helpers

def learning_rate(spec: TrainSpec, step: int, steps: int) -> float:
    """The rate of ``step`` (1-based) under the top-level optimizer and schedule (see :func:`rate`)."""
    return rate(spec.optimizer.lr, spec.schedule, step, steps)


def rate(base: float, s: ScheduleSpec, step: int, steps: int) -> float:
    """The rate of ``step`` (1-based, of ``steps``): linear warm-up, then constant, cosine down to ``min_ratio``, or
    step decay. A phase counts its own steps."""
    if s.warmup and step <= s.warmup:
        return base * step / s.warmup
    after = step - s.warmup
    if s.name == "cosine":
        span = max(1, steps - s.warmup)
        return base * (s.min_ratio + (1 - s.min_ratio) * 0.5 * (1 + math.cos(math.pi * min(after, span) / span)))
    if s.name == "step":
        return base * s.gamma ** (after // s.step_every)
    return base


def resume_problems(old: dict, new: dict) -> list[str]:
    """Why a run with spec ``old`` cannot be continued as ``new`` (empty: it can). Free to change: where results go,
    the checkpoint cadence, ``validation.every``; ``steps`` when the schedule is constant (a run with the new budget
    from the start would have made the same steps up to the checkpoint)."""
    diffs = _diff(old, new)
    out = []
    for key, a, b in diffs:
        if any(key == f or key.startswith(f + ".") for f in RESUME_FREE):
            continue
        if key == "steps" and isinstance(a, int) and isinstance(b, int) \
                and (new.get("schedule") or {}).get("name") == "constant":
            continue  # the schedule does not depend on the budget (the checkpoint's step is checked on restore)
        out.append(f"{key} {a!r} -> {b!r}")
    return out


def _diff(a, b, prefix: str = "") -> list[tuple[str, object, object]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            out += _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [(prefix, a, b)]


def _to(batch, device: torch.device, phase: str | None):
    """The batch on ``device`` (every tensor field), named for ``phase``."""
    def on(x):
        return None if x is None else x.to(device)

    hr_same = batch.hr_sources is batch.sources
    truth_same = batch.hr_truth is batch.truth
    sources, truth = on(batch.sources), on(batch.truth)
    return type(batch)(sources, truth, batch.generator, scale=batch.scale,
                       hr_sources=sources if hr_same else on(batch.hr_sources),
                       hr_truth=truth if truth_same else on(batch.hr_truth), masks=on(batch.masks), phase=phase)
