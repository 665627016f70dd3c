"""Wall time, peak memory and quality of whole runs, per preset: what a user waits for, end to end.

Each configuration runs in a fresh process (so its peak resident memory is its own) through the Python API with
``write=False``: reading the spec, the memory plan, the focus measure, the decision embedding, the fusion loop and
the refinement, and the chroma. Inputs:

- ``--synthetic N``: a 2-image synthetic stack made from scikit-image's astronaut at N x N (ground truth at N*s);
- ``--lytro ID``: a full-size Lytro pair from ../shared/data/lytro (520 x 520; no ground truth);
- ``--nyud ID``: a NYU-D-MFF pair, centre crop ``--crop``, made low-resolution as in quality_nyud.py (with GT).

    python benchmarks/preset_time.py --synthetic 256 --preset fast default paper
    python benchmarks/preset_time.py --lytro 01 --preset fast
    python benchmarks/preset_time.py --nyud 01 --crop 512 --preset fast --set tiling.tile=256 --tag tiled

Peak memory: the child's peak RSS on CPU (everything: Python, torch, data), CUDA's max_memory_allocated on a GPU;
on CPU also the peak of the summed RSS of the child and its tile worker processes (``peak_tree_mib``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, centre_crop, data_dir, downsample, score  # noqa: E402


def load_inputs(args, catalog):
    """(low-resolution images, ground truth or None, a description)."""
    from fusionkit.io import read_image
    from fusionkit.synthetic import make_stack, sample_image

    s = args.scale
    if args.synthetic:
        st = make_stack(sample_image("astronaut", args.synthetic * s), n=2, scale=s, blur_sigma=2.5, seed=0)
        return list(st.inputs), st.truth, f"synthetic astronaut pair {args.synthetic}² -> {args.synthetic * s}²"
    if args.lytro:
        folder = data_dir("lytro")
        imgs = [read_image(next(folder.glob(f"{args.lytro}_{t}.*")))[0] for t in "AB"]
        h, w = imgs[0].shape[:2]
        return imgs, None, f"Lytro pair {args.lytro}, {w}x{h} -> {w * s}x{h * s}"
    folder = data_dir("nyud-mff")

    def load(tag):
        return centre_crop(read_image(next(folder.glob(f"{args.nyud}_{tag}.*")))[0], args.crop, s)

    a, b, gt = load("A"), load("B"), load("GT")
    lr = [downsample(a, s, "bicubic", catalog), downsample(b, s, "bicubic", catalog)]
    return lr, gt, f"NYU-D-MFF pair {args.nyud}, crop {args.crop}, bicubic ↓{s}"


def one(args) -> dict:
    import torch

    from fusionkit.engine import resolve_device
    from fusionkit.registry import default_catalog
    from fusionkit.runner import run

    catalog = default_catalog()
    inputs, truth, what = load_inputs(args, catalog)
    device = resolve_device(args.device)
    overrides = [f"scale={args.scale}", f"device={device.type}", *args.overrides]
    preset = args.preset[0]        # the child gets one
    if preset != "none":
        overrides.append(f"preset={preset}")
    if args.threads:
        overrides.append(f"threads={args.threads}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with TreeMemory() as tree:
        res = run({"name": "preset-time"}, overrides, inputs=inputs, catalog=catalog, write=False)
    wall = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    row = {"input": what, "preset": preset, "overrides": args.overrides, "wall_s": round(wall, 2),
           "peak_mib": round(peak / 2**20), "peak_tree_mib": round(tree.peak / 2**20),
           "timings": res.manifest["timings"], "stops": res.manifest["stops"],
           "threads": res.manifest["threads"], "memory": res.manifest["memory"],
           "device": res.manifest["environment"]["device"]}
    if truth is not None:
        row.update(score(truth, res.fused))
    return row


class TreeMemory:
    """Peak of the summed resident memory of this process and all its descendants (tile workers), sampled every
    0.2 s from /proc: what the machine must hold. Shared pages are counted once per process (an upper bound)."""

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree(pid: int) -> list[int]:
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            out.append(p)
            try:
                for task in os.listdir(f"/proc/{p}/task"):
                    with open(f"/proc/{p}/task/{task}/children") as fh:
                        todo += [int(c) for c in fh.read().split()]
            except OSError:
                pass
        return out

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, sum(self._rss(p) for p in self._tree(os.getpid())))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", type=int, help="input size of a synthetic pair")
    src.add_argument("--lytro", help="Lytro pair id, e.g. 01")
    src.add_argument("--nyud", help="NYU-D-MFF pair id, e.g. 01")
    ap.add_argument("--crop", type=int, default=512, help="NYU-D: centre crop of the full-resolution images")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--preset", nargs="+", default=["fast"], help="presets to time (none = the spec as it is)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="spec override for every run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="0: the spec's threads (auto)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "preset_time.jsonl"))
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return
    print(f"{platform.processor() or platform.machine()}, device {args.device}; overrides {args.overrides}",
          flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for preset in args.preset:
        cmd = [sys.executable, __file__, "--one", "--preset", preset, "--scale", str(args.scale), "--device",
               args.device, "--threads", str(args.threads), "--crop", str(args.crop)]
        cmd += ["--synthetic", str(args.synthetic)] if args.synthetic else (
            ["--lytro", args.lytro] if args.lytro else ["--nyud", args.nyud])
        cmd += [x for o in args.overrides for x in ("--set", o)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{preset}: failed\n{proc.stderr[-2000:]}", flush=True)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["tag"] = args.tag
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        quality = f" PSNR {row['psnr']:.2f} SSIM {row['ssim']:.4f}" if "psnr" in row else ""
        stages = ", ".join(f"{k} {v:.1f}" for k, v in row["timings"].items() if k != "total")
        print(f"{row['input']} | {preset:<8} {args.tag} wall {row['wall_s']:.1f} s, peak {row['peak_mib']} MiB "
              f"(with tile workers {row.get('peak_tree_mib', '?')} MiB), "
              f"{row['threads']} threads{quality} ({stages}) memory {row['memory'].get('mode')}", flush=True)


if __name__ == "__main__":
    main()
