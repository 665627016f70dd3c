"""Plenoptic all-in-focus x2 on HCI "antinous": DFP against two baselines, scored against the centre view.

The centre view of a light field is a pinhole image (everything sharp), so it is a ground truth for all-in-focus
imaging. Protocol (issue 5): the 9x9 views are downsampled x2 (256x256, lanczos2) and refocused by shift-and-sum
into a focal stack (``examples/plenoptic/hci-antinous-x2.yaml``: 8 slices over [-3.0, 2.6] px per view step);
every method makes a 512x512 all-in-focus image from that one stack, scored by PSNR/SSIM (BT.601 luma, the
``psnr``/``ssim`` metrics) against the full-resolution centre view ``input_Cam040.png``:

- ``dfp``: the example spec (its preset's budget; ``--iterations`` / ``--embedding-iterations`` override it);
- ``best-slice-bicubic``: bicubic x2 of the single refocused slice with the best PSNR against the centre view.
  This is an *oracle* choice (it looks at the ground truth), an upper bound for "pick one slice";
- ``two-step-bicubic``: ``examples/baselines/two-step-bicubic.yaml`` (DoubleReblur maps, hard composite at low
  resolution, bicubic x2).

The refocusing is timed on its own (the stack is made once and given to both pipelines as arrays). Writes
``OUT/results.json``, the slices (``OUT/stack/``) and each pipeline's run folder; prints a table.

    OMP_NUM_THREADS=1 python benchmarks/plenoptic_hci.py --iterations 300 --embedding-iterations 100
    python benchmarks/plenoptic_hci.py --iterations 2 --embedding-iterations 2 --out /tmp/lf-smoke   # smoke test
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, data_dir, write_results  # noqa: E402

from fusionkit.io import read_image, write_image  # noqa: E402
from fusionkit.provenance import environment  # noqa: E402
from fusionkit.registry import default_catalog  # noqa: E402
from fusionkit.runner import run  # noqa: E402
from fusionkit.validation import load_spec  # noqa: E402

SPEC = ROOT / "examples" / "plenoptic" / "hci-antinous-x2.yaml"
TWO_STEP = ROOT / "examples" / "baselines" / "two-step-bicubic.yaml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "plenoptic_hci")
    ap.add_argument("--iterations", type=int, default=None, help="DFP fusion iterations (default: the spec's "
                    "preset)")
    ap.add_argument("--embedding-iterations", type=int, default=None, help="decision-embedding iterations "
                    "(default: the spec's preset)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra overrides of the DFP spec, e.g. light_field.params.slices=6")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = data_dir("lightfield/hci_antinous")
    catalog = default_catalog()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    budget = ([f"iterations={args.iterations}"] if args.iterations is not None else []) + (
        [f"decision_embedding.iterations={args.embedding_iterations}"] if args.embedding_iterations is not None
        else [])
    dfp = load_spec(SPEC, [*budget, f"device={args.device}", f"output.dir={out / 'dfp'}",
                           f"light_field.path={folder}", *args.overrides], catalog=catalog)
    lf = dfp.spec.light_field
    two_step = load_spec(TWO_STEP, [f"device={args.device}", f"output.dir={out / 'two-step-bicubic'}"],
                         catalog=catalog, require_inputs=False)
    truth, _ = read_image(folder / "input_Cam040.png")
    psnr = catalog.get("metric", "psnr").cls()
    ssim = catalog.get("metric", "ssim").cls()
    bicubic = catalog.get("resampler", "bicubic").cls()
    scale = dfp.spec.scale

    t0 = time.perf_counter()
    focal = catalog.get("light_field", lf.name).cls(params=lf.params)(lf.path)
    t_refocus = time.perf_counter() - t0
    slices = [s.permute(1, 2, 0).numpy() for s in focal.images]
    for i, (d, s) in enumerate(zip(focal.disparities, slices)):
        write_image(out / "stack" / f"slice_{i:02d}_d{d:+.2f}.png", s, 8)
    print(f"refocused {len(slices)} slices at {focal.info['refocused_size']} from {focal.info['grid']} views in "
          f"{t_refocus:.2f} s", flush=True)

    def scores(img) -> dict:
        return {"psnr": round(psnr(img, None, truth), 3), "ssim": round(ssim(img, None, truth), 4)}

    rows = []
    with torch.no_grad():
        ups = [bicubic.up(focal.images[i:i + 1], scale)[0].clamp(0, 1).permute(1, 2, 0).numpy()
               for i in range(len(slices))]
    per_slice = [scores(u) for u in ups]
    best = max(range(len(ups)), key=lambda i: per_slice[i]["psnr"])
    write_image(out / "best-slice-bicubic.png", ups[best], 8)
    rows.append({"method": "best-slice-bicubic", **per_slice[best], "seconds": 0.0,
                 "note": f"oracle: slice {best} (d = {focal.disparities[best]:+.2f}) of {len(ups)}"})

    for name, spec in (("two-step-bicubic", two_step), ("dfp", dfp)):
        t0 = time.perf_counter()
        result = run(spec, inputs=slices, catalog=catalog)
        seconds = time.perf_counter() - t0
        rows.append({"method": name, **scores(result.fused), "seconds": round(seconds, 2),
                     "note": str(result.run_dir)})
        print(f"{name}: done in {seconds:.1f} s", flush=True)

    meta = {"data": str(folder), "reference": "input_Cam040.png (full-resolution centre view)",
            "metrics": "psnr / ssim on BT.601 luma (fusionkit metrics, defaults)",
            "refocus_seconds": round(t_refocus, 3), "light_field": focal.info,
            "per_slice_bicubic": [{"disparity": d, **s} for d, s in zip(focal.disparities, per_slice)],
            "iterations": dfp.spec.iterations, "embedding_iterations": dfp.spec.decision_embedding.iterations,
            "preset": dfp.spec.preset, "refine_iterations": dfp.spec.refine.iterations,
            "overrides": args.overrides, "environment": environment(torch.device(
                "cuda" if args.device == "cuda" else "cpu"))}
    write_results(out / "results.json", rows, meta)
    print(f"\nHCI antinous, x{scale} from views downsampled x{focal.info['downsample']}, "
          f"{len(slices)} slices; refocus {t_refocus:.2f} s")
    print(f"{'method':<22}{'PSNR':>8}{'SSIM':>8}{'s':>9}  note")
    for r in rows:
        print(f"{r['method']:<22}{r['psnr']:>8.2f}{r['ssim']:>8.4f}{r['seconds']:>9.1f}  {r['note']}")
    print(f"\nwrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
