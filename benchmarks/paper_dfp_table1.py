"""The DFP paper's Table 1 on MFI-WHU: the ``mfisrf`` protocol, DFP (default spec) against the two-step baselines.

Data: the 30-pair MFI-WHU test subset shipped with MiT-MFIF (``data/mfi-whu/test_subset_mit-mfif_30.txt``; its
second column names the pair in the shared folder: ``011`` -> ``011_A.jpg``/``011_B.jpg``). A dataset folder of the
selected pairs (first ``--pairs`` of the list, in the list's order) is built once under ``OUT/data/``: symlinks to
the JPEGs, or with ``--crop C`` lossless PNG copies centre-cropped to ``min(C, side)`` rounded down to a multiple of
``4*S`` (one folder per effective crop, shared by the scales when it coincides). Items keep the shared folder's pair
number as their id (``011``); ``OUT/data/<...>/subset.txt`` maps them back to the MiT-MFIF index. MFI-WHU has no
ground truth here, so only the five R-metrics are scored (all relative to the full-resolution sources; lower is
better for all five).

For each scale S in ``--scales`` and each method, ``fusionkit.evaluation.evaluate(protocol="mfisrf", scale=S,
downsampler=--lr-kernel)`` runs into ``OUT/x{S}/{method}/``; rerunning the same command resumes (items already
``ok`` are skipped). Methods: ``dfp`` (``examples/dfp-x2.yaml`` with ``scale=S``; ``--iterations`` and
``--embedding-iterations`` override its budgets) and the baselines ``two-step-bicubic``, ``two-step-lanczos3``,
``mean-bicubic``, ``enfuse-bicubic`` (``examples/baselines/``; enfuse is left out of the default list when the
program is not installed). Every method runs with ``device=cpu`` unless ``--device`` says otherwise.
Since ``evaluate`` does not compare overrides when resuming, this script records its own settings per method folder
(``bench.json``) and refuses to resume one made with different settings.

    python benchmarks/paper_dfp_table1.py                                   # the full table (slow on CPU)
    python benchmarks/paper_dfp_table1.py --pairs 3 --crop 256 --iterations 300 --embedding-iterations 100 \\
        --scales 2 4 --threads 1                                             # a quick look
    python benchmarks/paper_dfp_table1.py --methods two-step-bicubic mean-bicubic   # baselines only (fast)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, centre_crop, data_dir, set_threads  # noqa: E402

from fusionkit.evaluation import evaluate  # noqa: E402
from fusionkit.io import read_image, write_image, write_json  # noqa: E402
from fusionkit.registry import default_catalog  # noqa: E402

METRICS = ["rmg", "rei", "rie", "rmga", "reco"]
SUBSET = "test_subset_mit-mfif_30.txt"
METHODS = {
    "dfp": ROOT / "examples" / "dfp-x2.yaml",
    "two-step-bicubic": ROOT / "examples" / "baselines" / "two-step-bicubic.yaml",
    "two-step-lanczos3": ROOT / "examples" / "baselines" / "two-step-lanczos3.yaml",
    "mean-bicubic": ROOT / "examples" / "baselines" / "mean-bicubic.yaml",
    "enfuse-bicubic": ROOT / "examples" / "baselines" / "enfuse-bicubic.yaml",  # needs the enfuse program
}
# The DFP paper's Table 1, MFI-WHU, DFP row (lower is better for all five).
PAPER_DFP = {
    2: {"rmg": 0.5840, "rei": 6.3614, "rie": 0.0222, "rmga": 0.5324, "reco": 0.0056},
    4: {"rmg": 1.8111, "rei": 14.8770, "rie": 0.0376, "rmga": 0.5536, "reco": 0.0062},
}


def read_subset(folder: Path) -> list[tuple[str, str]]:
    """``[(mit_mfif_index, pair_id_in_folder), ...]`` in the list's order."""
    pairs = []
    for line in (folder / SUBSET).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        idx, pid = line.split()[:2]
        pairs.append((idx, pid))
    return pairs


