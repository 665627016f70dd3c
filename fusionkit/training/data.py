"""Training data: the sources of a training spec read once, split, sharded, and sampled into reproducible batches.

- ``stacks`` sources: real focal stacks discovered as ``fusionkit eval`` does (:mod:`fusionkit.dataset`), minus
  the excluded ids; their ground truth, when present, is used for validation scores only.
- ``synthetic`` sources: all-in-focus images; each training crop becomes a K-input stack on the fly, with its
  all-in-focus crop as ground truth and the exact decision masks: ``depth_layers`` by the rules of ``fusionkit
  synth`` (:func:`fusionkit.synthetic.make_stack`: smooth random depth layers, defocus growing with the layer
  distance), ``binary_regions`` by FAP-SR Eq. 21 for K inputs (:func:`fusionkit.synthetic.region_map`: a random
  partition into K regions bounded by contours; input k sharp in region k, one blur elsewhere).

Super-resolution (``data.scale`` s > 1): the crops, their ground truth and masks are made and augmented at high
resolution, then the inputs and the ground truth are downsampled by ``data.downsampler`` (the resampler that
``fusionkit eval --protocol mfisrf`` makes its inputs with, clamped to [0, 1] as there) and the masks
area-averaged; the batch carries both resolutions (:class:`fusionkit.interfaces.TrainingBatch`).

Every image is held as BT.601 luma (the paper fuses the Y channel). A fixed share of each source's items is held
out for validation (chosen by the seed, or the source's ``validation_ids``). Process ``r`` of ``W`` trains on every
W-th remaining item (its shard). A step's batch depends only on ``(seed, step, rank)``, never on what ran before,
which is what lets ``--resume`` continue bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset import discover
from ..errors import InputError
from ..imaging import LUMA
from ..interfaces import TrainingBatch
from ..io import IMAGE_SUFFIXES, read_image
from ..synthetic import defocus, make_stack, region_map, region_stack
from .spec import DataSource, TrainSpec


@dataclass
class Item:
    """One training or validation item: its id, K+ luma images ``[n, H, W]`` (stacks) or one all-in-focus luma
    image ``[1, H, W]`` (synthetic), and the ground truth ``[H, W]`` when there is one."""

    id: str
    images: np.ndarray
    truth: np.ndarray | None = None


@dataclass
class Source:
    """A data source as read: its spec, training items (this process's shard) and validation items."""

    index: int
    spec: DataSource
    train: list[Item]
    validation: list[Item]
    excluded: list[str]
    train_ids: list[str]          # every process's training ids (the shard is a subset)
    shard_ids: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.index}:{Path(self.spec.path).name}"


@dataclass
class TrainingData:
    sources: list[Source]
    crop: int
    stack_size: int
    seed: int
    rank: int = 0
    world: int = 1
    scale: int = 1
    downsampler: object = None    # the resampler (kind resampler) whose ``down`` makes the inputs when scale > 1

    @property
    def n_train_items(self) -> int:
        """Training items of all processes together (what an epoch counts)."""
        return sum(len(s.train_ids) for s in self.sources)

    def summary(self) -> list[dict]:
        """What the manifest records about the data."""
        return [{"kind": s.spec.kind, "path": s.spec.path, "weight": s.spec.weight, "train_items": len(s.train_ids),
                 "validation_items": len(s.validation), "train_ids": s.train_ids,
                 "validation_ids": [it.id for it in s.validation], "excluded_ids": s.excluded}
                for s in self.sources]


# ------------------------------------------------------------------------------------------------ reading

def to_luma(rgb: np.ndarray) -> np.ndarray:
    """``[H, W, C]`` float in [0, 1] -> BT.601 luma ``[H, W]`` (gray images unchanged)."""
    if rgb.shape[2] == 1:
        return np.ascontiguousarray(rgb[:, :, 0], dtype=np.float32)
    return np.ascontiguousarray(rgb @ np.asarray(LUMA, dtype=np.float32), dtype=np.float32)


def read_exclusions(path: str | None, explicit: list[str]) -> set[str]:
    """Item ids to leave out: ``explicit`` plus, from ``path``, the last word of each line not starting with #."""
    ids = {_norm_id(x) for x in explicit}
    if path:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            words = line.split()
            if words and not line.lstrip().startswith("#"):
                ids.add(_norm_id(words[-1]))
    return ids


