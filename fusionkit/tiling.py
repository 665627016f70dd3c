"""Tiled fusion: overlapping tiles of the output, each fused as its own run, blended with feathered seams.

Why tiles: the generator converges in fewer iterations on a tile than on a big image (measured: +1.2 dB at a 512²
output for the same iterations, docs/performance.md), and a run's memory is bounded by the tile size. Tiles are
independent, so on a CPU they run in parallel worker processes of one thread each: the small convolutions of a
tile scale poorly over threads (two threads make one run only about 1.3x faster), while two tiles side by side
make the tiled run about 2x faster. The focus measure runs once on the whole stack when that fits, so every tile
fuses with the same global decision.
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
              progress=None, timings=None) -> TileResult:
    """One tile through the engine's region pipeline."""
    from .engine import _fuse_region
    from .provenance import Timings

    r = _fuse_region(spec, catalog, x, maps, progress or (lambda e: None), device, timings or Timings())
    return TileResult(r.rgb.cpu().numpy(), r.maps.cpu().numpy(), r.initial.cpu().numpy(), r.history,
                      r.embedding_history, r.stops, r.stopped, r.interrupted, r.downsampler)


def _worker_init() -> None:
    """A tile worker: one torch thread (the parallelism is across tiles), and Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _worker_fuse(spec_data: dict, x: np.ndarray, maps: np.ndarray | None) -> TileResult:
    from .registry import default_catalog

    spec = PipelineSpec.model_validate(spec_data)
    return fuse_tile(spec, default_catalog(), torch.from_numpy(x), None if maps is None else torch.from_numpy(maps),
                     torch.device("cpu"))


def fuse_tiles(spec: PipelineSpec, catalog, x: Tensor, plan: MemoryPlan, progress, device: torch.device, timings,
               workers: int = 1):
    """Fuse ``x`` ``[N, C, h, w]`` tile by tile (``workers`` > 1: that many processes at once, CPU only) and blend.

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

    results: dict[int, TileResult] = {}
    interrupted = None
    progress(ProgressEvent("tile", 0, len(grid)))
    with timings.stage("fusion"):
        if workers > 1 and device.type == "cpu" and len(grid) > 1:
            interrupted = _run_parallel(spec, grid, tile_x, tile_maps, results, workers, progress)
        else:
            for k in range(len(grid)):
                try:
                    results[k] = fuse_tile(spec, catalog, tile_x(k), tile_maps(k), device, progress, timings)
                except KeyboardInterrupt:
                    interrupted = f"interrupted in tile {k + 1} of {len(grid)} before its first good iterate"
                    break
                progress(ProgressEvent("tile", k + 1, len(grid)))
                if results[k].interrupted:
                    interrupted = f"{results[k].interrupted} in tile {k + 1} of {len(grid)}"
                    break
    if not results:
        raise KeyboardInterrupt
    missing = [k for k in range(len(grid)) if k not in results]
    if missing:   # the two-step composite, so the image is complete
        composite = spec.model_copy(update={"method": "composite"})
        for k in missing:
            results[k] = fuse_tile(composite, catalog, tile_x(k), tile_maps(k), device)
        interrupted = (f"{interrupted}; tiles {', '.join(str(k + 1) for k in missing)} of {len(grid)} are the "
                       "two-step composite")
    return _blend(grid, results, n, c, h, w, s, plan.overlap) + (interrupted, tile_downsamplers(results))


def tile_downsamplers(results: dict[int, TileResult]) -> dict | None:
    """An estimated downsampler learns on each tile separately: the reports as ``{"tiles": [report per tile]}`` and
    the artifacts named ``tile_NN_NAME`` (None when no tile reports anything)."""
    reported = {k: r.downsampler for k, r in sorted(results.items()) if r.downsampler is not None}
    if not reported:
        return None
    return {"report": {"tiles": [{"tile": k, **(d["report"] or {})} for k, d in reported.items()]},
            "artifacts": {f"tile_{k:02d}_{name}": a for k, d in reported.items() for name, a in d["artifacts"].items()}}


def _run_parallel(spec, grid, tile_x, tile_maps, results, workers, progress) -> str | None:
    """Tiles in ``workers`` spawned processes; on Ctrl-C the workers are stopped and the finished tiles kept."""
    from .engine import ProgressEvent

    data = spec.model_dump(mode="json")
    ctx = multiprocessing.get_context("spawn")      # fork after OpenMP has started can deadlock
    pool = ctx.Pool(min(workers, len(grid)), initializer=_worker_init)
    try:
        pending = {k: pool.apply_async(_worker_fuse, (data, tile_x(k).cpu().numpy(),
                                                      None if tile_maps(k) is None else tile_maps(k).cpu().numpy()))
                   for k in range(len(grid))}
        for k, job in pending.items():
            results[k] = job.get()
            progress(ProgressEvent("tile", len(results), len(grid)))
        pool.close()
        return None
    except KeyboardInterrupt:
        return f"interrupted with {len(results)} of {len(grid)} tiles fused"
    finally:
        pool.terminate()
        pool.join()


def _blend(grid, results: dict[int, TileResult], n, c, h, w, s, overlap):
    cpu = torch.device("cpu")
    canvas = torch.zeros(1, c, h * s, w * s)
    weight = torch.zeros(1, 1, h * s, w * s)
    maps_acc = torch.zeros(n, 1, h, w)
    initial_acc = torch.zeros(n, 1, h, w)
    lr_weight = torch.zeros(1, 1, h, w)
    history: list[dict] = []
    emb_history: list[dict] = []
    stopped = None
    for k, (y0, y1, x0, x1) in enumerate(grid):
        r = results[k]
        w_lr = (feather(y1 - y0, y0 > 0, y1 < h, overlap // s, cpu)[:, None]
                * feather(x1 - x0, x0 > 0, x1 < w, overlap // s, cpu)[None, :])
        w_hr = (feather((y1 - y0) * s, y0 > 0, y1 < h, overlap, cpu)[:, None]
                * feather((x1 - x0) * s, x0 > 0, x1 < w, overlap, cpu)[None, :])
        canvas[:, :, y0 * s:y1 * s, x0 * s:x1 * s] += torch.from_numpy(r.rgb) * w_hr
        weight[:, :, y0 * s:y1 * s, x0 * s:x1 * s] += w_hr
        maps_acc[:, :, y0:y1, x0:x1] += torch.from_numpy(r.maps) * w_lr
        initial_acc[:, :, y0:y1, x0:x1] += torch.from_numpy(r.initial) * w_lr
        lr_weight[:, :, y0:y1, x0:x1] += w_lr
        history += [{"tile": k, **row} for row in r.history]
        emb_history += [{"tile": k, **row} for row in r.embedding_history]
        stopped = stopped or r.stopped
    last = results[len(grid) - 1].stops
    fused = sum(1 for r in results.values() if "fusion" in r.stops)
    stops = {**last, "tiles": {"count": len(grid), "fused": fused}}
    # in place: the canvas is the biggest tensor of a tiled run
    return (canvas.div_(weight).clamp_(0, 1), maps_acc.div_(lr_weight), initial_acc.div_(lr_weight), history,
            emb_history, stops, stopped)
