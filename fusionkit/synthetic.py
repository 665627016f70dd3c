"""Synthetic multi-focus stacks with ground truth, made from any all-in-focus image.

Used by ``fusionkit demo`` (no data needed: a scikit-image sample) and by the tests. A smooth random field,
thresholded, splits the scene into depth layers; input i is sharp on layer i and Gaussian-blurred elsewhere
(the defocus model of FAP-SR Eq. 21 with a Gaussian PSF). Low-resolution inputs are made by an antialiased
downsampler so the ground truth is the full-resolution all-in-focus image. :func:`region_map` and
:func:`region_stack` are Eq. 21 itself for K inputs (random regions bounded by contours, one blur), used by the
training data's ``binary_regions`` pattern.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class SyntheticStack:
    """``inputs``: N low-resolution images ``[h, w, C]``; ``truth``: all-in-focus ``[s*h, s*w, C]``;
    ``layers``: the integer layer index per full-resolution pixel; all float32 in [0, 1]."""

    inputs: list[np.ndarray]
    truth: np.ndarray
    layers: np.ndarray
    scale: int


def sample_image(name: str = "astronaut", size: int = 192) -> np.ndarray:
    """A scikit-image sample (bundled, no download), centre-cropped square and resized to ``size``."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = img[:, :, None]
    h, w = img.shape[:2]
    c = min(h, w)
    img = img[(h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c]
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    if img.ndim == 2:
        img = img[:, :, None]
    return img.astype(np.float32) / 255.0


def layer_map(shape: tuple[int, int], n_layers: int, rng: np.random.Generator, smoothness: float = 0.12) -> np.ndarray:
    """Integer map of ``n_layers`` smooth, roughly equal-area regions (quantiles of a blurred random field)."""
    h, w = shape
    field = rng.standard_normal((h, w)).astype(np.float32)
    sigma = smoothness * max(h, w)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    edges = np.quantile(field, np.linspace(0, 1, n_layers + 1)[1:-1])
    return np.digitize(field, edges).astype(np.int64)


def region_map(shape: tuple[int, int], n_regions: int, rng: np.random.Generator, min_share: float = 0.25,
               tries: int = 20) -> np.ndarray:
    """Integer map of a random partition into ``n_regions`` regions bounded by smooth contours (FAP-SR Eq. 21's
    random binary decision masks, generalised to K): the argmax of K independent smoothed noise fields, each with
    its own smoothness and offset, so the regions are blobs of any shape and area rather than ordered bands.

    Every region covers at least ``min_share / n_regions`` of the pixels: a draw that leaves one smaller is redrawn
    (at most ``tries`` times, then the equal-area bands of :func:`layer_map` are used). Deterministic in ``rng``.
    """
    h, w = shape
    need = min_share * h * w / n_regions
    for _ in range(tries):
        sigma = float(rng.uniform(0.06, 0.2)) * max(h, w)
        fields = np.empty((n_regions, h, w), np.float32)
        for k in range(n_regions):
            f = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigmaX=sigma,
                                 borderType=cv2.BORDER_REFLECT)
            fields[k] = (f - f.mean()) / max(float(f.std()), 1e-8) + float(rng.normal(0.0, 0.3))
        labels = fields.argmax(0)
        if np.bincount(labels.ravel(), minlength=n_regions).min() >= need:
            return labels.astype(np.int64)
    return layer_map(shape, n_regions, rng)


def region_stack(image: np.ndarray, labels: np.ndarray, blurred: np.ndarray, n: int) -> np.ndarray:
    """FAP-SR Eq. 21 for ``n`` inputs: input k is ``image`` inside region k (``labels == k``) and ``blurred``
    (``f_blur(image)``) elsewhere. ``image``, ``blurred``: ``[H, W]``; returns ``[n, H, W]``."""
    return np.stack([np.where(labels == i, image, blurred) for i in range(n)])


def defocus(img: np.ndarray, sigma: float, kernel: str = "gaussian") -> np.ndarray:
    """Blur ``img`` by a Gaussian PSF of standard deviation ``sigma`` or (``kernel="disk"``) a pillbox of radius
    ``sigma`` pixels (anti-aliased edge), both with reflected borders."""
    if kernel == "disk":
        out = cv2.filter2D(img, -1, disk_kernel(sigma), borderType=cv2.BORDER_REFLECT)
    elif kernel == "gaussian":
        out = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    else:
        raise ValueError(f"unknown blur kernel {kernel!r}; use 'gaussian' or 'disk'")
    return out.reshape(img.shape)


