#!/usr/bin/env bash
# The GPU check: the tests that run a torch path on cuda, and the benchmarks' --device cuda rows, on a
# machine with a GPU and no network. Run from the repository root, with the wheels of the packages the
# machine lacks in .wheels/ (shapely, dask, distributed, torch-cka, ckatorch, their dependencies;
# `bash scripts/gpu_wheels.sh` downloads them here):
#
#     bash scripts/gpu_check.sh                  # logs: $OUT/gpu_tests.log, $OUT/gpu_bench.log
#     GPU_CHECK_DRY=1 bash scripts/gpu_check.sh  # no GPU: the same steps on the CPU (device cpu:0), small sizes
#
# Nothing is installed into the Python it runs: the missing wheels go to /tmp/deps and the package is
# a symlink layout in /tmp/pkg, both on PYTHONPATH. Each step has a timeout, all of them together at
# most DEADLINE seconds; a failing step does not stop the others; the exit codes are listed at the end.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v /opt/torch/.venv/bin/python3 || command -v python3)}
OUT=${OUT:-/tmp/gpu_check_out}
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-240}))
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MPLBACKEND=Agg TQDM_DISABLE=1 PYTHONDONTWRITEBYTECODE=1

if [ -n "${GPU_CHECK_DRY:-}" ]; then  # the device branches on the CPU, small
    DEV=cpu:0 SEL=cpu
    LC="--n 100 --P 5 --repeat 1" CKA="--n 2000 --p 64 --repeat 1" ROB="--n 100 --repeat 1"
    PART="--widths 32 --repeat 1" CNN="--half 0.25 --res-half --repeat 1"
else
    DEV=cuda SEL=cuda
    LC="--repeat 3" CKA="--repeat 3" ROB="--repeat 3"
    PART="--widths 32 64 128 --repeat 2" CNN="--half 0.25 --res-half 0.004 --res-grid 10000 --repeat 1"
fi

# the wheels of distributions this Python lacks, into /tmp/deps; the package as /tmp/pkg/splinescope
shopt -s nullglob
WHEELS=$("$PY" - .wheels/*.whl <<'EOF'
import importlib.metadata as md, os, sys
for w in sys.argv[1:]:
    try:
        md.distribution(os.path.basename(w).split("-")[0])
    except md.PackageNotFoundError:
        print(w)
EOF
)
RCS=()
if [ -n "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/deps $WHEELS
    RCS+=("wheels=$?")
fi
mkdir -p /tmp/pkg/splinescope
ln -sf "$PWD"/splinescope/* /tmp/pkg/splinescope/
ln -sfn "$PWD/spatial" /tmp/pkg/splinescope/spatial
ln -sfn "$PWD/render" /tmp/pkg/splinescope/render
export PYTHONPATH=/tmp/pkg:/tmp/deps${PYTHONPATH:+:$PYTHONPATH}

step() {  # step NAME SECONDS LOG COMMAND...: run it tee'd to LOG, under what is left of the deadline
    local name=$1 secs=$2 log=$3 left=$((DEADLINE - SECONDS))
    shift 3
    ((secs > left)) && secs=$left
    if ((secs < 10)); then RCS+=("$name=skipped"); return; fi
    echo "=== $name (timeout ${secs}s): $*" | tee -a "$log"
    timeout -k 5 "$secs" "$@" 2>&1 | tee -a "$log"
    RCS+=("$name=${PIPESTATUS[0]}")
}

T=$OUT/gpu_tests.log B=$OUT/gpu_bench.log
: >"$T"; : >"$B"
{ [ -n "${GPU_CHECK_DRY:-}" ] || nvidia-smi; echo "installed from .wheels:" ${WHEELS:-none}
  "$PY" -c "import sys, torch, splinescope as s; v = torch.version
print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', v.cuda, torch.cuda.is_available(), s.__file__)"
} 2>&1 | tee -a "$T" "$B"

TIMEOUT=$("$PY" -c "import pytest_timeout" 2>/dev/null && echo "--timeout 60")
step tests 120 "$T" "$PY" -m pytest -x -q -p no:cacheprovider $TIMEOUT -k "$SEL" tests/test_partition.py \
    tests/test_tiles.py tests/test_graph.py tests/test_maxpool.py tests/test_local_complexity.py \
    tests/test_lc_metric.py tests/test_cka.py tests/test_robust.py
step bench_lc 40 "$B" "$PY" benchmarks/bench_lc.py $LC --device "$DEV"
step bench_cka 40 "$B" "$PY" benchmarks/bench_cka.py $CKA --device "$DEV"
step bench_robust 30 "$B" "$PY" benchmarks/bench_robust.py $ROB --device "$DEV"
step bench_partition 50 "$B" "$PY" benchmarks/bench_partition.py $PART --device "$DEV"
step bench_cnn 80 "$B" "$PY" benchmarks/bench_cnn.py $CNN --device "$DEV"

echo "=== exit codes (124: timed out) after ${SECONDS}s: ${RCS[*]}" | tee -a "$B"
