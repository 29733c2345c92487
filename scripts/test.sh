#!/usr/bin/env bash
# Set up (scripts/setup.sh), type-check the package (scripts/typecheck.sh, mypy) and run the whole
# test suite, doctests included, on one thread.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
bash scripts/typecheck.sh
exec "${PYTHON:-python3}" -m pytest "$@"
