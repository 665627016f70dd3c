"""Helpers shared by the benchmark scripts (data discovery, LR generation, scoring, result tables)."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FUSIONKIT_SHARED", ROOT.parent / "shared"))


def set_threads(n: int, interop: bool = False) -> None:
    """``--threads N``: N torch threads (and N inter-op threads with ``interop``); 0 leaves torch's default."""
    if n:
        torch.set_num_threads(n)
        if interop:
            torch.set_num_interop_threads(n)


def data_dir(name: str) -> Path:
    d = SHARED / "data" / name
    if not d.is_dir():
        sys.exit(f"benchmark data not found: {d} (set FUSIONKIT_SHARED to the folder holding data/)")
    return d


def centre_crop(img: np.ndarray, size: int | None, multiple: int) -> np.ndarray:
    h, w = img.shape[:2]
    ch = min(h, size) if size else h
    cw = min(w, size) if size else w
    ch, cw = ch - ch % multiple, cw - cw % multiple
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y:y + ch, x:x + cw])


#: ways of making the LR inputs besides the fusionkit resampler names (``--lr-kernel``)
DEGRADATION_HELP = ("a fusionkit resampler name (bicubic: antialiased Keys a=-0.5, lanczos3, lanczos2, box, ...), "
                    "'area' (OpenCV INTER_AREA) or 'gauss-SIGMA' (Gaussian blur of SIGMA HR pixels centred on each LR "
                    "pixel, then decimation, e.g. gauss-0.8)")


def _gauss_sigma(kernel: str) -> float | None:
    m = re.fullmatch(r"gauss-(\d+(?:\.\d+)?)", kernel)
    return float(m.group(1)) if m else None


def degradation(kernel: str, factor: int) -> dict:
    """How ``downsample(..., kernel)`` makes the LR inputs, as recorded with the figures."""
    if kernel == "area":
        return {"name": kernel, "factor": factor, "kind": "area",
                "how": f"cv2.resize INTER_AREA (x{factor} block mean)"}
    sigma = _gauss_sigma(kernel)
    if sigma is not None:
        from fusionkit_plugins.upsamplers import kernels

        taps = kernels.gaussian_taps(sigma, factor)
        return {"name": kernel, "factor": factor, "kind": "gaussian", "sigma_hr": sigma,
                "how": f"separable Gaussian sigma {sigma} HR px on the LR pixel centres ({taps.numel()} taps, "
                       f"replicated borders), stride {factor}"}
    return {"name": kernel, "factor": factor, "kind": "resampler",
            "how": f"fusionkit resampler {kernel!r} down (antialiased, replicated borders)"}


def downsample(img: np.ndarray, factor: int, kernel: str, catalog) -> np.ndarray:
    """LR input ``[h, w, C]`` from ``img`` ``[H, W, C]`` by ``kernel`` (see :data:`DEGRADATION_HELP`; recorded with
    every figure through :func:`degradation`)."""
    h, w = img.shape[:2]
    if kernel == "area":
        import cv2

        lr = cv2.resize(img, (w // factor, h // factor), interpolation=cv2.INTER_AREA).reshape(
            h // factor, w // factor, img.shape[2])
        return np.clip(lr, 0, 1).astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    sigma = _gauss_sigma(kernel)
    with torch.no_grad():
        if sigma is not None:
            from fusionkit_plugins.upsamplers import kernels
            from fusionkit_plugins.upsamplers.separable import separable_down

            lr = separable_down(t, kernels.gaussian_taps(sigma, factor), factor)
        else:
            if kernel.startswith("gauss"):
                sys.exit(f"unknown degradation {kernel!r}: write gauss-SIGMA, e.g. gauss-0.8")
            lr = catalog.get("resampler", kernel).cls().down(t, factor)
    return np.clip(lr[0].permute(1, 2, 0).numpy(), 0, 1).astype(np.float32)


def score(truth: np.ndarray, img: np.ndarray) -> dict[str, float]:
    img = np.clip(img.reshape(truth.shape), 0, 1)
    return {
        "psnr": float(peak_signal_noise_ratio(truth, img, data_range=1.0)),
        "ssim": float(structural_similarity(truth, img, data_range=1.0, channel_axis=2 if truth.ndim == 3 else None)),
    }


def write_results(path: Path, rows: list[dict], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    os.replace(tmp, path)
