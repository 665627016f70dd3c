"""The policies of an optimisation loop (fusion and decision embedding alike): the learning-rate schedule,
iterate averaging, the stopping rules and the numeric precision.

They are kept apart from the engine so each is one small, testable object, and so both loops apply the same rule
the same way. Nothing here reads a ground truth: every rule looks only at the loop's own losses, outputs and clock.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor

# ------------------------------------------------------------------------------------------------ schedule


def lr_factor(schedule: str, iteration: int, total: int, warmup: int, final: float) -> float:
    """The multiplier of the base learning rate at ``iteration`` (1-based) of ``total``.

    ``constant``: 1 after the warm-up. ``cosine``: half a cosine from 1 down to ``final`` at the last iteration.
    Both ramp up linearly over the first ``warmup`` iterations (a freshly initialised network with batch norm takes
    big, erratic first steps at a high rate; the ramp lets a higher peak rate be used safely).
    """
    if warmup > 0 and iteration <= warmup:
        return iteration / warmup
    if schedule == "constant" or total <= warmup + 1:
        return 1.0
    progress = min(1.0, (iteration - warmup) / (total - warmup))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------------------------ averaging


class IterateAverage:
    """An exponential moving average of the loop's outputs (Deep Image Prior's restoration notebooks average the
    generator's output the same way): the iterates of a stochastic, over-parameterised fit jitter around the
    solution, and their average is closer to it than any single one.

    ``decay`` 0 keeps the last iterate. The average is bias-corrected (divided by ``1 - decay**t``), so it is
    a proper weighted mean from the first update on rather than a blend with an all-zero start.
    """

    def __init__(self, decay: float):
        self.decay = float(decay)
        self.count = 0
        self._sum: Tensor | None = None

    @property
    def enabled(self) -> bool:
        return self.decay > 0

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        if not self.enabled:
            self._sum = x
            return
        x = x.detach()
        if self._sum is None:
            self._sum = torch.zeros_like(x, dtype=torch.float32)
        self._sum.mul_(self.decay).add_(x, alpha=1.0 - self.decay)
        self.count += 1

    @torch.no_grad()
    def value(self) -> Tensor | None:
        """The current average (a new tensor), or None before the first update."""
        if self._sum is None:
            return None
        if not self.enabled:
            return self._sum.detach()
        return self._sum / (1.0 - self.decay ** self.count)


# ------------------------------------------------------------------------------------------------ stopping


@dataclass
class StopDecision:
    """Why and when a loop stopped (recorded in the manifest)."""

    reason: str          # "completed", "plateau", "max_seconds", "interrupted", "non_finite"
    iteration: int       # the last iteration whose update was applied
    planned: int         # the loop's iteration budget

    def as_dict(self) -> dict:
        return {"reason": self.reason, "iteration": self.iteration, "planned": self.planned}


class PlateauRule:
    """Stops a loop once what it produces no longer changes by more than ``min_delta`` per ``window`` iterations
    (never before ``min_iterations``).

    What "change" means is the loop's: by default the relative improvement of the mean loss over the last window on
    the mean over the window before (:meth:`loss_change`; means over whole windows, because the per-iteration loss of
    this stochastic optimisation fluctuates by more than the improvement that matters near convergence); a loop
    whose loss keeps falling after its result has settled (the decision embedding, whose loss sharpens the soft maps
    long after their binarised decision is fixed) passes its own measure of change instead.
    """

    def __init__(self, window: int, min_delta: float, min_iterations: int):
        self.window = max(1, int(window))
        self.min_delta = float(min_delta)
        self.min_iterations = int(min_iterations)
        self.previous: float | None = None

    def due(self, iteration: int) -> bool:
        return iteration % self.window == 0

    def loss_change(self, window_mean: float) -> float | None:
        """Relative improvement of this window's mean loss on the previous window's (None for the first)."""
        previous, self.previous = self.previous, window_mean
        if previous is None:
            return None
        return (previous - window_mean) / max(abs(previous), 1e-12)

    def should_stop(self, iteration: int, change: float | None) -> bool:
        return change is not None and iteration >= self.min_iterations and change < self.min_delta


class Deadline:
    """A wall-clock budget: ``expired()`` once ``seconds`` have passed since construction (None: never)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = time.perf_counter()

    def expired(self) -> bool:
        return self.seconds is not None and time.perf_counter() - self.start >= self.seconds


