"""Does warm-starting DFP from a fuser help? NYU-D-MFF xs against the ground truth, DFP with and without
``generator.warm_start=<fuser>`` at several iteration budgets: PSNR/SSIM (RGB, data range 1) and seconds per pair.

The protocol is benchmarks/quality_nyud.py's (centre crop, LR inputs made by ``--lr-kernel``, every output scored
against the GT crop), and each pair goes through its ``evaluate_pair``. Columns per pair: ``cold_K`` (DFP from
``--dfp-spec`` with ``--preset`` at K iterations, its own first guess), ``warm_K`` (the same with the warm start:
``generator.warm_start`` = the fuser, ``generator.input=first_guess`` and/or ``generator.residual=true`` by
``--use``), ``fuser`` (the fuser alone, ``method: fuser``: the first guess's own quality), the two-step baseline and
the bicubic mean. The table answers the two questions: does the warm start raise the quality at a budget, and at
which cold budget does DFP reach what the warm start reaches at K (the schedule it saves).

    python benchmarks/warm_start.py --fuser udpnet --iterations 100,300,600 --pairs 8
    python benchmarks/warm_start.py --fuser '{name: fapsr, params: {weights: runs/train/fapsr-x2/weights.pt}}'
    python benchmarks/warm_start.py --fuser udpnet --warm-set optimizer.lr=5e-4 --tag lr5e-4
    python benchmarks/warm_start.py --fuser udpnet --pairs 1 --iterations 2 --crop 64 --smoke   # a quick check

Rows go to ``--out`` (JSONL, one line per pair and column, appended as each pair finishes).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEGRADATION_HELP, ROOT, data_dir, degradation, set_threads  # noqa: E402
from quality_nyud import evaluate_pair, pair_ids  # noqa: E402

from fusionkit.registry import default_catalog  # noqa: E402


def fuser_ref(text: str) -> dict:
    """``udpnet`` or a YAML mapping ``{name: fapsr, params: {...}}`` -> a component reference."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        return {"name": value, "params": {}}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return {"name": value["name"], "params": dict(value.get("params") or {})}
    sys.exit(f"--fuser: expected a fuser name or {{name: ..., params: {{...}}}}, got {text!r}")


def flow(ref: dict) -> str:
    """A component reference as a one-line YAML mapping, for ``--set``."""
    return yaml.safe_dump(ref, default_flow_style=True, width=10**6).strip()


def variants(args, ref: dict, budgets: list[int]) -> dict[str, list[str]]:
    """``{column: overrides}``: cold and warm DFP at every budget, and the fuser alone."""
    common = [f"scale={args.scale}", "device=cpu", f"preset={args.preset}", *args.overrides]
    warm = [f"generator.warm_start={flow(ref)}", *args.warm_overrides]
    if args.use in ("input", "both"):
        warm.append("generator.input=first_guess")
    if args.use in ("residual", "both"):
        warm.append("generator.residual=true")
    out: dict[str, list[str]] = {}
    for k in budgets:
        if args.smoke:   # the schedule's other loops as small as the generator's
            common_k = [*common, f"iterations={k}", f"refine.iterations={k}"]
        else:
            common_k = [*common, f"iterations={k}"]
        out[f"cold_{k}"] = common_k
        out[f"warm_{k}"] = [*common_k, *warm]
    out["fuser"] = [f"scale={args.scale}", "device=cpu", "method=fuser", f"fuser={flow(ref)}"]
    return out


