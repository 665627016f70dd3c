"""Memory planning before any pixel is decoded: estimate what a run needs, then run it whole, in tiles, or refuse.

The estimate is the sum of the parts that exist at the same time (bytes):

- the stack: the decoded float32 images and the engine's copy of them, plus the per-slice work copies (YCbCr, luma,
  maps, ...: ``(C + 13)`` float32 planes per slice, see :data:`PER_SLICE_COPIES`);
- the largest stage: the focus measure (:data:`FOCUS_MEASURE_BYTES` per input pixel per slice, measured on the
  built-ins), the decision embedding's generator at the inputs' size, or the fusion generator at the output size;
  a generator's share is *probed*: it is run once on two tiny inputs and the bytes autograd keeps for the backward
  pass are counted, so any generator plugin is costed by what it really stores, times :data:`BACKWARD_FACTOR`
  for the gradients and temporaries of the backward pass;
- the output: the fused image, its copies for writing, and, when tiled, the blending canvas;
- a warm start (``generator.warm_start``): the fuser's ×s result and the first guess made of it, held for the
  whole run (tiled or not: the fuser runs once on the whole image). What the fuser itself uses while it runs is
  not known here (a plugin does not declare it) and is not counted; it is over before the optimisation starts.

Every constant here was measured (docs/performance.md says how) and errs on the side of more memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .errors import InputError, RunError
from .presets import embedding_iterations

#: float32 planes per slice the engine keeps or makes besides the input's own channels: YCbCr (3), luma (1), the
#: measure's and the final maps (2), strengths (1), the embedding's per-iteration maps, losses and gradients (6).
PER_SLICE_COPIES = 13
#: peak bytes per input pixel per slice of the built-in focus measures (double_reblur ~48, max_gradient ~80,
#: measured as RSS growth on 1000² and 2000² pairs), rounded up
FOCUS_MEASURE_BYTES = 96
#: peak / saved-activation bytes of one forward+backward pass (gradients of the activations and the backward's
#: temporaries), measured on SKIPnet and U-Net at 512² and 1024² (docs/performance.md)
BACKWARD_FACTOR = 2.0
#: of the available memory, the share a plan may use (the rest: the allocator's fragmentation, Python, libraries)
USABLE_SHARE = 0.8


@dataclass
class StackShape:
    """What a stack is, known from the image headers before decoding: N images of h x w with c channels."""

    n: int
    h: int
    w: int
    c: int


def read_headers(paths: Sequence[str]) -> StackShape | None:
    """The stack's shape from the image headers (Pillow reads only the header), or None when some file's header
    cannot be read this way (e.g. a multi-channel float TIFF); then the plan is made after decoding instead.

    Missing files and size mismatches are reported here already, before anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    shapes = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            return None     # io.read_image reports it with its own words
        try:
            with Image.open(path) as im:
                w, h = im.size
                bands = len(im.getbands())
        except (UnidentifiedImageError, OSError, ValueError):
            return None
        shapes.append((h, w, 3 if bands >= 3 else 1))
    if len(shapes) < 2:
        return None
    if len({s[:2] for s in shapes}) > 1:
        listing = ", ".join(f"{p} {s[1]}x{s[0]}" for p, s in zip(paths, shapes))
        raise InputError(f"input images differ in size: {listing}",
                         "all inputs must be co-registered images of the same width and height; crop or register "
                         "them first")
    c = 3 if any(s[2] == 3 for s in shapes) else 1
    return StackShape(len(shapes), shapes[0][0], shapes[0][1], c)


# ------------------------------------------------------------------------------------------------ generator probe

_PROBE_CACHE: dict[tuple, float] = {}


def generator_bytes_per_pixel(generator: torch.nn.Module, in_channels: int, precision: str,
                              device: torch.device) -> float:
    """Bytes autograd keeps per pixel for one forward pass of ``generator`` (probed on two small inputs; the
    difference removes what does not grow with the image, e.g. saved weights)."""
    from .optimisation import autocast

    key = (type(generator).__name__, repr(getattr(generator, "params", None)), in_channels, precision, device.type)
    if key in _PROBE_CACHE:
        return _PROBE_CACHE[key]

    def saved_bytes(size: int) -> int:
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor):
            try:
                ptr = t.untyped_storage().data_ptr()
                seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
            except (RuntimeError, NotImplementedError):
                seen[id(t)] = t.numel() * t.element_size()
            return t

        z = torch.rand(1, in_channels, size, size, device=device)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(precision, device):
            out = generator(z)
        return sum(seen.values()) + out.numel() * out.element_size()

    small, large = 64, 128
    per_px = max(0.0, (saved_bytes(large) - saved_bytes(small)) / (large * large - small * small))
    _PROBE_CACHE[key] = per_px
    return per_px


# ------------------------------------------------------------------------------------------------ the plan


