"""``fusionkit demo``: a first run with no data: a synthetic multi-focus pair from a scikit-image sample, fused
at x2 with DFP's fast preset, scored against the ground truth beside the inputs and the two-step baseline."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio

from .engine import ProgressCallback
from .io import write_image
from .runner import RunResult, run
from .synthetic import make_stack, sample_image


@dataclass
class DemoReport:
    result: RunResult
    inputs_dir: Path
    psnr: dict[str, float]


def run_demo(out_dir: Path, *, iterations: int | None = None, size: int = 192, scale: int = 2,
             overrides: Sequence[str] = (), progress: ProgressCallback | None = None) -> DemoReport:
    stack = make_stack(sample_image("astronaut", size), n=2, scale=scale, blur_sigma=2.5, seed=0)
    inputs_dir = out_dir / "inputs"
    paths = []
    for name, img in (("A", stack.inputs[0]), ("B", stack.inputs[1]), ("GT", stack.truth)):
        write_image(inputs_dir / f"{name}.png", img, 8)
        paths.append(str(inputs_dir / f"{name}.png"))
    # the fast preset: a first run should take about a minute on a laptop (docs/performance.md)
    spec = {"name": "demo", "preset": "fast", "inputs": paths[:2], "scale": scale,
            "output": {"dir": str(out_dir / "run")}}
    if iterations is not None:
        spec["iterations"] = iterations
    result = run(spec, overrides, progress=progress)
    baseline = run({**spec, "method": "composite", "decision_embedding": {"enabled": False}}, overrides,
                   write=False)
    truth = stack.truth
    h, w = truth.shape[:2]

    def psnr(img: np.ndarray) -> float:
        return float(peak_signal_noise_ratio(truth, img.reshape(truth.shape), data_range=1.0))

    scores = {"DFP (fused)": psnr(result.fused), "two-step baseline": psnr(baseline.fused)}
    for name, img in zip(("input A, bicubic", "input B, bicubic"), stack.inputs):
        scores[name] = psnr(np.clip(cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1))
    return DemoReport(result, inputs_dir, scores)
