"""UDPNet's Table II protocol (fusion only, x1) on Lytro and MFFW: fusionkit's trained UDPNet beside the paper's
UDPNet row, the two-step DoubleReblur composite at x1, DFP at x1 and enfuse, on the ten metrics of the paper.

Protocol: every pair of ``../shared/data/<dataset>`` (Lytro: all 20 pairs, 520x520; MFFW: all 13 pairs; ``--only``
or ``--limit`` for fewer) is fused at its full size by each method through ``fusionkit eval`` (protocol ``fusion``,
scale 1: the inputs as they are) and scored against its two sources with fusionkit's metrics (checked against
published values, docs/metrics.md): q_mi (NMI), q_ncie, q_g, q_m, q_p, q_c, q_y, q_cb, mi, vif. The paper's Lytro
test set is 10 pairs it does not list, so the figures here are over all 20 (a superset); MFFW is the same 13.

    python benchmarks/udpnet_table2.py --methods udpnet two-step enfuse --workers 2 --threads 1
    python benchmarks/udpnet_table2.py --methods dfp --limit 4 --threads 1        # DFP is minutes per pair
    python benchmarks/udpnet_table2.py --weights runs/train-udpnet/weights.pt --tag mine

Each method's evaluation is written to ``bench-out/udpnet_table2/<dataset>/<method>/`` (resumable: rerun to
continue) and the table to ``bench-out/udpnet_table2/<tag>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, data_dir  # noqa: E402

from fusionkit.dataset import discover  # noqa: E402
from fusionkit.evaluation import evaluate  # noqa: E402

METRICS = ["q_mi", "q_ncie", "q_g", "q_m", "q_p", "q_c", "q_y", "q_cb", "mi", "vif"]
LABELS = {"q_mi": "NMI", "q_ncie": "Q_NCIE", "q_g": "Q_G", "q_m": "Q_M", "q_p": "Q_P", "q_c": "Q_C", "q_y": "Q_Y",
          "q_cb": "Q_CB", "mi": "MI", "vif": "VIF"}

#: the paper's Table II, UDPNet rows (Lytro: its 10-pair test set; MFFW: 13 pairs)
PAPER = {
    "lytro": dict(zip(METRICS, [1.2166, 0.8481, 0.7314, 2.6576, 0.8453, 0.8103, 0.9900, 0.8102, 9.0946, 1.3867])),
    "mffw": dict(zip(METRICS, [1.1627, 0.8400, 0.7089, 2.5040, 0.7574, 0.7815, 0.9812, 0.7548, 8.2803, 1.2732])),
}


def method_spec(name: str, weights: str | None) -> tuple[object, list[str]]:
    """(spec, overrides) of a method at x1."""
    common = ["scale=1", "device=cpu"]
    if name in ("udpnet", "udpnet-soft", "udpnet-predictor"):
        params = {"weights": weights} if weights else {}
        if name == "udpnet-soft":
            params["decision"] = "soft"          # Eq. 1 with G's masks as they are (the paper's literal reading)
        if name == "udpnet-predictor":
            params["masks"] = "predictor"        # F's masks instead of G's (the paper's "w/o G*")
        return ({"name": name, "method": "fuser", "fuser": {"name": "udpnet", "params": params}}, common)
    if name == "two-step":
        return (str(ROOT / "examples" / "two-step-x2.yaml"), common)
    if name == "dfp":
        return (str(ROOT / "examples" / "dfp-x2.yaml"), common)
    if name == "enfuse":
        return (str(ROOT / "examples" / "baselines" / "enfuse-bicubic.yaml"), common)
    raise SystemExit(f"unknown method {name!r}")


def subset(folder: Path, ids: list[str] | None, limit: int | None, tmp: Path) -> Path:
    """``folder`` itself, or a folder of links to the chosen items."""
    items = discover(folder)
    chosen = [it for it in items if ids is None or it.id in ids][:limit or None]
    if len(chosen) == len(items):
        return folder
    out = tmp / folder.name
    out.mkdir(parents=True, exist_ok=True)
    for it in chosen:
        for p in it.sources + ((it.gt,) if it.gt else ()):
            (out / p.name).symlink_to(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["lytro", "mffw"])
    ap.add_argument("--methods", nargs="+", default=["udpnet", "two-step", "enfuse"],
                    help="udpnet, udpnet-soft, udpnet-predictor, two-step, dfp, enfuse")
    ap.add_argument("--weights", default=None, help="UDPNet weights (default: the shipped ones)")
    ap.add_argument("--only", default="", help="comma-separated pair ids")
    ap.add_argument("--limit", type=int, default=None, help="first N pairs")
    ap.add_argument("--workers", type=int, default=1, help="local worker processes (fusionkit eval --workers)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per item")
    ap.add_argument("--tag", default="default")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "udpnet_table2"))
    args = ap.parse_args()

    out = Path(args.out)
    ids = [i for i in args.only.split(",") if i] or None
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ds in args.datasets:
            folder = subset(data_dir(ds), ids, args.limit, Path(tmp))
            results[ds] = {}
            for m in args.methods:
                spec, overrides = method_spec(m, args.weights)
                res = evaluate(spec, folder, out / ds / (m if args.limit is None and ids is None else
                                                        f"{m}-{args.tag}"),
                               protocol="fusion", scale=1, metrics=METRICS, overrides=overrides,
                               workers=args.workers, threads=args.threads)
                seconds = [r["seconds"] for r in res.rows if r["status"] == "ok"]
                results[ds][m] = {"n": res.summary["ok"], "failed": res.summary["failed"],
                                  "seconds_per_pair": round(sum(seconds) / max(1, len(seconds)), 2),
                                  **{k: res.summary["metrics"][k]["mean"] for k in METRICS},
                                  "items": [r["id"] for r in res.rows]}
                print(f"{ds} {m}: {res.summary['ok']}/{res.summary['items']} pairs, "
                      + ", ".join(f"{LABELS[k]} {results[ds][m][k]:.4f}" for k in METRICS
                                  if results[ds][m][k] is not None), flush=True)
    table = render(results)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"protocol": "fusion x1 (fusionkit eval), metrics against the two sources", "metrics": METRICS,
            "methods": args.methods, "weights": args.weights or "built-in", "threads": args.threads,
            "workers": args.workers, "paper": PAPER}
    (out / f"{args.tag}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (out / f"{args.tag}.md").write_text(table + "\n")


def render(results: dict) -> str:
    lines = []
    for ds, rows in results.items():
        lines += [f"### {ds}", "", "| method | pairs | " + " | ".join(LABELS[k] for k in METRICS) + " | s/pair |",
                  "|---|---|" + "---:|" * (len(METRICS) + 1)]
        for m, r in rows.items():
            cells = ["" if r[k] is None else f"{r[k]:.4f}" for k in METRICS]
            lines.append(f"| {m} | {r['n']} | " + " | ".join(cells) + f" | {r['seconds_per_pair']} |")
        lines.append(f"| UDPNet, paper (Table II) | {10 if ds == 'lytro' else 13} | "
                     + " | ".join(f"{PAPER[ds][k]:.4f}" for k in METRICS) + " | |")
        ours, comp = rows.get("udpnet"), rows.get("two-step")
        if ours:
            beat_paper = [k for k in METRICS if ours[k] is not None and ours[k] >= PAPER[ds][k]]
            lines.append("")
            lines.append(f"udpnet >= paper on {len(beat_paper)}/10 ({', '.join(LABELS[k] for k in beat_paper)})")
            if comp:
                beat_both = [k for k in beat_paper if comp[k] is not None and ours[k] >= comp[k]]
                beat_comp = [k for k in METRICS if ours[k] is not None and comp[k] is not None and ours[k] >= comp[k]]
                lines.append(f"udpnet >= two-step composite on {len(beat_comp)}/10 "
                             f"({', '.join(LABELS[k] for k in beat_comp)})")
                lines.append(f"udpnet >= both on {len(beat_both)}/10 (goal: 8)")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
