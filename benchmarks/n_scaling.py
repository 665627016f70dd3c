"""Time and peak memory of one DFP run versus the number of inputs N (issue 5), for a 256² output (x2 from 128²).

Each N runs in a fresh subprocess on a synthetic depth-layered stack (``fusionkit.synthetic.make_stack``, N
layers), with the default spec (double_reblur, decision embedding, skipnet, lanczos2, content + joint gradient +
gradient limit). Reported per N: the focus measure's seconds, seconds per decision-embedding iteration, seconds per
fusion iteration (each after a 2-iteration warm-up run), and peak memory: CUDA's max_memory_allocated on a GPU; on
CPU the subprocess's peak resident set (ru_maxrss) minus its resident set before the first run (imports and
inputs), i.e. what the run itself added at its peak.

    python benchmarks/n_scaling.py --threads 1 --iterations 5 --embedding-iterations 5
    python benchmarks/n_scaling.py --device cuda --ns 2 4 8 16 32
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys

import torch

from fusionkit.engine import fuse, resolve_device
from fusionkit.io import stack_from_arrays
from fusionkit.registry import default_catalog
from fusionkit.synthetic import make_stack, sample_image
from fusionkit.validation import load_spec


def measure(n: int, size: int, iterations: int, embedding: int, device_name: str, overrides: list[str]) -> dict:
    catalog = default_catalog()
    device = resolve_device(device_name)
    st = make_stack(sample_image("astronaut", size), n=n, scale=2, seed=0)       # inputs size/2, truth size
    stack = stack_from_arrays(st.inputs)
    spec = load_spec({"name": "n-scaling"}, [f"device={device.type}", *overrides], catalog=catalog,
                     require_inputs=False).spec

    def run(fusion_iters: int, embed_iters: int):
        de = spec.decision_embedding.model_copy(update={"iterations": embed_iters, "enabled": embed_iters > 0})
        return fuse(spec.model_copy(update={"iterations": fusion_iters, "decision_embedding": de}), catalog, stack,
                    device=device)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(2, 2 if embedding else 0)                                                      # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = run(iterations, embedding)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    t = out.timings
    return {"n": n, "output": size, "focus_s": t.get("focus_measure", 0.0),
            "embed_s_per_iter": t.get("decision_embedding", 0.0) / embedding if embedding else None,
            "fusion_s_per_iter": t["fusion"] / iterations, "peak_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", type=int, nargs="+", default=[2, 4, 8, 16], help="numbers of inputs to measure")
    ap.add_argument("--size", type=int, default=256, help="output side (inputs are size/2)")
    ap.add_argument("--iterations", type=int, default=10, help="timed fusion iterations")
    ap.add_argument("--embedding-iterations", type=int, default=10, help="timed decision-embedding iterations "
                    "(0: embedding off)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="spec override key=value")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.iterations, args.embedding_iterations, args.device,
                                 args.overrides)))
        return
    device = resolve_device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or 'cpu'}), "
          f"torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}, output {args.size}², "
          f"{args.iterations} fusion + {args.embedding_iterations} embedding timed iterations, "
          f"overrides {args.overrides}")
    print(f"{'N':>4} {'focus s':>8} {'embed s/it':>10} {'fusion s/it':>11} {'peak MiB':>9}", flush=True)
    rows = []
    for n in args.ns:
        cmd = [sys.executable, __file__, "--one", str(n), "--size", str(args.size), "--iterations",
               str(args.iterations), "--embedding-iterations", str(args.embedding_iterations), "--device",
               args.device, "--threads", str(args.threads)] + [x for o in args.overrides for x in ("--set", o)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        rows.append(res)
        embed = f"{res['embed_s_per_iter']:.3f}" if res["embed_s_per_iter"] is not None else "-"
        print(f"{n:>4} {res['focus_s']:>8.3f} {embed:>10} {res['fusion_s_per_iter']:>11.3f} {res['peak_mib']:>9.0f}",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "threads": args.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
