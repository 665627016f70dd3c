"""Time an example ablation study on a small real subset on every executor, and print its tables.

Protocol: the first ``--pairs`` NYU-D-MFF triples, each A/B/GT centre-cropped to ``--crop`` (a multiple of the
study's scale) into a temporary dataset folder; the example study (``examples/ablations/<study>.yaml``) is run
with ``--iterations``/``--embedding-iterations`` (reduced budget) on: ``local`` 1 worker, ``local`` 2 workers,
and a ``dask`` local cluster of 2 single-threaded workers, each into its own study folder. Every configuration
runs with the same torch threads per run (``--threads``, default 1) so the tables are comparable; the script
reports the wall time of each and whether the aggregate tables are identical.

    python benchmarks/ablation_study.py --study dfp-robustness --pairs 4 --crop 256
    python benchmarks/ablation_study.py --study component-swap --pairs 4 --crop 256
    python benchmarks/ablation_study.py --pairs 1 --crop 64 --iterations 32 --embedding-iterations 8   # smoke
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, centre_crop, data_dir  # noqa: E402

from fusionkit.ablation import load_ablation, run_study  # noqa: E402
from fusionkit.ablation.results import summary_markdown  # noqa: E402
from fusionkit.dataset import discover  # noqa: E402
from fusionkit.io import read_image, write_image  # noqa: E402

CONFIGS = {"local-1": dict(executor="local", workers=1), "local-2": dict(executor="local", workers=2),
           "dask-2": dict(executor="dask", workers=2)}


def crop_dataset(src: Path, dst: Path, pairs: int, crop: int, multiple: int) -> None:
    """The first ``pairs`` items of ``src``, centre-cropped, as 8-bit PNG (lossless: no second JPEG pass)."""
    for it in discover(src)[:pairs]:
        for role, path in zip(("A", "B"), it.sources):
            write_image(dst / f"{it.id}_{role}.png", centre_crop(read_image(path)[0], crop, multiple), 8)
        if it.gt is not None:
            write_image(dst / f"{it.id}_GT.png", centre_crop(read_image(it.gt)[0], crop, multiple), 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="dfp-robustness", help="an example in examples/ablations/ (without .yaml)")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--crop", type=int, default=256, help="centre crop of the full-resolution images")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--embedding-iterations", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run, every configuration")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "ablation"), help="study folders and timings.json")
    args = ap.parse_args()

    path = ROOT / "examples" / "ablations" / f"{args.study}.yaml"
    src = data_dir("nyud-mff")
    out = Path(args.out) / f"{args.study}-p{args.pairs}-c{args.crop}-i{args.iterations}"
    sets = [f"iterations={args.iterations}", f"decision_embedding.iterations={args.embedding_iterations}"]
    timings, tables = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        crop_dataset(src, Path(tmp), args.pairs, args.crop, 8)
        for name in args.configs.split(","):
            # the example's dataset replaced by the crops: load from a dict with the file's folder as the base
            doc = __import__("yaml").safe_load(path.read_text())
            doc.update(base=str((path.parent / doc["base"]).resolve()), dataset=tmp, limit=args.pairs)
            plan = load_ablation(doc, sets)
            folder = out / name
            t0 = time.perf_counter()
            res = run_study(plan, folder, threads=args.threads, **CONFIGS[name])
            timings[name] = {"seconds": round(time.perf_counter() - t0, 2), "ran": len(res.ran),
                             "skipped": len(res.skipped), "failed": len(res.failed)}
            tables[name] = {**res.table, "variants": [{k: v for k, v in r.items() if k != "seconds"}
                                                      for r in res.table["variants"]]}
            print(f"{name}: {timings[name]}", flush=True)
    first = next(iter(tables.values()))
    same = {name: t == first for name, t in tables.items()}
    print()
    print(summary_markdown(res.table, f"Ablation `{args.study}`",
                           f"{args.pairs} NYU-D-MFF stack(s), centre crop {args.crop}, x{plan.scale} mfisrf, "
                           f"{args.iterations} fusion / {args.embedding_iterations} embedding iterations."))
    print("| executor | wall (s) | runs | identical table |\n|---|---:|---:|---|")
    for name, t in timings.items():
        print(f"| {name} | {t['seconds']:.1f} | {t['ran']} (+{t['skipped']} resumed) | {same[name]} |")
    (out / "timings.json").write_text(json.dumps({"args": vars(args), "timings": timings, "identical": same},
                                                 indent=2))


if __name__ == "__main__":
    main()