def disk_kernel(radius: float) -> np.ndarray:
    """A normalised pillbox (MATLAB ``fspecial('disk')``-like: the pixel coverage of a disc, 8x supersampled)."""
    r = max(float(radius), 0.5)
    half = int(np.ceil(r))
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    ax = np.arange(-half, half + 1, dtype=np.float64)
    fine = (ax[:, None] + sub[None, :]).ravel()
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= r * r
    k = inside.reshape(2 * half + 1, 8, 2 * half + 1, 8).mean(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


def make_stack(truth: np.ndarray, n: int = 2, scale: int = 2, blur_sigma: float = 2.5, seed: int = 0,
               blur: str = "gaussian") -> SyntheticStack:
    """Split ``truth`` into ``n`` depth layers; input i is sharp on layer i, blurred by ``blur_sigma`` (HR pixels)
    times its layer distance elsewhere, then downsampled by ``scale`` (area averaging). ``blur``: the PSF,
    "gaussian" (``blur_sigma`` = standard deviation) or "disk" (``blur_sigma`` = pillbox radius)."""
    if truth.ndim == 2:
        truth = truth[:, :, None]
    h, w = truth.shape[:2]
    h, w = h - h % scale, w - w % scale
    truth = np.ascontiguousarray(truth[:h, :w]).astype(np.float32)
    rng = np.random.default_rng(seed)
    layers = layer_map((h, w), n, rng)
    inputs = []
    for i in range(n):
        out = np.empty_like(truth)
        for j in range(n):
            src = truth if i == j else defocus(truth, blur_sigma * abs(i - j), blur)
            out[layers == j] = src[layers == j]
        if scale > 1:
            out = cv2.resize(out, (w // scale, h // scale), interpolation=cv2.INTER_AREA).reshape(
                h // scale, w // scale, truth.shape[2])
        inputs.append(np.clip(out, 0.0, 1.0))
    return SyntheticStack(inputs, truth, layers, scale)


def make_dataset(src_dir: str | Path, out_dir: str | Path, *, n: int = 2, scale: int = 1, blur: str = "gaussian",
                 strength: float = 2.5, seed: int = 0, limit: int | None = None) -> list[Path]:
    """A synthetic multi-focus dataset with ground truth from a folder of all-in-focus images (FAP-SR Eq. 21).

    Image k (sorted by file name, 0-based, at most ``limit``) is split into ``n`` smooth random depth layers
    (seed ``seed + k``); source i is sharp on layer i and blurred by ``blur`` ("gaussian" or "disk") of strength
    ``strength`` times the layer distance elsewhere, then downsampled by ``scale``. Written as 8-bit PNG (16-bit
    for 16-bit originals) in ``out_dir`` as ``NN_A``/``NN_B`` (``n == 2``) or ``NN_1`` .. ``NN_n``, plus the
    all-in-focus ``NN_GT`` (cropped to a multiple of ``scale``). Returns every path written, in order.
    """
    from .errors import InputError
    from .io import IMAGE_SUFFIXES, read_image, write_image

    src, out = Path(src_dir), Path(out_dir)
    if not src.is_dir():
        raise InputError(f"source folder not found: {src}", "give a folder of all-in-focus images")
    if n < 2:
        raise InputError(f"a multi-focus item needs n >= 2 sources, got n={n}", "use --n 2 or more")
    if blur not in ("gaussian", "disk"):
        raise InputError(f"unknown blur kernel {blur!r}", "use gaussian or disk")
    if scale < 1 or strength <= 0:
        raise InputError(f"scale must be >= 1 and strength > 0 (got scale={scale}, strength={strength})",
                         "e.g. --scale 1 --strength 2.5")
    files = sorted(p for p in src.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        files = files[:max(int(limit), 0)]
    if not files:
        raise InputError(f"no images found in {src}", f"put images ({', '.join(sorted(IMAGE_SUFFIXES))}) there")
    width = max(2, len(str(len(files))))
    roles = ["A", "B"] if n == 2 else [str(i + 1) for i in range(n)]
    written: list[Path] = []
    for k, path in enumerate(files):
        truth, depth = read_image(path)
        h, w = truth.shape[:2]
        if min(h, w) < 8 * scale:
            raise InputError(f"{path.name} is only {w}x{h} pixels", f"use images of at least {8 * scale} pixels")
        st = make_stack(truth, n=n, scale=scale, blur_sigma=strength, seed=seed + k, blur=blur)
        nn = f"{k + 1:0{width}d}"
        for role, img in zip(roles, st.inputs):
            written.append(out / f"{nn}_{role}.png")
            write_image(written[-1], img, depth)
        written.append(out / f"{nn}_GT.png")
        write_image(written[-1], st.truth, depth)
    return written
