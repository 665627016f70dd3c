"""Turning fused/sources into the arrays a metric computes on, the way the reference toolboxes do.

One copy for every metric module, because the published per-image values are only reproduced when each metric sees
exactly the images MATLAB saw: 8-bit values scaled to 0-255, ``rgb2gray`` rounded to 8 bits, ``round`` going half
away from zero and the toolbox's ``normalize1``.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from fusionkit.interfaces import Metric, Params, UnsupportedInput

#: MATLAB ``rgb2gray`` weights (the first row of the inverse of the YIQ-like matrix MATLAB uses).
RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


# ---------------------------------------------------------------------------------------------------- rounding


def round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: halves go away from zero (numpy's ``round`` goes to even).

    Exact for every double; ``floor(|x| + 0.5)`` is not (it rounds 0.49999999999999994 up)."""
    a = np.abs(x)
    r = np.floor(a)
    r = r + ((a - r) >= 0.5)
    return np.copysign(r, x)


def to_8bit(y: np.ndarray) -> np.ndarray:
    """What saving 0-255 values as uint8 keeps: clipped to [0, 255], rounded half away from zero."""
    return round_half_away(np.clip(y, 0.0, 255.0))


def rgb2gray(x: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray``'s weighted sum of an ``[H, W, 3]`` image, in the image's own scale (not rounded)."""
    return RGB2GRAY[0] * x[:, :, 0] + RGB2GRAY[1] * x[:, :, 1] + RGB2GRAY[2] * x[:, :, 2]


def normalize1(x: np.ndarray) -> np.ndarray:
    """The toolbox's ``normalize1``: min-max stretch to 0-255 and round half away from zero (float64 result).

    An all-zero image is returned unchanged; a constant non-zero image (MATLAB: 0/0 = NaN) becomes all zeros."""
    mx, mn = float(x.max()), float(x.min())
    if mx == 0.0 and mn == 0.0:
        return x.astype(np.float64)
    if mx == mn:
        return np.zeros(x.shape, dtype=np.float64)
    return round_half_away((x - mn) / (mx - mn) * 255.0)


# -------------------------------------------------------------------------------------------------- validation


def as_image(x: Any, who: str, label: str) -> np.ndarray:
    """A float64 ``[H, W]`` or ``[H, W, 3]`` array (``[H, W, 1]`` is squeezed), or :class:`UnsupportedInput`."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UnsupportedInput(f"{who}: {label} is not a numeric array ({exc})",
                               "pass numpy float images in [0, 1]") from exc
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise UnsupportedInput(f"{who}: {label} has shape {arr.shape}; expected [H, W] or [H, W, 3]",
                               "pass grey [H, W] or RGB [H, W, 3] images")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UnsupportedInput(f"{who}: {label} is empty ({arr.shape})", "pass non-empty images")
    if not np.isfinite(arr).all():
        raise UnsupportedInput(f"{who}: {label} contains NaN or infinite values", "check how the images were made")
    return arr


def check_same_size(who: str, fused: np.ndarray, others: list[np.ndarray], label: str) -> None:
    h, w = fused.shape[:2]
    for i, s in enumerate(others):
        if s.shape[:2] != (h, w):
            raise UnsupportedInput(f"{who}: {label} {i} is {s.shape[0]}x{s.shape[1]} but the fused image is {h}x{w}",
                                   "resample to the fused image's size first")


