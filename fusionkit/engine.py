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
from .interfaces import FocusMeasure, Fuser, Generator, Loss, LossContext, Resampler
from .io import Stack
from .optimisation import IterateAverage, Loop, StopDecision, autocast, resolve_precision
from .planning import MemoryPlan, Planner, StackShape, tile_grid
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
    opt = torch.optim.Adam(gen.parameters(), lr=de.lr)
    ctx = LossContext(output=maps, output_low=maps, inputs=luma, maps=maps, scale=1)
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

    loop = Loop(opt, iterations, lr=de.lr, schedule=spec.optimizer.schedule, warmup=spec.optimizer.warmup,
                final_lr=spec.optimizer.final_lr, stop=de.stop, records=100)
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
    if plan is None:
        plan = Planner(spec, catalog, device).plan(StackShape(n, h, w, c), available_memory(device))
    if plan.mode == "tiled":
        region = _fuse_tiles(spec, catalog, x, plan, progress, device, timings)
    else:
        region = _fuse_region(spec, catalog, x, None, progress, device, timings, observe)
    with timings.stage("chroma"):
        out = region.rgb[0].permute(1, 2, 0).float().cpu().numpy()
    return FusionOutcome(
        fused=out, maps=region.maps[:, 0].cpu().numpy(), initial_maps=region.initial[:, 0].cpu().numpy(),
        loss_history=region.history, embedding_history=region.embedding_history, timings=timings.as_dict(),
        device=str(device), stopped_early=region.stopped, interrupted=region.interrupted, stops=region.stops,
        memory=plan.as_dict(),
    )


def _fuse_region(spec: PipelineSpec, catalog: Catalog, x: Tensor, maps: Tensor | None, progress: ProgressCallback,
                 device: torch.device, timings: Timings, observe: Observer | None = None) -> _Region:
    """Focus measure (unless ``maps`` are given) -> decision embedding -> fusion loop -> chroma, on ``x``."""
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
            fused, history, decision = _optimise(spec, catalog, work, maps, composite, down, up, progress,
                                                 observe, finish)
            stops["fusion"] = decision.as_dict()
            if decision.reason == "non_finite":
                stopped = f"loss became non-finite at iteration {decision.iteration}"
            elif decision.reason == "interrupted":
                interrupted = f"interrupted at iteration {decision.iteration} of {decision.planned}"
    with timings.stage("chroma"):
        rgb = finish(fused)
    return _Region(rgb, maps, initial, history, emb_history, stops, stopped, interrupted)


def focus_maps(spec: PipelineSpec, catalog: Catalog, luma: Tensor, progress: ProgressCallback) -> Tensor:
    """The focus measure's decision maps ``[N, 1, h, w]`` for a luma stack, checked at the engine boundary."""
    n, _, h, w = luma.shape
    fm: FocusMeasure = build(catalog, "focus_measure", spec.focus_measure)
    progress(ProgressEvent("focus", 0, 1))
    with torch.no_grad():
        maps = _check_maps(fm(luma), n, (h, w), spec.focus_measure.name)
    progress(ProgressEvent("focus", 1, 1))
    return maps


def feather(size: int, low_edge: bool, high_edge: bool, ramp: int, device: torch.device) -> Tensor:
    """1-D blending weights of a tile side: a linear ramp over ``ramp`` pixels at each edge shared with a
    neighbour (never exactly 0, so every pixel keeps some weight), 1 elsewhere."""
    i = torch.arange(size, device=device, dtype=torch.float32)
    wgt = torch.ones(size, device=device)
    if ramp > 0:
        if low_edge:
            wgt = torch.minimum(wgt, (i + 0.5) / ramp)
        if high_edge:
            wgt = torch.minimum(wgt, (size - i - 0.5) / ramp)
    return wgt


