"""Start-up time of the light CLI commands: wall seconds from process start to exit, as a user sees them.

Each command runs as a fresh process (`.venv/bin/fusionkit ...`, or `python -m fusionkit.cli` with --module), with
its output discarded; the figure is the median (and the min/max) of --repeat runs after one untimed warm-up run
(which also fills fusionkit's catalog cache). `--cold` clears the catalog cache before every run instead, i.e. the
first start after installing or editing a plugin. Also prints which heavy modules each command imported.

    python benchmarks/startup.py                  # warm: the usual case
    python benchmarks/startup.py --cold           # the first start after a plugin changed
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "--help": ["--help"],
    "validate": ["validate", str(ROOT / "examples" / "dfp-x2.yaml"), "--set", "inputs=[a.png,b.png]"],
    "plugins list": ["plugins", "list"],
    "run --dry-run": ["run", str(ROOT / "examples" / "dfp-x2.yaml"), "--set", "inputs=[a.png,b.png]", "--dry-run"],
    "schema": ["schema"],
    "env": ["env"],
}
HEAVY = ("torch", "numpy", "cv2", "scipy", "matplotlib", "skimage")

#: runs a command in-process and reports the heavy modules it imported (stdout: JSON on the last line)
PROBE = """
import json, sys
from fusionkit.cli import main
sys.argv = ["fusionkit"] + json.loads(sys.argv[1])
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.__stderr__)
"""


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def heavy_imports(args: list[str], env: dict) -> list[str]:
    r = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), json.dumps(args)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        return json.loads(r.stderr.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return ["?"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--cold", action="store_true", help="clear the catalog cache before every run")
    ap.add_argument("--only", nargs="+", default=None, help="command labels to time (default: all)")
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("fusionkit")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "fusionkit.cli"]
    cache = Path(tempfile.mkdtemp(prefix="fk-startup-cache-"))
    env = {**os.environ, "FUSIONKIT_CACHE_DIR": str(cache)}
    print(f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}; {'cold' if args.cold else 'warm'} catalog cache; "
          f"median of {args.repeat} runs (min-max)")
    print(f"{'command':<16} {'median s':>9} {'min':>6} {'max':>6}  heavy modules imported")
    try:
        for label, cmd in COMMANDS.items():
            if args.only and label not in args.only:
                continue
            timed(base + cmd, env)  # warm-up: disk cache, and fusionkit's catalog cache
            times = []
            for _ in range(args.repeat):
                if args.cold:
                    shutil.rmtree(cache, ignore_errors=True)
                times.append(timed(base + cmd, env))
            heavy = heavy_imports(cmd, env)
            print(f"{label:<16} {statistics.median(times):>9.2f} {min(times):>6.2f} {max(times):>6.2f}  "
                  f"{', '.join(heavy) or '-'}", flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
