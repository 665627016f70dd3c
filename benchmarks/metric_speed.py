"""Seconds per metric on one real 520x520 pair (Lytro 01 from ../shared/data/lytro, fused by the mean of the two).

Every metric in the catalog is timed on the same (fused, sources, reference) triple: best of ``--repeats`` runs
after one warm-up, in every colour mode a metric's ``color`` parameter offers. The reference
for PSNR/SSIM is source A (the pair has no ground truth; the timing does not depend on the values).

    python benchmarks/metric_speed.py [--pair 01] [--repeats 3] [--threads 1] [--out bench-out/metric_speed.json]
"""
from __future__ import annotations

import argparse
import platform
import typing
import time
from pathlib import Path

import numpy as np
import torch

from _common import ROOT, data_dir, write_results
from fusionkit.io import read_image
from fusionkit.registry import default_catalog


def best_time(fn, repeats: int) -> tuple[float, float]:
    value = fn()  # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), float(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="01")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "metric_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    folder = data_dir("lytro")
    a, b = (read_image(next(folder.glob(f"{args.pair}_{k}.*")))[0] for k in "AB")
    fused = ((a + b) / 2).astype(np.float32)
    h, w = a.shape[:2]
    catalog = default_catalog()
    rows = []
    print(f"{'metric':<8} {'mode':<13} {'seconds':>9}  value   ({w}x{h}, {args.threads} thread(s))")
    for name in catalog.names("metric"):
        cls = catalog.get("metric", name).cls
        field = cls.Params.model_fields.get("color")
        modes = list(typing.get_args(field.annotation)) if field else [None]
        for mode in modes:
            metric = cls(color=mode) if mode else cls()
            reference = a if "reference" in getattr(cls, "requires", "") else None
            seconds, value = best_time(lambda: metric(fused, [a, b], reference), args.repeats)
            rows.append({"metric": name, "mode": mode or "as documented", "seconds": round(seconds, 4),
                         "value": value})
            print(f"{name:<8} {mode or 'as documented':<13} {seconds:9.4f}  {value:.4f}")
    meta = {"pair": args.pair, "size": [w, h], "threads": args.threads, "repeats": args.repeats,
            "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
    write_results(args.out, rows, meta)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
