"""The quality/time figure of BENCHMARKS.md ("Speed and scale"): per preset, mean PSNR over the NYU-D-MFF x2 pairs
against seconds per pair; per lever, PSNR against the generator step on one pair.

Reads what the other scripts wrote to ``bench-out/`` (nothing is re-run):
- ``quality_nyud.py`` results, one or more JSON files per preset (``--nyud TAG=FILE[,FILE]``), and the `paper`
  row as BENCHMARKS.md's per-pair table (``--paper-table``: the earlier default was `paper`);
- ``convergence.py`` JSON lines with a PSNR curve per run (``--curve LABEL=FILE:CONFIG:PAIR``).

    python benchmarks/plot_quality_time.py \\
        --nyud fast=bench-out/nyud-fastall-a.json,bench-out/nyud-fastall-b.json \\
        --curve "paper (1e-3 constant, fp32)=bench-out/conv-r0-base.jsonl:base:01" \\
        --out docs/img/quality_time.png
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402


def paper_rows(path: Path) -> tuple[float, float, int]:
    """(mean PSNR, mean seconds, pairs) of the per-pair DFP table in BENCHMARKS.md (the first one)."""
    psnr, secs = {}, {}
    for line in path.read_text().splitlines():
        m = re.match(r"\| (\d\d) \| ([\d.]+) \| [\d.]+ \|.*\| (\d+) \|$", line)
        if m and m.group(1) not in psnr:
            psnr[m.group(1)], secs[m.group(1)] = float(m.group(2)), float(m.group(3))
    return statistics.mean(psnr.values()), statistics.mean(secs.values()), len(psnr)


def nyud(files: list[str]) -> tuple[float, float, int]:
    rows = [r for f in files for r in json.loads(Path(f).read_text())["rows"]]
    return (statistics.mean(r["dfp_psnr"] for r in rows), statistics.mean(r["dfp_seconds"] for r in rows),
            len(rows))


def curve(spec: str) -> list[tuple[int, float]]:
    """``FILE:CONFIG:PAIR`` -> [(step, psnr)]: fusion steps, then refinement steps counted on from them."""
    file, config, pair = spec.rsplit(":", 2)
    for line in Path(file).read_text().splitlines():
        r = json.loads(line)
        if r["config"] == config and r["pair"] == pair:
            return [(p["iteration"], p["psnr"]) for p in r["curve"]]
    raise SystemExit(f"no run {config!r} on pair {pair} in {file}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paper-table", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--nyud", action="append", default=[], help="PRESET=FILE[,FILE]")
    ap.add_argument("--curve", action="append", default=[], help="LABEL=FILE:CONFIG:PAIR")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "quality_time.png"))
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = {"paper": paper_rows(Path(args.paper_table))}
    for item in args.nyud:
        tag, files = item.split("=", 1)
        points[tag] = nyud(files.split(","))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for tag, (p, s, n) in points.items():
        left.scatter([s], [p], s=40)
        left.annotate(f"{tag} ({n} pairs)", (s, p), textcoords="offset points", xytext=(6, 4))
        print(f"{tag:<10} {n:>3} pairs  {p:.2f} dB  {s:.0f} s/pair")
    left.set_xlabel("seconds per pair (1 torch thread, two processes on 2 cores)")
    left.set_ylabel("mean PSNR (dB)")
    left.set_title("NYU-D-MFF x2, 256² outputs: presets")
    left.set_xlim(0, max(s for _, s, _ in points.values()) * 1.3)
    left.grid(alpha=0.3)
    for item in args.curve:
        label, spec = item.split("=", 1)
        xs, ys = zip(*curve(spec))
        right.plot(xs, ys, label=label, lw=1.2)
    right.set_xlabel("step (generator steps, then pixel-refinement steps)")
    right.set_ylabel("PSNR (dB)")
    right.set_ylim(28, 35)
    right.set_title("one pair (NYU-D 01): the levers")
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
