"""How long the decision embedding needs: its loss and how many map pixels still change, per iteration, on
NYU-D-MFF pairs (the quality_nyud protocol's low-resolution inputs), and where a plateau rule would stop it.

    python benchmarks/embedding_stop.py --pairs 6 --iterations 500 --threads 1
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, data_dir  # noqa: E402
from convergence import nyud_pairs  # noqa: E402

from fusionkit.engine import embed_decision, focus_maps  # noqa: E402
from fusionkit.imaging import to_luma  # noqa: E402
from fusionkit.registry import default_catalog  # noqa: E402
from fusionkit.validation import load_spec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--every", type=int, default=5, help="use every k-th pair (spread over the set)")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "embedding_stop.jsonl"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    catalog = default_catalog()
    ids = sorted(p.name.split("_")[0] for p in data_dir("nyud-mff").glob("*_GT.*"))[::args.every][:args.pairs]
    spec = load_spec({"name": "emb"}, ["device=cpu", f"decision_embedding.iterations={args.iterations}",
                                       *args.overrides], catalog=catalog, require_inputs=False).spec
    out = Path(args.out)
    for pid, lr, _ in nyud_pairs(ids, 256, 2, "bicubic", catalog):
        x = torch.from_numpy(np.stack(lr)).permute(0, 3, 1, 2).contiguous()
        luma = to_luma(x)
        torch.manual_seed(spec.seed)
        maps = focus_maps(spec, catalog, luma, lambda e: None)
        seen, history = [], []
        embed_decision(spec, catalog, luma, maps, lambda e: None, history,
                       observe=lambda stage, it, sec, image: seen.append((it, image()[0] > 0.5)))
        final = seen[-1][1]
        rows = [{"iteration": it, "loss": h["loss"], "changed": float(np.mean(m != final)),
                 "vs_measure": float(np.mean(m != (maps[0, 0].numpy() > 0.5)))}
                for (it, m), h in zip(seen, history)]
        with out.open("a") as fh:
            fh.write(json.dumps({"pair": pid, "overrides": args.overrides, "rows": rows}) + "\n")
        pick = [r for r in rows if r["iteration"] in (50, 100, 150, 200, 300, 400, 500)]
        print(pid, " ".join(f"{r['iteration']}: loss {r['loss']:.4f} chg {100 * r['changed']:.2f}%" for r in pick),
              flush=True)


if __name__ == "__main__":
    main()
