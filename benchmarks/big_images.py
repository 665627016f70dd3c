"""Big inputs: does a run refuse within seconds, or finish in tiles within the memory it planned, instead of being
killed by the operating system? Each case runs ``fusionkit run`` in a fresh process with ``FUSIONKIT_MEMORY_GIB``
(the memory the run may plan with, e.g. an 8 GiB machine), on a synthetic pair written as PNG files, and reports
the exit code, wall time, the process's peak resident memory and the plan from the manifest.

    python benchmarks/big_images.py --size 6000 --scale 2 --memory-gib 8
    python benchmarks/big_images.py --size 6000 --scale 1 --memory-gib 8 --set iterations=2 --set refine.iterations=2

The second form checks the tiled path end to end with a token budget (a full 36-megapixel DFP run takes hours on
two cores; the memory it needs does not depend on the iterations).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402


def write_pair(folder: Path, size: int) -> list[str]:
    """A textured pair (each half blurred in one image), written tile-free with OpenCV to keep this script light."""
    import cv2

    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8), (size, size),
                      interpolation=cv2.INTER_CUBIC)
    blurred = cv2.GaussianBlur(base, (0, 0), 3)
    a, b = base.copy(), base.copy()
    a[:, size // 2:] = blurred[:, size // 2:]
    b[:, :size // 2] = blurred[:, :size // 2]
    paths = []
    for name, img in (("A", a), ("B", b)):
        p = folder / f"{name}.png"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=6000)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--memory-gib", type=float, default=8.0)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "big_images.jsonl"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = write_pair(folder, args.size)
        print(f"wrote a {args.size}² pair in {time.perf_counter() - t0:.1f} s", flush=True)
        spec = folder / "spec.yaml"
        spec.write_text(json.dumps({"name": "big", "inputs": paths, "scale": args.scale,
                                    "output": {"dir": str(folder / "run")}}))
        env = {**os.environ, "FUSIONKIT_MEMORY_GIB": str(args.memory_gib), "FUSIONKIT_PROGRESS_SECONDS": "60"}
        cmd = [sys.executable, "-m", "fusionkit.cli", "run", str(spec), *[x for o in args.overrides
                                                                          for x in ("--set", o)]]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        manifest = next(folder.glob("run*/manifest.json"), None)
        memory = json.loads(manifest.read_text())["memory"] if manifest else None
        row = {"size": args.size, "scale": args.scale, "memory_gib": args.memory_gib, "overrides": args.overrides,
               "exit": proc.returncode, "wall_s": round(wall, 1), "peak_rss_gib": round(peak, 2),
               "plan": memory, "message": proc.stderr.strip().splitlines()[-3:]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