def as_sources(sources: Any, who: str, fused: np.ndarray, minimum: int, maximum: int | None = None
               ) -> list[np.ndarray]:
    """The sources as a list of images of the fused image's size (a stacked ``[N, H, W(, C)]`` array is split)."""
    if sources is None:
        sources = []
    if isinstance(sources, np.ndarray) and (
            sources.ndim == 4 or (sources.ndim == 3 and sources.shape[1:] == fused.shape[:2])):
        sources = list(sources)
    if not isinstance(sources, (list, tuple)):
        raise UnsupportedInput(f"{who}: sources must be a sequence of images; got {type(sources).__name__}",
                               "pass a list of numpy images")
    srcs = [as_image(s, who, f"source {i}") for i, s in enumerate(sources)]
    n = len(srcs)
    if n < minimum:
        raise UnsupportedInput(f"{who} needs at least {minimum} source{'s' if minimum != 1 else ''}; got {n}",
                               "give the images the fused one was made from")
    if maximum is not None and n > maximum:
        raise UnsupportedInput(
            f"{who} is defined for exactly {maximum} sources (its pooling compares A with B); got {n}",
            "evaluate with a metric that supports N sources (q_g, mi, q_ncie), or evaluate pairs of sources")
    check_same_size(who, fused, srcs, "source")
    return srcs


# ------------------------------------------------------------------------------- the toolboxes' grey planes


class ColourParams(Params):
    """The colour and 8-bit conventions every source-based toolbox metric shares."""

    color: Literal["gray", "channel_mean"] = Field(
        "gray", description="colour handling. gray: MATLAB rgb2gray (0.298936 R + 0.587043 G + 0.114021 B, rounded "
        "to 8 bits when quantize) on each RGB image, then one grey evaluation (Yu Liu's survey: reproduces the "
        "published Lytro values); channel_mean: evaluate each RGB channel and average the three scores "
        "(VIFB/MFIFB/MEFB/FAPSR)")
    quantize: bool = Field(
        True, description="round 255*x to integers (half away from zero) before evaluating, as the MATLAB toolbox "
        "sees 8-bit files; False keeps 255*x unrounded")


def prepare(fused: Any, sources: Any, params: ColourParams, who: str, *, max_sources: int | None = None,
            min_size: int = 1) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Validate the images and turn them into the planes to evaluate: a list of ``(F, [S_1 .. S_N])`` float64 grey
    planes in 0-255, one entry for ``color="gray"`` and three for ``color="channel_mean"`` with an RGB image."""
    f = as_image(fused, who, "the fused image")
    srcs = as_sources(sources, who, f, minimum=2, maximum=max_sources)
    h, w = f.shape[:2]
    if h < min_size or w < min_size:
        raise UnsupportedInput(f"{who} needs images of at least {min_size}x{min_size}; got {h}x{w}",
                               "evaluate on larger images")
    q = params.quantize
    imgs = [to_8bit(x * 255.0) if q else x * 255.0 for x in [f, *srcs]]
    if params.color == "gray":
        planes = [(to_8bit(rgb2gray(x)) if q else rgb2gray(x)) if x.ndim == 3 else x for x in imgs]
        return [(planes[0], planes[1:])]
    if all(x.ndim == 2 for x in imgs):
        return [(imgs[0], imgs[1:])]
    out = []
    for c in range(3):
        planes = [x[:, :, c] if x.ndim == 3 else x for x in imgs]
        out.append((planes[0], planes[1:]))
    return out


class PlaneMetric(Metric):
    """Validation, scaling and colour handling for toolbox metrics; subclasses implement ``_score`` on grey planes
    and the score of an RGB image under ``channel_mean`` is the mean over its planes."""

    Params: ClassVar[type[Params]] = ColourParams
    ideal: ClassVar[float | None] = None
    #: the most sources the metric is defined for (None: any N >= 2)
    max_sources: ClassVar[int | None] = None
    #: the smallest image side it accepts
    min_size: ClassVar[int] = 1

    def __call__(self, fused: Any, sources: Any, reference: Any = None) -> float:
        planes = prepare(fused, sources, self.params, self.name, max_sources=self.max_sources,
                         min_size=self.min_size)
        return float(np.mean([self._score(f, s) for f, s in planes]))

    def _score(self, f: np.ndarray, sources: list[np.ndarray]) -> float:  # pragma: no cover - abstract
        raise NotImplementedError
