#!/usr/bin/env bash
# Creates .venv (once) and installs fusionkit with its test extras. PyTorch is pinned to the 2.13.0 CPU wheel
# here (the package itself accepts torch>=2.1,<3): any other torch requirement can pull a multi-GB CUDA build.
# Override with FUSIONKIT_TORCH="torch==X" (e.g. a CUDA build on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
log=$(mktemp)
pip_install() {
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check "$@" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2
    echo "setup: 'pip install $*' failed (see above)" >&2
    exit 1
  fi
}
pip_install "${FUSIONKIT_TORCH:-torch==2.13.0}"
pip_install -e ".[test]"
rm -f "$log"
.venv/bin/python -c "import fusionkit, torch; print(f'fusionkit {fusionkit.__version__}, torch {torch.__version__}')"
