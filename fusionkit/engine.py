"""Runs a resolved pipeline spec: focus measure -> decision embedding -> fusion loop (Algorithm 1) -> outputs.

Each stage is a plain function on tensors. Progress is reported through a callback (the CLI renders it with
rich); nothing here prints. The result is the last iterate: no stage looks at a ground truth.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .chunking import nbytes_per_slice, slice_chunks, weighted_sum
from .errors import FusionkitError, PluginError, RunError
from .imaging import rgb_to_ycbcr, to_luma, ycbcr_to_rgb
from .interfaces import FocusMeasure, Fuser, Generator, Loss, LossContext, Resampler, UnsupportedInput
from .io import Stack
from .optimisation import IterateAverage, Loop, StopDecision, adam, autocast, resolve_precision
from .planning import MemoryPlan, Planner, StackShape, tile_grid
from .tiling import feather, fuse_tiles
from .presets import embedding_iterations
from .resources import available_memory, cpu_threads
from .provenance import Timings
from .registry import Catalog
from .spec import ComponentRef, PipelineSpec


@dataclass
class ProgressEvent:
    """One progress report: ``stage`` is "focus", "embedding", "fusion" or "write"; ``loss`` when known."""

    stage: str
    iteration: int
    total: int
    loss: float | None = None


ProgressCallback = Callable[[ProgressEvent], None]
#: ``observe(stage, iteration, seconds, image)``: see :func:`fuse`
Observer = Callable[[str, int, float, Callable[[], np.ndarray]], None]


@dataclass
class FusionOutcome:
    """What the engine computed, before anything is written."""

    fused: np.ndarray                 # [sH, sW, C] float32 in [0, 1] (C as the inputs: 1 or 3)
    maps: np.ndarray                  # [N, h, w] float32 decision maps used for fusion
    initial_maps: np.ndarray          # [N, h, w] the focus measure's maps (before decision embedding)
    loss_history: list[dict] = field(default_factory=list)   # fusion stage, one dict per recorded iteration
    embedding_history: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    stopped_early: str | None = None  # reason, when the loss became non-finite (the last good iterate is kept)
    interrupted: str | None = None    # "interrupted at iteration k of K" after Ctrl-C/SIGTERM (last good iterate kept)
    stops: dict[str, dict] = field(default_factory=dict)  # per loop: {reason, iteration, planned}
    memory: dict = field(default_factory=dict)             # the memory plan (fusionkit.planning.MemoryPlan)
    threads: int | None = None                             # CPU threads the run used
    #: what an estimated downsampler learnt (``{"report": dict, "artifacts": {name: array}}``), None for a fixed one
    downsampler: dict | None = None
    #: ``method: fuser``: how the fuser's result became x s (:func:`fuser_at_scale`'s facts)
    fuser: dict | None = None
    #: ``generator.warm_start``: the fuser that made DFP's first guess, how, and its seconds
    warm_start: dict | None = None


def resolve_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RunError("the spec asks for device 'cuda' but PyTorch sees no CUDA GPU",
                           "use `device: auto` or `--set device=cpu`, or install a CUDA build of PyTorch")
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def build(catalog: Catalog, kind: str, ref: ComponentRef, *args):
    """Instantiate a component from a resolved reference (params already validated)."""
    info = catalog.get(kind, ref.name)
    try:
        return info.cls(*args, params=info.cls.Params(**ref.params))
    except FusionkitError:
        raise
    except Exception as exc:
        raise PluginError(f"{kind.replace('_', ' ')} {ref.name!r} ({info.dist} {info.version}) failed to build: "
                          f"{type(exc).__name__}: {exc}", "check its parameters, or report it to the plugin's "
                          "author") from exc


def _check_maps(maps: Tensor, n: int, shape: tuple[int, int], who: str) -> Tensor:
    """Validate a focus measure's output at the engine boundary."""
    expected = (n, 1, *shape)
    if not isinstance(maps, Tensor) or tuple(maps.shape) != expected:
        got = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise PluginError(f"focus measure {who!r} returned maps of shape {got}, expected {expected}",
                          "the focus measure is broken; report it to its author or choose another")
    maps = maps.float()
    if not torch.isfinite(maps).all() or (maps < 0).any():
        raise PluginError(f"focus measure {who!r} returned non-finite or negative maps",
                          "try other parameters for it, or another focus measure")
    total = maps.sum(0, keepdim=True)
    if (total <= 0).any():
        raise PluginError(f"focus measure {who!r} returned maps that sum to 0 at some pixels",
                          "try other parameters for it, or another focus measure")
    return maps / total


