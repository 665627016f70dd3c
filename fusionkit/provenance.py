"""What produced a run: versions, device, seed, timings. Recorded in every run's ``manifest.json``."""
from __future__ import annotations

import platform
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata

import torch

_PACKAGES = ("fusionkit", "torch", "numpy", "opencv-python-headless", "opencv-python", "scikit-image", "pydantic",
             "pluggy", "rich", "PyYAML")


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def device_info(device: torch.device) -> dict:
    info = {"device": str(device), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        info.update(name=torch.cuda.get_device_name(idx), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    else:
        info.update(name=platform.processor() or platform.machine())
    return info


def environment(device: torch.device | None = None) -> dict:
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "cuda_available": torch.cuda.is_available(),
    }
    if device is not None:
        env["device"] = device_info(device)
    return env


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Timings:
    """Wall-clock seconds per named stage, in order."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - t0, 4)

    def as_dict(self) -> dict[str, float]:
        return {**self.stages, "total": round(sum(self.stages.values()), 4)}
