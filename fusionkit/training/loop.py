"""The training loop behind ``fusionkit train``: one process, or every process of a ``torchrun`` launch.

``train(spec)`` validates the spec, reads the data, builds the model, its losses and the optimiser, and runs the
steps; every ``validation.every`` steps it scores the fixed validation split, every ``checkpoint.every`` steps it
writes a checkpoint, the curves and the manifest. Ctrl-C (SIGINT) or SIGTERM stops it at the end of the current
step with a checkpoint, so ``--resume DIR`` continues exactly there. The result is a folder::

    weights.pt            the trained weights (architecture + params + training summary; fusionkit.weights)
    spec.resolved.yaml    the resolved training spec
    manifest.json         data, budget, seed, versions, device(s), wall time, throughput, final scores
    curves/               train.csv/.png, validation.csv/.png
    validation/sheet.png  the fixed validation stacks, their fused images and first maps, at the end
    checkpoints/          step-NNNNNNNN.pt (the newest `checkpoint.keep`)

Only rank 0 writes; the others train and take part in the collectives.
"""
from __future__ import annotations

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
from ..interfaces import TrainableModel, TrainingBatch
from ..io import new_run_dir, write_bytes, write_json, write_text
from ..provenance import environment, utc_now
from ..registry import Catalog, default_catalog
from . import checkpoint as _ckpt
from . import curves as _curves
from . import distributed as _dist
from .data import TrainingData, ValidationItem, batch_for_step, load_data, resolve_steps, validation_set
from .spec import ResolvedTrainSpec, TrainSpec, load_train_spec

#: fields a resumed run may change (they do not change the numbers); `steps` too under a constant schedule
RESUME_FREE = ("output", "checkpoint", "validation.every")