def source_file(folder: Path, pid: str, role: str) -> Path:
    hits = sorted(p for p in folder.glob(f"{pid}_{role}.*") if not p.name.startswith("."))
    if not hits:  # the list may spell the number differently from the files (1 vs 001)
        hits = sorted(p for p in folder.glob(f"*_{role}.*") if p.stem.split("_")[0].isdigit()
                      and int(p.stem.split("_")[0]) == int(pid))
    if not hits:
        sys.exit(f"MFI-WHU pair {pid}: no {role} image in {folder}")
    return hits[0]


def build_dataset(out: Path, src: Path, subset: list[tuple[str, str]], crop: int | None, scale: int) -> Path:
    """The dataset folder for this crop and selection (idempotent: links/copies only what is missing)."""
    multiple = 4 * scale
    if crop:
        # the effective crop is per pair (min with the image's sides); name the folder by the request and multiple
        name = f"crop{crop}-m{multiple}"
    else:
        name = "full"
    name += f"-first{len(subset)}"  # one folder per selection: a smaller --pairs never removes another's items
    d = out / "data" / name
    d.mkdir(parents=True, exist_ok=True)
    for idx, pid in subset:
        for role in ("A", "B"):
            f = source_file(src, pid, role)
            target = d / (f"{pid}_{role}.png" if crop else f"{pid}_{role}{f.suffix.lower()}")
            if target.exists():
                continue
            if crop:
                img, depth = read_image(f)
                write_image(target, centre_crop(img, crop, multiple), bit_depth=depth)
            else:
                try:
                    os.symlink(f.resolve(), target)
                except OSError:
                    import shutil

                    shutil.copyfile(f, target)
    (d / "subset.txt").write_text("# mit_mfif_index  item_id\n" + "".join(f"{i} {p}\n" for i, p in subset))
    return d


def check_settings(method_dir: Path, settings: dict) -> None:
    path = method_dir / "bench.json"
    if path.is_file():
        old = json.loads(path.read_text())
        diff = [k for k in settings if k in old and old[k] != settings[k]]
        if diff:
            sys.exit(f"{method_dir} was made with other settings ("
                     + ", ".join(f"{k}: {old[k]!r} -> {settings[k]!r}" for k in diff)
                     + "); use another --out or delete that folder")
    method_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, settings)


def fmt(mean, std) -> str:
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {std:.4f}"


