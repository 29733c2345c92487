"""splinescope: see, exactly, how a piecewise-linear network carves up its input space.

The top level re-exports the geometry and estimator API of :mod:`splinescope.spatial`
(``import splinescope as ss; ss.partition(...)``); pictures and movies live in
:mod:`splinescope.render` (``from splinescope import render``), which imports matplotlib and so
is loaded only when asked for.

Subpackages
-----------
spatial   exact partitions, planes, local complexity, checkpoints, data, training runs
render    drawing, movies and the ``splinescope`` command line
"""
from importlib import metadata as _metadata

from . import spatial
from .spatial import _LAZY as _spatial_lazy
from .spatial import __all__ as _spatial_all

globals().update({_n: getattr(spatial, _n) for _n in _spatial_all if _n not in _spatial_lazy})

try:
    __version__ = _metadata.version("splinescope")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was not installed
    __version__ = "0+unknown"


def __getattr__(name):  # ``splinescope.render`` (and LocalComplexity) without importing matplotlib up front
    if name == "render":
        import importlib
        return importlib.import_module(".render", __name__)
    if name in _spatial_lazy:
        return getattr(spatial, name)
    raise AttributeError(f"module 'splinescope' has no attribute {name!r}")


__all__ = ["__version__", "render", "spatial", *_spatial_all]