def embed_decision(spec: PipelineSpec, catalog: Catalog, luma: Tensor, maps: Tensor,
                   progress: ProgressCallback, history: list[dict], observe: Observer | None = None
                   ) -> tuple[Tensor, StopDecision]:
    """Algorithm 2: fit a generator to the handcrafted maps with the decision loss (Eq. 20), then binarise.

    N = 2: one output channel m̂, maps (m̂, 1 − m̂) as in the paper. N > 2: N channels normalised to sum 1.
    The loss is computed on the soft maps and the *last* iterate is binarised (the paper's Algorithm 2 binarises
    inside the loop, which would stop all gradients; the released code binarises at the end, as here). The loop
    shares the fusion loop's schedule shape and stopping rules (``decision_embedding.stop``).
    """
    de = spec.decision_embedding
    n, _, h, w = luma.shape
    out_ch = 1 if n == 2 else n
    device = luma.device
    gen: Generator = build(catalog, "generator", de.generator, 3 if de.input == "noise" else 1, out_ch)
    gen = gen.to(device)
    loss_fn: Loss = build(catalog, "loss", de.loss)
    if de.input == "noise":
        z = torch.rand(1, 3, h, w, device=device) * 0.01
    else:
        z = luma.mean(0, keepdim=True)
    opt = adam(gen.parameters(), de.lr, device)
    ctx = LossContext(output=maps, output_low=maps, inputs=luma, maps=maps, scale=1, stage="embedding")
    precision = resolve_precision(spec.precision, device)
    iterations = embedding_iterations(spec.iterations, de.iterations)

    def soft(out: Tensor) -> Tensor:
        """Generator output [1, out_ch, h, w] -> soft maps [N, 1, h, w] summing to 1."""
        out = out.float()
        if n == 2:
            return torch.cat([out, 1.0 - out], dim=0)
        s = out.permute(1, 0, 2, 3)
        return s / s.sum(0, keepdim=True).clamp_min(1e-8)

    def binarise(m_hat: Tensor) -> Tensor:
        if n == 2:
            first = (m_hat[0] > 0.5).float()
            return torch.stack([first, 1.0 - first])
        # one-hot by comparison with the slice index: no int64 [h, w, N] temporary (one_hot's) for big stacks
        k = torch.arange(n, device=m_hat.device).view(n, 1, 1, 1)
        return (k == m_hat.argmax(0, keepdim=True)).float()

    current: dict[str, Tensor] = {}

    def step(it: int) -> Tensor:
        opt.zero_grad(set_to_none=True)
        with autocast(precision, device):
            out = gen(z)
        m_hat = soft(out)
        ctx.output = ctx.output_low = m_hat
        loss = loss_fn(ctx)
        loss.backward()
        opt.step()
        current["m_hat"] = m_hat
        return loss.detach().reshape(1)

    def on_record(it: int, values: list[float], seconds: float) -> None:
        history.append({"iteration": it, "loss": values[0], "seconds": round(seconds, 3)})
        progress(ProgressEvent("embedding", it, iterations, values[0]))
        if observe is not None:
            m = current["m_hat"].detach()
            observe("embedding", it, seconds, lambda: binarise(m)[:, 0].cpu().numpy())

    decided: dict[str, Tensor] = {}

    def flipped() -> float | None:
        """Fraction of pixels whose binarised decision changed since the last check (the plateau rule's measure:
        the loss goes on falling long after the decision is fixed, as the soft maps sharpen)."""
        now = binarise(current["m_hat"].detach())
        before, decided["maps"] = decided.get("maps"), now
        return None if before is None else float((now != before).any(0).float().mean())

    loop = Loop(opt, iterations, lr=de.lr, schedule=spec.optimizer.schedule, warmup=spec.optimizer.warmup,
                final_lr=spec.optimizer.final_lr, stop=de.stop, records=100, monitor=flipped)
    decision = loop.run(step, on_record)
    if decision.reason == "non_finite":
        raise RunError("the decision-embedding loss became NaN or infinite",
                       "lower decision_embedding.lr, or disable it with `--set decision_embedding.enabled=false`")
    if decision.reason == "interrupted":
        raise KeyboardInterrupt
    with torch.no_grad(), autocast(precision, device):
        m_hat = soft(gen(z))
    return binarise(m_hat), decision


