"""The installed package: one import name (``splinescope``), its re-exports, its doctests."""
import doctest
import importlib
import pkgutil
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import splinescope

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(splinescope.__path__, "splinescope.")
                 if m.name != "splinescope.__main__")
# spatial/ and render/ live at the top of the repository; they are the package's subpackages
MODULES += sorted(m.name for pkg in ("splinescope.spatial", "splinescope.render")
                  for m in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."))


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} doctest(s) of {name} failed (printed above)"


def test_modules_are_found():
    assert "splinescope.spatial._engine" in MODULES and "splinescope.render.cli" in MODULES


def test_top_level_reexports_spatial():
    from splinescope import render, spatial
    for name in spatial.__all__:
        assert getattr(splinescope, name) is getattr(spatial, name)
    assert render.animate is importlib.import_module("splinescope.render").animate
    assert isinstance(splinescope.__version__, str) and splinescope.__version__[0].isdigit()
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        splinescope.nope


def test_old_arch_names_resolve_to_the_package():
    from splinescope.spatial.checkpoints import resolve_arch
    from splinescope.spatial.train import toy_mlp
    net = resolve_arch("spatial.train:toy_mlp(width=3, depth=1)")()
    assert type(net) is type(toy_mlp(3, 1)) and net[0].out_features == 3


def test_version_from_the_shell():
    out = subprocess.run([sys.executable, "-m", "splinescope", "--version"], capture_output=True, text=True,
                         cwd="/", check=True)
    assert out.stdout.strip() == f"splinescope {splinescope.__version__}"


def test_wheel_installs_only_splinescope(tmp_path):
    """A built wheel claims one top-level name: no ``spatial`` or ``render`` in site-packages."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"  # a copy: building in the checkout would leave a build/ folder there
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "build", "gallery", "runs", "*.egg-info",
                                                             "__pycache__", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(src)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("splinescope-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"splinescope"}
    for f in ("splinescope/spatial/_engine.py", "splinescope/render/cli/__init__.py", "splinescope/render/cli/lc.py", "splinescope/py.typed",
              "splinescope/render/_viewer.html",
              "splinescope/spatial/py.typed", "splinescope/__main__.py"):
        assert f in names
    assert not any(n.startswith(("tests/", "gallery/", "benchmarks/")) for n in names)


def test_license_citation_and_certify_extra():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    cff = (ROOT / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in cff and f"version: {splinescope.__version__}" in cff
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python < 3.11
        pytest.skip("tomllib needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("pycddlib") for d in project["optional-dependencies"]["certify"])
