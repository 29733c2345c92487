#!/usr/bin/env bash
# Set up splinescope for development on a fresh machine: system libraries for pycddlib,
# Chromium and its driver (the viewer's browser tests), Fashion-MNIST (Debian's
# dataset-fashion-mnist), a CPU build of torch (only if no torch is installed), the package in
# editable mode with its test extras, and pycddlib (certified rational checks). Idempotent: fast
# when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# system packages, installed only when missing: libcdd-dev and libgmp-dev (to build pycddlib),
# chromium and chromium-driver (the viewer's tests drive a headless browser; skipped without them)
missing=()
for pkg in libcdd-dev libgmp-dev chromium chromium-driver; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  if ! command -v apt-get >/dev/null 2>&1 \
      || ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "setup: warning: could not install ${missing[*]} (libcdd-dev/libgmp-dev build pycddlib;" \
         "chromium/chromium-driver run the viewer's browser tests, skipped without them)" >&2
  fi
fi

# Fashion-MNIST for `splinescope grok` and gallery/grokking.py (spatial.idx.FASHION_MNIST): Debian's
# package, only when missing; without it those fall back to --data digits
if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
    || echo "setup: warning: could not install dataset-fashion-mnist (splinescope grok needs it, or --data digits)" >&2
fi

# torch: keep an existing install (CPU or CUDA); otherwise the CPU build
"$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q torch==2.13.0

"$PY" -m pip install -q -e ".[test]" 2>&1 | grep -v -e "^WARNING: Running pip as" -e "^WARNING: Location" || true
"$PY" -c "import splinescope, splinescope.render" # the install worked

if ! "$PY" -c "import cdd.gmp" 2>/dev/null; then
  if ! "$PY" -m pip install -q "pycddlib>=3.0" 2>/dev/null; then
    if [ "${CI:-}" = "true" ]; then
      echo "setup: error: pycddlib did not build (needs libcdd-dev and libgmp-dev)" >&2; exit 1
    fi
    echo "setup: warning: pycddlib did not build; certify() and its tests are skipped" >&2
  fi
fi