@dataclass
class TrainEvent:
    """A progress report. ``kind``: "start", "step", "validation", "checkpoint" or "stopping"."""

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
        self.data: TrainingData = load_data(spec, world.rank, world.size)
        self.data_seconds = round(time.perf_counter() - t_data, 3)
        self.epochs_requested = spec.epochs
        steps = resolve_steps(spec, self.data)
        if spec.steps is None:  # the resolved spec says how many steps run
            self.spec = spec = spec.model_copy(update={"steps": steps, "epochs": None})
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
        self.losses = []
        for term in spec.losses:
            li = self.catalog.get("training_loss", term.name)
            self.losses.append((term.name, term.weight, li.cls(params=li.cls.Params(**term.params)), li))
        o = spec.optimizer
        opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(self.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

        self.step = 0
        self.train_rows: list[dict] = []
        self.val_rows: list[dict] = []
        self.wall_before = 0.0
        self.resumed: list[dict] = []
        self.started = utc_now()
        if self.resume is not None:
            self.run_dir = self.resume
            self._restore()
        else:
            self.run_dir = new_run_dir(self._output_dir()) if world.is_main else None
        self.ddp = self.model
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(self.model)
        self.validation: list[ValidationItem] = (validation_set(self.data, spec.validation.size)
                                                 if world.is_main else [])
        self.metrics = {m: self.catalog.get("metric", m).cls() for m in spec.validation.metrics} \
            if world.is_main else {}
        if world.is_main:
            write_text(self.run_dir / "spec.resolved.yaml", self.resolved.to_yaml())
        stop = _Stop()
        if handle_signals:
            stop.install()
        try:
            return self._loop(stop)
        finally:
            stop.remove()

    def _output_dir(self) -> Path:
        d = Path(self.spec.output.dir.format(name=self.spec.name))
        return d if d.is_absolute() else Path.cwd() / d

    def _restore(self) -> None:
        ckpt = _ckpt.load_latest(self.run_dir)
        problems = resume_problems(ckpt.get("spec", {}), self.resolved.to_dict())
        if problems:
            raise InputError(f"{self.run_dir} was trained with a different spec: " + "; ".join(problems),
                             f"resume with the same spec and --set values (they are in {self.run_dir}/"
                             "spec.resolved.yaml), or start a new training without --resume")
        done = int(ckpt["step"])
        if done > self.steps:
            raise InputError(f"{self.run_dir} has a checkpoint at step {done}, beyond the {self.steps} steps "
                             "asked for", f"resume with --set steps={done} or more")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.train_rows = list(ckpt.get("train_rows", []))
        self.val_rows = list(ckpt.get("validation_rows", []))
        self.wall_before = float(ckpt.get("wall_seconds", 0.0))
        self.resumed = list(ckpt.get("resumed", [])) + [{"at_step": self.step, "checkpoint": Path(ckpt["path"]).name,
                                                         "time": utc_now()}]
        self.started = ckpt.get("started", self.started)
        if self.step >= self.steps:
            self.resumed[-1]["note"] = "already complete"

    # -------------------------------------------------------------------------------------------- steps

    def lr_at(self, step: int) -> float:
        return learning_rate(self.spec, step, self.steps)

    def _loop(self, stop: _Stop) -> TrainResult:
        spec, world = self.spec, self.world
        self.report(TrainEvent("start", self.step, self.steps, message=str(self.run_dir) if self.run_dir else None))
        t0 = time.perf_counter()
        status = "finished"
        last_ckpt = self.step if self.resume is not None else -1
        names = [n for n, _, _, _ in self.losses]
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
            lr = self.lr_at(step)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            batch = batch_for_step(self.data, step, self.local_batch, spec.data.augment)
            batch = TrainingBatch(batch.sources.to(self.device), None if batch.truth is None else
                                  batch.truth.to(self.device), batch.generator)
            self.model.train()
            outputs = self.ddp(batch)
            values = torch.stack([fn(outputs, batch) for _, _, fn, _ in self.losses])
            weights = values.new_tensor([w for _, w, _, _ in self.losses])
            total = (weights * values).sum()
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if spec.optimizer.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), spec.optimizer.grad_clip)
            self.optimizer.step()
            stats = torch.cat([total.detach().view(1), values.detach(),
                               values.new_tensor([1.0 if stop.requested else 0.0])]).double()
            stats = _dist.all_sum(world, stats)
            total_v = float(stats[0]) / world.size
            if not math.isfinite(total_v):
                raise RunError(f"the training loss became {total_v} at step {step}",
                               f"lower optimizer.lr (now {spec.optimizer.lr:g}) or set optimizer.grad_clip; the last "
                               "checkpoint is kept: resume from it with the fixed spec in a new run")
            self.step = step
            seconds = time.perf_counter() - t_step
            row = {"step": step, "total": total_v,
                   **{f"loss/{n}": float(stats[1 + i]) / world.size for i, n in enumerate(names)},
                   "lr": lr, "crops_per_s": spec.batch / max(seconds, 1e-9),
                   "seconds": round(self.wall_before + time.perf_counter() - t0, 3)}
            self.train_rows.append(row)
            self.report(TrainEvent("step", step, self.steps, loss=total_v, lr=lr, crops_per_s=row["crops_per_s"]))
            stopping = stats[-1] > 0
            every = spec.validation.every
            if world.is_main and self.validation and ((every and step % every == 0) or step == self.steps):
                self._validate(step)
            if step % spec.checkpoint.every == 0 or step == self.steps or stopping:
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
        sums: dict[str, list[float]] = {}
        for j, item in enumerate(self.validation):
            s = item.sources.to(self.device)
            truth = None if item.truth is None else item.truth.to(self.device)
            gen = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + j)
            batch = TrainingBatch(s, truth, gen)
            outputs = model.training_outputs(batch)
            total = 0.0
            for name, w, fn, _ in self.losses:
                v = float(fn(outputs, batch))
                sums.setdefault(f"loss/{name}", []).append(v)
                total += w * v
            sums.setdefault("loss", []).append(total)
            fused, _maps = model.fuse(s)
            f = fused[0, 0].double().cpu().numpy()
            srcs = [s[0, k, 0].double().cpu().numpy() for k in range(s.shape[1])]
            gt = None if truth is None else truth[0, 0].double().cpu().numpy()
            for name, scorer in self.metrics.items():
                try:
                    sums.setdefault(name, []).append(float(scorer(f, srcs, gt if scorer.requires == "reference"
                                                                  else None)))
                except Exception:  # a metric that cannot score this item is left out of its mean
                    continue
            if gt is not None:
                mse = float(np.mean((np.clip(f, 0, 1) - gt) ** 2))
                sums.setdefault("psnr", []).append(10 * math.log10(1.0 / max(mse, 1e-12)))
        model.train()
        if not hasattr(self, "reference"):
            self.reference = self._reference_scores()
        row = {"step": step, **{k: float(np.mean(v)) for k, v in sums.items()},
               "seconds_validation": round(time.perf_counter() - t, 3)}
        self.val_rows.append(row)
        self.report(TrainEvent("validation", step, self.steps, scores={k: v for k, v in row.items() if k != "step"}))

    def _reference_scores(self) -> dict:
        """The validation metrics of a classical rule on the same stacks (the ``max_gradient`` focus measure's hard
        composite), so a learning curve can be read against something fixed."""
        if not self.catalog.has("focus_measure", "max_gradient"):
            return {}
        rule = self.catalog.get("focus_measure", "max_gradient").cls()
        sums: dict[str, list[float]] = {}
        for item in self.validation:
            s = item.sources[0].double()                                     # [K, 1, h, w]
            maps = rule(s.float()).double()
            f = (maps * s).sum(0)[0].numpy()
            srcs = [s[k, 0].numpy() for k in range(s.shape[0])]
            gt = None if item.truth is None else item.truth[0, 0].double().numpy()
            for name, scorer in self.metrics.items():
                try:
                    sums.setdefault(name, []).append(float(scorer(f, srcs, gt if scorer.requires == "reference"
                                                                  else None)))
                except Exception:
                    continue
            if gt is not None:
                sums.setdefault("psnr", []).append(10 * math.log10(1.0 / max(float(np.mean((f - gt) ** 2)), 1e-12)))
        return {"rule": "max_gradient composite (Eq. 3 masks, pixelwise)",
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
            "optimizer": self.optimizer.state_dict(), "train_rows": self.train_rows,
            "validation_rows": self.val_rows, "wall_seconds": wall, "spec": self.resolved.to_dict(),
            "fingerprint": self.resolved.fingerprint(), "started": self.started, "resumed": self.resumed,
        }, self.spec.checkpoint.keep)
        outputs = _curves.write(self.run_dir, self.train_rows, self.val_rows)
        self.replicas = sums
        self.report(TrainEvent("checkpoint", self.step, self.steps))
        write_json(self.run_dir / "manifest.json", self._manifest(status, wall, outputs))

    def _finish(self, status: str, wall: float) -> dict:
        if not self.world.is_main:
            return {}
        outputs = _curves.write(self.run_dir, self.train_rows, self.val_rows)
        if status == "finished":
            arch = self.model.params.model_dump(mode="json")
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

    def _weights_summary(self, wall: float) -> dict:
        return {"spec_name": self.spec.name, "fingerprint": self.resolved.fingerprint(), "steps": self.step,
                "batch": self.spec.batch, "crop": self.spec.data.crop, "crops": self.step * self.spec.batch,
                "data": [{"kind": s["kind"], "path": s["path"], "train_items": s["train_items"]}
                         for s in self.data.summary()],
                "seed": self.spec.seed, "device": str(self.device), "world_size": self.world.size,
                "wall_seconds": round(wall, 1), "fusionkit": __version__, "finished": utc_now()}

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
            "losses": [{"name": n, "weight": w, "dist": li.dist, "version": li.version}
                       for n, w, _, li in self.losses],
            "data": data, "data_seconds": self.data_seconds,
            "budget": {"steps": self.steps, "batch": spec.batch, "crop": spec.data.crop,
                       "stack_size": spec.data.stack_size, "crops": self.steps * spec.batch,
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
            "resumed": self.resumed,
            "outputs": {"spec": "spec.resolved.yaml", "checkpoints": "checkpoints/", **outputs},
        }

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
    """The rate of ``step`` (1-based): linear warm-up, then constant, cosine down to ``min_ratio``, or step decay."""
    base, s = spec.optimizer.lr, spec.schedule
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