@dataclass
class MemoryPlan:
    """How a run will use memory: ``mode`` is "whole" or "tiled"; sizes in bytes; ``tile`` in output pixels."""

    mode: str
    need: int                       # estimated peak of the run as planned
    whole: int                      # estimated peak of a whole-image run
    available: int | None
    parts: dict[str, int] = field(default_factory=dict)
    tile: int | None = None
    overlap: int | None = None
    tiles: int = 1
    focus_measure_tiled: bool = False

    def as_dict(self) -> dict:
        gib = 2 ** 30
        out = {"mode": self.mode, "need_gib": round(self.need / gib, 3), "whole_gib": round(self.whole / gib, 3),
               "available_gib": None if self.available is None else round(self.available / gib, 3),
               "parts_gib": {k: round(v / gib, 3) for k, v in self.parts.items()}}
        if self.mode == "tiled":
            out.update(tile=self.tile, overlap=self.overlap, tiles=self.tiles,
                       focus_measure_tiled=self.focus_measure_tiled)
        return out


def _gib(b: float) -> str:
    """A byte count for people: GiB from 1 GiB up, else MiB."""
    return f"{b / 2**30:.1f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB" if b >= 2**20 else f"{b / 2**10:.0f} KiB"


class Planner:
    """Estimates the memory of a run of ``spec`` on a stack of ``shape`` (see the module docstring)."""

    def __init__(self, spec, catalog, device: torch.device):
        from .engine import build
        from .optimisation import resolve_precision

        self.spec, self.catalog, self.device = spec, catalog, device
        self.precision = resolve_precision(spec.precision, device)
        self._build = build

    def _generator_bpp(self, ref, in_ch: int, out_ch: int) -> float:
        gen = self._build(self.catalog, "generator", ref, in_ch, out_ch).to(self.device)
        return generator_bytes_per_pixel(gen, in_ch, self.precision, self.device)

    def stage_bytes(self, shape: StackShape, h: int, w: int) -> dict[str, int]:
        """The per-stage peaks for fusing an ``h x w`` (input-resolution) region of the stack."""
        spec, s, n = self.spec, self.spec.scale, shape.n
        work_c = 1 if (spec.colour == "ycbcr" and shape.c == 3) else shape.c
        parts = {"focus_measure": FOCUS_MEASURE_BYTES * n * h * w}
        if spec.method == "dfp":
            if spec.decision_embedding.applies_to(n):
                de = spec.decision_embedding
                bpp = self._generator_bpp(de.generator, 3 if de.input == "noise" else 1, 1 if n == 2 else n)
                parts["decision_embedding"] = int(BACKWARD_FACTOR * bpp * h * w)
            g = spec.generator
            in_ch = g.noise_channels if g.input == "noise" else work_c
            bpp = self._generator_bpp(g, in_ch, work_c)
            # + the loop's own images at the output size: z, the output, its average, the last good copy, losses
            parts["fusion"] = int(BACKWARD_FACTOR * bpp * h * w * s * s + 8 * 4 * work_c * h * w * s * s)
        return parts

    def warm_start_bytes(self, shape: StackShape) -> int:
        """The warm start's images: the fuser's ×s result (C channels) and the work-space first guess."""
        spec, s = self.spec, self.spec.scale
        if spec.method != "dfp" or spec.generator.warm_start is None:
            return 0
        work_c = 1 if (spec.colour == "ycbcr" and shape.c == 3) else shape.c
        return (shape.c + work_c) * shape.h * shape.w * s * s * 4

    def whole(self, shape: StackShape) -> tuple[int, dict[str, int]]:
        n, h, w, c, s = shape.n, shape.h, shape.w, shape.c, self.spec.scale
        stack = 2 * n * h * w * c * 4 + PER_SLICE_COPIES * n * h * w * 4
        stages = self.stage_bytes(shape, h, w)
        output = 3 * h * w * s * s * c * 4      # the fused image, the copy clipped for writing, its encoding
        warm = self.warm_start_bytes(shape)
        parts = {"stack": stack, **stages, "output": output, **({"warm_start": warm} if warm else {})}
        return stack + max(stages.values()) + output + warm, parts

    def tiled_fixed(self, shape: StackShape) -> dict[str, int]:
        """What a tiled run holds whatever the tile size: the images (decoded and the engine's copy), the luma and
        the global maps with their blend accumulators, and the output canvas with its weights and write copy."""
        n, h, w, c, s = shape.n, shape.h, shape.w, shape.c, self.spec.scale
        warm = self.warm_start_bytes(shape)
        return {"stack": 2 * n * h * w * c * 4 + (3 * n + 1) * h * w * 4,
                "output": s * s * h * w * (2 * c + 1) * 4, **({"warm_start": warm} if warm else {})}

    def plan(self, shape: StackShape, available: int | None) -> MemoryPlan:
        """``tiling.mode`` auto: tiles for outputs larger than ``tiling.tile``; memory: tiles only when the whole image
        does not fit; never: the whole image. Tiles are shrunk until they fit; a run that cannot fit is refused."""
        spec = self.spec
        whole, parts = self.whole(shape)
        budget = None if available is None else int(available * USABLE_SHARE)
        mode = spec.tiling.mode
        s = spec.scale
        fits = budget is None or whole <= budget
        bigger = max(shape.h, shape.w) * s > spec.tiling.tile + spec.tiling.overlap
        if spec.method != "dfp" or mode == "never" or (fits and not (mode == "auto" and bigger)):
            if budget is not None and whole > budget:
                self._refuse(shape, whole, parts, available, tiled_hint=spec.method == "dfp")
            return MemoryPlan("whole", whole, whole, available, parts)
        return self._tiled(shape, whole, parts, available, budget)

    def _tiled(self, shape: StackShape, whole: int, parts: dict[str, int], available: int | None,
               budget: int | None) -> MemoryPlan:
        spec, s = self.spec, self.spec.scale
        n, h, w = shape.n, shape.h, shape.w
        fixed_parts = self.tiled_fixed(shape)
        fixed = sum(fixed_parts.values())
        overlap = _multiple(spec.tiling.overlap, s)
        tile = _multiple(spec.tiling.tile, s)
        fm_whole = parts["focus_measure"]
        while True:
            th, tw = min(tile // s + overlap // s, h), min(tile // s + overlap // s, w)
            stages = self.stage_bytes(shape, th, tw)
            per_tile = PER_SLICE_COPIES * n * th * tw * 4 + max(stages.values())
            tiled_fm = budget is not None and fixed + fm_whole > budget
            peak = fixed + max(per_tile, 0 if tiled_fm else fm_whole)
            if budget is None or peak <= budget or tile <= 64:  # below 64 output pixels a tile is mostly seam
                break
            tile = _multiple(tile // 2, s)
        if budget is not None and peak > budget:
            self._refuse(shape, whole, parts, available, tiled_hint=False, fixed=fixed)
        grid = tile_grid(h, w, s, tile, overlap)
        return MemoryPlan("tiled", peak, whole, available, {**fixed_parts, "tile": per_tile},
                          tile=tile, overlap=overlap, tiles=len(grid), focus_measure_tiled=tiled_fm)

    def _refuse(self, shape: StackShape, need: int, parts: dict[str, int], available: int,
                tiled_hint: bool, fixed: int | None = None) -> None:
        n, h, w, s = shape.n, shape.h, shape.w, self.spec.scale
        biggest = max((k for k in parts if k not in ("stack", "output", "warm_start")), key=parts.get,
                      default="stack")
        detail = ", ".join(f"{k.replace('_', ' ')} {_gib(v)}" for k, v in parts.items())
        what = (f"fusing a stack of {n} slices of {w}x{h} at x{s} ({w * s}x{h * s} output) needs about {_gib(need)} "
                f"({detail}; the largest stage is the {biggest.replace('_', ' ')}), but only "
                f"{_gib(available)} of {self.device.type} memory is available")
        if fixed is not None:
            what += (f"; even in the smallest tiles the images themselves and the output canvas need "
                     f"{_gib(fixed)}")
        per_slice = (2 * shape.c + PER_SLICE_COPIES + FOCUS_MEASURE_BYTES / 4) * h * w * 4
        fixes = []
        if tiled_hint:
            fixes.append("let fusionkit tile the output (`--set tiling.mode=memory`, or `auto`, the default)")
        if n > 2 and available is not None:
            fit = max(2, int(available * USABLE_SHARE // per_slice))
            if fit < n:
                fixes.append(f"fuse at most about {fit} slices (e.g. keep one slice in every {-(-n // fit)} of the "
                             "focal stack)")
        fixes += ["crop the images into parts and fuse each", "use a smaller scale",
                  "or run on a machine or GPU with more memory"]
        raise RunError(what, "; ".join(fixes))


def _multiple(v: int, s: int) -> int:
    """``v`` rounded down to a multiple of ``s`` (at least ``s``)."""
    return max(s, v - v % s)


def tile_grid(h: int, w: int, s: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Input-resolution windows ``(y0, y1, x0, x1)`` of tiles covering ``h x w``: ``tile / s`` pixels of core
    each, neighbours sharing ``overlap / s`` pixels (the last window of a row or column ends at the border)."""
    t, o = max(1, tile // s), overlap // s
    size = t + o

    def starts(n: int) -> list[int]:
        if n <= size:
            return [0]
        step = t
        out = list(range(0, n - size, step))
        out.append(n - size)
        return sorted(set(out))

    return [(y, min(h, y + size), x, min(w, x + size)) for y in starts(h) for x in starts(w)]