def table_lines(results: dict[str, dict], metrics: list[str], head: list[str],
                paper_row: list[str] | None) -> list[str]:
    """A Markdown table of ``evaluate`` summaries, one row per method (mean ± std per metric, items scored, seconds
    per item), ``paper_row`` last: header, rule and rows, the columns padded to align."""
    rows = []
    for method, res in results.items():
        s = res["summary"]
        n = min(s["metrics"][m]["n"] for m in metrics)
        per = s["seconds"] / s["ok"] if s["ok"] else 0.0
        rows.append([method, *(fmt(s["metrics"][m]["mean"], s["metrics"][m]["std"]) for m in metrics),
                     f"{n}" + (f" ({len(s['failed'])} failed)" if s["failed"] else ""), f"{per:.1f}"])
    if paper_row:
        rows.append(paper_row)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                       for i, (c, w) in enumerate(zip(r, widths))) + " |"
    return [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


def print_table(scale: int, results: dict[str, dict], note: str) -> None:
    head = ["method", *(f"{m.upper()} ↓" for m in METRICS), "n", "s/item"]
    paper = PAPER_DFP.get(scale)
    paper_row = ["DFP (paper)", *(f"{paper[m]:.4f}" for m in METRICS), "30", ""] if paper else None
    print(f"\nMFI-WHU (MiT-MFIF 30-pair test subset), mfisrf protocol, x{scale}: mean ± std (population) over items; "
          "lower is better")
    print(note)
    for line in table_lines(results, METRICS, head, paper_row):
        print(line)
    print("RMG/REI/RMGA follow the paper's scale; fusionkit's RIE (2-D entropy, lg) and RECO do not reproduce the "
          "paper's range for any method (docs/metrics.md): compare those two between rows here, not with the paper.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--pairs", type=int, default=0, help="first N pairs of the 30-pair subset (0 = all 30)")
    ap.add_argument("--crop", type=int, default=0,
                    help="centre crop of the full-resolution sources, rounded down to a multiple of 4*S (0 = none)")
    ap.add_argument("--iterations", type=int, default=None, help="override DFP's fusion iterations (spec: 1000)")
    ap.add_argument("--embedding-iterations", type=int, default=None,
                    help="override DFP's decision-embedding iterations (spec: 500)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra override for the DFP spec")
    have_enfuse = shutil.which("enfuse") is not None
    ap.add_argument("--methods", nargs="+", choices=list(METHODS),
                    default=[m for m in METHODS if have_enfuse or not m.startswith("enfuse")])
    ap.add_argument("--lr-kernel", default="bicubic", help="resampler whose `down` makes the LR inputs")
    ap.add_argument("--device", default="cpu", help="device override for every method (cpu, cuda, auto)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "paper_table1"))
    args = ap.parse_args()

    set_threads(args.threads, interop=True)
    catalog = default_catalog()
    src = data_dir("mfi-whu")
    subset = read_subset(src)
    if args.pairs:
        subset = subset[:args.pairs]
    out = Path(args.out).resolve()
    dfp_over = [*args.overrides]
    if args.iterations is not None:
        dfp_over.append(f"iterations={args.iterations}")
    if args.embedding_iterations is not None:
        dfp_over.append(f"decision_embedding.iterations={args.embedding_iterations}")
    t_all = time.perf_counter()
    tables = []
    for scale in args.scales:
        ds = build_dataset(out, src, subset, args.crop or None, scale)
        results = {}
        for method in args.methods:
            over = [f"device={args.device}", *(dfp_over if method == "dfp" else [])]
            mdir = out / f"x{scale}" / method
            check_settings(mdir, {"spec": str(METHODS[method].relative_to(ROOT)), "overrides": over,
                                  "crop": args.crop or None, "lr_kernel": args.lr_kernel})
            t0 = time.perf_counter()

            def progress(e, _m=method, _s=scale):
                if e.stage == "items" and e.iteration:
                    print(f"  x{_s} {_m}: {e.iteration}/{e.total} items ({time.perf_counter() - t0:.0f} s)",
                          flush=True)

            res = evaluate(str(METHODS[method]), ds, mdir, protocol="mfisrf", metrics=METRICS, scale=scale,
                           downsampler=args.lr_kernel, overrides=over, catalog=catalog, progress=progress)
            for r in res.failed:
                print(f"  x{scale} {method}: item {r['id']} FAILED: {r['error']}", flush=True)
            results[method] = {"summary": res.summary, "ran": res.ran, "skipped": res.skipped}
        its = (", ".join(dfp_over) or "none (spec: 1000 fusion, 500 embedding iterations)") \
            if "dfp" in args.methods else "(DFP not run)"
        note = (f"ran: {len(subset)} of 30 pairs ({', '.join(p for _, p in subset)}), "
                f"crop {str(args.crop) + ' (to a multiple of ' + str(4 * scale) + ')' if args.crop else 'none'}, "
                f"LR = {args.lr_kernel} down x{scale}, DFP overrides: {its}, device {args.device}; "
                f"results in {out / f'x{scale}'}")
        tables.append((scale, results, note))
        write_json(out / f"x{scale}" / "table.json",
                   {"scale": scale, "note": note, "paper_dfp": PAPER_DFP.get(scale),
                    "methods": {m: r["summary"] for m, r in results.items()}})
    for scale, results, note in tables:
        print_table(scale, results, note)
    print(f"\nwall time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
