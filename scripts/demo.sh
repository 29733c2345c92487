#!/usr/bin/env bash
# Set up (scripts/setup.sh), then the main job on the default toy run (spatial.train.ToyRun, the
# same as render.demo()): train a 3x32 ReLU network on two moons (checkpoints on a log-spaced
# schedule) and render its linear regions over training to splinescope-demo.gif. A few minutes
# on 2 cores. Run: bash scripts/demo.sh [OUT.gif]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} MPLBACKEND=Agg
OUT=${1:-splinescope-demo.gif}
splinescope train --toy moons --out runs/demo-moons
splinescope animate runs/demo-moons --out "$OUT"
echo "wrote $OUT"
