"""Seconds per iteration and peak memory of the DFP fusion loop at 256², 512², 1024² outputs (x2).

Times the engine's own loop (generator forward + downsampler + losses + backward + Adam step) on a synthetic
pair, after warm-up iterations. Each size runs in a fresh subprocess. Peak memory: CUDA's max_memory_allocated
on a GPU; on CPU the subprocess's peak resident set (ru_maxrss) minus its resident set before the first
fusion (imports and inputs), i.e. what the fusion itself added at its peak.

    python benchmarks/speed.py                     # CPU, torch's default threads
    python benchmarks/speed.py --device cuda --sizes 256 512 1024 2048
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


def measure(size: int, iterations: int, device_name: str, overrides: list[str]) -> dict:
    catalog = default_catalog()
    device = resolve_device(device_name)
    st = make_stack(sample_image("astronaut", size), n=2, scale=2, seed=0)
    stack = stack_from_arrays(st.inputs)
    # one generator step: no refinement, no tiles (whole-image steps at the size asked for)
    spec = load_spec({"name": "speed"}, ["decision_embedding.enabled=false", "refine.iterations=0", "tiling.mode=never",
                                         f"device={device.type}", *overrides],
                     catalog=catalog, require_inputs=False).spec
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fuse(spec.model_copy(update={"iterations": 2}), catalog, stack, device=device)   # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = fuse(spec.model_copy(update={"iterations": iterations}), catalog, stack, device=device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return {"size": size, "s_per_iter": out.timings["fusion"] / iterations, "peak_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(args.one, args.iterations, args.device, args.overrides)))
        return
    device = resolve_device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or 'cpu'}), "
          f"torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}, "
          f"{args.iterations} timed iterations, overrides {args.overrides}")
    print(f"{'output':>9} {'s/iter':>8} {'peak MiB':>9}", flush=True)
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(size), "--iterations", str(args.iterations), "--device",
               args.device, "--threads", str(args.threads)] + [x for o in args.overrides for x in ("--set", o)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(f"{size:>5}²   {res['s_per_iter']:>8.3f} {res['peak_mib']:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
