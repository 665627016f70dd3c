"""UDPNet's learning curve on its own held-out validation pairs, scored like the benchmark (the ten Table II metrics,
whole images, x1), for every checkpoint given, beside the two-step DoubleReblur composite on the same pairs.

The validation pairs are the ones the training run held out (its manifest's `validation_ids`: MFI-WHU pairs outside
the 30-pair test subset, never trained on), so this curve says where more training would go without looking at
any benchmark. Checkpoints: the run's kept ones plus any folder of copies (``--checkpoints``).

    python benchmarks/udpnet_learning_curve.py --run runs/train-udpnet --checkpoints /tmp/ckpts --threads 1
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402
from udpnet_table2 import LABELS, METRICS  # noqa: E402

from fusionkit import weights  # noqa: E402
from fusionkit.io import read_image  # noqa: E402
from fusionkit.registry import default_catalog  # noqa: E402
from fusionkit.runner import run  # noqa: E402
from fusionkit_plugins.udpnet.model import UDPNet  # noqa: E402
from fusionkit_plugins.udpnet.roles import UDPNetFuser  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(ROOT / "runs" / "train-udpnet"))
    ap.add_argument("--checkpoints", nargs="*", default=[], help="more folders of step-*.pt copies")
    ap.add_argument("--steps", type=int, nargs="*", default=None, help="only these checkpoints' steps")
    ap.add_argument("--decisions", nargs="+", default=["binary", "soft"], help="binary and/or soft")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "udpnet_learning_curve.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    src = manifest["data"][0]
    folder, ids = Path(src["path"]), src["validation_ids"]
    pairs = {i: [read_image(next(folder.glob(f"{i}_{r}.*")))[0] for r in "AB"] for i in ids}
    catalog = default_catalog()
    scorers = {m: catalog.get("metric", m).cls() for m in METRICS}
    found: dict[int, Path] = {}
    for d in [run_dir / "checkpoints", *map(Path, args.checkpoints)]:
        for p in sorted(d.glob("step-*.pt")):
            found.setdefault(int(p.stem.split("-")[1]), p)
    if (run_dir / "weights.pt").is_file():
        found.setdefault(int(weights.read(str(run_dir / "weights.pt"))["training"]["steps"]), run_dir / "weights.pt")
    if args.steps:
        found = {s: p for s, p in found.items() if s in args.steps}
    rows = []
    base = _scores({i: run(str(ROOT / "examples" / "two-step-x2.yaml"), ["scale=1", "device=cpu"], inputs=p,
                           catalog=catalog, write=False).fused for i, p in pairs.items()}, pairs, scorers)
    rows.append({"step": None, "method": "two-step composite", **base})
    print("two-step composite", _line(base), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for step, path in sorted(found.items()):
            payload = torch.load(path, weights_only=True)
            state = payload.get("state_dict") or payload["model"]
            w = Path(tmp) / f"w{step}.pt"
            weights.save(w, model="udpnet", architecture=UDPNet.Params().model_dump(mode="json"), state_dict=state)
            for decision in args.decisions:
                fuser = UDPNetFuser(weights=str(w), decision=decision)
                fused = {}
                for i, (a, b) in pairs.items():
                    with torch.no_grad():
                        out = fuser(torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2))
                    fused[i] = out[0].permute(1, 2, 0).numpy()
                s = _scores(fused, pairs, scorers)
                rows.append({"step": step, "method": f"udpnet ({decision})", **s})
                print(f"step {step} {decision}", _line(s), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": {"run": str(run_dir), "validation_ids": ids,
                                                   "metrics": METRICS}, "rows": rows}, indent=2))


def _scores(fused: dict, pairs: dict, scorers: dict) -> dict:
    out = {}
    for m, scorer in scorers.items():
        out[m] = float(np.mean([scorer(fused[i].astype(np.float64), [x.astype(np.float64) for x in pairs[i]])
                                for i in pairs]))
    return out


def _line(s: dict) -> str:
    return " ".join(f"{LABELS[k]} {s[k]:.4f}" for k in METRICS)


if __name__ == "__main__":
    main()
