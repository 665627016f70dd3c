"""Synthetic multi-focus stacks with ground truth, made from any all-in-focus image.

Used by ``fusionkit demo`` (no data needed: a scikit-image sample) and by the tests. A smooth random field,
thresholded, splits the scene into depth layers; input i is sharp on layer i and Gaussian-blurred elsewhere
(the defocus model of FAP-SR Eq. 21 with a Gaussian PSF). Low-resolution inputs are made by an antialiased
downsampler so the ground truth is the full-resolution all-in-focus image.
"""
from __future__ import annotations

from dataclasses import dataclass

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


def defocus(img: np.ndarray, sigma: float) -> np.ndarray:
    out = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    return out.reshape(img.shape)


def make_stack(truth: np.ndarray, n: int = 2, scale: int = 2, blur_sigma: float = 2.5, seed: int = 0) -> SyntheticStack:
    """Split ``truth`` into ``n`` depth layers; input i is sharp on layer i, blurred by ``blur_sigma`` (HR pixels)
    times its layer distance elsewhere, then downsampled by ``scale`` (area averaging)."""
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
            src = truth if i == j else defocus(truth, blur_sigma * abs(i - j))
            out[layers == j] = src[layers == j]
        if scale > 1:
            out = cv2.resize(out, (w // scale, h // scale), interpolation=cv2.INTER_AREA).reshape(
                h // scale, w // scale, truth.shape[2])
        inputs.append(np.clip(out, 0.0, 1.0))
    return SyntheticStack(inputs, truth, layers, scale)
