#!/usr/bin/env bash
# Set everything up and run the fast test suite (slow tests: bash scripts/test.sh -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