def _fuse_tiles(spec: PipelineSpec, catalog: Catalog, x: Tensor, plan: "MemoryPlan", progress: ProgressCallback,
                device: torch.device, timings: Timings) -> _Region:
    """Fuse overlapping tiles one at a time and blend them with feathered seams (``tiling``; docs/performance.md).

    The focus measure runs once on the whole stack when that fits (``plan.focus_measure_tiled`` false), so every
    tile fuses with the same global decision; otherwise per tile. Each tile is an independent run with the same
    seed. The blend happens in the output image; the maps are blended the same way at the inputs' resolution.
    An interrupted tiled run keeps the finished tiles and fills the others with the two-step composite.
    """
    s = spec.scale
    n, c, h, w = x.shape
    grid = tile_grid(h, w, s, plan.tile, plan.overlap)
    global_maps = None
    if not plan.focus_measure_tiled:
        with timings.stage("focus_measure"):
            global_maps = focus_maps(spec, catalog, to_luma(x), progress)
    canvas = torch.zeros(1, c, h * s, w * s)
    weight = torch.zeros(1, 1, h * s, w * s)
    maps_acc = torch.zeros(n, 1, h, w)
    initial_acc = torch.zeros(n, 1, h, w)
    lr_weight = torch.zeros(1, 1, h, w)
    region = None
    history: list[dict] = []
    emb_history: list[dict] = []
    stops: dict[str, dict] = {}
    interrupted = stopped = None
    done = 0
    for k, (y0, y1, x0, x1) in enumerate(grid):
        progress(ProgressEvent("tile", k, len(grid)))
        if interrupted is None:
            sub_maps = None if global_maps is None else global_maps[:, :, y0:y1, x0:x1]
            region = _fuse_region(spec, catalog, x[:, :, y0:y1, x0:x1], sub_maps, progress, device, timings)
            history += [{"tile": k, **r} for r in region.history]
            emb_history += [{"tile": k, **r} for r in region.embedding_history]
            stops = region.stops    # the last tile's decisions, with the tile count below
            stopped = stopped or region.stopped
            if region.interrupted:
                interrupted = (f"{region.interrupted} in tile {k + 1} of {len(grid)}; tiles {k + 2}-{len(grid)} "
                               "are the two-step composite" if k + 1 < len(grid) else region.interrupted)
            done += 1
        else:   # after an interruption: the two-step composite, so the image is complete and says what it is
            composite_spec = spec.model_copy(update={"method": "composite"})
            sub_maps = None if global_maps is None else global_maps[:, :, y0:y1, x0:x1]
            region = _fuse_region(composite_spec, catalog, x[:, :, y0:y1, x0:x1], sub_maps, progress, device,
                                  timings)
        wy = feather(y1 - y0, y0 > 0, y1 < h, plan.overlap // s, device)
        wx = feather(x1 - x0, x0 > 0, x1 < w, plan.overlap // s, device)
        wy_hr = feather((y1 - y0) * s, y0 > 0, y1 < h, plan.overlap, device)
        wx_hr = feather((x1 - x0) * s, x0 > 0, x1 < w, plan.overlap, device)
        w_hr = (wy_hr[:, None] * wx_hr[None, :]).cpu()
        w_lr = (wy[:, None] * wx[None, :]).cpu()
        canvas[:, :, y0 * s:y1 * s, x0 * s:x1 * s] += region.rgb.cpu() * w_hr
        weight[:, :, y0 * s:y1 * s, x0 * s:x1 * s] += w_hr
        maps_acc[:, :, y0:y1, x0:x1] += region.maps.cpu() * w_lr
        initial_acc[:, :, y0:y1, x0:x1] += region.initial.cpu() * w_lr
        lr_weight[:, :, y0:y1, x0:x1] += w_lr
        del region
    progress(ProgressEvent("tile", len(grid), len(grid)))
    stops = {**stops, "tiles": {"count": len(grid), "fused": done}}
    return _Region((canvas / weight).clamp(0, 1), maps_acc / lr_weight, initial_acc / lr_weight, history,
                   emb_history, stops, stopped, interrupted)


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
        with torch.no_grad():
            low = fuser(x.cpu()).to(device=device, dtype=torch.float32)
            if tuple(low.shape) != (1, c, h, w):
                raise PluginError(f"the fuser {spec.fuser.name!r} returned shape {tuple(low.shape)}, "
                                  f"expected {(1, c, h, w)}", "this is a bug in the plugin; report it to its authors")
            up: Resampler = build(catalog, "resampler", spec.upsampler)
            fused = up.up(low, spec.scale).clamp(0, 1)
        progress(ProgressEvent("fusion", 1, 1))
    empty = np.zeros((0, h, w), np.float32)
    return FusionOutcome(fused=fused[0].permute(1, 2, 0).float().cpu().numpy(), maps=empty, initial_maps=empty,
                         timings=timings.as_dict(), device=str(device))


def generator_input(spec: PipelineSpec, work: Tensor, up: Resampler, composite: Tensor | None = None) -> Tensor:
    """The fixed input z: the mean of the upsampled inputs (released code), the upsampled two-step composite
    ``Σ m_i x_i``, or scaled uniform noise (DIP)."""
    g = spec.generator
    n, c, h, w = work.shape
    if g.input == "composite_upsampled" and composite is not None:
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


def _optimise(spec: PipelineSpec, catalog: Catalog, work: Tensor, maps: Tensor, composite: Tensor,
              down: Resampler, up: Resampler, progress: ProgressCallback, observe: Observer | None,
              finish: Callable[[Tensor], Tensor]) -> tuple[Tensor, list[dict], StopDecision]:
    """Algorithm 1: x = G(z) at ×s, x↓ = down(x), L = Σ w_k loss_k, Adam; returns the last good iterate (or the
    average of the iterates, ``output_average``), the loss history and why the loop stopped."""
    s, c = spec.scale, work.shape[1]
    device = work.device
    z = generator_input(spec, work, up, composite)
    gen: Generator = build(catalog, "generator", spec.generator, z.shape[1], c).to(device)
    terms: list[tuple[str, float, Loss]] = [(t.name, t.weight, build(catalog, "loss", t)) for t in spec.losses
                                            if t.weight > 0]
    opt = torch.optim.Adam(gen.parameters(), lr=spec.optimizer.lr)
    precision = resolve_precision(spec.precision, device)
    base = None
    if spec.generator.residual:
        # Start exactly at the upsampled composite: x = up(Σ m_i x_i) + G(z) - G_0(z), where G_0(z) is the
        # untrained network's output (a constant). G then only learns the correction, whatever its architecture.
        with torch.no_grad(), autocast(precision, device):
            base = up.up(composite, s) - gen(z).float()
    ctx = LossContext(output=z, output_low=z, inputs=work, maps=maps, scale=s)
    iters = spec.iterations
    history: list[dict] = []
    names = ["total"] + [t[0] for t in terms]
    average = IterateAverage(spec.output_average)
    weights = torch.tensor([w for _, w, _ in terms], device=device)

    def forward() -> Tensor:
        zz = z if spec.generator.input_jitter == 0 else z + spec.generator.input_jitter * torch.randn_like(z)
        with autocast(precision, device):
            out = gen(zz)
        out = out.float()
        return base + out if base is not None else out

    def step(it: int) -> Tensor:
        opt.zero_grad(set_to_none=True)
        out = forward()
        ctx.output = out
        ctx.output_low = down.down(out, s)
        parts = torch.stack([fn(ctx) for _, _, fn in terms]) * weights
        total = parts.sum()
        total.backward()
        opt.step()
        average.update(out)
        return torch.cat([total.detach().reshape(1), parts.detach()])

    last_good: dict[str, Tensor] = {}

    def on_record(it: int, values: list[float], seconds: float) -> None:
        last_good["x"] = average.value()
        history.append({"iteration": it, **dict(zip(names, values)), "seconds": round(seconds, 3)})
        progress(ProgressEvent("fusion", it, iters, values[0]))
        if observe is not None:
            x = last_good["x"]
            observe("fusion", it, seconds, lambda: finish(x.clamp(0, 1))[0].permute(1, 2, 0).cpu().numpy())

    loop = Loop(opt, iters, lr=spec.optimizer.lr, schedule=spec.optimizer.schedule, warmup=spec.optimizer.warmup,
                final_lr=spec.optimizer.final_lr, stop=spec.stop)
    decision = loop.run(step, on_record)
    if "x" not in last_good:
        if decision.reason == "interrupted":
            raise KeyboardInterrupt
        if decision.reason == "non_finite":
            raise RunError(f"the fusion loss became non-finite at iteration {decision.iteration}, before any good "
                           "iterate", "lower optimizer.lr (e.g. --set optimizer.lr=1e-4) or check the loss weights")
        with torch.no_grad():  # iterations == 0: the untrained generator's output
            last_good["x"] = forward()
    x = last_good["x"].clamp(0, 1)
    if spec.refine_iterations and decision.reason not in ("interrupted", "non_finite"):
        x = _refine(spec, x, ctx, terms, weights, down, history)
    return x, history, decision


def _refine(spec: PipelineSpec, x: Tensor, ctx: LossContext, terms, weights: Tensor, down: Resampler,
            history: list[dict]) -> Tensor:
    """Optimise the output's pixels directly on the fusion loss, starting from the generator's result."""
    s = spec.scale
    px = x.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([px], lr=spec.refine_lr)
    best = px.detach().clone()
    t0 = time.perf_counter()
    for it in range(1, spec.refine_iterations + 1):
        opt.zero_grad(set_to_none=True)
        ctx.output = px
        ctx.output_low = down.down(px, s)
        parts = torch.stack([fn(ctx) for _, _, fn in terms]) * weights
        total = parts.sum()
        total.backward()
        opt.step()
        with torch.no_grad():
            px.clamp_(0, 1)
    return px.detach()
