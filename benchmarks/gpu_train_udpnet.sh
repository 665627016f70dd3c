#!/usr/bin/env bash
# Train UDPNet's weights on one CUDA GPU with a longer schedule than the CPU budget allows, and print the
# throughput. Everything it writes goes under OUT. About 6 minutes of wall time in all on one H200:
#
#   bash benchmarks/gpu_train_udpnet.sh OUT [TRAIN_SECONDS]
#
# 1. checks that PyTorch sees a GPU (and says which);
# 2. makes fusionkit importable without the network: a venv over the system's site-packages (torch, numpy, ...
#    must already be installed there) with fusionkit installed editable and without dependencies;
# 3. measures the training throughput (200 steps of the shipped spec, batch 16) -> OUT/probe;
# 4. trains examples/train/udpnet.yaml for as many steps as fit TRAIN_SECONDS (default 210) at that rate
#    -> OUT/train (weights.pt, manifest.json with the GPU's name, curves/);
# 5. prints steps/s, crops/s, the wall time and the final validation scores, and writes OUT/summary.txt.
#
# The data is the MFI-WHU folder of ../shared/data (or $FUSIONKIT_SHARED/data): the same 81 training pairs as the
# CPU-trained weights (the 30-pair test subset excluded, 9 pairs held out for validation).
set -euo pipefail
OUT=${1:?usage: bash benchmarks/gpu_train_udpnet.sh OUT [TRAIN_SECONDS]}
SECONDS_BUDGET=${2:-210}
DEVICE=${FUSIONKIT_DEVICE:-cuda}        # cpu only to try the script itself on a machine without a GPU
PROBE=${FUSIONKIT_PROBE_STEPS:-200}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
export CUBLAS_WORKSPACE_CONFIG=:4096:8 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} MPLBACKEND=Agg

[ "$DEVICE" = cpu ] || "$PY" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_train_udpnet: PyTorch sees no CUDA GPU here (torch %s)" % torch.__version__)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU {torch.cuda.get_device_name(0)}")
EOF

if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, fusionkit; assert '$DEVICE' == 'cpu' or torch.cuda.is_available()" 2>/dev/null; then
  PYV=.venv/bin/python
else
  VENV="$OUT/venv"
  "$PY" -m venv --system-site-packages "$VENV"
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation --disable-pip-version-check -e . \
    || { echo "gpu_train_udpnet: could not install fusionkit (needs setuptools in the system Python)" >&2; exit 1; }
  PYV="$VENV/bin/python"
fi
"$PYV" -c "import fusionkit, pydantic, pluggy, yaml, click, rich, cv2, skimage, scipy, matplotlib" \
  || { echo "gpu_train_udpnet: a dependency of fusionkit is missing (see pyproject.toml)" >&2; exit 1; }

SHARED=${FUSIONKIT_SHARED:-}
for d in "$SHARED" shared ../shared; do
  if [ -n "$d" ] && [ -d "$d/data/mfi-whu" ]; then SHARED=$(cd "$d" && pwd); break; fi
done
[ -d "$SHARED/data/mfi-whu" ] || { echo "gpu_train_udpnet: no data/mfi-whu (set FUSIONKIT_SHARED)" >&2; exit 1; }
DATA=(--set "data.sources[0].path=$SHARED/data/mfi-whu"
      --set "data.sources[0].exclude_list=$SHARED/data/mfi-whu/test_subset_mit-mfif_30.txt"
      --set "device=$DEVICE" --set threads=null)

t0=$(date +%s)
"$PYV" -m fusionkit.cli train examples/train/udpnet.yaml "${DATA[@]}" --set "steps=$PROBE" --set validation.every=0 \
  --set "checkpoint.every=$PROBE" --set "output.dir=$OUT/probe" >"$OUT/probe.log" 2>&1 || { tail -20 "$OUT/probe.log"; exit 1; }
RATE=$("$PYV" -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['throughput']['crops_per_s'])" "$OUT/probe/manifest.json")
STEPS=$("$PYV" -c "import sys; r=float(sys.argv[1]); print(max(8, int(r * float(sys.argv[2]) / 16 / 8) * 8))" "$RATE" "$SECONDS_BUDGET")
echo "probe: $RATE crops/s (batch 16) -> training $STEPS steps"

"$PYV" -m fusionkit.cli train examples/train/udpnet.yaml "${DATA[@]}" --set "steps=$STEPS" \
  --set validation.every=$((STEPS / 8)) --set checkpoint.every=$((STEPS / 4)) --set "output.dir=$OUT/train" \
  >"$OUT/train.log" 2>&1 || { tail -20 "$OUT/train.log"; exit 1; }

"$PYV" - "$OUT" "$t0" <<'EOF' | tee "$OUT/summary.txt"
import json, sys, time
out, t0 = sys.argv[1], int(sys.argv[2])
for name in ("probe", "train"):
    m = json.load(open(f"{out}/{name}/manifest.json"))
    dev = m["environment"]["device"]
    print(f"{name}: {m['progress']['step']} steps x {m['budget']['batch']} crops on {dev.get('name')} "
          f"({dev['device']}): {m['throughput']['crops_per_s']} crops/s median, "
          f"{m['throughput']['crops_per_s_overall']} crops/s overall, {m['wall_seconds']} s")
m = json.load(open(f"{out}/train/manifest.json"))
print("final validation:", json.dumps(m["final"]["validation"]))
print("max_gradient reference:", json.dumps(m.get("validation_reference")))
print(f"weights: {out}/train/weights.pt  (sha256 {m['outputs'].get('weights_sha256')})")
print(f"script wall time: {int(time.time()) - t0} s")
EOF
