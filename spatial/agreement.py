"""How much two classifiers' decision regions agree on a 2-D slice: exactly, or on a grid.

Sharon and Dar (2024) compare the decision regions of linear probes across training: a probe at
layer ``l`` composed with the network up to ``l`` is a piecewise-linear classifier, so on a slice
(a box of a 2-input network, or a plane through three inputs) its decision regions are polygons.
:func:`agreement` is the fraction of the slice's area where the two classifiers give the same
class (the argmax of their outputs; for one output each, the sign of the logit).

``method="exact"`` partitions the slice by both classifiers at once: the joint network (the two
networks side by side, block-diagonal weights; the shallower one's outputs carried through the
extra layers by pairs ``(act(z) - act(-z)) / (1 + slope)``) has regions that refine each
classifier's. Inside a joint region both classifiers are affine, so the top class of each is
constant wherever it is top at every corner; only regions the decision boundaries cross are
clipped by the half-planes ``f_c >= f_j`` of both. ``method="grid"`` is the sampled estimate
earlier work uses: the fraction of an ``n x n`` grid of cell centres where the classes agree.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ._net import Layer, Network, parse
from ._plane import Plane
from ._validate import option

__all__ = ["agreement"]


def _extend(net: Network, slopes: Sequence[Optional[float]]) -> Tuple[List[Tuple[np.ndarray, np.ndarray]], Tuple[np.ndarray, np.ndarray]]:
    """The network's hidden maps padded to ``len(slopes)`` layers, and its output map.

    Past its own depth the output logits ``z`` are carried as the pair ``(z, -z)``: with the
    activation ``act`` of slope ``s``, ``act(z) - act(-z) = (1 + s) z``."""
    hidden = [(l.W, l.b) for l in net.layers[:-1]]
    W, b = net.layers[-1].W, net.layers[-1].b
    for i in range(len(hidden), len(slopes)):
        hidden.append((np.vstack([W, -W]), np.r_[b, -b]))
        K = len(b)
        W = np.hstack([np.eye(K), -np.eye(K)]) / (1.0 + float(slopes[i] or 0.0))
        b = np.zeros(K)
    return hidden, (W, b)


def _joint(a: Network, b: Network) -> Tuple[Network, int]:
    """Both networks side by side on one input (block-diagonal weights); and a's output count."""
    if a.in_features != b.in_features:
        raise ValueError(f"the two models take {a.in_features} and {b.in_features} inputs; they must share an input")
    sa, sb = [l.slope for l in a.layers[:-1]], [l.slope for l in b.layers[:-1]]
    common = min(len(sa), len(sb))
    if sa[:common] != sb[:common]:
        raise ValueError(f"the two models' activations differ layer by layer ({sa} vs {sb}); agreement "
                         "needs the same negative slope in every layer they share")
    slopes = sa if len(sa) >= len(sb) else sb
    (ha, oa), (hb, ob) = _extend(a, slopes), _extend(b, slopes)
    layers = []
    for i, ((Wa, ba), (Wb, bb)) in enumerate(zip(ha, hb)):
        W = np.vstack([Wa, Wb]) if i == 0 else _blockdiag(Wa, Wb)
        layers.append(Layer(W, np.r_[ba, bb], slopes[i], ["agreement"]))
    W = np.vstack([oa[0], ob[0]]) if not layers else _blockdiag(oa[0], ob[0])
    layers.append(Layer(W, np.r_[oa[1], ob[1]], None, ["agreement"]))
    return Network(layers), len(oa[1])


