#!/usr/bin/env bash
# Download into .wheels/ (git-ignored) the wheels scripts/gpu_check.sh installs on a GPU machine that
# has no network: the packages its image (Python 3.12, x86-64) lacks, and theirs. Run here, before the
# device call that carries .wheels:   bash scripts/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .wheels
grep -qx '/.wheels/' .git/info/exclude 2>/dev/null || echo '/.wheels/' >>.git/info/exclude
pip download -q --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d .wheels shapely dask distributed tornado tblib zict locket partd torch-cka ckatorch pytest-timeout \
    seaborn pandas safetensors tzdata click cloudpickle fsspec toolz pyyaml msgpack psutil sortedcontainers \
    jinja2 markupsafe urllib3 packaging python-dateutil six
du -sh .wheels