def _norm_id(x: str) -> str:
    """``"001"`` and ``"1"`` name the same item (dataset ids are numbers)."""
    x = str(x).strip()
    return str(int(x)) if x.isdigit() else x


def _read_source(spec: DataSource, stack_size: int, crop: int) -> tuple[list[Item], list[str]]:
    excluded = read_exclusions(spec.exclude_list, spec.exclude)
    items: list[Item] = []
    dropped: list[str] = []
    if spec.kind == "stacks":
        for it in discover(spec.path):
            if _norm_id(it.id) in excluded:
                dropped.append(it.id)
                continue
            if len(it.sources) < stack_size:
                raise InputError(f"{spec.path}: item {it.id} has {len(it.sources)} inputs, fewer than the "
                                 f"stack size {stack_size}", "lower data.stack_size or exclude the item")
            images = np.stack([to_luma(read_image(p)[0]) for p in it.sources])
            truth = to_luma(read_image(it.gt)[0]) if it.gt is not None else None
            items.append(Item(it.id, images, truth))
    else:
        files = sorted(p for p in Path(spec.path).iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        for p in files:
            if _norm_id(p.stem) in excluded:
                dropped.append(p.stem)
                continue
            items.append(Item(p.stem, to_luma(read_image(p)[0])[None]))
    if spec.limit is not None:
        items = items[:spec.limit]
    if not items:
        raise InputError(f"the data source {spec.path} has no usable items",
                         "check the folder and the exclusions (exclude, exclude_list)")
    for it in items:
        h, w = it.images.shape[-2:]
        if min(h, w) < crop:
            raise InputError(f"{spec.path}: item {it.id} is {w}x{h}, smaller than the {crop}-pixel crops",
                             f"use data.crop <= {min(h, w)} or exclude the item")
    return items, dropped


def load_data(spec: TrainSpec, rank: int = 0, world: int = 1, catalog=None) -> TrainingData:
    """Read every source, split off the validation items, keep this process's shard of the rest."""
    sources = []
    for i, src in enumerate(spec.data.sources):
        items, dropped = _read_source(src, spec.data.stack_size, spec.data.crop)
        if src.validation_ids is not None:
            wanted = {_norm_id(x) for x in src.validation_ids}
            val_idx = [j for j, it in enumerate(items) if _norm_id(it.id) in wanted]
            unknown = sorted(wanted - {_norm_id(it.id) for it in items})
            if unknown:
                raise InputError(f"{src.path}: validation_ids {', '.join(unknown)} are not among its items",
                                 "list ids of items in the folder (file names without the suffix, e.g. kodim19)")
            train_idx = [j for j in range(len(items)) if j not in set(val_idx)]
            if not train_idx:
                raise InputError(f"{src.path}: every item is a validation item", "leave some items to train on")
        else:
            order = np.random.default_rng([spec.seed, i, 0x5EED]).permutation(len(items))
            n_val = 0
            if spec.validation.fraction > 0:
                if len(items) < 2:
                    raise InputError(f"the data source {src.path} has a single item: nothing is left to train "
                                     "on after holding one out for validation",
                                     "add items, or set validation.fraction=0")
                n_val = min(len(items) - 1, max(1, round(spec.validation.fraction * len(items))))
            val_idx = sorted(order[:n_val].tolist())
            train_idx = sorted(order[n_val:].tolist())
        train = [items[j] for j in train_idx]
        shard = train[rank::world]
        sources.append(Source(i, src, shard, [items[j] for j in val_idx], dropped, [it.id for it in train],
                              [it.id for it in shard]))
    if not any(s.train for s in sources):
        raise InputError(f"process {rank} of {world} has no training items",
                         "use fewer processes than there are training items")
    resampler = None
    if spec.data.scale > 1:
        if catalog is None:
            from ..registry import default_catalog
            catalog = default_catalog()
        resampler = catalog.get("resampler", spec.data.downsampler).cls()
    return TrainingData(sources, spec.data.crop, spec.data.stack_size, spec.seed, rank, world, spec.data.scale,
                        resampler)


def resolve_steps(spec: TrainSpec, data: TrainingData) -> int:
    """``steps``, or ``epochs`` turned into steps: one crop of every training item per epoch; with phases, the sum
    over the phases (see :func:`resolve_budget`)."""
    if spec.phases is not None:
        return sum(p.steps for p in resolve_budget(spec, data).phases)
    if spec.steps is not None:
        return spec.steps
    return max(1, math.ceil(spec.epochs * data.n_train_items / spec.batch))


def resolve_budget(spec: TrainSpec, data: TrainingData) -> TrainSpec:
    """``spec`` with every ``epochs`` (top level, or each phase's) turned into ``steps``."""
    def steps(epochs: float) -> int:
        return max(1, math.ceil(epochs * data.n_train_items / spec.batch))

    if spec.phases is None:
        if spec.steps is not None:
            return spec
        return spec.model_copy(update={"steps": steps(spec.epochs), "epochs": None})
    phases = [p if p.steps is not None else p.model_copy(update={"steps": steps(p.epochs), "epochs": None})
              for p in spec.phases]
    return spec.model_copy(update={"phases": phases})


def downsample(resampler, x: torch.Tensor, s: int) -> torch.Tensor:
    """``[..., sH, sW] -> [..., H, W]``: the resampler's antialiased ``down`` clamped to [0, 1], as ``fusionkit eval
    --protocol mfisrf`` makes its low-resolution inputs (:func:`fusionkit.evaluation._down`)."""
    if s == 1:
        return x
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    with torch.no_grad():
        y = resampler.down(x.reshape(-1, 1, h, w).float(), s).clamp(0, 1)
    return y.reshape(*lead, h // s, w // s)


def area_average(masks: torch.Tensor, s: int) -> torch.Tensor:
    """``[..., sH, sW] -> [..., H, W]``: the mean over each s x s block (high-resolution masks to low)."""
    if s == 1:
        return masks
    lead, (h, w) = masks.shape[:-2], masks.shape[-2:]
    return F.avg_pool2d(masks.reshape(-1, 1, h, w), s).reshape(*lead, h // s, w // s)


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.stack([(labels == i) for i in range(k)]).astype(np.float32)


# ------------------------------------------------------------------------------------------------ sampling

def batch_for_step(data: TrainingData, step: int, size: int, augment) -> TrainingBatch:
    """The batch of ``step`` for this process: ``size`` crops drawn with a generator seeded by (seed, step, rank);
    at scale s made at high resolution and downsampled (see the module docstring)."""
    rng = np.random.default_rng([data.seed, step, data.rank, 0xBA7C])
    usable = [s for s in data.sources if s.train]
    weights = np.asarray([s.spec.weight for s in usable], dtype=np.float64)
    weights /= weights.sum()
    stacks, truths, masks = [], [], []
    for _ in range(size):
        src = usable[int(rng.choice(len(usable), p=weights))]
        item = src.train[int(rng.integers(len(src.train)))]
        s, t, m = _crop(src, item, data.crop, data.stack_size, rng)
        s, t, m = _augment(s, t, rng, augment, m)
        stacks.append(s)
        truths.append(t)
        masks.append(m)
    hr = torch.from_numpy(np.stack(stacks)[:, :, None])                            # [B, K, 1, c, c]
    hr_truth = None if any(t is None for t in truths) else torch.from_numpy(np.stack(truths)[:, None])
    hr_masks = None if any(m is None for m in masks) else torch.from_numpy(np.stack(masks)[:, :, None])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return _batch(hr, hr_truth, hr_masks, data, gen)


def _batch(hr: torch.Tensor, hr_truth: torch.Tensor | None, hr_masks: torch.Tensor | None, data: TrainingData,
           gen) -> TrainingBatch:
    s = data.scale
    if s == 1:
        return TrainingBatch(sources=hr, truth=hr_truth, generator=gen, scale=1, hr_sources=hr, hr_truth=hr_truth,
                             masks=hr_masks)
    return TrainingBatch(sources=downsample(data.downsampler, hr, s), generator=gen, scale=s,
                         truth=None if hr_truth is None else downsample(data.downsampler, hr_truth, s),
                         hr_sources=hr, hr_truth=hr_truth,
                         masks=None if hr_masks is None else area_average(hr_masks, s))


def _crop(src: Source, item: Item, c: int, k: int, rng: np.random.Generator):
    """A random ``c x c`` crop as (stack ``[K, c, c]``, truth ``[c, c]`` or None, masks ``[K, c, c]`` or None)."""
    h, w = item.images.shape[-2:]
    if src.spec.kind == "stacks":
        y, x = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
        n = item.images.shape[0]
        pick = np.arange(k) if n == k else np.sort(rng.choice(n, size=k, replace=False))
        stack = item.images[pick, y:y + c, x:x + c]
        truth = None if item.truth is None else item.truth[y:y + c, x:x + c]
        return np.ascontiguousarray(stack), None if truth is None else np.ascontiguousarray(truth), None
    strength = float(rng.uniform(*src.spec.strength))
    if src.spec.pattern == "binary_regions":
        return region_crop(item.images[0], c, k, strength, src.spec.blur, rng)
    return synthetic_stack(item.images[0], c, k, strength, src.spec.blur, rng)


def _margin_crop(image: np.ndarray, c: int, margin: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``(c + 2 margin)``-square crop (the image reflected when it is too small)."""
    h, w = image.shape
    side = c + 2 * margin
    padded = image
    if side > min(h, w):
        extra = side - min(h, w)
        padded = np.pad(image, extra, mode="reflect")
        h, w = padded.shape
    y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    return padded[y:y + side, x:x + side]


def region_crop(image: np.ndarray, c: int, k: int, strength: float, blur: str,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAP-SR Eq. 21 for K inputs on a random ``c x c`` crop: a random partition into K regions bounded by contours
    (:func:`fusionkit.synthetic.region_map`), input k the crop itself in region k and ``f_blur(crop)`` (``blur`` of
    ``strength``) elsewhere. The blur is computed on a margin so it sees real content at the crop's edges.
    Returns (stack ``[K, c, c]``, truth ``[c, c]``, one-hot masks ``[K, c, c]``)."""
    margin = int(math.ceil(3.0 * strength)) + 1
    region = _margin_crop(image, c, margin, rng)
    inner = slice(margin, margin + c)
    crop = np.ascontiguousarray(region[inner, inner], dtype=np.float32)
    blurred = np.clip(defocus(np.ascontiguousarray(region, dtype=np.float32), strength, blur)[inner, inner], 0, 1)
    labels = region_map((c, c), k, rng)
    stack = region_stack(crop, labels, blurred, k)
    return np.ascontiguousarray(stack, dtype=np.float32), crop, _one_hot(labels, k)


def synthetic_stack(image: np.ndarray, c: int, k: int, strength: float, blur: str,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A K-input stack of a random ``c x c`` crop of an all-in-focus luma image (``fusionkit synth``'s rules),
    its truth and its one-hot masks (input i is sharp on layer i); the stack is made on a margin around the crop
    so the blur near its edges sees real image content."""
    margin = int(math.ceil(3.0 * strength * (k - 1))) + 1
    region = _margin_crop(image, c, margin, rng)[:, :, None]
    st = make_stack(region, n=k, scale=1, blur_sigma=strength, seed=int(rng.integers(2**31)), blur=blur)
    inner = slice(margin, margin + c)
    stack = np.stack([im[inner, inner, 0] for im in st.inputs])
    return (np.ascontiguousarray(stack, dtype=np.float32), np.ascontiguousarray(st.truth[inner, inner, 0]),
            _one_hot(st.layers[inner, inner], k))


def _augment(stack: np.ndarray, truth: np.ndarray | None, rng: np.random.Generator, augment,
             masks: np.ndarray | None = None):
    """Flips, rotations by 90° and input order, the same for the stack, its ground truth and its masks."""
    def every(fn):
        return fn(stack), None if truth is None else fn(truth), None if masks is None else fn(masks)

    if augment.flips:
        if rng.random() < 0.5:
            stack, truth, masks = every(lambda a: a[..., :, ::-1])
        if rng.random() < 0.5:
            stack, truth, masks = every(lambda a: a[..., ::-1, :])
    if augment.rotations:
        turns = int(rng.integers(4))
        if turns:
            stack, truth, masks = every(lambda a: np.rot90(a, turns, axes=(-2, -1)))
    if augment.shuffle_inputs:
        order = rng.permutation(stack.shape[0])
        stack = stack[order]
        masks = None if masks is None else masks[order]
    return (np.ascontiguousarray(stack), None if truth is None else np.ascontiguousarray(truth),
            None if masks is None else np.ascontiguousarray(masks))


# ------------------------------------------------------------------------------------------------ validation

@dataclass
class ValidationItem:
    """A fixed validation stack: luma ``sources [1, K, 1, h, w]``, ground truth ``[1, 1, h, w]`` or None; at scale
    s also ``hr_sources [1, K, 1, sh, sw]`` and ``hr_truth`` (at scale 1: the same tensors); ``masks [1, K, 1, h,
    w]`` for synthetic stacks."""

    source: str
    id: str
    sources: torch.Tensor
    truth: torch.Tensor | None
    hr_sources: torch.Tensor | None = None
    hr_truth: torch.Tensor | None = None
    masks: torch.Tensor | None = None

    def batch(self, data: TrainingData, generator, phase: str | None = None, device=None) -> TrainingBatch:
        """The item as a one-stack training batch (for the validation losses)."""
        def on(x):
            return x if x is None or device is None else x.to(device)

        return TrainingBatch(on(self.sources), on(self.truth), generator, scale=data.scale,
                             hr_sources=on(self.hr_sources), hr_truth=on(self.hr_truth), masks=on(self.masks),
                             phase=phase)


def validation_set(data: TrainingData, size: int) -> list[ValidationItem]:
    """Every validation item, centre-cropped to ``size`` (0: whole; then to a multiple of the scale); synthetic ones
    made once with a fixed seed, at the middle of their strength range."""
    out = []
    s = data.scale
    for src in data.sources:
        for j, item in enumerate(src.validation):
            masks = None
            if src.spec.kind == "stacks":
                stack = _fit(_centre(item.images[:data.stack_size], size), s)
                truth = None if item.truth is None else _fit(_centre(item.truth[None], size), s)[0]
            else:
                rng = np.random.default_rng([data.seed, src.index, j, 0x7A11])
                image = _fit(_centre(item.images, size), s)[0]
                lo, hi = src.spec.strength
                if src.spec.pattern == "binary_regions":
                    img = np.ascontiguousarray(image, dtype=np.float32)
                    labels = region_map(img.shape, data.stack_size, rng)
                    blurred = np.clip(defocus(img, (lo + hi) / 2, src.spec.blur), 0, 1)
                    stack = region_stack(img, labels, blurred, data.stack_size)
                    truth = img
                else:
                    st = make_stack(image[:, :, None], n=data.stack_size, scale=1, blur_sigma=(lo + hi) / 2,
                                    seed=int(rng.integers(2**31)), blur=src.spec.blur)
                    stack = np.stack([im[:, :, 0] for im in st.inputs])
                    truth = st.truth[:, :, 0]
                    labels = st.layers
                masks = torch.from_numpy(_one_hot(labels, data.stack_size))[None, :, None]
            hr = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[None, :, None]
            hr_truth = None if truth is None else \
                torch.from_numpy(np.ascontiguousarray(truth, dtype=np.float32))[None, None]
            b = _batch(hr, hr_truth, masks, data, None)
            out.append(ValidationItem(src.label, item.id, b.sources, b.truth, b.hr_sources, b.hr_truth, b.masks))
    return out


def _fit(a: np.ndarray, s: int) -> np.ndarray:
    """``a`` cropped to a multiple of ``s`` (the mfisrf protocol crops its sources the same way)."""
    h, w = a.shape[-2:]
    return a[..., :h - h % s, :w - w % s]


def _centre(a: np.ndarray, size: int) -> np.ndarray:
    if size <= 0:
        return a
    h, w = a.shape[-2:]
    ch, cw = min(h, size), min(w, size)
    y, x = (h - ch) // 2, (w - cw) // 2
    return a[..., y:y + ch, x:x + cw]
