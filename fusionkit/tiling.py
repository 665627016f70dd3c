"""Tiled fusion: overlapping tiles of the output, each fused as its own run, blended with feathered seams.

Why tiles: the generator converges in fewer iterations on a tile than on a big image (measured: +1.2 dB at a 512²
output for the same iterations, docs/performance.md), and a run's memory is bounded by the tile size. Tiles are
independent, so on a CPU they run in parallel worker processes of one thread each: the small convolutions of a
tile scale poorly over threads (two threads make one run only about 1.3x faster), while two tiles side by side
make the tiled run about 2x faster. The focus measure runs once on the whole stack when that fits, so every tile
fuses with the same global decision; a warm-start fuser (``generator.warm_start``) runs once on the whole stack
too (:func:`fusionkit.engine.warm_start_guess` says why), and each tile starts from its crop of the first guess.
"""
from __future__ import annotations

import multiprocessing
import signal
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .planning import MemoryPlan, tile_grid
from .spec import PipelineSpec


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


@dataclass
class TileResult:
    """One fused tile, as plain arrays (it may come from a worker process)."""

    rgb: np.ndarray             # [1, C, sh, sw]
    maps: np.ndarray            # [N, 1, h, w]
    initial: np.ndarray
    history: list[dict]
    embedding_history: list[dict]
    stops: dict
    stopped: str | None
    interrupted: str | None
    downsampler: dict | None = None   # what an estimated downsampler learnt on this tile (engine.downsampler_outputs)


def fuse_tile(spec: PipelineSpec, catalog, x: Tensor, maps: Tensor | None, device: torch.device,
              progress=None, timings=None, first_guess: Tensor | None = None) -> TileResult:
    """One tile through the engine's region pipeline (``first_guess``: the tile's crop of the warm start's)."""
    from .engine import _fuse_region
    from .provenance import Timings

    r = _fuse_region(spec, catalog, x, maps, progress or (lambda e: None), device, timings or Timings(),
                     first_guess=None if first_guess is None else first_guess.to(device))
    return TileResult(r.rgb.cpu().numpy(), r.maps.cpu().numpy(), r.initial.cpu().numpy(), r.history,
                      r.embedding_history, r.stops, r.stopped, r.interrupted, r.downsampler)


