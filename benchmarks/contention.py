"""How a run degrades when the machine is not idle: wall and CPU time of one DFP run with and without a competing
single-threaded process, for fixed thread counts, ``threads: auto`` and OpenMP's wait policy.

Each case runs in a fresh process (OpenMP reads its environment at start-up). The competitor is a pure-Python busy
loop pinned to nothing, started before the run and stopped after it.

    python benchmarks/contention.py --size 128 --set preset=fast
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402

BUSY = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


def child(size: int, threads: str, overrides: list[str]) -> dict:
    from fusionkit.runner import run
    from fusionkit.synthetic import make_stack, sample_image

    st = make_stack(sample_image("astronaut", size * 2), n=2, scale=2, blur_sigma=2.5, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    res = run({"name": "contention"}, ["device=cpu", f"threads={threads}", *overrides], inputs=list(st.inputs),
              write=False)
    return {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
            "threads_used": res.manifest["threads"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128, help="input size (output = 2x)")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--cases", nargs="+", default=["2", "1", "auto"], help="thread settings to try")
    ap.add_argument("--policies", nargs="+", default=["", "PASSIVE"], help="OMP_WAIT_POLICY values ('' = unset)")
    ap.add_argument("--child", nargs=2, metavar=("SIZE", "THREADS"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "contention.jsonl"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.overrides)))
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"{'load':<6} {'threads':<7} {'OMP_WAIT_POLICY':<16} {'wall s':>7} {'cpu s':>7} used", flush=True)
    for loaded in (False, True):
        for policy in args.policies:
            for threads in args.cases:
                env = dict(os.environ)
                env.pop("OMP_WAIT_POLICY", None)
                if policy:
                    env["OMP_WAIT_POLICY"] = policy
                busy = subprocess.Popen([sys.executable, "-c", BUSY]) if loaded else None
                try:
                    time.sleep(1.0 if loaded else 0.0)   # let the load show in /proc/stat
                    cmd = [sys.executable, __file__, "--child", str(args.size), threads]
                    cmd += [x for o in args.overrides for x in ("--set", o)]
                    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                row = {"loaded": loaded, "threads": threads, "policy": policy or "unset", "size": args.size,
                       "overrides": args.overrides, **json.loads(proc.stdout.strip().splitlines()[-1])}
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{'busy' if loaded else 'idle':<6} {threads:<7} {row['policy']:<16} {row['wall_s']:>7.1f} "
                      f"{row['cpu_s']:>7.1f} {row['threads_used']}", flush=True)


if __name__ == "__main__":
    main()
