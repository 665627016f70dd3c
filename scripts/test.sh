#!/usr/bin/env bash
# Set everything up and run the fast test suite (slow tests: bash scripts/test.sh -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The enfuse baseline's tests need the enfuse program: CI (or FUSIONKIT_INSTALL_SYSTEM_DEPS=1) installs it from
# Debian when it can; elsewhere those tests are skipped with a reason.
if { [ "${CI:-}" = "true" ] || [ "${FUSIONKIT_INSTALL_SYSTEM_DEPS:-}" = "1" ]; } && ! command -v enfuse >/dev/null \
   && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt_quiet() { DEBIAN_FRONTEND=noninteractive apt-get "$@" >/dev/null 2>&1; }
  apt_quiet install -y -q --no-install-recommends enfuse \
    || { apt_quiet update -q && apt_quiet install -y -q --no-install-recommends enfuse; } \
    || echo "test: could not install enfuse; its tests will be skipped" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
