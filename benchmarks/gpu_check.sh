#!/usr/bin/env bash
# The CUDA checks and GPU timings of issue 9, as one script for a lent GPU machine (BENCHMARKS.md "Speed and scale").
#   bash benchmarks/gpu_check.sh OUT_DIR
# Expects python3 with a CUDA build of torch; installs fusionkit (and any wheels in .whl/, e.g. pydantic) into a
# private folder without touching the network. Writes logs and JSON rows under OUT_DIR.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
site=/tmp/fk-site
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" . .whl/*.whl >"$out/install.log" 2>&1 \
  || { echo "install failed"; tail -20 "$out/install.log"; exit 1; }
export PYTHONPATH=$site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, fusionkit; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

echo "== CUDA tests"
python3 -m pytest -q -p no:cacheprovider tests/components/test_focus_measures.py tests/test_optimisation.py \
  -k "cuda or precision" 2>&1 | tail -3 | tee "$out/tests.txt"

echo "== s/iteration, one generator step (bf16 = precision auto on this GPU, then fp32)"
python3 benchmarks/speed.py --device cuda --sizes 512 1024 2048 --iterations 20 2>&1 | tee "$out/speed_bf16.txt"
python3 benchmarks/speed.py --device cuda --sizes 512 1024 2048 --iterations 20 --set precision=fp32 2>&1 \
  | tee "$out/speed_fp32.txt"

echo "== whole runs per preset, 256² pair -> 512²"
python3 benchmarks/preset_time.py --synthetic 256 --device cuda --preset fast default paper --tag gpu \
  --out "$out/preset_time.jsonl" 2>&1 | tee "$out/preset_time.txt"
echo "== full-size Lytro pair x2 (1040² output)"
if [ -d "${FUSIONKIT_SHARED:-../shared}/data/lytro" ]; then
  python3 benchmarks/preset_time.py --lytro 01 --device cuda --preset fast default --tag gpu \
    --out "$out/preset_time.jsonl" 2>&1 | tee -a "$out/preset_time.txt"
else
  echo "no Lytro data here (set FUSIONKIT_SHARED to a folder holding data/lytro); skipped"
fi
