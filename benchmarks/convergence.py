"""Quality against time while DFP runs: PSNR of the current result at every record point of the fusion loop, and
how much the decision embedding's binarised maps still change, on NYU-D-MFF x``scale`` (the quality_nyud protocol).

This is how the stopping rule, the schedule, iterate averaging, precision and the presets were chosen
(docs/performance.md): one JSON line per (configuration, pair) with the PSNR/SSIM curve, the loop's own losses, the
stop decisions and the timings. The ground truth is only read here, by the benchmark, never by the engine.

    python benchmarks/convergence.py --pairs 6 --config base= --config ema=output_average=0.99 --threads 1
    python benchmarks/convergence.py --only 01,07 --config "cos=optimizer.schedule=cosine;optimizer.lr=0.002"

A configuration is ``NAME=override;override;...`` (``--set`` syntax). Rows already in the output file are skipped,
so an interrupted sweep resumes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, centre_crop, data_dir, downsample, score  # noqa: E402

from fusionkit.engine import fuse, resolve_device  # noqa: E402
from fusionkit.io import read_image, stack_from_arrays  # noqa: E402
from fusionkit.registry import default_catalog  # noqa: E402
from fusionkit.validation import load_spec  # noqa: E402


def nyud_pairs(ids: list[str], crop: int, scale: int, kernel: str, catalog):
    folder = data_dir("nyud-mff")
    for pid in ids:
        def load(tag):
            return centre_crop(read_image(next(folder.glob(f"{pid}_{tag}.*")))[0], crop, scale)

        a, b, gt = load("A"), load("B"), load("GT")
        yield pid, [downsample(a, scale, kernel, catalog), downsample(b, scale, kernel, catalog)], gt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=0, help="first N pairs (0 = all)")
    ap.add_argument("--only", default="", help="comma-separated pair ids")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr-kernel", default="bicubic")
    ap.add_argument("--spec", default=str(ROOT / "examples" / "dfp-x2.yaml"))
    ap.add_argument("--config", action="append", default=[], help="NAME=override;override (repeatable)")
    ap.add_argument("--ssim", action="store_true", help="also SSIM at every record point (slower)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "convergence.jsonl"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    catalog = default_catalog()
    ids = sorted(p.name.split("_")[0] for p in data_dir("nyud-mff").glob("*_GT.*"))
    if args.only:
        ids = [i for i in ids if i in args.only.split(",")]
    if args.pairs:
        ids = ids[:args.pairs]
    configs = []
    for c in args.config or ["base="]:
        name, _, rest = c.partition("=")
        configs.append((name, [o for o in rest.split(";") if o]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["config"], r["pair"]))
    for pid, lr, gt in nyud_pairs(ids, args.crop, args.scale, args.lr_kernel, catalog):
        for name, overrides in configs:
            if (name, pid) in done:
                continue
            spec = load_spec(args.spec, [f"scale={args.scale}", "device=cpu", f"threads={args.threads}",
                                         *overrides], catalog=catalog, require_inputs=False).spec
            curve, maps_seen = [], []
            spent = [0.0]

            def observe(stage, it, seconds, image):
                t0 = time.perf_counter()
                if stage == "fusion":
                    img = image()
                    point = {"iteration": it, "seconds": round(seconds, 3),
                             "psnr": score(gt, img)["psnr"] if not args.ssim else None}
                    if args.ssim:
                        point.update(score(gt, img))
                    curve.append(point)
                else:
                    maps_seen.append((it, seconds, image()[0] > 0.5))
                spent[0] += time.perf_counter() - t0

            t0 = time.perf_counter()
            res = fuse(spec, catalog, stack_from_arrays(lr), device=resolve_device("cpu"), observe=observe)
            wall = time.perf_counter() - t0 - spent[0]
            final_maps = res.maps[0] > 0.5
            emb = [{"iteration": it, "seconds": round(sec, 3),
                    "changed": float(np.mean(m != final_maps))} for it, sec, m in maps_seen]
            row = {"config": name, "overrides": overrides, "pair": pid, "wall": round(wall, 2),
                   "timings": res.timings, "stops": res.stops, **score(gt, res.fused), "curve": curve,
                   "embedding": emb, "loss": res.loss_history}
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{pid} {name:<14} PSNR {row['psnr']:.3f} SSIM {row['ssim']:.4f} wall {wall:6.1f} s "
                  f"stops {json.dumps({k: (v['reason'], v['iteration']) for k, v in res.stops.items()})}",
                  flush=True)


if __name__ == "__main__":
    main()
