"""Helpers shared by the benchmark scripts (data discovery, LR generation, scoring, result tables)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FUSIONKIT_SHARED", ROOT.parent / "shared"))


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


def downsample(img: np.ndarray, factor: int, kernel: str, catalog) -> np.ndarray:
    """LR input by the named fusionkit resampler's antialiased ``down`` (recorded with every figure)."""
    res = catalog.get("resampler", kernel).cls()
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    with torch.no_grad():
        lr = res.down(t, factor)[0].permute(1, 2, 0).numpy()
    return np.clip(lr, 0, 1).astype(np.float32)


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
