#!/usr/bin/env bash
# Type-check the installed package with mypy. The package's subpackages live at the top of the
# repository (spatial/, render/) and are mapped by pyproject.toml, which mypy cannot follow
# through an editable install: it checks a throw-away tree of links laid out as installed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/splinescope"
for f in splinescope/*.py splinescope/py.typed; do ln -s "$PWD/$f" "$root/splinescope/"; done
ln -s "$PWD/spatial" "$root/splinescope/spatial"
ln -s "$PWD/render" "$root/splinescope/render"
cd "$root"
"${PYTHON:-python3}" -m mypy --config-file "$OLDPWD/pyproject.toml" -p splinescope
