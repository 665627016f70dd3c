#!/usr/bin/env bash
# Creates .venv (once) and installs fusionkit with its test extras. PyTorch is pinned to the 2.13.0 CPU wheel
# here (the package itself accepts torch>=2.1,<3): any other torch requirement can pull a multi-GB CUDA build.
# Override with FUSIONKIT_TORCH="torch==X" (e.g. a CUDA build on a GPU machine).
#
# pip runs only when something it depends on changed: the install is editable (source edits need no pip), so the
# stamp .venv/.fusionkit-setup records pyproject.toml, the torch requirement and the Python; demo.sh and test.sh
# call this script every time and it then costs well under a second. FUSIONKIT_SETUP_FORCE=1 reinstalls anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
TORCH_REQ="${FUSIONKIT_TORCH:-torch==2.13.0}"
stamp=.venv/.fusionkit-setup
want="$(printf '%s\n%s\n' "$TORCH_REQ" "$(.venv/bin/python -c 'import sys; print(sys.version)')" \
        | cat - pyproject.toml | cksum)"
if [ "${FUSIONKIT_SETUP_FORCE:-}" != "1" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('fusionkit') and u.find_spec('torch')))" \
        >/dev/null 2>&1; then
  exit 0
fi
rm -f "$stamp"
log=$(mktemp)
pip_install() {
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check "$@" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2
    echo "setup: 'pip install $*' failed (see above)" >&2
    exit 1
  fi
}
pip_install "$TORCH_REQ"
pip_install -e ".[test]"
rm -f "$log"
.venv/bin/python -c "import fusionkit, torch; print(f'fusionkit {fusionkit.__version__}, torch {torch.__version__}')"
printf '%s\n' "$want" > "$stamp"