def _worker_init() -> None:
    """A tile worker: one torch thread (the parallelism is across tiles), and Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _worker_fuse(spec_data: dict, x: np.ndarray, maps: np.ndarray | None,
                 first_guess: np.ndarray | None = None) -> TileResult:
    from .registry import default_catalog

    spec = PipelineSpec.model_validate(spec_data)
    return fuse_tile(spec, default_catalog(), torch.from_numpy(x), None if maps is None else torch.from_numpy(maps),
                     torch.device("cpu"), first_guess=None if first_guess is None else torch.from_numpy(first_guess))


def fuse_tiles(spec: PipelineSpec, catalog, x: Tensor, plan: MemoryPlan, progress, device: torch.device, timings,
               workers: int = 1, first_guess: Tensor | None = None):
    """Fuse ``x`` ``[N, C, h, w]`` tile by tile (``workers`` > 1: that many processes at once, CPU only) and blend.
    ``first_guess`` (``[1, Cw, sh, sw]``, the warm-start fuser's result for the whole image): each tile gets its crop.

    Returns ``(rgb, maps, initial, history, embedding_history, stops, stopped, interrupted, downsampler)``, the last
    what an estimated downsampler learnt on each tile (:func:`tile_downsamplers`). An interrupted
    tiled run keeps the finished tiles and fills the others with the two-step composite, so the image is complete
    and says what it is.
    """
    from .engine import ProgressEvent, focus_maps
    from .imaging import to_luma

    s = spec.scale
    n, c, h, w = x.shape
    grid = tile_grid(h, w, s, plan.tile, plan.overlap)
    global_maps = None
    if not plan.focus_measure_tiled:
        with timings.stage("focus_measure"):
            global_maps = focus_maps(spec, catalog, to_luma(x), progress)

    def tile_maps(k):
        y0, y1, x0, x1 = grid[k]
        return None if global_maps is None else global_maps[:, :, y0:y1, x0:x1]

    def tile_x(k):
        y0, y1, x0, x1 = grid[k]
        return x[:, :, y0:y1, x0:x1]

    def tile_guess(k):
        y0, y1, x0, x1 = grid[k]
        return None if first_guess is None else first_guess[:, :, y0 * s:y1 * s, x0 * s:x1 * s]

    blend = Blender(grid, n, c, h, w, s, plan.overlap)
    interrupted = None
    progress(ProgressEvent("tile", 0, len(grid)))
    with timings.stage("fusion"):
        if workers > 1 and device.type == "cpu" and len(grid) > 1:
            interrupted = _run_parallel(spec, grid, tile_x, tile_maps, blend, workers, progress, tile_guess)
        else:
            for k in range(len(grid)):
                try:
                    # the tile's own stages stay out of the run's timings: the enclosing "fusion" stage is the wall
                    # time of all tiles, and counting both would add them up twice
                    r = fuse_tile(spec, catalog, tile_x(k), tile_maps(k), device, progress,
                                  first_guess=tile_guess(k))
                except KeyboardInterrupt:
                    interrupted = f"interrupted in tile {k + 1} of {len(grid)} before its first good iterate"
                    break
                blend.add(k, r)
                progress(ProgressEvent("tile", k + 1, len(grid)))
                if r.interrupted:
                    interrupted = f"{r.interrupted} in tile {k + 1} of {len(grid)}"
                    break
    if not blend.done:
        raise KeyboardInterrupt
    missing = [k for k in range(len(grid)) if k not in blend.done]
    if missing and interrupted is None:   # a tile went missing without a stop: a fusionkit bug, never a silent fill
        raise RuntimeError(f"tiles {_ranges(missing)} of {len(grid)} were not fused and nothing stopped the run")
    if missing:   # the two-step composite, so the image is complete
        composite = spec.model_copy(update={"method": "composite"})
        for k in missing:
            blend.add(k, fuse_tile(composite, catalog, tile_x(k), tile_maps(k), device), fused=False)
        interrupted = (f"{interrupted}; tiles {_ranges(missing)} of {len(grid)} are the two-step composite")
    return blend.result() + (interrupted, blend.downsampler())


def tile_downsamplers(reported: dict[int, dict]) -> dict | None:
    """An estimated downsampler learns on each tile separately: the reports as ``{"tiles": [report per tile]}`` and
    the artifacts named ``tile_NN_NAME`` (None when no tile reports anything)."""
    if not reported:
        return None
    return {"report": {"tiles": [{"tile": k, **(d["report"] or {})} for k, d in sorted(reported.items())]},
            "artifacts": {f"tile_{k:02d}_{name}": a for k, d in sorted(reported.items())
                          for name, a in d["artifacts"].items()}}


def _ranges(ks: list[int]) -> str:
    """1-based tile numbers as ranges: ``3, 5-9``."""
    out, start = [], None
    for i, k in enumerate(ks):
        if start is None:
            start = k
        if i + 1 == len(ks) or ks[i + 1] != k + 1:
            out.append(f"{start + 1}" if start == k else f"{start + 1}-{k + 1}")
            start = None
    return ", ".join(out)


def _run_parallel(spec, grid, tile_x, tile_maps, blend: "Blender", workers, progress,
                  tile_guess=lambda k: None) -> str | None:
    """Tiles in ``workers`` spawned processes; on Ctrl-C the workers are stopped and the finished tiles kept.

    At most two tiles per worker are queued at a time, so the queued inputs stay small however many tiles the
    image has; each result is blended in as it arrives (in tile order)."""
    from collections import deque
    from itertools import islice

    from .engine import ProgressEvent

    data = spec.model_dump(mode="json")
    ctx = multiprocessing.get_context("spawn")      # fork after OpenMP has started can deadlock
    pool = ctx.Pool(min(workers, len(grid)), initializer=_worker_init)

    def submit(k):
        guess = tile_guess(k)
        return k, pool.apply_async(_worker_fuse, (data, tile_x(k).cpu().numpy(),
                                                  None if tile_maps(k) is None else tile_maps(k).cpu().numpy(),
                                                  None if guess is None else guess.cpu().numpy()))

    try:
        todo = iter(range(len(grid)))
        pending = deque(submit(k) for k in islice(todo, 2 * workers))
        while pending:
            k, job = pending.popleft()
            blend.add(k, job.get())
            progress(ProgressEvent("tile", len(blend.done), len(grid)))
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(submit(nxt))
        pool.close()
        return None
    except KeyboardInterrupt:
        return f"interrupted with {len(blend.done)} of {len(grid)} tiles fused"
    finally:
        pool.terminate()
        pool.join()


class Blender:
    """Accumulates tiles into the output as they come, with feathered weights, so a tiled run holds the output
    canvas and one tile at a time, never every tile's result."""

    def __init__(self, grid, n: int, c: int, h: int, w: int, s: int, overlap: int):
        cpu = torch.device("cpu")
        self.grid, self.h, self.w, self.s, self.overlap, self.cpu = grid, h, w, s, overlap, cpu
        self.canvas = torch.zeros(1, c, h * s, w * s)
        self.weight = torch.zeros(1, 1, h * s, w * s)
        self.maps = torch.zeros(n, 1, h, w)
        self.initial = torch.zeros(n, 1, h, w)
        self.lr_weight = torch.zeros(1, 1, h, w)
        self.history: list[dict] = []
        self.embedding_history: list[dict] = []
        self.stopped = None
        self.done: set[int] = set()
        self.downsamplers: dict[int, dict] = {}   # what an estimated downsampler learnt, per tile
        self.fused = 0
        self.last_stops: dict = {}

    def add(self, k: int, r: TileResult, fused: bool = True) -> None:
        y0, y1, x0, x1 = self.grid[k]
        h, w, s, ov, cpu = self.h, self.w, self.s, self.overlap, self.cpu
        w_lr = (feather(y1 - y0, y0 > 0, y1 < h, ov // s, cpu)[:, None]
                * feather(x1 - x0, x0 > 0, x1 < w, ov // s, cpu)[None, :])
        w_hr = (feather((y1 - y0) * s, y0 > 0, y1 < h, ov, cpu)[:, None]
                * feather((x1 - x0) * s, x0 > 0, x1 < w, ov, cpu)[None, :])
        self.canvas[:, :, y0 * s:y1 * s, x0 * s:x1 * s] += torch.from_numpy(r.rgb) * w_hr
        self.weight[:, :, y0 * s:y1 * s, x0 * s:x1 * s] += w_hr
        self.maps[:, :, y0:y1, x0:x1] += torch.from_numpy(r.maps) * w_lr
        self.initial[:, :, y0:y1, x0:x1] += torch.from_numpy(r.initial) * w_lr
        self.lr_weight[:, :, y0:y1, x0:x1] += w_lr
        self.history += [{"tile": k, **row} for row in r.history]
        self.embedding_history += [{"tile": k, **row} for row in r.embedding_history]
        self.stopped = self.stopped or r.stopped
        self.done.add(k)
        if r.downsampler is not None:
            self.downsamplers[k] = r.downsampler
        if fused and "fusion" in r.stops:
            self.fused += 1
        if k == len(self.grid) - 1 or not self.last_stops:
            self.last_stops = r.stops

    def result(self):
        stops = {**self.last_stops, "tiles": {"count": len(self.grid), "fused": self.fused}}
        # in place: the canvas is the biggest tensor of a tiled run
        return (self.canvas.div_(self.weight).clamp_(0, 1), self.maps.div_(self.lr_weight),
                self.initial.div_(self.lr_weight), self.history, self.embedding_history, stops, self.stopped)

    def downsampler(self) -> dict | None:
        return tile_downsamplers(self.downsamplers)