@dataclass
class _Region:
    """What the pipeline made of one region of the stack (the whole image, or one tile)."""

    rgb: Tensor                       # [1, C, sh, sw] the output image of the region
    maps: Tensor                      # [N, 1, h, w] the maps used
    initial: Tensor                   # [N, 1, h, w] the focus measure's maps
    history: list[dict]
    embedding_history: list[dict]
    stops: dict[str, dict]
    stopped: str | None = None
    interrupted: str | None = None
    downsampler: dict | None = None   # see FusionOutcome.downsampler


def fuse(spec: PipelineSpec, catalog: Catalog, stack: Stack, *, progress: ProgressCallback | None = None,
         device: torch.device | None = None, observe: Observer | None = None,
         plan: "MemoryPlan | None" = None) -> FusionOutcome:
    """Run every stage of the pipeline on an in-memory stack (nothing is read or written here).

    ``plan`` (from :mod:`fusionkit.planning`) says whether to fuse the whole image or tiles; without one the engine
    plans itself. ``observe(stage, iteration, seconds, image)`` (optional, for benchmarks) is called at every record
    point of the two loops with a function that returns the current result (the fused RGB/grey image
    ``[sH, sW, C]``, or the binarised maps ``[N, h, w]`` for the embedding); its time is not counted in the timings.
    """
    progress = progress or (lambda event: None)
    device = device or resolve_device(spec.device)
    threads = cpu_threads(spec.threads) if device.type == "cpu" else torch.get_num_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        outcome = _fuse(spec, catalog, stack, progress, device, observe, plan)
    finally:
        torch.set_num_threads(previous_threads)
    outcome.threads = threads
    return outcome


def _fuse(spec: PipelineSpec, catalog: Catalog, stack: Stack, progress: ProgressCallback, device: torch.device,
          observe: Observer | None, plan: "MemoryPlan | None") -> FusionOutcome:
    timings = Timings()
    x = torch.from_numpy(stack.images).permute(0, 3, 1, 2).contiguous().to(device)   # [N, C, h, w]
    n, c, h, w = x.shape
    if spec.method == "fuser":
        seed_everything(spec.seed, spec.deterministic)
        return _fuse_external(spec, catalog, x, timings, progress, device)
    warm = warm_start_fuser(spec, catalog)      # an unavailable fuser stops the run before any work
    if plan is None:
        plan = Planner(spec, catalog, device).plan(StackShape(n, h, w, c), available_memory(device))
    guess = warm_info = None
    if warm is not None:
        guess, warm_info = warm_start_guess(spec, catalog, warm, x, timings, progress)
    if plan.mode == "tiled":
        workers = spec.tiling.workers if spec.tiling.workers != "auto" else torch.get_num_threads()
        region = _Region(*fuse_tiles(spec, catalog, x, plan, progress, device, timings, workers, first_guess=guess))
    else:
        region = _fuse_region(spec, catalog, x, None, progress, device, timings, observe, first_guess=guess)
    del guess
    with timings.stage("chroma"):
        out = region.rgb[0].permute(1, 2, 0).float().cpu().numpy()
    return FusionOutcome(
        fused=out, maps=region.maps[:, 0].cpu().numpy(), initial_maps=region.initial[:, 0].cpu().numpy(),
        loss_history=region.history, embedding_history=region.embedding_history, timings=timings.as_dict(),
        device=str(device), stopped_early=region.stopped, interrupted=region.interrupted, stops=region.stops,
        memory=plan.as_dict(), downsampler=region.downsampler, warm_start=warm_info,
    )