def table(rows: list[dict], budgets: list[int]) -> str:
    """Mean PSNR / SSIM / seconds per pair of every column, and the cold budget each warm result matches."""
    def mean(key):
        vals = [r[key] for r in rows if key in r]
        return float(np.mean(vals)) if vals else float("nan")

    lines = [f"{'column':<14}{'iterations':>11}{'PSNR dB':>10}{'SSIM':>9}{'s/pair':>9}"]
    for k in budgets:
        for kind in ("cold", "warm"):
            col = f"{kind}_{k}"
            lines.append(f"{col:<14}{k:>11}{mean(col + '_psnr'):>10.2f}{mean(col + '_ssim'):>9.4f}"
                         f"{mean(col + '_seconds'):>9.1f}")
    for col in ("fuser", "two_step", "mean"):
        lines.append(f"{col:<14}{'-':>11}{mean(col + '_psnr'):>10.2f}{mean(col + '_ssim'):>9.4f}"
                     f"{mean(col + '_seconds') if col != 'mean' else 0.0:>9.1f}")
    cold = [(k, mean(f"cold_{k}_psnr")) for k in budgets]
    for k in budgets:
        target = mean(f"warm_{k}_psnr")
        reach = next((kc for kc, p in cold if p >= target), None)
        gain = target - mean(f"cold_{k}_psnr")
        lines.append(f"warm at {k} it: {gain:+.2f} dB over cold at {k}; cold reaches it at "
                     + (f"{reach} it" if reach is not None else f"none of the budgets (max {budgets[-1]})"))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fuser", required=True, help="the warm-start fuser: a name (udpnet, enfuse) or a YAML mapping "
                                                   "'{name: fapsr, params: {weights: ...}}'")
    ap.add_argument("--iterations", default="100,300,600", help="comma-separated DFP iteration budgets")
    ap.add_argument("--preset", default="default", choices=["fast", "default", "paper"],
                    help="the DFP schedule; --iterations overrides its budget")
    ap.add_argument("--use", default="both", choices=["input", "residual", "both"],
                    help="the warm start as z (input: first_guess), as the starting output (residual), or both")
    ap.add_argument("--pairs", type=int, default=0, help="first N pairs (0 = all)")
    ap.add_argument("--only", default="", help="comma-separated pair ids, e.g. 01,05")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--crop", type=int, default=256, help="centre crop of the full-resolution images (0 = none)")
    ap.add_argument("--lr-kernel", default="bicubic", help="what makes the LR inputs: " + DEGRADATION_HELP)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override for both DFP columns")
    ap.add_argument("--warm-set", dest="warm_overrides", action="append", default=[],
                    help="override for the warm columns only, e.g. optimizer.lr=5e-4 (a residual start is pulled "
                         "away from the first guess by the first Adam steps at the default rate)")
    ap.add_argument("--dfp-spec", default=str(ROOT / "examples" / "dfp-x2.yaml"), help="its scale is overridden")
    ap.add_argument("--baseline-spec", default=str(ROOT / "examples" / "two-step-x2.yaml"))
    ap.add_argument("--tag", default="", help="a label for this configuration in every row")
    ap.add_argument("--smoke", action="store_true", help="also cut the refinement to the iteration budget (checks)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "warm_start.jsonl"))
    args = ap.parse_args()

    set_threads(args.threads)
    ref = fuser_ref(args.fuser)
    budgets = sorted({int(k) for k in args.iterations.split(",") if k.strip()})
    catalog = default_catalog()
    folder = data_dir("nyud-mff")
    ids = pair_ids(folder, args.pairs, args.only)
    columns = variants(args, ref, budgets)
    meta = {"tag": args.tag, "fuser": ref, "preset": args.preset, "use": args.use, "scale": args.scale, "crop": args.crop,
            "degradation": degradation(args.lr_kernel, args.scale), "overrides": args.overrides,
            "warm_overrides": args.warm_overrides,
            "dfp_spec": args.dfp_spec, "budgets": budgets}
    print(f"NYU-D-MFF x{args.scale}, {len(ids)} pairs, crop {args.crop or 'none'}, LR {args.lr_kernel}; DFP preset "
          f"{args.preset} at {budgets} iterations, cold vs warm from {flow(ref)} ({args.use})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for pid in ids:
        t0 = time.perf_counter()
        row, _ = evaluate_pair(pid, folder, scale=args.scale, crop=args.crop, lr_kernel=args.lr_kernel,
                               catalog=catalog, dfp_spec=args.dfp_spec, dfp_variants=columns,
                               baseline_spec=args.baseline_spec,
                               base_over=[f"scale={args.scale}", "device=cpu"], all_baselines=False)
        rows.append(row)
        with out.open("a", encoding="utf-8") as f:
            for col in [*columns, "two_step", "mean"]:
                if f"{col}_psnr" not in row:
                    continue
                kind, _, k = col.partition("_")
                f.write(json.dumps({
                    "pair": pid, "column": col, "kind": kind if col.startswith(("cold_", "warm_")) else col,
                    "iterations": int(k) if col.startswith(("cold_", "warm_")) else None,
                    "psnr": row[f"{col}_psnr"], "ssim": row[f"{col}_ssim"], "seconds": row.get(f"{col}_seconds"),
                    **meta}) + "\n")
        parts = " | ".join(f"{col} {row[col + '_psnr']:.2f}" for col in columns)
        print(f"{pid} ({time.perf_counter() - t0:.0f} s): {parts} | two-step {row['two_step_psnr']:.2f}",
              flush=True)
    if rows:
        print(f"\nAVERAGE over {len(rows)} pairs (warm start: {flow(ref)}, {args.use}; preset {args.preset})")
        print(table(rows, budgets))
    print(f"rows appended to {out}")


if __name__ == "__main__":
    main()
