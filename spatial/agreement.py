"""How much two classifiers' decision regions agree on a 2-D slice: exactly, or on a grid.

Sharon and Dar (2024) compare the decision regions of linear probes across training: a probe at
layer ``l`` composed with the network up to ``l`` is a piecewise-linear classifier, so on a slice
(a box of a 2-input network, or a plane through three inputs) its decision regions are polygons.
:func:`agreement` is the fraction of the slice's area where the two classifiers give the same
class (the argmax of their outputs, the first on ties, as ``torch.argmax``; for one output each,
the sign of the logit: class 1 where it is positive).

``method="exact"`` partitions the slice by both classifiers at once: the joint network (the two
models side by side as one module graph, their outputs concatenated, :class:`_Joint`; any models
:func:`~splinescope.spatial.partition` reads, CNNs with max-pooling and residual nets too) has
regions that refine each classifier's. Inside a joint region both classifiers are affine, so the
top class of each is constant where it is top, clearly, at every corner; the other regions are
split by the differences of each classifier's candidate classes (``_boundary.top_split``, as the
decision boundary is made) until every piece has one top class each. ``method="grid"`` is the
sampled estimate earlier work uses: the fraction of an ``n x n`` grid of cell centres where the
classes agree. (Before, the joint network was made of dense layers only (block-diagonal weights,
the same activation in every layer), the split regions were clipped class by class in Python,
K^2 half-planes per class and region, and classes tied all over a piece were each counted: two
100-class nets took 8.5 s, 0.2 s now; an integer-weight pair gave 0.3061 where the grid closes
in on 0.2957.)
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from . import _engine, _tiles
from ._boundary import as_classes, n_classes, top_class, top_split
from ._net import _unwrap, parse
from ._partition import _center, _check_bounds, _prepare, _split_layers, shoelace_areas
from ._plane import Plane
from ._validate import integer, option

__all__ = ["agreement"]


class _Joint(torch.nn.Module):
    """Two models side by side on one input: their outputs, flattened, one after the other."""

    def __init__(self, a: torch.nn.Module, b: torch.nn.Module):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return torch.cat([self.a(x).flatten(1), self.b(x).flatten(1)], 1)


def _traceable(model: torch.nn.Module, net) -> torch.nn.Module:
    """``model`` as :class:`_Joint` can trace it: the module a wrapper runs (``torch.compile``,
    ``DataParallel``: ``_net._unwrap``, as :func:`parse` reads it), or for TorchScript (which
    torch.fx does not trace into; it is read as a chain of dense layers, ``net``) that chain rebuilt
    as a Sequential: ``Flatten``, then each layer's ``Linear`` (float64, the weights as read) and
    its activation (``LeakyReLU`` of its slope)."""
    model = _unwrap(model)
    if not any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
        return model
    mods: list = [torch.nn.Flatten()]
    for layer in net.layers:
        lin = torch.nn.Linear(layer.in_features, layer.width, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(layer.W))
            lin.bias.copy_(torch.as_tensor(layer.b))
        mods.append(lin)
        if layer.slope is not None:  # (one slope per layer: TorchScript's PReLU must share one)
            mods.append(torch.nn.LeakyReLU(float(layer.slopes()[0])))
    return torch.nn.Sequential(*mods).eval()


def _exact(ma: torch.nn.Module, mb: torch.nn.Module, Ka: int, Kb: int, in_shape, bounds,
           plane: Optional[Plane], max_memory: Optional[int] = None) -> float:
    """The exact fraction (see the module docstring) for traceable models ``ma``, ``mb`` of ``Ka``
    and ``Kb`` outputs on inputs of shape ``in_shape``, on the checked box ``bounds`` (of ``plane``).
    With ``max_memory`` the box is cut into the tiles ``partition(max_memory=)`` would use (the
    grid of :mod:`spatial._tiles`, from exact 1-D probes), each split alone with the whole box's
    tolerances: areas add up, so the agreeing area is the tiles' sum, and no tile's regions are
    kept once its area is known."""
    if n_classes(Ka) != n_classes(Kb):
        raise ValueError(f"the models have {Ka} and {Kb} outputs; agreement compares "
                         "classifiers over the same classes")
    joint, b = _prepare(parse(_Joint(ma, mb), in_shape=in_shape), bounds, plane)
    center = _center(b)
    grid = _tiles.budget_grid(joint, b, center, max_memory, _engine.DEFAULT_RTOL)
    total = sum(_agreeing_area(joint, box, center, b, Ka, Kb) for box in _tiles.tile_boxes(*grid))
    x0, x1, y0, y1 = b
    return total / ((x1 - x0) * (y1 - y0))


def _agreeing_area(joint, box, center: np.ndarray, whole, Ka: int, Kb: int) -> float:
    """The area of ``box`` (a tile of the slice ``whole``) where the joint network's two
    classifiers give the same class."""
    r = _split_layers(joint, box, center, _engine.DEFAULT_RTOL, merge=True, whole=whole)
    ca, cb = _engine.layer_tol(joint.layers[-1], _engine.DEFAULT_RTOL)
    va, ca_a, cb_a = as_classes(r.vals[:, :Ka], ca[:Ka], cb[:Ka])
    vb, ca_b, cb_b = as_classes(r.vals[:, Ka:], ca[Ka:], cb[Ka:])
    C = va.shape[1]
    ca2, cb2 = np.concatenate([ca_a, ca_b]), np.concatenate([cb_a, cb_b])
    ts = top_split(r.X, r.offsets, r.indices, np.concatenate([va, vb], 1), r.scale, ca2, cb2, [(0, C), (C, 2 * C)])
    clear = ~ts.mixed & (ts.tops[0] == ts.tops[1])  # one top class each, clear at every corner
    total = float(shoelace_areas(r.X, r.offsets, r.indices)[clear].sum())
    if len(ts.offsets) > 1:  # each piece has one top class per classifier (or a tie all over it)
        same = _piece_tops(ts, 0, C, ca2, cb2) == _piece_tops(ts, C, 2 * C, ca2, cb2)
        total += float(shoelace_areas(ts.X, ts.offsets, ts.indices)[same].sum())
    return total


def _piece_tops(ts, a: int, b: int, ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """(P,) the top class (within columns ``a:b``) of each piece of the split: the one of the
    largest mean over its vertices, unless an earlier class is tied with it at every vertex
    (their difference within its tolerance, as the split decided "on the line"): then the first
    of the tied classes, as ``torch.argmax`` and the grid. (A class's mean alone read float noise
    as a sign: where one logit was exactly 0 all over a piece, its 1e-16 means made class 1 of a
    sixth of a box that is all class 0.)"""
    off, idx = ts.offsets[:-1], ts.indices
    n = np.diff(ts.offsets)
    v = ts.vals[idx, a:b]  # (E, C) each piece's vertices' values, piece by piece
    top = (np.add.reduceat(v, off, axis=0) / n[:, None]).argmax(1)  # (P,)
    tv = np.repeat(top, n)  # each vertex row's piece's top
    gap = v[np.arange(len(v)), tv][:, None] - v  # (E, C) top minus each class
    tol = ts.scale[idx][:, None] * (ca[a:b][tv][:, None] + ca[a:b]) + (cb[a:b][tv][:, None] + cb[a:b])
    tied = np.logical_and.reduceat(np.abs(gap) <= tol, off, axis=0)  # (P, C): on the line at every vertex
    return tied.argmax(1)  # the first tied class (the top itself is tied with itself)


def _grid(ma: torch.nn.Module, mb: torch.nn.Module, bounds, plane: Optional[Plane], n: int) -> float:
    x0, x1, y0, y1 = bounds
    s = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    t = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    S, T = np.meshgrid(s, t, indexing="xy")
    st = np.stack([S.ravel(), T.ravel()], 1)
    agree = 0
    for k in range(0, len(st), 65536):
        pts = st[k: k + 65536]
        x = plane.lift(pts) if plane is not None else pts
        out = []
        for m in (ma, mb):
            p = next(iter(m.parameters()), None)
            dtype = p.dtype if p is not None else torch.float32
            with torch.no_grad():
                y = m(torch.as_tensor(np.asarray(x), dtype=dtype).reshape(len(pts), *_in_shape(m, plane)))
            y = y.reshape(len(pts), -1)
            out.append(top_class(y))
        agree += int((out[0] == out[1]).sum())
    return agree / (n * n)


def _in_shape(m, plane: Optional[Plane]):
    return tuple(plane.shape) if plane is not None else (-1,)


def agreement(model_a: torch.nn.Module, model_b: torch.nn.Module, bounds: Sequence[float], *,
              plane: Optional[Plane] = None, method: str = "exact", grid: int = 1000,
              max_memory: Optional[int] = None) -> float:
    """The fraction of a slice's area where two classifiers give the same class.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        Piecewise-linear classifiers on the same input (e.g. a probe composed with the network up
        to its layer, at two checkpoints): several outputs (the class is the argmax) or one logit
        each (the class is its sign).
    bounds : (xmin, xmax, ymin, ymax)
        The box of the slice, in the inputs of a 2-input model or in the plane's ``(s, t)``.
    plane : Plane, optional
        For models of more than two inputs.
    method : {"exact", "grid"}
        ``"exact"``: from the joint partition (see the module docstring: the joint regions exact, their
        pieces by class split in float64 with the engine's tolerance). ``"grid"``: the fraction
        of a ``grid x grid`` lattice of cell centres where the classes agree (a sampled estimate).
    grid : int
        Points per side for ``method="grid"``.
    max_memory : int, optional
        For ``method="exact"``: a budget in bytes for the joint partition's working arrays. The
        box is cut into the tiles :func:`~splinescope.spatial.partition` would use with this
        budget and each is split alone; the agreeing areas add up (the same fraction, to float
        rounding). A budget too small even for the smallest tiles is refused, naming the
        smallest that would do. Default: the whole box at once (a pair of trained digits CNNs,
        after their second conv, on the plane's (-0.2, 1.2)^2, peaked at 14.8 GB).

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> import torch
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = a.weight.copy_(torch.tensor([[1.0, 0.0]])); _ = a.bias.zero_()
    ...     _ = b.weight.copy_(torch.tensor([[0.0, 1.0]])); _ = b.bias.zero_()
    >>> agreement(torch.nn.Sequential(a), torch.nn.Sequential(b), (-1, 1, -1, 1))
    0.5
    """
    method = option(method, ("exact", "grid"), "method")
    if max_memory is not None:
        if method == "grid":
            raise ValueError("max_memory bounds the exact method's joint partition; the grid runs in chunks of "
                             "points already")
        max_memory = integer("max_memory", max_memory, minimum=1)
    b = _check_bounds(bounds)
    if plane is not None and not isinstance(plane, Plane):
        raise TypeError(f"plane must be a spatial.Plane, got {type(plane).__name__}")
    shape = tuple(plane.shape) if plane is not None else None
    na, nb = parse(model_a, in_shape=shape), parse(model_b, in_shape=shape)
    if na.in_features != nb.in_features:
        raise ValueError(f"the two models take {na.in_features} and {nb.in_features} inputs; they must "
                         "share an input")
    if plane is None and na.in_features != 2:
        raise ValueError(f"the models have {na.in_features} inputs; pass plane=spatial.Plane(...)")
    # (a torch.export program runs as its module)
    ma, mb = (m.module() if isinstance(m, torch.export.ExportedProgram) else m for m in (model_a, model_b))
    if method == "grid":
        if not isinstance(grid, int) or isinstance(grid, bool) or grid < 1:
            raise ValueError(f"grid must be a positive int, got {grid!r}")
        return _grid(ma, mb, b, plane, grid)
    return _exact(_traceable(ma, na), _traceable(mb, nb), na.layers[-1].width, nb.layers[-1].width, shape or (2,), b,
                  plane, max_memory)