def _fuse_region(spec: PipelineSpec, catalog: Catalog, x: Tensor, maps: Tensor | None, progress: ProgressCallback,
                 device: torch.device, timings: Timings, observe: Observer | None = None,
                 first_guess: Tensor | None = None) -> _Region:
    """Focus measure (unless ``maps`` are given) -> decision embedding -> fusion loop -> chroma, on ``x``.

    ``first_guess``: the warm-start fuser's ×s result for this region, in the work space (luma with colour ycbcr,
    see :func:`warm_start_guess`); None: the upsampled two-step composite is DFP's first guess."""
    seed_everything(spec.seed, spec.deterministic)
    s = spec.scale
    n, c, h, w = x.shape
    if spec.colour == "ycbcr" and c == 3:
        ycc = rgb_to_ycbcr(x)
        work, chroma = ycc[:, :1], ycc[:, 1:]
    else:
        work, chroma = x, None
    luma = to_luma(x)

    down: Resampler = build(catalog, "resampler", spec.downsampler)
    up: Resampler = build(catalog, "resampler", spec.upsampler)

    if maps is None:
        with timings.stage("focus_measure"):
            maps = focus_maps(spec, catalog, luma, progress)
    initial = maps

    emb_history: list[dict] = []
    stops: dict[str, dict] = {}
    if spec.decision_embedding.applies_to(n):
        with timings.stage("decision_embedding"):
            maps, decision = embed_decision(spec, catalog, luma, maps, progress, emb_history, observe)
        stops["decision_embedding"] = decision.as_dict()

    def finish(fused: Tensor) -> Tensor:
        """The fused work-space image (luma or all channels) -> the output image ``[1, C, sH, sW]``."""
        with torch.no_grad():
            if chroma is None:
                return fused.clamp(0, 1)
            cbcr = up.up(weighted_sum(maps, chroma), s)
            return ycbcr_to_rgb(torch.cat([fused, cbcr], dim=1))

    history: list[dict] = []
    stopped = interrupted = None
    with timings.stage("fusion"):
        with torch.no_grad():
            composite = weighted_sum(maps, work)                               # Σ m_i x_i at low resolution
        if spec.method == "composite":
            with torch.no_grad():
                fused = up.up(composite, s).clamp(0, 1)
            progress(ProgressEvent("fusion", 1, 1))
        else:
            fused, history, decision, refined = _optimise(spec, catalog, work, maps, composite, down, up,
                                                          progress, observe, finish, first_guess)
            stops["fusion"] = decision.as_dict()
            if refined is not None:
                stops["refine"] = refined.as_dict()
                if refined.reason == "interrupted":
                    interrupted = (f"interrupted in the pixel refinement at step {refined.iteration} of "
                                   f"{refined.planned}")
            if decision.reason == "non_finite":
                stopped = f"loss became non-finite at iteration {decision.iteration}"
            elif decision.reason == "interrupted":
                interrupted = f"interrupted at iteration {decision.iteration} of {decision.planned}"
    with timings.stage("chroma"):
        rgb = finish(fused)
    return _Region(rgb, maps, initial, history, emb_history, stops, stopped, interrupted, downsampler_outputs(down))


def downsampler_outputs(down: Resampler) -> dict | None:
    """What the downsampler reports after the fusion (its ``report()`` and ``artifacts()``), None when it reports
    nothing (every fixed resampler)."""
    try:
        report, artifacts = down.report(), down.artifacts()
    except Exception as exc:
        raise PluginError(f"resampler {down.name!r} failed to report what it estimated: {type(exc).__name__}: {exc}",
                          "report it to the plugin's author") from exc
    if report is None and not artifacts:
        return None
    return {"report": report, "artifacts": {k: np.asarray(v) for k, v in (artifacts or {}).items()}}


def focus_maps(spec: PipelineSpec, catalog: Catalog, luma: Tensor, progress: ProgressCallback) -> Tensor:
    """The focus measure's decision maps ``[N, 1, h, w]`` for a luma stack, checked at the engine boundary."""
    n, _, h, w = luma.shape
    fm: FocusMeasure = build(catalog, "focus_measure", spec.focus_measure)
    progress(ProgressEvent("focus", 0, 1))
    with torch.no_grad():
        maps = _check_maps(fm(luma), n, (h, w), spec.focus_measure.name)
    progress(ProgressEvent("focus", 1, 1))
    return maps


def _fuse_external(spec: PipelineSpec, catalog: Catalog, x: Tensor, timings: Timings,
                   progress: ProgressCallback, device: torch.device) -> FusionOutcome:
    """``method: fuser``: a complete fuser at the inputs' resolution, then the upsampler (a baseline; no maps)."""
    fuser: Fuser = build(catalog, "fuser", spec.fuser)
    reason = type(fuser).unavailable()
    if reason:
        raise RunError(f"the fuser {spec.fuser.name!r} cannot run here: {reason}",
                       "install what it needs, or choose another method (e.g. `method: composite`)")
    n, c, h, w = x.shape
    with timings.stage("fusion"):
        progress(ProgressEvent("fusion", 0, 1))
        up: Resampler = build(catalog, "resampler", spec.upsampler)
        fused, info = fuser_at_scale(fuser, spec.fuser.name, x, spec.scale, up, spec.upsampler.name,
                                     "the fuser", "fuser")
        progress(ProgressEvent("fusion", 1, 1))
    empty = np.zeros((0, h, w), np.float32)
    return FusionOutcome(fused=fused[0].permute(1, 2, 0).float().cpu().numpy(), maps=empty, initial_maps=empty,
                         timings=timings.as_dict(), device=str(device), fuser=info)


