"""PSNR/SSIM against ground truth on NYU-D-MFF: DFP (default spec) vs the two-step baseline vs the mean.

Protocol: each full-resolution A, B and GT is centre-cropped (``--crop``, default 256; 0 = whole image), A and B
are downsampled x``--scale`` by the fusionkit resampler ``--lr-kernel`` (default bicubic, antialiased, as the
released DFP code's PIL bicubic) to make the low-resolution inputs, and every method's x``scale`` output is scored
against the GT crop (RGB, data range 1). The resampler and crop are printed and saved with the figures.

    python benchmarks/quality_nyud.py --pairs 8 --iterations 1000
    python benchmarks/quality_nyud.py --set generator.residual=true --tag residual
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, centre_crop, data_dir, downsample, score, write_results  # noqa: E402

from fusionkit.io import read_image  # noqa: E402
from fusionkit.registry import default_catalog  # noqa: E402
from fusionkit.runner import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=0, help="first N pairs (0 = all)")
    ap.add_argument("--only", type=str, default="", help="comma-separated pair ids, e.g. 01,05")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--crop", type=int, default=256, help="centre crop of the full-resolution images (0 = none)")
    ap.add_argument("--lr-kernel", default="bicubic", help="resampler that makes the LR inputs")
    ap.add_argument("--iterations", type=int, default=None, help="override DFP iterations")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override for the DFP spec")
    ap.add_argument("--dfp-spec", default=str(ROOT / "examples" / "dfp-x2.yaml"), help="its scale is overridden")
    ap.add_argument("--baseline-spec", default=str(ROOT / "examples" / "two-step-x2.yaml"))
    ap.add_argument("--baseline-set", dest="baseline_overrides", action="append", default=[],
                    help="override for the two-step spec (e.g. decision_embedding.enabled=true)")
    ap.add_argument("--all-baselines", action="store_true",
                    help="also run every spec in examples/baselines/ (columns named after each spec)")
    ap.add_argument("--no-dfp", action="store_true", help="only the baselines (fast)")
    ap.add_argument("--tag", default="default", help="label for this configuration in the results")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "quality_nyud.json"))
    args = ap.parse_args()

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    catalog = default_catalog()
    folder = data_dir("nyud-mff")
    ids = sorted(p.name.split("_")[0] for p in folder.glob("*_GT.*"))
    if args.only:
        ids = [i for i in ids if i in args.only.split(",")]
    if args.pairs:
        ids = ids[:args.pairs]
    dfp_over = [f"scale={args.scale}", "device=cpu", *args.overrides]
    if args.iterations is not None:
        dfp_over.append(f"iterations={args.iterations}")
    base_over = [f"scale={args.scale}", "device=cpu", *args.baseline_overrides]
    print(f"NYU-D-MFF, {len(ids)} pairs, crop {args.crop or 'none'}, LR = {args.lr_kernel} down x{args.scale}, "
          f"DFP overrides: {dfp_over}")
    rows = []
    for pid in ids:
        def load(tag):
            path = next(folder.glob(f"{pid}_{tag}.*"))
            return centre_crop(read_image(path)[0], args.crop, args.scale)

        a, b, gt = load("A"), load("B"), load("GT")
        lr = [downsample(a, args.scale, args.lr_kernel, catalog), downsample(b, args.scale, args.lr_kernel, catalog)]
        row = {"pair": pid}
        if not args.no_dfp:
            t0 = time.perf_counter()
            dfp = run(args.dfp_spec, dfp_over, inputs=lr, catalog=catalog, write=False)
            row["dfp_seconds"] = round(time.perf_counter() - t0, 1)
            row["dfp_iterations"] = dfp.manifest["spec"]["iterations"]
            row.update({f"dfp_{k}": v for k, v in score(gt, dfp.fused).items()})
        t0 = time.perf_counter()
        two = run(args.baseline_spec, base_over, inputs=lr, catalog=catalog, write=False)
        row["two_step_seconds"] = round(time.perf_counter() - t0, 2)
        row.update({f"two_step_{k}": v for k, v in score(gt, two.fused).items()})
        extra = []
        if args.all_baselines:
            for spec_path in sorted((ROOT / "examples" / "baselines").glob("*.yaml")):
                res = run(str(spec_path), [f"scale={args.scale}", "device=cpu"], inputs=lr, catalog=catalog,
                          write=False)
                key = spec_path.stem.replace("-", "_")
                row.update({f"{key}_{k}": v for k, v in score(gt, res.fused).items()})
                extra.append(f"{spec_path.stem} {row[key + '_psnr']:.2f}")
        up = catalog.get("resampler", "bicubic").cls()
        import torch

        mean = torch.from_numpy(np.mean(lr, axis=0)).permute(2, 0, 1)[None]
        mean_up = up.up(mean, args.scale)[0].permute(1, 2, 0).numpy()
        row.update({f"mean_{k}": v for k, v in score(gt, mean_up).items()})
        rows.append(row)
        dfp_text = "" if args.no_dfp else (f"DFP {row['dfp_psnr']:.2f} dB / {row['dfp_ssim']:.4f} "
                                             f"({row['dfp_seconds']} s, {row['dfp_iterations']} it) | ")
        print(f"{pid}: {dfp_text}two-step {row['two_step_psnr']:.2f} / {row['two_step_ssim']:.4f} "
              f"({row['two_step_seconds']} s) | mean {row['mean_psnr']:.2f} / {row['mean_ssim']:.4f}"
              + "".join(f" | {e}" for e in extra), flush=True)
        write_results(Path(args.out), rows, vars(args))
    if rows:
        avg = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "pair"}
        dfp_text = "" if args.no_dfp else (f"DFP {avg['dfp_psnr']:.2f} dB / {avg['dfp_ssim']:.4f} "
                                             f"({avg['dfp_seconds']:.0f} s/pair) | ")
        wins = "" if args.no_dfp else f" | DFP > two-step on {sum(r['dfp_psnr'] > r['two_step_psnr'] for r in rows)}" \
                                      f"/{len(rows)} pairs"
        print(f"AVERAGE over {len(rows)} pairs [{args.tag}]: {dfp_text}two-step {avg['two_step_psnr']:.2f} / "
              f"{avg['two_step_ssim']:.4f} | mean {avg['mean_psnr']:.2f} / {avg['mean_ssim']:.4f}{wins}")
        for key in sorted(k[:-5] for k in avg if k.endswith("_psnr") and k[:-5] not in ("dfp", "two_step", "mean")):
            print(f"  {key}: {avg[key + '_psnr']:.2f} dB / {avg[key + '_ssim']:.4f}")


if __name__ == "__main__":
    main()