# ------------------------------------------------------------------------------------------------ precision


def adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused implementation on CPU and CUDA: one kernel for all parameters instead of about ten small
    operations per parameter tensor (a SKIPnet step's optimiser time fell from 16 to 4.5 ms on a 288² tile;
    BENCHMARKS.md, "Speed and scale"). Same algorithm; the last bits of the iterates can differ from the unfused
    one. Elsewhere, or where a build lacks it, the default implementation."""
    params = list(params)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.Adam(params, lr=lr)


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions natively (CUDA with bf16; CPUs with AVX512-BF16 or AMX).

    Without native support bfloat16 is emulated and slower than float32, so ``precision: auto`` stays float32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where native, else ``fp32``; explicit choices are kept."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device):
    """The autocast context for a generator's forward pass at ``precision`` (``fp32``: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ------------------------------------------------------------------------------------------------ the loop


class Loop:
    """Drives one optimisation loop: sets the scheduled learning rate, runs ``step``, keeps the loss values on the
    device (read back only at record points and plateau checks, so a GPU is not synchronised every iteration),
    applies the stopping rules and turns Ctrl-C into a recorded stop.

    ``step(iteration)`` does one update and returns a 1-D tensor of loss values (the first is the one the plateau
    rule watches, unless ``monitor`` is given: then the rule calls it at every check for the change since the last
    check, None when it cannot tell yet). ``on_record(iteration, values, seconds)`` is called with host values about ``records`` times
    per loop and at the end; it is where callers keep their last good iterate and report progress.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, iterations: int, *, lr: float, schedule: str = "constant",
                 warmup: float = 0.0, final_lr: float = 0.0, stop=None, records: int = 200, monitor=None):
        self.optimizer = optimizer
        self.iterations = int(iterations)
        self.lr = lr
        self.schedule = schedule
        self.warmup = int(round(warmup * self.iterations))
        self.final_lr = final_lr
        self.stop = stop
        self.record_every = max(1, self.iterations // max(1, records))
        self.plateau = (PlateauRule(stop.window, stop.min_delta, stop.min_iterations)
                        if stop is not None and stop.rule == "plateau" else None)
        self.monitor = monitor

    def _set_lr(self, iteration: int) -> None:
        factor = lr_factor(self.schedule, iteration, self.iterations, self.warmup, self.final_lr)
        for group in self.optimizer.param_groups:
            # a group with its own "base_lr" (e.g. a learnt downsampler's kernel) follows the same schedule
            group["lr"] = group.get("base_lr", self.lr) * factor

    def run(self, step, on_record) -> StopDecision:
        deadline = Deadline(self.stop.max_seconds if self.stop is not None else None)
        values: Tensor | None = None
        t0 = time.perf_counter()
        done = 0
        try:
            for it in range(1, self.iterations + 1):
                self._set_lr(it)
                row = step(it)
                if values is None:
                    values = torch.zeros(self.iterations + 1, row.numel(), device=row.device)
                values[it] = row
                done = it
                last = it == self.iterations
                stop_reason = None
                if self.plateau is not None and self.plateau.due(it) and it >= self.plateau.window:
                    if self.monitor is not None:
                        change = self.monitor()
                    else:
                        change = self.plateau.loss_change(float(values[it - self.plateau.window + 1:it + 1, 0].mean()))
                    if self.plateau.should_stop(it, change):
                        stop_reason = "plateau"
                if stop_reason is None and deadline.expired():
                    stop_reason = "max_seconds"
                if it % self.record_every == 0 or last or stop_reason:
                    host = values[it].tolist()
                    if not all(math.isfinite(v) for v in host):
                        return StopDecision("non_finite", it, self.iterations)
                    on_record(it, host, time.perf_counter() - t0)
                if stop_reason:
                    return StopDecision(stop_reason, it, self.iterations)
        except KeyboardInterrupt:
            return StopDecision("interrupted", done, self.iterations)
        return StopDecision("completed", self.iterations, self.iterations)