def fuser_at_scale(fuser: Fuser, who: str, x: Tensor, scale: int, up: Resampler, upsampler: str, role: str,
                   slot: str) -> tuple[Tensor, dict]:
    """A fuser's result at ×``scale``, ``[1, C, sH, sW]`` in [0, 1] on ``x``'s device, and how it was made.

    The fuser's :meth:`~fusionkit.interfaces.Fuser.fuse` gets the stack on the CPU. A result at the inputs'
    resolution is upsampled by ``up`` (``upsampler`` names it); one at ×``scale`` (a super-resolving fuser) is used
    as it is; any other shape, or non-finite values, is a :class:`PluginError` naming the fuser. ``role`` and
    ``slot`` say where the spec uses it, for messages ("the warm-start fuser", "generator.warm_start"). The facts:
    ``{"name", "super_resolved", "upsampled_by"}`` (``upsampled_by`` None when nothing was upsampled)."""
    n, c, h, w = x.shape
    s = scale
    try:
        with torch.no_grad():
            out = fuser.fuse(x.cpu(), s)
    except UnsupportedInput as exc:
        raise RunError(f"{role} {who!r} refuses these inputs ({n} images of {w}x{h}, {c} channel(s)): "
                       f"{exc.message}", f"{exc.hint + '; or ' if exc.hint else ''}choose another fuser for "
                       f"`{slot}` (see `fusionkit plugins list --kind fuser`)") from None
    except FusionkitError:
        raise
    except Exception as exc:
        raise PluginError(f"{role} {who!r} failed on {n} images of {w}x{h}: {type(exc).__name__}: {exc}",
                          f"choose another fuser for `{slot}`, or report it to the plugin's authors") from exc
    expected = [(1, c, h, w)] + ([(1, c, s * h, s * w)] if s > 1 else [])
    got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
    if got not in expected:
        want = f"{expected[0]} (the inputs' resolution, then upsampled)" + (
            f" or {expected[1]} (x{s}, super-resolved)" if s > 1 else "")
        raise PluginError(f"{role} {who!r} returned shape {got} for {n} inputs of shape {(c, h, w)}, expected "
                          f"{want}", "this is a bug in the plugin; report it to its authors, or choose another "
                          f"fuser for `{slot}`")
    with torch.no_grad():
        out = out.to(device=x.device, dtype=torch.float32)
        if not torch.isfinite(out).all():
            raise PluginError(f"{role} {who!r} returned non-finite values",
                              f"report it to the plugin's authors, or choose another fuser for `{slot}`")
        super_resolved = s > 1 and got == expected[-1]
        fused = (out if super_resolved else up.up(out, s)).clamp(0, 1)
    return fused, {"name": who, "super_resolved": super_resolved,
                   "upsampled_by": None if super_resolved or s == 1 else upsampler}


def warm_start_fuser(spec: PipelineSpec, catalog: Catalog) -> Fuser | None:
    """The ``generator.warm_start`` fuser, built and checked to be available (None: no warm start, or a method that
    does not optimise a generator). An unavailable one is a :class:`RunError` before any work."""
    ref = spec.generator.warm_start
    if ref is None or spec.method != "dfp":
        return None
    fuser: Fuser = build(catalog, "fuser", ref)
    reason = type(fuser).unavailable()
    if reason:
        raise RunError(f"the warm-start fuser {ref.name!r} (generator.warm_start) cannot run here: {reason}",
                       "install what it needs, or choose another fuser (`fusionkit plugins list --kind fuser`), or "
                       "remove generator.warm_start (--set generator.warm_start=null) to start from the two-step "
                       "composite")
    return fuser


def warm_start_guess(spec: PipelineSpec, catalog: Catalog, fuser: Fuser, x: Tensor, timings: Timings,
                     progress: ProgressCallback) -> tuple[Tensor, dict]:
    """DFP's first guess from the warm-start fuser: its ×s result for the whole stack ``x`` ``[N, C, h, w]``, in the
    engine's work space (the luma of its RGB result with ``colour: ycbcr``, else every channel), ``[1, Cw, sh, sw]``;
    and the manifest's facts (name, super-resolved or upsampled, seconds).

    The fuser runs once on the whole image, never per tile (tiles take their crop of it): a fuser is cheap beside
    DFP and gains nothing from tiles, its decision stays one over the whole image (no seams in the first guess),
    and it is loaded once instead of in every tile worker."""
    ref = spec.generator.warm_start
    up: Resampler = build(catalog, "resampler", spec.upsampler)
    seed_everything(spec.seed, spec.deterministic)
    progress(ProgressEvent("warm_start", 0, 1))
    t0 = time.perf_counter()
    with timings.stage("warm_start"):
        guess, info = fuser_at_scale(fuser, ref.name, x, spec.scale, up, spec.upsampler.name,
                                     "the warm-start fuser", "generator.warm_start")
        if spec.colour == "ycbcr" and x.shape[1] == 3:
            with torch.no_grad():
                guess = rgb_to_ycbcr(guess)[:, :1].clamp(0, 1)
    info["seconds"] = round(time.perf_counter() - t0, 4)
    progress(ProgressEvent("warm_start", 1, 1))
    return guess, info