def _blockdiag(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    W = np.zeros((A.shape[0] + B.shape[0], A.shape[1] + B.shape[1]))
    W[: A.shape[0], : A.shape[1]] = A
    W[A.shape[0]:, A.shape[1]:] = B
    return W


def _clip(poly: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The part of a convex polygon where ``g[0] s + g[1] t + g[2] >= 0``."""
    if len(poly) == 0:
        return poly
    f = poly @ g[:2] + g[2]
    out = []
    n = len(poly)
    for i in range(n):
        j = (i + 1) % n
        if f[i] >= 0:
            out.append(poly[i])
        if (f[i] > 0 > f[j]) or (f[i] < 0 < f[j]):
            t = f[i] / (f[i] - f[j])
            out.append(poly[i] + t * (poly[j] - poly[i]))
    return np.array(out).reshape(-1, 2)


def _shoelace(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    p = poly - poly[0]
    q = np.roll(p, -1, 0)
    return 0.5 * float((p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum())


def _as_classes(maps: np.ndarray) -> np.ndarray:
    """(R, K, 3) affine maps -> the same with one logit turned into two classes (0, f)."""
    if maps.shape[1] == 1:
        return np.concatenate([np.zeros_like(maps), maps], 1)
    return maps


def _exact(a: Network, b: Network, bounds, plane: Optional[Plane]) -> float:
    from ._partition import partition

    joint, Ka = _joint(a, b)
    p = partition(joint, bounds, plane=plane, boundary=False)
    maps = p.affine_maps()  # (R, Ka + Kb, 3)
    A, B = _as_classes(maps[:, :Ka]), _as_classes(maps[:, Ka:])
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"the models have {Ka} and {maps.shape[1] - Ka} outputs; agreement compares "
                         "classifiers over the same classes")
    areas = p.areas()
    local = p._local  # the polygons in coordinates local to the slice (full precision)
    polys = np.split(local[p.indices], p.offsets[1:-1])
    # each classifier's top class at every corner of every region
    V = local[p.indices]  # (E, 2) local corners
    reg = np.repeat(np.arange(len(p)), np.diff(p.offsets))
    # maps are in global slice coordinates: out = A s + B t + c with (s, t) = center + local
    cx, cy = p._center

    def top(M):
        vals = np.einsum("ekj,ej->ek", M[reg][:, :, :2], V + p._center) + M[reg][:, :, 2]
        return vals.argmax(1)

    ta, tb = top(A), top(B)
    same_a = np.logical_and.reduceat(ta == ta[p.offsets[:-1]][reg], p.offsets[:-1])
    same_b = np.logical_and.reduceat(tb == tb[p.offsets[:-1]][reg], p.offsets[:-1])
    pure = same_a & same_b
    first_a, first_b = ta[p.offsets[:-1]], tb[p.offsets[:-1]]
    total = float(areas[pure & (first_a == first_b)].sum())
    K = A.shape[1]
    for i in np.nonzero(~pure)[0]:
        poly = polys[i]
        for c in range(K):
            cell = poly
            for M in (A[i], B[i]):
                for j in range(K):
                    if j != c and len(cell):
                        g = M[c] - M[j]  # f_c - f_j >= 0, in local coordinates
                        cell = _clip(cell, np.array([g[0], g[1], g[2] + g[0] * cx + g[1] * cy]))
            total += max(_shoelace(cell), 0.0)
    x0, x1, y0, y1 = p.bounds
    return total / ((x1 - x0) * (y1 - y0))


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
            out.append((y[:, 0] > 0).long() if y.shape[1] == 1 else y.argmax(1))
        agree += int((out[0] == out[1]).sum())
    return agree / (n * n)


def _in_shape(m, plane: Optional[Plane]):
    return tuple(plane.shape) if plane is not None else (-1,)


def agreement(model_a: torch.nn.Module, model_b: torch.nn.Module, bounds: Sequence[float], *,
              plane: Optional[Plane] = None, method: str = "exact", grid: int = 1000) -> float:
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
        ``"exact"``: from the joint partition (see the module docstring). ``"grid"``: the fraction
        of a ``grid x grid`` lattice of cell centres where the classes agree (a sampled estimate).
    grid : int
        Points per side for ``method="grid"``.

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
    from ._partition import _check_bounds

    b = _check_bounds(bounds)
    na, nb = parse(model_a), parse(model_b)
    if na.in_features != nb.in_features:
        raise ValueError(f"the two models take {na.in_features} and {nb.in_features} inputs; they must "
                         "share an input")
    if plane is not None:
        if not isinstance(plane, Plane):
            raise TypeError(f"plane must be a spatial.Plane, got {type(plane).__name__}")
        na, nb = na.restrict(plane.origin, plane.basis), nb.restrict(plane.origin, plane.basis)
    elif na.in_features != 2:
        raise ValueError(f"the models have {na.in_features} inputs; pass plane=spatial.Plane(...)")
    if method == "grid":
        if not isinstance(grid, int) or isinstance(grid, bool) or grid < 1:
            raise ValueError(f"grid must be a positive int, got {grid!r}")
        return _grid(model_a, model_b, b, plane, grid)
    return _exact(na, nb, b, None)
