"""Aggregating a study's runs: mean ± std per variant and metric, ranks, ARank; CSV, JSON and Markdown.

ARank (UDPNet, Table II): for each ranked metric, the variants are ranked by their mean over the stacks (1 = best,
by the metric's ``higher_is_better``); ARank is the average of a variant's ranks over those metrics (lower is
better). Ties share the average of the places they occupy (two variants tied for first both get 1.5). A variant
without a value for a metric (every run failed, or the metric failed) shares the last places for that metric; a
metric that no variant has a value for is left out of ARank.
"""
from __future__ import annotations

import csv
import io as _io
import math
from typing import Sequence

import numpy as np


def average_ranks(values: Sequence[float | None], higher_is_better: bool) -> list[float]:
    """Fractional ranks (1 = best) of ``values``; ties share their mean place, missing values share the last."""
    n = len(values)
    present = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    present.sort(key=lambda iv: -iv[1] if higher_is_better else iv[1])
    ranks = [0.0] * n
    pos = 0
    while pos < len(present):
        end = pos
        while end + 1 < len(present) and present[end + 1][1] == present[pos][1]:
            end += 1
        shared = (pos + 1 + end + 1) / 2.0
        for j in range(pos, end + 1):
            ranks[present[j][0]] = shared
        pos = end + 1
    missing = [i for i in range(n) if ranks[i] == 0.0]
    if missing:
        shared = (len(present) + 1 + n) / 2.0
        for i in missing:
            ranks[i] = shared
    return ranks


def aggregate(records: list[dict], variants: Sequence[str], metrics: Sequence[str], higher: dict[str, bool],
              rank_metrics: Sequence[str]) -> dict:
    """The study table: one row per variant (in study order) with per-metric mean/std/n/rank and ARank."""
    rows = []
    for name in variants:
        mine = [r for r in records if r["variant"] == name]
        ok = [r for r in mine if r["status"] == "ok"]
        stats = {}
        for m in metrics:
            vals = [r["metrics"].get(m) for r in ok]
            vals = [float(v) for v in vals if v is not None and math.isfinite(v)]
            stats[m] = {"mean": float(np.mean(vals)) if vals else None,
                        "std": float(np.std(vals)) if vals else None, "n": len(vals)}
        rows.append({"variant": name, "runs": len(mine), "ok": len(ok),
                     "failed": [r["item"] for r in mine if r["status"] != "ok"],
                     "seconds": round(sum(r.get("seconds", 0.0) for r in mine), 3), "metrics": stats,
                     "ranks": {}, "arank": None})
    ranked = [m for m in rank_metrics if any(r["metrics"][m]["mean"] is not None for r in rows)]
    for m in ranked:
        for row, rank in zip(rows, average_ranks([r["metrics"][m]["mean"] for r in rows], higher[m])):
            row["ranks"][m] = rank
    if ranked:
        for row in rows:
            row["arank"] = float(np.mean([row["ranks"][m] for m in ranked]))
    best = min((r for r in rows if r["arank"] is not None), key=lambda r: r["arank"], default=None)
    return {"metrics": {m: {"higher_is_better": higher[m], "in_arank": m in ranked} for m in metrics},
            "rank_metrics": ranked, "variants": rows, "best": best["variant"] if best else None}


def _f(v, digits: int = 4) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def runs_csv(records: list[dict], metrics: Sequence[str]) -> str:
    buf = _io.StringIO()
    w = csv.writer(buf)
    w.writerow(["variant", "item", "status", *metrics, "seconds", "run_dir", "error"])
    for r in records:
        w.writerow([r["variant"], r["item"], r["status"],
                    *("" if r["metrics"].get(m) is None else repr(r["metrics"][m]) for m in metrics),
                    r.get("seconds", ""), r.get("run_dir") or "", r.get("error", "")])
    return buf.getvalue()


def summary_csv(table: dict) -> str:
    metrics = list(table["metrics"])
    buf = _io.StringIO()
    w = csv.writer(buf)
    w.writerow(["variant", "runs", "ok", *(f"{m}_{s}" for m in metrics for s in ("mean", "std", "n", "rank")),
                "arank", "seconds"])
    for row in table["variants"]:
        cells = []
        for m in metrics:
            st = row["metrics"][m]
            cells += ["" if st["mean"] is None else repr(st["mean"]), "" if st["std"] is None else repr(st["std"]),
                      st["n"], row["ranks"].get(m, "")]
        w.writerow([row["variant"], row["runs"], row["ok"], *cells,
                    "" if row["arank"] is None else repr(row["arank"]), row["seconds"]])
    return buf.getvalue()


def summary_markdown(table: dict, title: str, subtitle: str = "") -> str:
    """Mean ± std per variant and metric (the best mean of each column in bold), ranks in ARank."""
    metrics = list(table["metrics"])
    arrow = {m: "↑" if table["metrics"][m]["higher_is_better"] else "↓" for m in metrics}
    best = {}
    for m in metrics:
        means = [r["metrics"][m]["mean"] for r in table["variants"] if r["metrics"][m]["mean"] is not None]
        if means:
            best[m] = max(means) if table["metrics"][m]["higher_is_better"] else min(means)
    head = ["variant", *(f"{m} {arrow[m]}" for m in metrics), "ARank ↓", "ok"]
    lines = [f"# {title}", ""] + ([subtitle, ""] if subtitle else [])
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(metrics) + 2)]
    for row in table["variants"]:
        cells = []
        for m in metrics:
            st = row["metrics"][m]
            text = "" if st["mean"] is None else f"{st['mean']:.4f} ± {st['std']:.4f}"
            cells.append(f"**{text}**" if text and st["mean"] == best.get(m) else text)
        ar = _f(row["arank"], 2)
        if row["variant"] == table["best"]:
            ar = f"**{ar}**"
        lines.append("| " + " | ".join([f"`{row['variant']}`", *cells, ar, f"{row['ok']}/{row['runs']}"]) + " |")
    lines += ["", "ARank: the mean over " + (", ".join(table["rank_metrics"]) or "no metric") + " of each variant's "
              "rank (1 = best; ties share the mean place; a missing value ranks last)."]
    failed = [(r["variant"], r["failed"]) for r in table["variants"] if r["failed"]]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- `{v}`: items {', '.join(items)}" for v, items in failed]
    return "\n".join(lines) + "\n"