def generator_input(spec: PipelineSpec, work: Tensor, up: Resampler, composite: Tensor | None = None,
                    first_guess: Tensor | None = None) -> Tensor:
    """The fixed input z: the mean of the upsampled inputs (released code), the first guess (``first_guess``, the
    warm-start fuser's ×s result, when given, else the upsampled two-step composite ``Σ m_i x_i``; ``input:
    composite_upsampled`` is the same), or scaled uniform noise (DIP)."""
    g = spec.generator
    n, c, h, w = work.shape
    if g.input in ("first_guess", "composite_upsampled") and first_guess is not None:
        return first_guess
    if g.input in ("first_guess", "composite_upsampled") and composite is not None:
        with torch.no_grad():
            return up.up(composite, spec.scale).clamp(0, 1)
    if g.input == "noise":
        return torch.rand(1, g.noise_channels, h * spec.scale, w * spec.scale, device=work.device) * g.noise_scale
    with torch.no_grad():
        chunks = slice_chunks(n, nbytes_per_slice(work, spec.scale))
        if len(chunks) == 1:
            return up.up(work, spec.scale).mean(0, keepdim=True).clamp(0, 1)
        # a big stack: never hold all N upsampled slices at once (N x s^2 x the stack), sum them chunk by chunk
        total = None
        for ch in chunks:
            part = up.up(work[ch], spec.scale).sum(0, keepdim=True)
            total = part if total is None else total + part
        return (total / n).clamp(0, 1)


