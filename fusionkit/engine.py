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
    stopped_early: str | None = None  # reason, when the loop stopped before `iterations`


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
                   progress: ProgressCallback, history: list[dict]) -> Tensor:
    """Algorithm 2: fit a generator to the handcrafted maps with the decision loss (Eq. 20), then binarise.

    N = 2: one output channel m̂, maps (m̂, 1 − m̂) as in the paper. N > 2: N channels normalised to sum 1.
    The loss is computed on the soft maps and the *last* iterate is binarised (the paper's Algorithm 2 binarises
    inside the loop, which would stop all gradients; the released code binarises at the end, as here).
    """
    de = spec.decision_embedding
    n, _, h, w = luma.shape
    out_ch = 1 if n == 2 else n
    gen: Generator = build(catalog, "generator", de.generator, 3 if de.input == "noise" else 1, out_ch)
    gen = gen.to(luma.device)
    loss_fn: Loss = build(catalog, "loss", de.loss)
    if de.input == "noise":
        z = torch.rand(1, 3, h, w, device=luma.device) * 0.01
    else:
        z = luma.mean(0, keepdim=True)
    opt = torch.optim.Adam(gen.parameters(), lr=de.lr)
    ctx = LossContext(output=maps, output_low=maps, inputs=luma, maps=maps, scale=1)

    def soft(out: Tensor) -> Tensor:
        """Generator output [1, out_ch, h, w] -> soft maps [N, 1, h, w] summing to 1."""
        if n == 2:
            return torch.cat([out, 1.0 - out], dim=0)
        s = out.permute(1, 0, 2, 3)
        return s / s.sum(0, keepdim=True).clamp_min(1e-8)

    every = max(1, de.iterations // 100)
    for it in range(1, de.iterations + 1):
        opt.zero_grad(set_to_none=True)
        m_hat = soft(gen(z))
        ctx.output = ctx.output_low = m_hat
        loss = loss_fn(ctx)
        loss.backward()
        opt.step()
        if it % every == 0 or it == de.iterations:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RunError("the decision-embedding loss became NaN or infinite",
                               "lower decision_embedding.lr, or disable it with "
                               "`--set decision_embedding.enabled=false`")
            history.append({"iteration": it, "loss": value})
            progress(ProgressEvent("embedding", it, de.iterations, value))
    with torch.no_grad():
        m_hat = soft(gen(z))
    if n == 2:
        first = (m_hat[0] > 0.5).float()
        return torch.stack([first, 1.0 - first])
    # one-hot by comparison with the slice index: no int64 [h, w, N] temporary (one_hot's) for big stacks
    k = torch.arange(n, device=m_hat.device).view(n, 1, 1, 1)
    return (k == m_hat.argmax(0, keepdim=True)).float()


def fuse(spec: PipelineSpec, catalog: Catalog, stack: Stack, *, progress: ProgressCallback | None = None,
         device: torch.device | None = None) -> FusionOutcome:
    """Run every stage of the pipeline on an in-memory stack (nothing is read or written here)."""
    progress = progress or (lambda event: None)
    device = device or resolve_device(spec.device)
    timings = Timings()
    seed_everything(spec.seed, spec.deterministic)
    s = spec.scale
    x = torch.from_numpy(stack.images).permute(0, 3, 1, 2).contiguous().to(device)   # [N, C, h, w]
    n, c, h, w = x.shape
    if spec.method == "fuser":
        return _fuse_external(spec, catalog, x, timings, progress, device)
    check_stack_memory(n, c, h, w, device)
    if spec.colour == "ycbcr" and c == 3:
        ycc = rgb_to_ycbcr(x)
        work, chroma = ycc[:, :1], ycc[:, 1:]
    else:
        work, chroma = x, None
    luma = to_luma(x)

    down: Resampler = build(catalog, "resampler", spec.downsampler)
    up: Resampler = build(catalog, "resampler", spec.upsampler)

    with timings.stage("focus_measure"):
        fm: FocusMeasure = build(catalog, "focus_measure", spec.focus_measure)
        progress(ProgressEvent("focus", 0, 1))
        with torch.no_grad():
            maps = _check_maps(fm(luma), n, (h, w), spec.focus_measure.name)
        progress(ProgressEvent("focus", 1, 1))
    initial = maps

    emb_history: list[dict] = []
    if spec.decision_embedding.applies_to(n):
        with timings.stage("decision_embedding"):
            maps = embed_decision(spec, catalog, luma, maps, progress, emb_history)

    history: list[dict] = []
    stopped = None
    with timings.stage("fusion"):
        with torch.no_grad():
            composite = weighted_sum(maps, work)                               # Σ m_i x_i at low resolution
        if spec.method == "composite":
            with torch.no_grad():
                fused = up.up(composite, s).clamp(0, 1)
            progress(ProgressEvent("fusion", 1, 1))
        else:
            fused, history, stopped = _optimise(spec, catalog, work, maps, composite, down, up, progress)

    with timings.stage("chroma"):
        with torch.no_grad():
            if chroma is not None:
                cbcr = up.up(weighted_sum(maps, chroma), s)
                rgb = ycbcr_to_rgb(torch.cat([fused, cbcr], dim=1))
            else:
                rgb = fused.clamp(0, 1)
    out = rgb[0].permute(1, 2, 0).float().cpu().numpy()
    return FusionOutcome(
        fused=out, maps=maps[:, 0].cpu().numpy(), initial_maps=initial[:, 0].cpu().numpy(),
        loss_history=history, embedding_history=emb_history, timings=timings.as_dict(), device=str(device),
        stopped_early=stopped,
    )


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


#: float32 copies of one [1, h, w] slice the engine keeps or makes per slice, besides the inputs' own channels:
#: YCbCr (3), luma (1), the measure's and the final maps (2), the measure's strengths (1), and the decision
#: embedding's per-iteration N-channel output, soft maps, loss terms and gradients (about 6).
_PER_SLICE_COPIES = 13


def available_memory(device: torch.device) -> int | None:
    """Free bytes on ``device`` (CUDA: the driver's free memory; CPU: Linux MemAvailable), or None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def stack_memory(n: int, c: int, h: int, w: int) -> int:
    """Bytes the stages hold that grow with N (the generator's activations do not, and are not counted)."""
    return (c + _PER_SLICE_COPIES) * n * h * w * 4


def check_stack_memory(n: int, c: int, h: int, w: int, device: torch.device) -> None:
    """Fail before any work, with a fix, when the N-dependent part of a run cannot fit in free memory (instead
    of an out-of-memory crash minutes later). Temporaries are chunked (fusionkit.chunking), so this part is
    linear in N with a per-slice cost of about ``(C + 13) * h * w * 4`` bytes."""
    need, free = stack_memory(n, c, h, w), available_memory(device)
    if free is None or need <= free:
        return
    per = stack_memory(1, c, h, w)
    fit = max(2, free // per)
    raise RunError(
        f"a stack of {n} slices of {w}x{h} needs about {need / 2**30:.1f} GiB of {device.type} memory for its "
        f"inputs, maps and per-slice temporaries, but only {free / 2**30:.1f} GiB is free",
        f"fuse at most about {fit} slices (e.g. keep one slice in every {-(-n // fit)} of the focal stack), crop "
        "the images into tiles, or run on a device with more memory")


def generator_input(spec: PipelineSpec, work: Tensor, up: Resampler) -> Tensor:
    """The fixed input z: the mean of the upsampled inputs (released code), or scaled uniform noise (DIP)."""
    g = spec.generator
    n, c, h, w = work.shape
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
              down: Resampler, up: Resampler, progress: ProgressCallback) -> tuple[Tensor, list[dict], str | None]:
    """Algorithm 1: x = G(z) at ×s, x↓ = down(x), L = Σ w_k loss_k, Adam; returns the last iterate."""
    s, c = spec.scale, work.shape[1]
    z = generator_input(spec, work, up)
    gen: Generator = build(catalog, "generator", spec.generator, z.shape[1], c).to(work.device)
    terms: list[tuple[str, float, Loss]] = [(t.name, t.weight, build(catalog, "loss", t)) for t in spec.losses
                                            if t.weight > 0]
    opt = torch.optim.Adam(gen.parameters(), lr=spec.optimizer.lr)
    base = None
    if spec.generator.residual:
        # Start exactly at the upsampled composite: x = up(Σ m_i x_i) + G(z) - G_0(z), where G_0(z) is the
        # untrained network's output (a constant). G then only learns the correction, whatever its architecture.
        with torch.no_grad():
            base = up.up(composite, s) - gen(z)
    ctx = LossContext(output=z, output_low=z, inputs=work, maps=maps, scale=s)
    iters = spec.iterations
    record_every = max(1, iters // 200)
    # Loss values stay on the device; they are read back only every `record_every` iterations.
    values = torch.zeros(iters + 1, len(terms) + 1, device=work.device)
    history: list[dict] = []
    names = ["total"] + [t[0] for t in terms]

    def forward() -> Tensor:
        zz = z if spec.generator.input_jitter == 0 else z + spec.generator.input_jitter * torch.randn_like(z)
        out = gen(zz)
        return base + out if base is not None else out

    last_good = None
    stopped = None
    t0 = time.perf_counter()
    for it in range(1, iters + 1):
        opt.zero_grad(set_to_none=True)
        out = forward()
        ctx.output = out
        ctx.output_low = down.down(out, s)
        parts = torch.stack([w * fn(ctx) for _, w, fn in terms])
        total = parts.sum()
        total.backward()
        opt.step()
        with torch.no_grad():
            values[it, 0] = total.detach()
            values[it, 1:] = parts.detach()
        if it % record_every == 0 or it == iters:
            row = values[it].tolist()
            if not all(math.isfinite(v) for v in row):
                stopped = f"loss became non-finite at iteration {it}"
                break
            last_good = out.detach()
            history.append({"iteration": it, **dict(zip(names, row)),
                            "seconds": round(time.perf_counter() - t0, 3)})
            progress(ProgressEvent("fusion", it, iters, row[0]))
    if stopped and last_good is None:
        raise RunError(f"the fusion {stopped}, before any good iterate",
                       "lower optimizer.lr (e.g. --set optimizer.lr=1e-4) or check the loss weights")
    if last_good is None:  # iterations == 0: the untrained generator's output
        with torch.no_grad():
            last_good = forward()
    return last_good.clamp(0, 1), history, stopped
