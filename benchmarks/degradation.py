"""DFP and the baselines on NYU-D-MFF under several ways of making the low-resolution inputs (issue 14).

For every degradation in ``--degradations`` (default: area, bicubic, gauss-0.8, gauss-1.6, lanczos3), every pair is
evaluated exactly as ``quality_nyud.py`` does (its ``evaluate_pair``: centre crop, LR inputs made by the degradation,
each method's x``scale`` output scored against the GT crop, RGB): DFP (the default spec, plus any ``--variant``, e.g.
the estimated downsampler), the two-step baseline and every spec in examples/baselines/ (two-step Lanczos3 among
them), and the bicubic mean. One JSON (every row carries its ``lr_kernel``; meta describes each degradation) and one
markdown table: degradation x method, mean PSNR / SSIM, and DFP's lead over two-step Lanczos3.

    python benchmarks/degradation.py --pairs 8
    python benchmarks/degradation.py --pairs 8 --variant learned=downsampler.name=learned_kernel
    python benchmarks/degradation.py --pairs 1 --set iterations=20 --set refine.iterations=5   # smoke test
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEGRADATION_HELP, ROOT, data_dir, degradation, set_threads, write_results  # noqa: E402
from quality_nyud import evaluate_pair, pair_ids  # noqa: E402

from fusionkit.registry import default_catalog  # noqa: E402

DEFAULT = "area,bicubic,gauss-0.8,gauss-1.6,lanczos3"
#: the baseline DFP's lead is measured against (examples/baselines/two-step-lanczos3.yaml)
REFERENCE = "two_step_lanczos3"


def methods(rows: list[dict]) -> list[str]:
    """Method keys with scores, in first-seen order (``{key}_psnr`` columns)."""
    seen: list[str] = []
    for r in rows:
        for k in r:
            if k.endswith("_psnr") and k[:-5] not in seen:
                seen.append(k[:-5])
    return seen


def summary(rows: list[dict], dfp_names: list[str]) -> list[dict]:
    """Per degradation and method: mean PSNR/SSIM over the pairs that have it, and for DFP variants the lead over
    two-step Lanczos3 (mean of per-pair differences, and on how many pairs DFP is ahead)."""
    out = []
    for kernel in dict.fromkeys(r["lr_kernel"] for r in rows):
        sub = [r for r in rows if r["lr_kernel"] == kernel]
        for m in methods(sub):
            have = [r for r in sub if f"{m}_psnr" in r]
            item = {"degradation": kernel, "method": m, "pairs": len(have),
                    "psnr": float(np.mean([r[f"{m}_psnr"] for r in have])),
                    "ssim": float(np.mean([r[f"{m}_ssim"] for r in have]))}
            both = [r for r in have if f"{REFERENCE}_psnr" in r]
            if m in dfp_names and both:
                item["lead_psnr"] = float(np.mean([r[f"{m}_psnr"] - r[f"{REFERENCE}_psnr"] for r in both]))
                item["lead_ssim"] = float(np.mean([r[f"{m}_ssim"] - r[f"{REFERENCE}_ssim"] for r in both]))
                item["ahead_psnr"] = f"{sum(r[f'{m}_psnr'] > r[f'{REFERENCE}_psnr'] for r in both)}/{len(both)}"
                item["ahead_ssim"] = f"{sum(r[f'{m}_ssim'] > r[f'{REFERENCE}_ssim'] for r in both)}/{len(both)}"
                sig = [r[f"{m}_kernel_sigma_hr"] for r in have if f"{m}_kernel_sigma_hr" in r]
                if sig:
                    item["kernel_sigma_hr"] = float(np.mean(sig))
            out.append(item)
    return out


def markdown(table: list[dict], dfp_names: list[str]) -> str:
    kernels = list(dict.fromkeys(t["degradation"] for t in table))
    names = list(dict.fromkeys(t["method"] for t in table))
    cell = {(t["degradation"], t["method"]): t for t in table}
    head = ("| degradation | " + " | ".join(names) + " | "
            + " | ".join(f"{d} − {REFERENCE}" for d in dfp_names) + " |")
    lines = [head, "|" + "---|" * (1 + len(names) + len(dfp_names))]
    for k in kernels:
        parts = [k]
        for m in names:
            t = cell.get((k, m))
            parts.append("–" if t is None else f"{t['psnr']:.2f} / {t['ssim']:.4f}")
        for d in dfp_names:
            t = cell.get((k, d))
            parts.append("–" if t is None or "lead_psnr" not in t else
                         f"{t['lead_psnr']:+.2f} dB ({t['ahead_psnr']}) / {t['lead_ssim']:+.4f} ({t['ahead_ssim']})")
        lines.append("| " + " | ".join(parts) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--degradations", default=DEFAULT, help="comma-separated; each is " + DEGRADATION_HELP)
    ap.add_argument("--pairs", type=int, default=0, help="first N pairs (0 = all)")
    ap.add_argument("--only", type=str, default="", help="comma-separated pair ids, e.g. 01,05")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--crop", type=int, default=256, help="centre crop of the full-resolution images (0 = none)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="override for every DFP run (e.g. iterations=20)")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=OVERRIDE[;OVERRIDE...]: another DFP column, "
                         "e.g. learned=downsampler.name=learned_kernel")
    ap.add_argument("--dfp-spec", default=str(ROOT / "examples" / "dfp-x2.yaml"), help="its scale is overridden")
    ap.add_argument("--baseline-spec", default=str(ROOT / "examples" / "two-step-x2.yaml"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "degradation.json"))
    args = ap.parse_args()

    set_threads(args.threads)
    catalog = default_catalog()
    folder = data_dir("nyud-mff")
    ids = pair_ids(folder, args.pairs, args.only)
    kernels = [k.strip() for k in args.degradations.split(",") if k.strip()]
    common = [f"scale={args.scale}", "device=cpu", *args.overrides]
    variants = {"dfp": common}
    for v in args.variant:
        name, _, over = v.partition("=")
        if not name.isidentifier() or not over:
            sys.exit(f"--variant {v!r}: write NAME=OVERRIDE[;OVERRIDE...], NAME a Python identifier")
        variants[f"dfp_{name}"] = common + [o for o in over.split(";") if o]
    base_over = [f"scale={args.scale}", "device=cpu"]
    meta = {**vars(args), "degradations": {k: degradation(k, args.scale) for k in kernels},
            "variants": variants, "reference": REFERENCE}
    print(f"NYU-D-MFF, {len(ids)} pairs, crop {args.crop or 'none'}, x{args.scale}, degradations {kernels}, "
          f"DFP columns {list(variants)}", flush=True)
    rows: list[dict] = []
    for kernel in kernels:
        for pid in ids:
            t0 = time.perf_counter()
            row, extra = evaluate_pair(pid, folder, scale=args.scale, crop=args.crop, lr_kernel=kernel,
                                       catalog=catalog, dfp_spec=args.dfp_spec, dfp_variants=variants,
                                       baseline_spec=args.baseline_spec, base_over=base_over, all_baselines=True)
            rows.append(row)
            dfp = " | ".join(f"{n} {row[n + '_psnr']:.2f}/{row[n + '_ssim']:.4f}" for n in variants)
            ref = (f"{REFERENCE} {row[REFERENCE + '_psnr']:.2f}/{row[REFERENCE + '_ssim']:.4f}"
                   if REFERENCE + "_psnr" in row else f"{REFERENCE} n/a")
            print(f"[{kernel}] {pid}: {dfp} | {ref} | {', '.join(extra)} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
            write_results(Path(args.out), rows, meta)
    table = summary(rows, list(variants))
    write_results(Path(args.out), rows, {**meta, "summary": table})
    print(f"\nMean PSNR (dB) / SSIM over {len(ids)} pair(s), crop {args.crop or 'none'}, x{args.scale}; the last "
          f"column(s): mean per-pair lead over {REFERENCE} (pairs ahead)\n")
    print(markdown(table, list(variants)))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
