"""PSNR/SSIM against ground truth on NYU-D-MFF: DFP (default spec) vs the two-step baseline vs the mean.

Protocol: each full-resolution A, B and GT is centre-cropped (``--crop``, default 256; 0 = whole image), A and B
are downsampled x``--scale`` by ``--lr-kernel`` (default bicubic: fusionkit's antialiased resampler, as the
released DFP code's PIL bicubic; also ``area`` = OpenCV INTER_AREA, ``gauss-SIGMA``, any resampler name) to make the
low-resolution inputs, and every method's x``scale`` output is scored against the GT crop (RGB, data range 1). The
degradation and crop are printed and saved with the figures (``lr_kernel`` in every row, ``degradation`` in meta).
``benchmarks/degradation.py`` runs this per-pair evaluation over several degradations.

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
from _common import (DEGRADATION_HELP, ROOT, centre_crop, data_dir, degradation, downsample, score,  # noqa: E402
                     set_threads, write_results)

from fusionkit.errors import FusionkitError  # noqa: E402
from fusionkit.io import read_image  # noqa: E402
from fusionkit.registry import default_catalog  # noqa: E402
from fusionkit.runner import run  # noqa: E402


def pair_ids(folder: Path, pairs: int = 0, only: str = "") -> list[str]:
    ids = sorted(p.name.split("_")[0] for p in folder.glob("*_GT.*"))
    if only:
        ids = [i for i in ids if i in only.split(",")]
    return ids[:pairs] if pairs else ids


def load_pair(folder: Path, pid: str, crop: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def load(tag):
        path = next(folder.glob(f"{pid}_{tag}.*"))
        return centre_crop(read_image(path)[0], crop, scale)

    return load("A"), load("B"), load("GT")


def evaluate_pair(pid: str, folder: Path, *, scale: int, crop: int, lr_kernel: str, catalog,
                  dfp_spec: str | None, dfp_variants: dict[str, list[str]], baseline_spec: str,
                  base_over: list[str], all_baselines: bool) -> tuple[dict, list[str]]:
    """One pair under one degradation: every DFP variant (``{column: overrides}``, run from ``dfp_spec``), the
    two-step baseline, optionally every spec in examples/baselines/, and the bicubic mean. Returns the row (PSNR/SSIM
    per method, seconds, ``lr_kernel``) and the extra baselines' text for the log line. A baseline that cannot run
    here (e.g. enfuse not installed) is recorded as ``{key}_error``, not fatal."""
    import torch

    a, b, gt = load_pair(folder, pid, crop, scale)
    lr = [downsample(a, scale, lr_kernel, catalog), downsample(b, scale, lr_kernel, catalog)]
    row: dict = {"pair": pid, "lr_kernel": lr_kernel}
    for name, over in dfp_variants.items():
        t0 = time.perf_counter()
        res = run(dfp_spec, over, inputs=lr, catalog=catalog, write=False)
        row[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
        row[f"{name}_iterations"] = res.manifest["spec"]["iterations"]
        row.update({f"{name}_{k}": v for k, v in score(gt, res.fused).items()})
        for kern in (res.manifest.get("downsampler") or {}).get("kernels", []):   # an estimated kernel
            row[f"{name}_kernel_sigma_hr"] = kern["gaussian_sigma_hr"]
            row[f"{name}_kernel_centre_hr"] = kern["centre_of_mass_hr"]
    t0 = time.perf_counter()
    two = run(baseline_spec, base_over, inputs=lr, catalog=catalog, write=False)
    row["two_step_seconds"] = round(time.perf_counter() - t0, 2)
    row.update({f"two_step_{k}": v for k, v in score(gt, two.fused).items()})
    extra = []
    if all_baselines:
        for spec_path in sorted((ROOT / "examples" / "baselines").glob("*.yaml")):
            key = spec_path.stem.replace("-", "_")
            try:
                res = run(str(spec_path), [f"scale={scale}", "device=cpu"], inputs=lr, catalog=catalog,
                          write=False)
            except FusionkitError as exc:
                row[f"{key}_error"] = str(exc).splitlines()[0]
                extra.append(f"{spec_path.stem} n/a")
                continue
            row.update({f"{key}_{k}": v for k, v in score(gt, res.fused).items()})
            extra.append(f"{spec_path.stem} {row[key + '_psnr']:.2f}")
    up = catalog.get("resampler", "bicubic").cls()
    mean = torch.from_numpy(np.mean(lr, axis=0)).permute(2, 0, 1)[None]
    mean_up = up.up(mean, scale)[0].permute(1, 2, 0).numpy()
    row.update({f"mean_{k}": v for k, v in score(gt, mean_up).items()})
    return row, extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=0, help="first N pairs (0 = all)")
    ap.add_argument("--only", type=str, default="", help="comma-separated pair ids, e.g. 01,05")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--crop", type=int, default=256, help="centre crop of the full-resolution images (0 = none)")
    ap.add_argument("--lr-kernel", default="bicubic", help="what makes the LR inputs: " + DEGRADATION_HELP)
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

    set_threads(args.threads)
    catalog = default_catalog()
    folder = data_dir("nyud-mff")
    ids = pair_ids(folder, args.pairs, args.only)
    dfp_over = [f"scale={args.scale}", "device=cpu", *args.overrides]
    if args.iterations is not None:
        dfp_over.append(f"iterations={args.iterations}")
    base_over = [f"scale={args.scale}", "device=cpu", *args.baseline_overrides]
    print(f"NYU-D-MFF, {len(ids)} pairs, crop {args.crop or 'none'}, LR = {args.lr_kernel} down x{args.scale}, "
          f"DFP overrides: {dfp_over}")
    meta = {**vars(args), "degradation": degradation(args.lr_kernel, args.scale)}
    rows = []
    for pid in ids:
        row, extra = evaluate_pair(pid, folder, scale=args.scale, crop=args.crop, lr_kernel=args.lr_kernel,
                                   catalog=catalog, dfp_spec=args.dfp_spec,
                                   dfp_variants={} if args.no_dfp else {"dfp": dfp_over},
                                   baseline_spec=args.baseline_spec, base_over=base_over,
                                   all_baselines=args.all_baselines)
        rows.append(row)
        dfp_text = "" if args.no_dfp else (f"DFP {row['dfp_psnr']:.2f} dB / {row['dfp_ssim']:.4f} "
                                             f"({row['dfp_seconds']} s, {row['dfp_iterations']} it) | ")
        print(f"{pid}: {dfp_text}two-step {row['two_step_psnr']:.2f} / {row['two_step_ssim']:.4f} "
              f"({row['two_step_seconds']} s) | mean {row['mean_psnr']:.2f} / {row['mean_ssim']:.4f}"
              + "".join(f" | {e}" for e in extra), flush=True)
        write_results(Path(args.out), rows, meta)
    if rows:
        avg = {k: float(np.mean([r[k] for r in rows if k in r])) for k in rows[0]
               if isinstance(rows[0][k], (int, float))}
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
