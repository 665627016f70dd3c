"""UDPNet's speed: fusing one 512x512 RGB pair (the paper's Table I reports 0.022 s on a GTX 1080 Ti), and the
training throughput in crops/s (the shipped spec's step: batch 16 of 60x60 luma crops, the three losses, Adam).

Inference: the `udpnet` fuser with the shipped weights on the centre 512x512 crop of Lytro pair 01 (a synthetic
pair if ../shared/data is absent): max-gradient masks, F is not run, G's 3 stages, Eq. 1 on luma and chroma;
median of ``--repeat`` calls after 2 warm-ups, per thread count. Training: ``--steps`` timed steps after 3 warm-ups
on random crops (the data loading of ``fusionkit train`` is not included; it is ~1 ms per batch).

    python benchmarks/udpnet_speed.py --threads 1 2
    python benchmarks/udpnet_speed.py --device cuda
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED, write_results  # noqa: E402

from fusionkit.interfaces import TrainingBatch  # noqa: E402
from fusionkit.io import read_image  # noqa: E402
from fusionkit_plugins.udpnet import BlindSpotMaskLoss, FusionConsistencyLoss, StageMaskLoss, UDPNet  # noqa: E402
from fusionkit_plugins.udpnet.roles import UDPNetFuser  # noqa: E402


def pair(size: int) -> torch.Tensor:
    folder = SHARED / "data" / "lytro"
    if folder.is_dir():
        imgs = [read_image(folder / f"01_{r}.jpg")[0] for r in "AB"]
    else:
        from fusionkit.synthetic import make_stack, sample_image
        imgs = make_stack(sample_image("astronaut", size), n=2, scale=1, seed=0).inputs
    h, w = imgs[0].shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return torch.from_numpy(np.stack([im[y:y + size, x:x + size] for im in imgs])).permute(0, 3, 1, 2).contiguous()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_inference(device: torch.device, size: int, repeat: int) -> float:
    fuser = UDPNetFuser()
    x = pair(size).to(device)
    for _ in range(2):
        fuser(x)
    times = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fuser(x)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_training(device: torch.device, steps: int, batch: int = 16, crop: int = 60) -> float:
    torch.manual_seed(0)
    model = UDPNet().to(device)
    losses = [(1.0, BlindSpotMaskLoss()), (0.2, StageMaskLoss()), (0.2, FusionConsistencyLoss())]
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    g = torch.Generator().manual_seed(0)
    sources = torch.rand(batch, 2, 1, crop, crop, generator=g).to(device)
    times = []
    for i in range(steps + 3):
        sync(device)
        t0 = time.perf_counter()
        b = TrainingBatch(sources, None, g)
        out = model.training_outputs(b)
        total = sum(w * fn(out, b) for w, fn in losses)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "udpnet_speed.json"))
    args = ap.parse_args()
    device = torch.device(args.device)
    rows = []
    for n in args.threads if device.type == "cpu" else [torch.get_num_threads()]:
        torch.set_num_threads(n)
        with torch.no_grad():
            s = time_inference(device, args.size, args.repeat)
        rate = time_training(device, args.steps)
        rows.append({"threads": n, "fuse_seconds": round(s, 4), "train_crops_per_s": round(rate, 2)})
        print(f"{device} threads {n}: fuse {args.size}^2 RGB pair {s:.3f} s (median of {args.repeat}); "
              f"training {rate:.1f} crops/s (batch 16, 60^2)", flush=True)
    meta = {"device": str(device), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "size": args.size, "torch": torch.__version__, "weights": "built-in"}
    write_results(Path(args.out), rows, meta)


if __name__ == "__main__":
    main()