def _crop_size(spec: PipelineSpec, height: int, width: int) -> tuple[int, int] | None:
    """The (height, width) of random-crop iterations at the output resolution, multiples of the scale; None when
    the crop covers the whole output (then every iteration sees the whole image)."""
    c = spec.crop
    if c is None or (c >= height and c >= width):
        return None
    s = spec.scale
    return max(s, min(c, height) // s * s), max(s, min(c, width) // s * s)


@torch.no_grad()
def _tiled_forward(forward: Callable[[Tensor], Tensor], z: Tensor, size: tuple[int, int], scale: int,
                   channels: int) -> Tensor:
    """``forward`` over the whole of ``z`` in overlapping windows of the training crop ``size`` (so batch norm
    sees statistics like those it was fitted with), blended with feathered seams."""
    _, _, height, width = z.shape
    ch, cw = size
    overlap = max(scale, min(ch, cw) // 8 // scale * scale)
    out = torch.zeros(1, channels, height, width, device=z.device)
    weight = torch.zeros(1, 1, height, width, device=z.device)
    for y0, y1, x0, x1 in tile_grid(height, width, 1, min(ch, cw) - overlap, overlap):
        y0, x0 = min(y0, max(0, height - ch)), min(x0, max(0, width - cw))
        y1, x1 = min(height, y0 + ch), min(width, x0 + cw)
        part = forward(z[:, :, y0:y1, x0:x1])
        wgt = (feather(y1 - y0, y0 > 0, y1 < height, overlap, z.device)[:, None]
               * feather(x1 - x0, x0 > 0, x1 < width, overlap, z.device)[None, :])
        out[:, :, y0:y1, x0:x1] += part * wgt
        weight[:, :, y0:y1, x0:x1] += wgt
    return out.div_(weight)


def _optimise(spec: PipelineSpec, catalog: Catalog, work: Tensor, maps: Tensor, composite: Tensor,
              down: Resampler, up: Resampler, progress: ProgressCallback, observe: Observer | None,
              finish: Callable[[Tensor], Tensor], first_guess: Tensor | None = None
              ) -> tuple[Tensor, list[dict], StopDecision, StopDecision | None]:
    """Algorithm 1: x = G(z) at ×s, x↓ = down(x), L = Σ w_k loss_k, Adam; returns the last good iterate (or the
    average of the iterates, ``output_average``), the loss history and why the loop stopped.

    With ``crop`` smaller than the output, each iteration fits a random window of the output (and the matching
    window of the inputs and maps) instead of all of it, so an iteration costs the same whatever the image size;
    the result is then the last good weights' output over the whole image, window by window
    (:func:`_tiled_forward`).

    ``first_guess`` (the warm-start fuser's ×s result in the work space) replaces the upsampled composite as z
    (``input: first_guess``) and as the starting output (``residual``). The pixel refinement starts from the
    generator's result, as without a warm start.
    """
    s, c = spec.scale, work.shape[1]
    device = work.device
    z = generator_input(spec, work, up, composite, first_guess)
    gen: Generator = build(catalog, "generator", spec.generator, z.shape[1], c).to(device)
    terms: list[tuple[str, float, Loss]] = [(t.name, t.weight, build(catalog, "loss", t)) for t in spec.losses
                                            if t.weight > 0]
    opt = adam(gen.parameters(), spec.optimizer.lr, device)
    iters = spec.iterations
    # an estimated downsampler (Resampler.trainable_parameters): its tensors join the optimiser as their own groups,
    # with their own base learning rate (the schedule scales it too), frozen for their first ``frozen_for``
    learnt = down.trainable_parameters(s, device)
    learnt_params = [p for g in learnt for p in g.params]
    thaw = [(round(g.frozen_for * iters), list(g.params)) for g in learnt]
    for g in learnt:
        opt.add_param_group({"params": list(g.params), "lr": g.lr, "base_lr": g.lr})
    precision = resolve_precision(spec.precision, device)
    base = None
    if spec.generator.residual:
        # Start exactly at the first guess: x = up(Σ m_i x_i) + G(z) - G_0(z) (or the warm-start fuser's result
        # instead of the upsampled composite), where G_0(z) is the untrained network's output (a constant). G then
        # only learns the correction, whatever its architecture.
        with torch.no_grad(), autocast(precision, device):
            start = first_guess if first_guess is not None else up.up(composite, s)
            base = start - gen(z).float()
    ctx = LossContext(output=z, output_low=z, inputs=work, maps=maps, scale=s)
    history: list[dict] = []
    names = ["total"] + [t[0] for t in terms] + (["downsampler_prior"] if learnt else [])
    average = IterateAverage(spec.output_average)
    weights = torch.tensor([w for _, w, _ in terms], device=device)
    crop = _crop_size(spec, z.shape[-2], z.shape[-1])
    positions = torch.Generator().manual_seed(spec.seed)       # crop positions: reproducible, on the host

    def forward(zz: Tensor, window: tuple[int, int] | None = None) -> Tensor:
        if spec.generator.input_jitter:
            zz = zz + spec.generator.input_jitter * torch.randn_like(zz)
        with autocast(precision, device):
            out = gen(zz)
        out = out.float()
        if base is None:
            return out
        if window is None:
            return base + out
        y, x = window
        return base[:, :, y:y + out.shape[-2], x:x + out.shape[-1]] + out

    def whole_output() -> Tensor:
        # (validation refuses generator.residual with crop iterations: base is None in the tiled case)
        return forward(z) if crop is None else _tiled_forward(forward, z, crop, s, c)

    def step(it: int) -> Tensor:
        opt.zero_grad(set_to_none=True)
        for start, params in thaw:
            for p in params:
                p.requires_grad_(it > start)
        if crop is None:
            out = forward(z)
            ctx.output = out
        else:
            ch, cw = crop
            y = int(torch.randint(0, (z.shape[-2] - ch) // s + 1, (1,), generator=positions)) * s
            x = int(torch.randint(0, (z.shape[-1] - cw) // s + 1, (1,), generator=positions)) * s
            out = forward(z[:, :, y:y + ch, x:x + cw], (y, x))
            ctx.output = out
            ctx.inputs = work[:, :, y // s:(y + ch) // s, x // s:(x + cw) // s]
            ctx.maps = maps[:, :, y // s:(y + ch) // s, x // s:(x + cw) // s]
        ctx.output_low = down.down(out, s)
        parts = torch.stack([fn(ctx) for _, _, fn in terms]) * weights
        if learnt:
            prior = down.prior_loss()
            parts = torch.cat([parts, (prior if prior is not None else parts.new_zeros(())).reshape(1)])
        total = parts.sum()
        total.backward()
        opt.step()
        if crop is None:
            average.update(out)
        return torch.cat([total.detach().reshape(1), parts.detach()])

    last_good: dict = {}

    def on_record(it: int, values: list[float], seconds: float) -> None:
        if crop is None:
            last_good["x"] = average.value()
        else:   # the image exists only window by window: keep the weights that make it
            last_good["state"] = {k: v.detach().clone() for k, v in gen.state_dict().items()}
        if learnt_params:
            last_good["learnt"] = [p.detach().clone() for p in learnt_params]
        history.append({"iteration": it, **dict(zip(names, values)), "seconds": round(seconds, 3),
                        "stage": "generator"})
        progress(ProgressEvent("fusion", it, iters, values[0]))
        if observe is not None:
            if crop is None:
                xx = last_good["x"]
                observe("fusion", it, seconds, lambda: finish(xx.clamp(0, 1))[0].permute(1, 2, 0).cpu().numpy())
            else:
                observe("fusion", it, seconds,
                        lambda: finish(whole_output().clamp(0, 1))[0].permute(1, 2, 0).cpu().numpy())

    loop = Loop(opt, iters, lr=spec.optimizer.lr, schedule=spec.optimizer.schedule, warmup=spec.optimizer.warmup,
                final_lr=spec.optimizer.final_lr, stop=spec.stop)
    decision = loop.run(step, on_record)
    ctx.inputs, ctx.maps = work, maps
    if not last_good:
        if decision.reason == "interrupted":
            raise KeyboardInterrupt
        if decision.reason == "non_finite":
            raise RunError(f"the fusion loss became non-finite at iteration {decision.iteration}, before any good "
                           "iterate", "lower optimizer.lr (e.g. --set optimizer.lr=1e-4) or check the loss weights")
    if "state" in last_good:
        gen.load_state_dict(last_good["state"])
    with torch.no_grad():   # the downsampler as at the last good iterate, fixed from here on (refinement included)
        for p, good in zip(learnt_params, last_good.get("learnt", [])):
            p.copy_(good)
        for p in learnt_params:
            p.requires_grad_(False)
    if "x" not in last_good:   # crop iterations, or iterations == 0 (the untrained generator's output)
        with torch.no_grad():
            last_good["x"] = whole_output()
    x = last_good["x"].clamp(0, 1)
    refined = None
    if spec.refine.iterations and decision.reason not in ("interrupted", "non_finite"):
        x, refined = _refine(spec, x, ctx, terms, weights, down, progress, observe, finish, history, names,
                             decision.iteration)
    return x, history, decision, refined


def _refine(spec: PipelineSpec, x: Tensor, ctx: LossContext, terms, weights: Tensor, down: Resampler,
            progress: ProgressCallback, observe: Observer | None, finish: Callable[[Tensor], Tensor],
            history: list[dict], names: list[str], offset: int) -> tuple[Tensor, StopDecision]:
    """Optimise the output's pixels directly on the fusion loss, starting from the generator's result.

    The generator fits an image's coarse structure within a few hundred iterations and its last details only
    slowly (the spectral bias of convolutional networks); the pixels themselves fit the remaining misfit to the
    inputs in a few hundred cheap steps (no network: a downsampling and the losses), while what the generator put
    into the frequencies the inputs do not constrain is kept, since the loss hardly reaches them.
    """
    s = spec.scale
    px = x.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([px], lr=spec.refine.lr)
    extra = None   # an estimated downsampler's prior: fixed here (its kernel is no longer trained), kept in the rows
    if "downsampler_prior" in names:
        with torch.no_grad():
            prior = down.prior_loss()
        extra = (prior if prior is not None else weights.new_zeros(())).detach().reshape(1).to(weights.device)
    total_its = spec.refine.iterations   # history rows continue after the generator's last step (``offset``)

    def step(it: int) -> Tensor:
        opt.zero_grad(set_to_none=True)
        ctx.output = px
        ctx.output_low = down.down(px, s)
        parts = torch.stack([fn(ctx) for _, _, fn in terms]) * weights
        if extra is not None:
            parts = torch.cat([parts, extra])
        total = parts.sum()
        total.backward()
        opt.step()
        with torch.no_grad():
            px.clamp_(0, 1)
        return torch.cat([total.detach().reshape(1), parts.detach()])

    good: dict[str, Tensor] = {}

    def on_record(it: int, values: list[float], seconds: float) -> None:
        good["x"] = px.detach().clone()
        history.append({"iteration": offset + it, **dict(zip(names, values)), "seconds": round(seconds, 3),
                        "stage": "pixels"})
        progress(ProgressEvent("refine", it, total_its, values[0]))
        if observe is not None:
            xx = good["x"]
            observe("refine", offset + it, seconds, lambda: finish(xx)[0].permute(1, 2, 0).cpu().numpy())

    decision = Loop(opt, total_its, lr=spec.refine.lr, schedule=spec.refine.schedule, stop=spec.refine.stop,
                    records=50).run(step, on_record)
    return good.get("x", x), decision
