"""FAP-SR's speed: a 256x256 RGB pair fused and super-resolved to 512x512 (x2) or 1024x1024 (x4) by the `fapsr`
fuser with the shipped weights (issue 11's goal: <= 2 s for 256^2 -> 512^2 on the 2-core CPU), and the training
throughput in crops/s of each phase of the shipped spec (batch 4 of 128^2 high-resolution crops).

Inference: the centre 256x256 crop of Lytro pair 01 (a synthetic pair if ../shared/data is absent): FAPN maps,
hole filling, SRN per input, D2, chroma by the maps; median of ``--repeat`` calls after 2 warm-ups, per thread
count. Training: ``--steps`` timed steps after 3 warm-ups per phase on random supervised batches (data making not
included). ``--weights`` times your own weights (e.g. runs/train-fapsr-x2/weights.pt) instead.

    python benchmarks/fapsr_speed.py --threads 1 2
    python benchmarks/fapsr_speed.py --scale 4 --threads 2
    python benchmarks/fapsr_speed.py --device cuda
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_results  # noqa: E402
from udpnet_speed import pair, sync  # noqa: E402

from fusionkit.interfaces import TrainingBatch  # noqa: E402
from fusionkit_plugins.fapsr import FAPSR  # noqa: E402
from fusionkit_plugins.fapsr.losses import FusionLoss, GradientLoss, MaskLoss, ReconstructionLoss, SSIMLoss  # noqa: E402
from fusionkit_plugins.fapsr.roles import FAPSRFuser  # noqa: E402

PHASES = {"fapn": ["fapn"], "srn": ["srn"], "joint": ["srn", "fusion"]}


def time_inference(fuser: FAPSRFuser, device: torch.device, size: int, scale: int, repeat: int) -> float:
    x = pair(size).to(device)
    for _ in range(2):
        fuser.fuse(x, scale)
    times = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fuser.fuse(x, scale)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def supervised_batch(scale: int, batch: int, crop: int, phase: str, g: torch.Generator,
                     device: torch.device) -> TrainingBatch:
    """Random HR inputs, their block means as the LR inputs, binary masks: shapes as ``fusionkit train`` makes."""
    lo = crop // scale
    hr = torch.rand(batch, 2, 1, crop, crop, generator=g)
    masks = (torch.rand(batch, 1, 1, lo, lo, generator=g) > 0.5).float()
    masks = torch.cat([masks, 1 - masks], dim=1)
    sources = torch.nn.functional.avg_pool2d(hr.flatten(0, 2)[:, None], scale).view(batch, 2, 1, lo, lo)
    return TrainingBatch(sources.to(device), sources.mean(1).to(device), g, scale=scale, hr_sources=hr.to(device),
                         hr_truth=hr.mean(1).to(device), masks=masks.to(device), phase=phase)


def time_training(scale: int, device: torch.device, steps: int, batch: int = 4, crop: int = 128) -> dict:
    torch.manual_seed(0)
    model = FAPSR(params={"scale": scale}).to(device)
    losses = {"fapn": [(0.8, MaskLoss()), (0.1, GradientLoss()), (0.1, SSIMLoss())],
              "srn": [(1.0, ReconstructionLoss())], "joint": [(1.0, FusionLoss())]}
    groups = model.parameter_groups()
    rates = {}
    g = torch.Generator().manual_seed(0)
    for phase, trained in PHASES.items():
        params = [p for name in trained for p in groups[name].parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=1e-4)
        b = supervised_batch(scale, batch, crop, phase, g, device)
        times = []
        for i in range(steps + 3):
            sync(device)
            t0 = time.perf_counter()
            out = model.training_outputs(b)
            total = sum(w * fn(out, b) for w, fn in losses[phase])
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            sync(device)
            if i >= 3:
                times.append(time.perf_counter() - t0)
        rates[phase] = round(batch / statistics.median(times), 2)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--size", type=int, default=256, help="side of the low-resolution input crop")
    ap.add_argument("--weights", default=None, help="weights to time (default: the shipped fapsr-x{scale})")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    weights = args.weights or f"fusionkit_plugins.fapsr:fapsr-x{args.scale}"
    fuser = FAPSRFuser(params={"weights": weights, "scale": args.scale})
    rows = []
    for n in args.threads if device.type == "cpu" else [torch.get_num_threads()]:
        torch.set_num_threads(n)
        with torch.no_grad():
            s = time_inference(fuser, device, args.size, args.scale, args.repeat)
        rates = time_training(args.scale, device, args.steps)
        rows.append({"threads": n, "scale": args.scale, "fuse_seconds": round(s, 4),
                     "train_crops_per_s": rates})
        out_side = args.size * args.scale
        print(f"{device} threads {n}: fuse {args.size}^2 RGB pair -> {out_side}^2 in {s:.3f} s (median of "
              f"{args.repeat}); training crops/s (batch 4, 128^2 HR) " +
              ", ".join(f"{k} {v:.1f}" for k, v in rates.items()), flush=True)
    meta = {"device": str(device), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "size": args.size, "scale": args.scale, "torch": torch.__version__, "weights": weights}
    write_results(Path(args.out or ROOT / "bench-out" / f"fapsr_speed_x{args.scale}.json"), rows, meta)


if __name__ == "__main__":
    main()
