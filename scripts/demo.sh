#!/usr/bin/env bash
# Set everything up and run the built-in demo (synthetic multi-focus pair, DFP x2). Extra args go to `fusionkit demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fusionkit demo "$@"
