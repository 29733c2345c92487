"""An independent exact reference for graph networks on a 2-D slice: conv, pooling, residuals.

Slow and simple on purpose, and sharing no code with the engine (nothing from ``splinescope`` or
``spatial`` is imported). The model is traced with ``torch.fx`` and its graph is evaluated node by
node in exact rational arithmetic: every tensor value is an :class:`Aff`, a numpy object array of
shape ``(*shape_without_batch, 3)`` holding the ``Fraction`` coefficients ``(a, b, c)`` of the
affine function ``a*s + b*t + c`` that the element equals on the current polygon piece.

Algorithm. The box is one convex piece (a counter-clockwise list of Fraction points). Nodes are
evaluated in graph order; at a piecewise-linear (PL) node every piece is split, element by element,
into the convex cells on which that element's choice is fixed (an activation: the cell
``b_{k-1} <= z <= b_k`` of each interval ``k``; a max over ``k`` candidates: the cell
``z_i >= z_j for all j`` of each candidate ``i``), with exact Sutherland-Hodgman clipping; only
cells of positive area are kept. On each cell the op is affine, its output is composed exactly and
the evaluation goes on (a depth-first worklist). At the output, pieces with the same pattern are
merged: one region per distinct pattern, its area the exact sum of its pieces' areas and its
polygon the exact convex hull of their vertices (asserted to have that same area, i.e. the union
is convex, as it must be).

Conventions.

- *Pattern*: one flat tuple of ints, over the PL nodes in graph order and, within a node, over the
  elements of its output in C order: for an activation with breakpoints ``b_0 < ... < b_{m-1}``
  the interval index ``k = #{j : b_j < z}`` (0..m; so ReLU: 0 inactive, 1 active, and ``z == 0``
  counts as inactive, which matters only for an element whose ``z`` is constant on a piece); for a
  max (max pooling, adaptive max pooling, ``amax``, ``torch.maximum``) the position of the argmax
  within its window, row-major over the window's kernel offsets (positions in the padding count
  but are never chosen); among candidates that are identical affine functions the lowest position
  wins (for ``torch.minimum``/``amin`` the argmin, same rule). An element whose ``z`` is constant
  on a piece gets its index without splitting, and identical candidates never split; no two
  patterns differ only by a tie-break on a set of zero area.
- *Weights* are the exact Fractions of the float64 values of the torch parameters (use float64
  models; float32 values are exact in float64 too). BatchNorm (eval) is folded in float64 as
  ``scale = (1 / np.sqrt(var + eps)) * gamma`` and ``shift = beta - mean * scale`` (the engine's
  operation order), exact from there.
- *Plane*: the input is ``(origin + s*basis[0] + t*basis[1]).reshape(shape)`` in exact arithmetic
  on the float64 values of ``origin`` and ``basis``. The engine instead rounds the first affine
  op's restriction to the plane in float64; the two agree exactly when origin, basis and the
  first layer's weights are short dyadic numbers (as in the tests), so pick those.

Public functions: :func:`exact_graph_regions` and :func:`sampled_patterns` (a float64 lower bound
on the number of regions for nets too large for the exact reference).
"""
import functools
import itertools
import math
import numbers
import operator
from fractions import Fraction as Fr

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["exact_graph_regions", "sampled_patterns", "Aff"]


# ----------------------------------------------------------------------------- values


class Aff:
    """A tensor of affine functions of (s, t): ``v[..., 0]*s + v[..., 1]*t + v[..., 2]`` (no batch)."""

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    @property
    def shape(self):
        return tuple(self.v.shape[:-1])

    def is_const(self):
        return all(a == 0 for a in self.v[..., :2].ravel())


class Const:
    """A constant tensor met in the graph (a parameter read with get_attr, or computed from one)."""

    __slots__ = ("t", "_fr")

    def __init__(self, t):
        self.t = t.detach().to(torch.float64) if t.is_floating_point() else t.detach()  # (a mask, an index: kept)
        self._fr = None

    @property
    def fr(self):
        if self._fr is None:
            self._fr = _fr_arr(self.t.cpu().numpy())
        return self._fr


def _fr_arr(a):
    """Exact Fractions of the float64 values of an array (any shape)."""
    a = np.asarray(a, dtype=np.float64)
    out = np.empty(a.shape, dtype=object)
    out.ravel()[:] = [Fr(x) for x in a.ravel().tolist()] if a.size else []
    return out


def _f64(t):
    return t.detach().cpu().to(torch.float64).numpy()


def _num(x):
    """An exact Fraction of a Python / numpy / 0-d tensor number."""
    if isinstance(x, Fr):
        return x
    if isinstance(x, Const):
        x = x.t
    if isinstance(x, torch.Tensor):
        x = x.item()
    if isinstance(x, numbers.Integral):
        return Fr(int(x))
    return Fr(float(x))


def _is_number(x):
    return isinstance(x, (numbers.Number, Fr)) and not isinstance(x, complex)


def _zeros(shape):
    out = np.empty(tuple(shape), dtype=object)
    out.fill(Fr(0))
    return out


def _to_aff(x, ndim_full=None):
    """An Aff from an Aff / Const / number (constants get zero s, t coefficients)."""
    if isinstance(x, Aff):
        return x
    if isinstance(x, Const):
        c = x.fr
    elif _is_number(x):
        c = np.array(_num(x), dtype=object)
    else:
        raise NotImplementedError(f"not a tensor value: {type(x).__name__}")
    if ndim_full is not None and c.ndim == ndim_full:
        assert c.shape[0] == 1, "a constant with a batch dimension other than 1"
        c = c[0]
    v = _zeros(c.shape + (3,))
    v[..., 2] = c
    return Aff(v)


def _const_values(x, ndim_full):
    """The Fraction values of a constant (number / Const / constant Aff), batch dim dropped."""
    if _is_number(x):
        return _num(x)
    if isinstance(x, Aff):
        assert x.is_const(), "product of two non-constant affine tensors is not affine"
        return x.v[..., 2]
    c = x.fr
    if c.ndim == ndim_full:
        assert c.shape[0] == 1
        c = c[0]
    return c


def _has_aff(x):
    if isinstance(x, Aff):
        return True
    if isinstance(x, (list, tuple)):
        return any(_has_aff(y) for y in x)
    if isinstance(x, dict):
        return any(_has_aff(y) for y in x.values())
    return False


def _unwrap(x):
    if isinstance(x, Const):
        return x.t
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(y) for y in x)
    if isinstance(x, dict):
        return {k: _unwrap(y) for k, y in x.items()}
    return x


def _wrap(x):
    if isinstance(x, torch.Tensor):
        return Const(x)
    if isinstance(x, (list, tuple)) and not isinstance(x, torch.Size):
        return type(x)(_wrap(y) for y in x)
    return x


# ----------------------------------------------------------------------------- arithmetic


def _neg(x):
    if isinstance(x, Aff):
        return Aff(-x.v)
    if isinstance(x, Const):
        return Const(-x.t)
    return -x


def _add(x, y):
    if not isinstance(x, Aff):
        x, y = y, x
    if _is_number(y):
        v = x.v.copy()
        v[..., 2] = v[..., 2] + _num(y)
        return Aff(v)
    y = _to_aff(y, len(x.shape) + 1)
    if len(y.shape) > len(x.shape):  # numpy broadcasting aligns from the right, as torch does
        x, y = y, x
    return Aff(x.v + y.v)


def _sub(x, y):
    return _add(x, _neg(y))


def _mul(x, y):
    if not isinstance(x, Aff) or (isinstance(y, Aff) and x.is_const() and not y.is_const()):
        x, y = y, x
    c = _const_values(y, len(x.shape) + 1)
    if isinstance(c, Fr):
        return Aff(x.v * c)
    return Aff(x.v * c[..., None])


def _div(x, y, rounding_mode=None):
    assert rounding_mode is None, "division with rounding is not affine"
    assert isinstance(x, Aff), "division by an affine tensor is not affine"
    c = _const_values(y, len(x.shape) + 1)
    if isinstance(c, Fr):
        return Aff(x.v * (1 / c))
    return Aff(x.v / c[..., None])


def _torch_add(x, y, alpha=1):
    return _add(x, _mul(y, alpha) if isinstance(y, Aff) else (y * alpha if alpha != 1 else y))


def _torch_sub(x, y, alpha=1):
    return _sub(x, _mul(y, alpha) if isinstance(y, Aff) else (y * alpha if alpha != 1 else y))


# ----------------------------------------------------------------------------- shape ops
# ``full`` is the view with the batch dimension (of size 1) in front: v[None].


def _ndim_full(x):
    return len(x.shape) + 1


def _axis(d, ndim):
    d = operator.index(d)
    assert -ndim <= d < ndim, f"dimension {d} out of range"
    return d % ndim


def _unfull(vf):
    assert vf.shape[0] == 1, "the batch dimension must stay in front and of its own"
    return Aff(np.ascontiguousarray(vf[0]))


def _reshape(x, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = tuple(shape[0])
    new = np.empty((1,) + x.shape, dtype=np.int8).reshape(tuple(int(s) for s in shape)).shape
    assert new[0] == 1, "reshape must keep the batch dimension in front"
    return Aff(x.v.reshape(new[1:] + (3,)))


def _flatten(x, start_dim=0, end_dim=-1):
    n = _ndim_full(x)
    a, b = _axis(start_dim, n), _axis(end_dim, n)
    if a == b:
        return x
    assert a >= 1, "flattening the batch dimension"
    full = (1,) + x.shape
    new = full[:a] + (math.prod(full[a:b + 1]),) + full[b + 1:]
    return Aff(x.v.reshape(new[1:] + (3,)))


def _unflatten(x, dim, sizes):
    n = _ndim_full(x)
    a = _axis(dim, n)
    assert a >= 1
    full = (1,) + x.shape
    sizes = list(sizes)
    if -1 in sizes:
        i = sizes.index(-1)
        sizes[i] = full[a] // math.prod(s for s in sizes if s != -1)
    new = full[:a] + tuple(sizes) + full[a + 1:]
    return Aff(x.v.reshape(new[1:] + (3,)))


def _permute(x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    n = _ndim_full(x)
    dims = [_axis(d, n) for d in dims]
    assert dims[0] == 0, "permute must keep the batch dimension in front"
    return Aff(np.ascontiguousarray(x.v.transpose([d - 1 for d in dims[1:]] + [n - 1])))


def _transpose(x, d0, d1):
    n = _ndim_full(x)
    d0, d1 = _axis(d0, n), _axis(d1, n)
    assert d0 >= 1 and d1 >= 1, "transposing the batch dimension"
    return Aff(np.ascontiguousarray(np.swapaxes(x.v, d0 - 1, d1 - 1)))


def _squeeze(x, dim=None):
    n = _ndim_full(x)
    if dim is None:
        dims = [d for d in range(1, n) if x.shape[d - 1] == 1]
    else:
        dims = [_axis(d, n) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))]
        dims = [d for d in dims if d >= 1 and x.shape[d - 1] == 1]
    return Aff(np.squeeze(x.v, axis=tuple(d - 1 for d in dims))) if dims else x


def _unsqueeze(x, dim):
    d = _axis(dim, _ndim_full(x) + 1)
    assert d >= 1
    return Aff(np.expand_dims(x.v, d - 1))


def _reduce_dims(x, dim):
    n = _ndim_full(x)
    assert dim is not None, "a reduction over the batch dimension"
    dims = sorted({_axis(d, n) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))})
    assert dims and dims[0] >= 1, "a reduction over the batch dimension"
    return tuple(d - 1 for d in dims)


def _sum(x, dim=None, keepdim=False, dtype=None):
    axes = _reduce_dims(x, dim)
    return Aff(np.sum(x.v, axis=axes, keepdims=keepdim))


def _mean(x, dim=None, keepdim=False, dtype=None):
    axes = _reduce_dims(x, dim)
    count = math.prod(x.shape[a] for a in axes)
    return Aff(np.sum(x.v, axis=axes, keepdims=keepdim) * Fr(1, count))


def _cat(tensors, dim=0):
    tensors = list(tensors)
    ref = next(t for t in tensors if isinstance(t, Aff))
    n = _ndim_full(ref)
    vs = [_to_aff(t, n).v for t in tensors]
    d = _axis(dim, n)
    assert d >= 1, "concatenation along the batch dimension"
    return Aff(np.concatenate(vs, axis=d - 1))


def _stack(tensors, dim=0):
    tensors = list(tensors)
    ref = next(t for t in tensors if isinstance(t, Aff))
    n = _ndim_full(ref)
    vs = [_to_aff(t, n).v for t in tensors]
    d = _axis(dim, n + 1)
    assert d >= 1, "stacking along the batch dimension"
    return Aff(np.stack(vs, axis=d - 1))


def _linear_weights(n_in, n_out, scale_factor, align_corners):
    """Per output position, [(input position, weight), (input position, weight)] of a linear
    interpolation along one dimension (torch's rule for the source position)."""
    out = []
    for j in range(n_out):
        if align_corners:
            src = Fr(j * (n_in - 1), n_out - 1) if n_out > 1 else Fr(0)
        else:
            ratio = 1 / _num(scale_factor) if scale_factor is not None else Fr(n_in, n_out)
            src = max((j + Fr(1, 2)) * ratio - Fr(1, 2), Fr(0))
        i0 = min(math.floor(src), n_in - 1)
        lam = src - i0
        out.append([(i0, 1 - lam), (min(i0 + 1, n_in - 1), lam)])
    return out


def _interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                 antialias=False):
    assert mode in ("nearest", "linear", "bilinear") and not antialias, "nearest or (bi)linear interpolation only"
    nd = len(x.shape) - 1
    f = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * nd
    sizes = size if isinstance(size, (tuple, list)) else (size,) * nd
    v = x.v
    for d, (k, n) in enumerate(zip(f, sizes)):
        n_in = v.shape[1 + d]
        n_out = math.floor(n_in * k) if n is None else int(n)
        if mode == "nearest":  # an integer factor: each element repeated
            assert n is None, "nearest interpolation by a factor only"
            assert float(k).is_integer(), "nearest interpolation by an integer factor"
            v = np.repeat(v, int(k), axis=1 + d)
            continue
        moved = np.moveaxis(v, 1 + d, 0)
        new = np.empty((n_out,) + moved.shape[1:], dtype=object)
        for j, terms in enumerate(_linear_weights(n_in, n_out, k, align_corners)):
            new[j] = sum(moved[i] * w for i, w in terms)
        v = np.moveaxis(new, 0, 1 + d)
    return Aff(np.ascontiguousarray(v))


def _getitem(x, idx):
    if not isinstance(x, Aff):
        return x[idx]
    idx = idx if isinstance(idx, tuple) else (idx,)
    if not idx:
        return x
    first, rest = idx[0], idx[1:]
    if first is Ellipsis:  # x[..., j]: the ellipsis covers the batch dimension too
        return Aff(x.v[(Ellipsis,) + rest + (slice(None),)])
    assert first == slice(None), "indexing the batch dimension"
    return Aff(x.v[rest + (Ellipsis, slice(None))] if Ellipsis not in rest else x.v[rest + (slice(None),)])


def _dims(x, dims):
    n = _ndim_full(x)
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else tuple(dims)
    dims = tuple(_axis(d, n) for d in dims)
    assert all(d >= 1 for d in dims), "an operation over the batch dimension"
    return tuple(d - 1 for d in dims)


def _flip(x, *dims):
    return Aff(np.ascontiguousarray(np.flip(x.v, axis=_dims(x, dims))))


def _roll(x, shifts, dims=None):
    assert dims is not None, "roll over the flattened tensor mixes the batch"
    shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
    return Aff(np.roll(x.v, shifts, axis=_dims(x, (dims,))))


def _take(x, d, sl):
    return x.v[(slice(None),) * d + (sl,)]


def _narrow(x, dim, start, length):
    (d,) = _dims(x, (dim,))
    start = start + x.shape[d] if start < 0 else start
    return Aff(_take(x, d, slice(start, start + length)))


def _select(x, dim, index):
    (d,) = _dims(x, (dim,))
    return Aff(_take(x, d, index))


def _pieces(x, d, sizes):
    out, at = [], 0
    for k in sizes:
        out.append(Aff(_take(x, d, slice(at, at + k))))
        at += k
    return tuple(out)


def _chunk(x, chunks, dim=0):
    (d,) = _dims(x, (dim,))
    size = x.shape[d]
    step = -(-size // chunks)
    return _pieces(x, d, [min(step, size - a) for a in range(0, size, step)])


def _split(x, split_size_or_sections, dim=0):
    (d,) = _dims(x, (dim,))
    size = x.shape[d]
    if isinstance(split_size_or_sections, int):
        k = split_size_or_sections
        return _pieces(x, d, [min(k, size - a) for a in range(0, size, k)])
    return _pieces(x, d, list(split_size_or_sections))


def _unbind(x, dim=0):
    (d,) = _dims(x, (dim,))
    return tuple(Aff(_take(x, d, i)) for i in range(x.shape[d]))


def _repeat(x, *sizes):
    sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    assert len(sizes) == _ndim_full(x) and sizes[0] == 1, "repeat must keep the batch"
    return Aff(np.tile(x.v, tuple(sizes[1:]) + (1,)))


def _expand(x, *sizes):
    sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    assert len(sizes) == _ndim_full(x), "expand must keep the number of dimensions"
    new = tuple(o if s == -1 else s for s, o in zip(sizes[1:], x.shape))
    return Aff(np.ascontiguousarray(np.broadcast_to(x.v, new + (3,))))


def _pad(x, pad, mode="constant", value=None):
    if mode != "constant":  # numpy's own edge / reflect / wrap on the Fractions
        pad = list(pad)
        widths = [(0, 0)] * (len(x.shape) - len(pad) // 2) + \
            [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)][::-1] + [(0, 0)]
        np_mode = {"replicate": "edge", "reflect": "reflect", "circular": "wrap"}[mode]
        return Aff(np.pad(x.v, widths, mode=np_mode))
    c = Fr(0) if value is None else _num(value)
    pad = list(pad)
    new = list(x.shape)
    assert len(pad) // 2 <= len(new), "padding the batch dimension"
    where = [slice(None)] * len(new)
    for i in range(len(pad) // 2):  # pairs from the last dimension backwards
        d = len(new) - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        assert lo >= 0 and hi >= 0, "negative padding"
        where[d] = slice(lo, lo + x.shape[d])
        new[d] += lo + hi
    v = np.empty(tuple(new) + (3,), dtype=object)
    v[..., 0], v[..., 1], v[..., 2] = Fr(0), Fr(0), c
    v[tuple(where) + (slice(None),)] = x.v
    return Aff(v)


def _size(x, dim=None):
    full = torch.Size((1,) + x.shape)
    return full if dim is None else full[dim]


def _getattr(x, name):
    if isinstance(x, Aff):
        if name == "shape":
            return _size(x)
        if name == "ndim":
            return _ndim_full(x)
        raise NotImplementedError(f"attribute {name!r} of a traced tensor")
    return getattr(_unwrap(x), name)


def _identity(x, *args, **kwargs):
    return x


# ----------------------------------------------------------------------------- linear layers


def _tuple(x, n):
    return tuple(int(y) for y in x) if isinstance(x, (tuple, list)) else (int(x),) * n


def _linear(x, weight, bias=None):
    W = weight.fr if isinstance(weight, Const) else _fr_arr(_f64(weight))
    ax = len(x.shape) - 1
    out = np.moveaxis(np.tensordot(W, x.v, axes=([1], [ax])), 0, -2)
    if bias is not None:
        out = out.copy()
        out[..., 2] = out[..., 2] + (bias.fr if isinstance(bias, Const) else _fr_arr(_f64(bias)))
    return Aff(np.ascontiguousarray(out))


def _matmul(x, y):
    """``x @ W`` for an affine ``x`` and a constant 1-D or 2-D ``W``."""
    assert isinstance(x, Aff) and not isinstance(y, Aff), "only affine @ constant is affine"
    W = y.fr if isinstance(y, Const) else _fr_arr(_f64(y))
    assert W.ndim in (1, 2), "matmul by a batched constant"
    out = np.tensordot(x.v, W, axes=([len(x.shape) - 1], [0]))  # (..., 3[, n])
    return Aff(np.ascontiguousarray(np.moveaxis(out, len(x.shape) - 1, -1) if W.ndim == 2 else out))


def _einsum(eq, *ops):
    """``torch.einsum`` of one affine tensor and one constant: the input's batch index dropped, the
    (s, t, 1) axis of the affine tensor added as an index of its own, in Fractions (numpy's einsum
    on object arrays)."""
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = tuple(ops[0])
    assert len(ops) == 2 and sum(isinstance(o, Aff) for o in ops) == 1, "einsum of one affine tensor and a constant"
    eq = eq.replace(" ", "")
    lhs, out = eq.split("->")
    subs = lhs.split(",")
    k = 0 if isinstance(ops[0], Aff) else 1
    b = subs[k][0]
    own = next(c for c in "ZYXWVU" if c not in eq)
    subs = [s.replace(b, "") + (own if i == k else "") for i, s in enumerate(subs)]
    c = ops[1 - k]
    C = c.fr if isinstance(c, Const) else _fr_arr(_f64(c))
    args = (ops[k].v, C) if k == 0 else (C, ops[k].v)
    return Aff(np.ascontiguousarray(np.einsum(",".join(subs) + "->" + out.replace(b, "") + own, *args)))


def _cumsum(x, dim, dtype=None):
    """``torch.cumsum`` of an affine tensor: running sums of Fractions along the sample's axis."""
    assert dtype is None or dtype.is_floating_point, "a running sum cast to an integer rounds"
    ax = _axis(dim, _ndim_full(x))
    assert ax > 0, "a running sum along the batch"
    return Aff(np.ascontiguousarray(np.cumsum(x.v, axis=ax - 1)))


def _diff(x, n=1, dim=-1, prepend=None, append=None):
    """``torch.diff``: differences of neighbours along the sample's axis, ``n`` times."""
    assert prepend is None and append is None, "diff with prepend / append"
    ax = _axis(dim, _ndim_full(x))
    assert ax > 0, "differences along the batch"
    return Aff(np.ascontiguousarray(np.diff(x.v, n=n, axis=ax - 1)))


def _lerp(a, b, weight):
    """``torch.lerp(a, b, w) = a + w (b - a)`` with a constant (number or tensor) weight."""
    assert not isinstance(weight, Aff) or weight.is_const(), "a weight that depends on the input is a product"
    return _add(a, _mul(_sub(b, a), weight)) if isinstance(a, Aff) else _add(_mul(_sub(b, a), weight), a)


def _tensordot(a, b, dims=2, out=None):
    """``torch.tensordot`` of one affine tensor and one constant (the batch dimension stays the
    output's first: the affine tensor first, or the constant summed whole)."""
    assert out is None, "tensordot into out="
    k = 0 if isinstance(a, Aff) else 1
    x, c = (a, b) if k == 0 else (b, a)
    C = c.fr if isinstance(c, Const) else _fr_arr(_f64(c))
    ranks = (_ndim_full(x), C.ndim) if k == 0 else (C.ndim, _ndim_full(x))
    if isinstance(dims, int):
        da, db = list(range(ranks[0] - dims, ranks[0])), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    da = [d % ranks[0] for d in da]
    db = [d % ranks[1] for d in db]
    dx, dc = (da, db) if k == 0 else (db, da)
    assert 0 not in dx, "tensordot over the batch"
    vx = [d - 1 for d in dx]  # the axes of x.v (no batch; its (s, t, 1) axis last)
    if k == 0:
        out = np.tensordot(x.v, C, axes=(vx, dc))  # x's free axes (the own one last of them), C's
        own = len(x.shape) - len(vx)
        return Aff(np.ascontiguousarray(np.moveaxis(out, own, -1)))
    assert len(dc) == C.ndim, "tensordot(constant, x) with a constant dimension before the batch"
    return Aff(np.ascontiguousarray(np.tensordot(C, x.v, axes=(dc, vx))))


def _addmm(c, x, w, beta=1, alpha=1):
    """``torch.addmm(c, x, W) = beta c + alpha (x @ W)``, constants ``c``, ``W``."""
    y = _mul(_matmul(x, w), alpha)
    cv = _const_values(c, _ndim_full(y)) * _num(beta)
    if isinstance(cv, Fr):
        return _add(y, cv)
    v = _zeros(cv.shape + (3,))
    v[..., 2] = cv
    return _add(y, Aff(v))


def _sample_index(index, n):
    """A constant index tensor's one sample (the reference's batch is one): its batch row dropped."""
    idx = _unwrap(index).detach().cpu().numpy()
    assert (idx == np.round(idx)).all(), "an index that is not an integer"
    idx = idx.astype(np.int64)  # (a Const holds float64)
    if idx.ndim == n:
        assert idx.shape[0] == 1, "an index with a batch dimension other than 1"
        idx = idx[0]
    return idx


def _gather(x, dim, index, sparse_grad=False):
    """``torch.gather`` by a constant index: numpy's take_along_axis on the Fractions."""
    n = _ndim_full(x)
    ax = _axis(dim, n)
    assert ax > 0, "a gather along the batch"
    return Aff(np.ascontiguousarray(np.take_along_axis(x.v, _sample_index(index, n)[..., None], axis=ax - 1)))


def _take_along_dim(x, indices, dim=None):
    assert dim is not None, "take_along_dim over the flattened tensor mixes the batch"
    n = _ndim_full(x)
    ax = _axis(dim, n)
    idx = np.broadcast_to(_sample_index(indices, n), x.shape[:ax - 1] + (_sample_index(indices, n).shape[ax - 1],)
                          + x.shape[ax:])
    return Aff(np.ascontiguousarray(np.take_along_axis(x.v, idx[..., None], axis=ax - 1)))


def _band(upper):
    """``torch.triu`` / ``torch.tril`` of the last two dimensions: the elements off the band zero."""
    def band(x, diagonal=0):
        r, c = x.shape[-2:]
        keep = np.triu(np.ones((r, c), bool), diagonal) if upper else np.tril(np.ones((r, c), bool), diagonal)
        return Aff(np.where(keep[..., None], x.v, Fr(0)))
    return band


def _diag_embed(x, offset=0, dim1=-2, dim2=-1):
    """``torch.diag_embed`` (defaults): the last dimension on the diagonal of a new square matrix."""
    assert (offset, dim1, dim2) == (0, -2, -1), "diag_embed with other dimensions"
    k = x.shape[-1]
    out = _zeros(x.shape[:-1] + (k, k, 3))
    for i in range(k):
        out[..., i, i, :] = x.v[..., i, :]
    return Aff(out)


def _diagonal(x, offset=0, dim1=0, dim2=1):
    n = _ndim_full(x)
    a, b = _axis(dim1, n), _axis(dim2, n)
    assert a > 0 and b > 0, "a diagonal through the batch"
    return Aff(np.ascontiguousarray(np.moveaxis(np.diagonal(x.v, offset, a - 1, b - 1), -2, -1)))


def _where_const(cond, a, b):
    """``torch.where(m, a, b)`` with a constant boolean ``m``: each element's Fractions from ``a`` or
    ``b`` (values, constants or numbers), broadcast as torch broadcasts them (the batch dropped)."""
    assert not _has_aff(cond), "a condition that depends on the input is not a fixed mask"
    m = _unwrap(cond).detach().cpu().numpy()
    ref = a if isinstance(a, Aff) else b
    n = _ndim_full(ref)
    if m.ndim == n:
        assert m.shape[0] == 1, "a mask with a batch dimension other than 1"
        m = m[0]
    va, vb = _to_aff(a, n).v, _to_aff(b, n).v
    return Aff(np.ascontiguousarray(np.where(m[..., None], va, vb)))


def _masked_fill(x, mask, value):
    return _where_const(mask, value, x)


def _new_const(fill):
    """``x.new_zeros(size)`` (``new_ones``, ``new_full(size, v)``) of an affine ``x``: a constant."""
    def new(x, size, *args, **kwargs):
        v = kwargs.pop("fill_value", args[0] if args else fill)
        return Const(torch.full(tuple(size), float(v), dtype=torch.float64))
    return new


def _like(fill):
    """``torch.zeros_like(x)`` (``ones_like``, ``full_like(x, v)``) of an affine ``x``: a constant of
    its shape."""
    def like(x, *args, **kwargs):
        v = fill if fill is not None else (args[0] if args else kwargs["fill_value"])
        return Const(torch.full(tuple(x.shape), float(v), dtype=torch.float64))
    return like


def _weights(w):
    return w.fr if isinstance(w, Const) else _fr_arr(_f64(w))


def _conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """N-d convolution with zero padding (``padding`` an int, a tuple, 'valid' or 'same')."""
    W = _weights(weight)
    n = W.ndim - 2
    assert len(x.shape) == n + 1, "unbatched or mis-shaped convolution input"
    cin, sp = x.shape[0], x.shape[1:]
    k = W.shape[2:]
    s, d = _tuple(stride, n), _tuple(dilation, n)
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * n
        else:
            assert padding == "same"
            pads = [(di * (ki - 1) // 2, di * (ki - 1) - di * (ki - 1) // 2) for di, ki in zip(d, k)]
    else:
        pads = [(p, p) for p in _tuple(padding, n)]
    xp = _zeros((cin,) + tuple(L + l + r for L, (l, r) in zip(sp, pads)) + (3,))
    xp[(slice(None),) + tuple(slice(l, l + L) for L, (l, _) in zip(sp, pads))] = x.v
    o = [(L + l + r - di * (ki - 1) - 1) // si + 1 for L, (l, r), di, ki, si in zip(sp, pads, d, k, s)]
    cout = W.shape[0]
    og, cg = cout // groups, cin // groups
    assert W.shape[1] == cg
    out = _zeros((cout,) + tuple(o) + (3,))
    for kk in itertools.product(*[range(ki) for ki in k]):
        sl = tuple(slice(q * di, q * di + si * (oi - 1) + 1, si) for q, di, si, oi in zip(kk, d, s, o))
        patch = xp[(slice(None),) + sl]
        for g in range(groups):
            Wg = W[(slice(g * og, (g + 1) * og), slice(None)) + kk]
            out[g * og:(g + 1) * og] += np.tensordot(Wg, patch[g * cg:(g + 1) * cg], axes=([1], [0]))
    if bias is not None:
        out[..., 2] += _weights(bias).reshape((cout,) + (1,) * n)
    return Aff(out)


def _conv_transpose(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """N-d transposed convolution: out[o, i*s - p + q*d] += w[c, o, q] * x[c, i]."""
    W = _weights(weight)
    n = W.ndim - 2
    assert len(x.shape) == n + 1, "unbatched or mis-shaped transposed-convolution input"
    cin, sp = x.shape[0], x.shape[1:]
    k = W.shape[2:]
    s, p, op, d = _tuple(stride, n), _tuple(padding, n), _tuple(output_padding, n), _tuple(dilation, n)
    cg, og = cin // groups, W.shape[1]
    cout = og * groups
    full = [(L - 1) * si + di * (ki - 1) + 1 + opi for L, si, di, ki, opi in zip(sp, s, d, k, op)]
    buf = _zeros((cout,) + tuple(full) + (3,))
    for kk in itertools.product(*[range(ki) for ki in k]):
        sl = tuple(slice(q * di, q * di + si * (L - 1) + 1, si) for q, di, si, L in zip(kk, d, s, sp))
        for g in range(groups):
            Wg = W[(slice(g * cg, (g + 1) * cg), slice(None)) + kk]  # (cg, og)
            contrib = np.tensordot(Wg, x.v[g * cg:(g + 1) * cg], axes=([0], [0]))
            buf[(slice(g * og, (g + 1) * og),) + sl] += contrib
    out = buf[(slice(None),) + tuple(slice(pi, f - pi) for pi, f in zip(p, full))].copy()
    if bias is not None:
        out[..., 2] += _weights(bias).reshape((cout,) + (1,) * n)
    return Aff(out)


def _pool_out(sp, k, s, p, d, ceil):
    """PyTorch's pooling output size, per spatial dimension."""
    o = []
    for L, ki, si, pi, di in zip(sp, k, s, p, d):
        num = L + 2 * pi - di * (ki - 1) - 1
        if ceil:
            oi = -(-num // si) + 1
            if (oi - 1) * si >= L + pi:
                oi -= 1
        else:
            oi = num // si + 1
        o.append(oi)
    return o


def _avg_pool(x, n, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
              divisor_override=None):
    k = _tuple(kernel_size, n)
    s = k if stride is None or stride == [] or stride == () else _tuple(stride, n)
    p = _tuple(padding, n)
    lead, sp = x.shape[:-n], x.shape[-n:]
    o = _pool_out(sp, k, s, p, (1,) * n, ceil_mode)
    size = [max(si * (oi - 1) + ki, L + 2 * pi) for si, oi, ki, L, pi in zip(s, o, k, sp, p)]
    xp = _zeros(lead + tuple(size) + (3,))
    ld = (slice(None),) * len(lead)
    xp[ld + tuple(slice(pi, pi + L) for pi, L in zip(p, sp)) + (slice(None),)] = x.v
    acc = _zeros(lead + tuple(o) + (3,))
    for kk in itertools.product(*[range(ki) for ki in k]):
        sl = tuple(slice(q, q + si * (oi - 1) + 1, si) for q, si, oi in zip(kk, s, o))
        acc += xp[ld + sl + (slice(None),)]
    counts = []
    for L, ki, si, pi, oi in zip(sp, k, s, p, o):
        c = []
        for j in range(oi):
            start = j * si - pi
            end = min(start + ki, L + pi)
            c.append(end - start if count_include_pad else min(end, L) - max(start, 0))
        counts.append(np.array(c, dtype=np.int64))
    div = functools.reduce(np.multiply.outer, counts)
    if divisor_override:
        div = np.full(tuple(o), int(divisor_override))
    inv = np.empty(div.shape, dtype=object)
    inv.ravel()[:] = [Fr(1, int(q)) for q in div.ravel()]
    return Aff(acc * inv[..., None])


def _adaptive_ranges(L, o):
    return [(j * L // o, -(-(j + 1) * L // o)) for j in range(o)]


def _adaptive_out(sp, output_size, n):
    out = list(output_size) if isinstance(output_size, (tuple, list)) else [output_size] * n
    return [L if q is None else int(q) for L, q in zip(sp, out)]


def _adaptive_avg_pool(x, n, output_size):
    lead, sp = x.shape[:-n], x.shape[-n:]
    o = _adaptive_out(sp, output_size, n)
    ranges = [_adaptive_ranges(L, oi) for L, oi in zip(sp, o)]
    out = _zeros(lead + tuple(o) + (3,))
    ld = (slice(None),) * len(lead)
    for jj in itertools.product(*[range(oi) for oi in o]):
        rr = [ranges[i][j] for i, j in enumerate(jj)]
        block = x.v[ld + tuple(slice(a, b) for a, b in rr) + (slice(None),)]
        axes = tuple(range(len(lead), len(lead) + n))
        out[ld + jj + (slice(None),)] = block.sum(axis=axes) * Fr(1, math.prod(b - a for a, b in rr))
    return Aff(out)


def _batch_norm(m, x):
    assert not m.training, "BatchNorm must be in eval mode"
    assert m.running_mean is not None, "BatchNorm without running statistics"
    var, mean = _f64(m.running_var), _f64(m.running_mean)
    gamma = _f64(m.weight) if m.weight is not None else np.ones_like(var)
    beta = _f64(m.bias) if m.bias is not None else np.zeros_like(var)
    scale = (1 / np.sqrt(var + m.eps)) * gamma
    shift = beta - mean * scale
    n = len(x.shape) - 1
    sc, sh = _fr_arr(scale).reshape((-1,) + (1,) * n), _fr_arr(shift).reshape((-1,) + (1,) * n)
    v = x.v * sc[..., None]
    v[..., 2] += sh
    return Aff(v)


def _dropout_module(m, x):
    assert not m.training or m.p == 0, "Dropout must be in eval mode"
    return x


def _f_dropout(x, p=0.5, training=True, inplace=False):
    assert not training or p == 0, "F.dropout with training=True"
    return x


# ----------------------------------------------------------------------------- PL ops


class _Act:
    """An elementwise continuous piecewise-linear function: breakpoints ``bps`` (Fractions,
    increasing), ``slopes`` (len(bps)+1 Fractions; or one such row per channel, channel = dim 1)
    and ``y0`` its value at ``bps[0]``."""

    def __init__(self, x, bps, slopes, y0=Fr(0)):
        self.x, self.bps, self.y0 = x, tuple(_num(b) for b in bps), _num(y0)
        rows = slopes if (slopes and isinstance(slopes[0], (tuple, list))) else [slopes]
        self.slopes = [tuple(_num(q) for q in r) for r in rows]
        assert all(len(r) == len(self.bps) + 1 for r in self.slopes), "need len(breakpoints)+1 slopes"
        assert all(a < b for a, b in zip(self.bps, self.bps[1:])), "breakpoints must increase"

    def table(self):
        """Per channel, per interval k: (slope, anchor, value at anchor)."""
        out = []
        for r in self.slopes:
            ys = [self.y0]
            for j in range(1, len(self.bps)):
                ys.append(ys[-1] + r[j] * (self.bps[j] - self.bps[j - 1]))
            out.append([(r[0], self.bps[0], self.y0)] + [(r[k], self.bps[k - 1], ys[k - 1])
                                                         for k in range(1, len(self.bps) + 1)])
        return out


class _Max:
    """A max (sign +1) or min (sign -1) over windows: ``wins`` (n_out, K) int array of flat indices
    into the concatenation of the flattened ``srcs`` (-1: no candidate); output shape ``out_shape``."""

    def __init__(self, srcs, wins, out_shape, sign=1):
        self.srcs, self.wins, self.out_shape, self.sign = srcs, np.asarray(wins), tuple(out_shape), sign


class _RunningMax(_Max):
    """The values of ``cummax`` / ``cummin``: read as (values, indices), the indices not computed."""


def _p_cummax(sign):
    def parse(x, dim):
        S = _shape(x)
        ax = _axis(dim, len(S) + 1) - 1
        assert ax >= 0, "a running max along the batch"
        wins = []  # per output element (C order): the elements before it along ax, and itself
        for pos in itertools.product(*[range(n) for n in S]):
            prefix = [np.ravel_multi_index(pos[:ax] + (i,) + pos[ax + 1:], S) for i in range(pos[ax] + 1)]
            wins.append(prefix + [-1] * (S[ax] - len(prefix)))
        return _RunningMax([x], np.array(wins, dtype=np.int64), S, sign)
    return parse


class _Sort:
    """The values of a sort of ``x`` along ``dim`` (of the batch tensor; ``desc``: descending), the
    first ``k`` of them for a topk."""

    def __init__(self, x, dim, desc, k=None):
        self.x, self.dim, self.desc, self.k = x, dim, bool(desc), k


class _SortOut(tuple):
    """(values, indices) of a sort: ``[0]`` and ``.values`` (the indices are not computed)."""

    @property
    def values(self):
        return self[0]


def _p_sort(x, dim=-1, descending=False, stable=False):
    return _Sort(x, dim, descending)


def _p_topk(x, k, dim=-1, largest=True, sorted=True):
    return _Sort(x, dim, largest, int(k))


def _shape(x):
    if isinstance(x, Aff):
        return x.shape
    if isinstance(x, torch.Tensor):
        return tuple(x.shape[1:])
    raise NotImplementedError(f"PL op on {type(x).__name__}")


def _max_pool_windows(S, n, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    k = _tuple(kernel_size, n)
    s = k if stride is None or stride == [] or stride == () else _tuple(stride, n)
    p, d = _tuple(padding, n), _tuple(dilation, n)
    lead, sp = S[:-n], S[-n:]
    o = _pool_out(sp, k, s, p, d, ceil_mode)
    need = [si * (oi - 1) + di * (ki - 1) + 1 for si, oi, di, ki in zip(s, o, d, k)]
    ip = np.full([max(nd, L + 2 * pi) for nd, L, pi in zip(need, sp, p)], -1, dtype=np.int64)
    ip[tuple(slice(pi, pi + L) for pi, L in zip(p, sp))] = np.arange(math.prod(sp)).reshape(sp)
    cols = [ip[tuple(slice(q * di, q * di + si * (oi - 1) + 1, si) for q, di, si, oi in zip(kk, d, s, o))]
            for kk in itertools.product(*[range(ki) for ki in k])]
    return _spread(np.stack(cols, -1).reshape(-1, len(cols)), lead, sp), lead + tuple(o)


def _spread(win_sp, lead, sp):
    """Windows over the spatial dims -> windows over (lead..., spatial...) flat indices."""
    C, M = math.prod(lead), math.prod(sp)
    offs = (np.arange(C) * M)[:, None, None]
    w = np.where(win_sp[None] >= 0, win_sp[None] + offs, -1)
    return w.reshape(-1, win_sp.shape[1])


def _adaptive_max_windows(S, n, output_size):
    lead, sp = S[:-n], S[-n:]
    o = _adaptive_out(sp, output_size, n)
    ranges = [_adaptive_ranges(L, oi) for L, oi in zip(sp, o)]
    K = math.prod(max(b - a for a, b in r) for r in ranges)
    idx = np.arange(math.prod(sp)).reshape(sp)
    rows = []
    for jj in itertools.product(*[range(oi) for oi in o]):
        rr = [ranges[i][j] for i, j in enumerate(jj)]
        cand = idx[tuple(slice(a, b) for a, b in rr)].ravel().tolist()
        rows.append(cand + [-1] * (K - len(cand)))
    return _spread(np.array(rows, dtype=np.int64), lead, sp), lead + tuple(o)


def _reduce_windows(S, dim, keepdim):
    n = len(S) + 1
    assert dim is not None and dim != () and dim != [], "a max over the batch dimension"
    dims = sorted({_axis(d, n) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))})
    assert dims[0] >= 1, "a max over the batch dimension"
    axes = [d - 1 for d in dims]
    idx = np.arange(math.prod(S)).reshape(S)
    moved = np.moveaxis(idx, axes, list(range(len(S) - len(axes), len(S))))
    keep = [S[a] for a in range(len(S)) if a not in axes]
    out_shape = tuple(1 if a in axes else S[a] for a in range(len(S))) if keepdim else tuple(keep)
    return moved.reshape(math.prod(keep), -1), out_shape


def _broadcast_pair(x, y):
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        x, y = torch.broadcast_tensors(_unwrap(x), _unwrap(y))
        return [x, y], tuple(x.shape[1:])
    ref = x if isinstance(x, Aff) else y
    x, y = _to_aff(x, _ndim_full(ref)), _to_aff(y, _ndim_full(ref))
    shape = tuple(np.broadcast_shapes(x.shape, y.shape))
    return [Aff(np.broadcast_to(x.v, shape + (3,))), Aff(np.broadcast_to(y.v, shape + (3,)))], shape


def _pair_max(sign):
    def parse(x, other):
        srcs, shape = _broadcast_pair(x, other)
        M = math.prod(shape)
        return _Max(srcs, np.stack([np.arange(M), np.arange(M) + M], 1), shape, sign)
    return parse


def _p_relu(x, inplace=False):
    return _Act(x, [0], [0, 1])


def _p_relu6(x, inplace=False):
    return _Act(x, [0, 6], [0, 1, 0], 0)


def _p_leaky(x, negative_slope=0.01, inplace=False):
    return _Act(x, [0], [negative_slope, 1])


def _p_hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
    return _Act(x, [min_val, max_val], [0, 1, 0], min_val)


def _p_abs(x):
    return _Act(x, [0], [-1, 1])


def _p_softshrink(x, lambd=0.5):
    return _Act(x, [-lambd, lambd], [1, 0, 1], 0)


def _p_hardsigmoid(x, inplace=False):  # 0 below -3, x / 6 + 1 / 2 between, 1 above 3 (slope exactly 1/6)
    return _Act(x, [-3, 3], [0, Fr(1, 6), 0], 0)


def _p_rrelu(x, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    assert not training, "rrelu in training mode is random"
    return _Act(x, [0], [(lower + upper) / 2, 1])


def _p_threshold(x, threshold, value, inplace=False):
    assert threshold == value, "a discontinuous threshold"
    return _Act(x, [threshold], [0, 1], threshold)


def _p_clamp(x, min=None, max=None):
    if min is not None and max is not None:
        return _Act(x, [min, max], [0, 1, 0], min)
    if min is not None:
        return _Act(x, [min], [0, 1], min)
    assert max is not None, "clamp without bounds"
    return _Act(x, [max], [1, 0], max)


def _p_clamp_min(x, min):
    return _p_clamp(x, min=min)


def _p_clamp_max(x, max):
    return _p_clamp(x, max=max)


def _prelu_slopes(w):
    w = _f64(_unwrap(w)).ravel()
    return [[Fr(float(a)), 1] for a in w]


def _p_prelu(x, weight):
    return _Act(x, [0], _prelu_slopes(weight))


def _p_max_pool(n):
    def parse(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        assert not return_indices, "max pooling with return_indices"
        wins, out = _max_pool_windows(_shape(x), n, kernel_size, stride, padding, dilation, ceil_mode)
        return _Max([x], wins, out)
    return parse


def _p_adaptive_max_pool(n):
    def parse(x, output_size, return_indices=False):
        assert not return_indices, "adaptive max pooling with return_indices"
        wins, out = _adaptive_max_windows(_shape(x), n, output_size)
        return _Max([x], wins, out)
    return parse


def _p_amax(sign):
    def parse(x, dim=(), keepdim=False):
        wins, out = _reduce_windows(_shape(x), dim, keepdim)
        return _Max([x], wins, out, sign)
    return parse


def _p_max_of_two(sign):
    def parse(x, other=None):
        assert isinstance(other, (Aff, Const)), "torch.max / torch.min of one tensor: use amax / amin"
        return _pair_max(sign)(x, other)
    return parse


_PL_FUNCTIONS = {
    F.relu: _p_relu, torch.relu: _p_relu, F.relu6: _p_relu6, F.leaky_relu: _p_leaky,
    F.hardtanh: _p_hardtanh, torch.abs: _p_abs, operator.abs: _p_abs, torch.clamp: _p_clamp,
    torch.clip: _p_clamp, torch.clamp_min: _p_clamp_min, torch.clamp_max: _p_clamp_max,
    F.prelu: _p_prelu, F.max_pool1d: _p_max_pool(1), F.max_pool2d: _p_max_pool(2),
    F.max_pool3d: _p_max_pool(3), F.adaptive_max_pool1d: _p_adaptive_max_pool(1),
    F.adaptive_max_pool2d: _p_adaptive_max_pool(2), torch.maximum: _pair_max(1),
    torch.minimum: _pair_max(-1), torch.amax: _p_amax(1), torch.amin: _p_amax(-1),
    torch.max: _p_max_of_two(1), torch.min: _p_max_of_two(-1), F.softshrink: _p_softshrink, torch.sort: _p_sort,
    torch.topk: _p_topk, torch.cummax: _p_cummax(1), torch.cummin: _p_cummax(-1),
    F.hardsigmoid: _p_hardsigmoid, F.rrelu: _p_rrelu, F.threshold: _p_threshold,
}
_PL_METHODS = {
    "relu": _p_relu, "relu_": _p_relu, "abs": _p_abs, "abs_": _p_abs, "clamp": _p_clamp,
    "clip": _p_clamp, "clamp_": _p_clamp, "clamp_min": _p_clamp_min, "clamp_max": _p_clamp_max,
    "maximum": _pair_max(1), "minimum": _pair_max(-1), "amax": _p_amax(1), "amin": _p_amax(-1),
    "sort": _p_sort, "topk": _p_topk, "cummax": _p_cummax(1), "cummin": _p_cummax(-1),
}


def _module_pl(m, activations):
    """A parser (args, kwargs) -> _Act/_Max for a PL leaf module, or None."""
    for typ, (bps, slopes) in (activations or {}).items():
        if isinstance(m, typ):
            b0 = float(bps[0])
            with torch.no_grad():
                try:
                    y0 = m(torch.tensor([b0], dtype=torch.float64))
                except Exception:  # noqa: BLE001 - a module that wants more dimensions
                    y0 = m(torch.tensor([[b0]], dtype=torch.float64))
            y0 = Fr(float(y0.reshape(-1)[0].item()))
            return lambda x, *a, **k: _Act(x, bps, slopes, y0)
    if isinstance(m, nn.ReLU):
        return lambda x: _p_relu(x)
    if isinstance(m, nn.LeakyReLU):
        return lambda x: _p_leaky(x, m.negative_slope)
    if isinstance(m, nn.PReLU):
        return lambda x: _p_prelu(x, m.weight)
    if isinstance(m, nn.Hardtanh):  # ReLU6 too
        return lambda x: _p_hardtanh(x, m.min_val, m.max_val)
    if isinstance(m, nn.Softshrink):
        return lambda x: _p_softshrink(x, m.lambd)
    if isinstance(m, nn.Hardsigmoid):
        return lambda x: _p_hardsigmoid(x)
    if isinstance(m, nn.RReLU):
        return lambda x: _p_rrelu(x, m.lower, m.upper, m.training)
    if isinstance(m, nn.Threshold):
        return lambda x: _p_threshold(x, m.threshold, m.value)
    for typ, n in ((nn.MaxPool1d, 1), (nn.MaxPool2d, 2), (nn.MaxPool3d, 3)):
        if isinstance(m, typ):
            return lambda x: _p_max_pool(n)(x, m.kernel_size, m.stride, m.padding, m.dilation,
                                            m.ceil_mode, m.return_indices)
    for typ, n in ((nn.AdaptiveMaxPool1d, 1), (nn.AdaptiveMaxPool2d, 2), (nn.AdaptiveMaxPool3d, 3)):
        if isinstance(m, typ):
            return lambda x: _p_adaptive_max_pool(n)(x, m.output_size, m.return_indices)
    return None


def _pl_parsers(gm, activations):
    """{node: parser} for the PL nodes of a traced graph."""
    out = {}
    for node in gm.graph.nodes:
        p = None
        if node.op == "call_module":
            p = _module_pl(gm.get_submodule(node.target), activations)
        elif node.op == "call_function":
            p = _PL_FUNCTIONS.get(node.target)
        elif node.op == "call_method":
            p = _PL_METHODS.get(node.target)
        if p is not None:
            out[node] = p
    return out


# ----------------------------------------------------------------------------- exact evaluation


_FUNCTIONS = {
    operator.add: _add, torch.add: _torch_add, operator.sub: _sub, torch.sub: _torch_sub,
    operator.mul: _mul, torch.mul: _mul, operator.truediv: _div, torch.div: _div,
    torch.true_divide: _div, operator.neg: _neg, torch.neg: _neg, operator.getitem: _getitem,
    getattr: _getattr, torch.flatten: _flatten, torch.reshape: _reshape, torch.cat: _cat,
    torch.concat: _cat, torch.stack: _stack, torch.mean: _mean, torch.sum: _sum,
    torch.permute: _permute, torch.transpose: _transpose, torch.squeeze: _squeeze,
    torch.unsqueeze: _unsqueeze, F.linear: _linear, F.conv1d: _conv, F.conv2d: _conv,
    F.conv3d: _conv, F.conv_transpose1d: _conv_transpose, F.conv_transpose2d: _conv_transpose,
    F.conv_transpose3d: _conv_transpose, F.dropout: _f_dropout, operator.matmul: _matmul,
    torch.matmul: _matmul, torch.flip: _flip, torch.roll: _roll, torch.narrow: _narrow, torch.select: _select,
    torch.chunk: _chunk, torch.split: _split, torch.unbind: _unbind, F.pad: _pad, F.interpolate: _interpolate,
    torch.einsum: _einsum, torch.cumsum: _cumsum, torch.diff: _diff, torch.lerp: _lerp, torch.tensordot: _tensordot,
    torch.addmm: _addmm, torch.where: _where_const, torch.gather: _gather, torch.take_along_dim: _take_along_dim,
    torch.triu: _band(True), torch.tril: _band(False), torch.diag_embed: _diag_embed, torch.diagonal: _diagonal,
    torch.zeros_like: _like(0.0), torch.ones_like: _like(1.0), torch.full_like: _like(None),
}
_FUNCTIONS[F.avg_pool1d] = lambda x, *a, **k: _avg_pool(x, 1, *a, **k)
_FUNCTIONS[F.avg_pool2d] = lambda x, *a, **k: _avg_pool(x, 2, *a, **k)
_FUNCTIONS[F.adaptive_avg_pool1d] = lambda x, o: _adaptive_avg_pool(x, 1, o)
_FUNCTIONS[F.adaptive_avg_pool2d] = lambda x, o: _adaptive_avg_pool(x, 2, o)
_FUNCTIONS[F.avg_pool3d] = lambda x, *a, **k: _avg_pool(x, 3, *a, **k)
_FUNCTIONS[F.adaptive_avg_pool3d] = lambda x, o: _adaptive_avg_pool(x, 3, o)

_METHODS = {
    "add": _torch_add, "__add__": _add, "__radd__": _add, "sub": _torch_sub, "mul": _mul,
    "div": _div, "neg": _neg, "view": _reshape, "reshape": _reshape, "flatten": _flatten,
    "unflatten": _unflatten, "size": _size, "dim": lambda x: _ndim_full(x), "permute": _permute,
    "transpose": _transpose, "squeeze": _squeeze, "unsqueeze": _unsqueeze, "mean": _mean,
    "sum": _sum, "matmul": _matmul, "contiguous": _identity, "clone": _identity, "double": _identity,
    "float": _identity, "to": _identity, "detach": _identity, "flip": _flip, "roll": _roll, "narrow": _narrow,
    "select": _select, "chunk": _chunk, "split": _split, "unbind": _unbind, "repeat": _repeat, "expand": _expand,
    "cumsum": _cumsum, "diff": _diff, "lerp": _lerp, "masked_fill": _masked_fill, "new_zeros": _new_const(0.0),
    "new_ones": _new_const(1.0), "new_full": _new_const(None), "gather": _gather, "triu": _band(True),
    "tril": _band(False), "diagonal": _diagonal,
}


def _module_affine(m, x):
    """The exact value of a non-PL leaf module."""
    if isinstance(m, nn.Linear):
        return _linear(x, m.weight, m.bias)
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        assert m.padding_mode == "zeros", f"padding_mode {m.padding_mode!r} is not supported"
        return _conv(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
    if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return _conv_transpose(x, m.weight, m.bias, m.stride, m.padding, m.output_padding, m.groups,
                               m.dilation)
    for typ, n in ((nn.AvgPool1d, 1), (nn.AvgPool2d, 2), (nn.AvgPool3d, 3)):
        if isinstance(m, typ):
            return _avg_pool(x, n, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                             getattr(m, "divisor_override", None))
    for typ, n in ((nn.AdaptiveAvgPool1d, 1), (nn.AdaptiveAvgPool2d, 2), (nn.AdaptiveAvgPool3d, 3)):
        if isinstance(m, typ):
            return _adaptive_avg_pool(x, n, m.output_size)
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return _batch_norm(m, x)
    if isinstance(m, nn.Flatten):
        return _flatten(x, m.start_dim, m.end_dim)
    if isinstance(m, nn.Unflatten):
        return _unflatten(x, m.dim, m.unflattened_size)
    if isinstance(m, nn.Identity):
        return x
    for typ, mode in ((nn.modules.padding._ReplicationPadNd, "replicate"), (nn.modules.padding._ReflectionPadNd, "reflect"),
                      (nn.modules.padding._CircularPadNd, "circular")):
        if isinstance(m, typ):
            return _pad(x, m.padding, mode)
    if isinstance(m, nn.modules.padding._ConstantPadNd):
        return _pad(x, m.padding, "constant", m.value)
    if isinstance(m, nn.Upsample):
        return _interpolate(x, m.size, m.scale_factor, m.mode, m.align_corners)
    if isinstance(m, nn.modules.dropout._DropoutNd):
        return _dropout_module(m, x)
    raise NotImplementedError(f"module {type(m).__name__} is not supported by the exact reference")


def _eval_node(node, gm, args, kwargs):
    """The exact value of a non-PL node (args/kwargs already looked up)."""
    if node.op == "get_attr":
        val = functools.reduce(getattr, node.target.split("."), gm)
        return Const(val) if isinstance(val, torch.Tensor) else val
    if not _has_aff((args, kwargs)):  # constants only: let torch compute them
        u_args, u_kwargs = _unwrap(args), _unwrap(kwargs)
        if node.op == "call_module":
            return _wrap(gm.get_submodule(node.target)(*u_args, **u_kwargs))
        if node.op == "call_function":
            return _wrap(node.target(*u_args, **u_kwargs))
        if node.op == "call_method":
            return _wrap(getattr(u_args[0], node.target)(*u_args[1:], **u_kwargs))
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        assert not kwargs and len(args) == 1, f"module {node.target} called with extra arguments"
        return _module_affine(m, args[0])
    if node.op == "call_function":
        fn = _FUNCTIONS.get(node.target)
        if fn is None:
            raise NotImplementedError(f"function {node.target} is not supported by the exact reference")
        return fn(*args, **kwargs)
    if node.op == "call_method":
        fn = _METHODS.get(node.target)
        if fn is None:
            raise NotImplementedError(f"method {node.target!r} is not supported by the exact reference")
        return fn(*args, **kwargs)
    raise NotImplementedError(node.op)


# ----------------------------------------------------------------------------- geometry


def _area(poly):
    n = len(poly)
    return sum(poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1] for i in range(n)) / 2


def _cross(o, a, b):
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _clean(pts):
    out = []
    for p in pts:
        if not out or out[-1] != p:
            out.append(p)
    while len(out) > 1 and out[0] == out[-1]:
        out.pop()
    n = len(out)
    if n < 3:
        return None
    out = [out[i] for i in range(n) if _cross(out[i - 1], out[i], out[(i + 1) % n]) != 0]
    return out if len(out) >= 3 and _area(out) > 0 else None


def _clip(poly, line):
    """``poly`` (convex, counter-clockwise) intersected with ``a*s + b*t + c >= 0``; None if that
    has zero area."""
    a, b, c = line
    vals = [a * x + b * y + c for x, y in poly]
    if all(v >= 0 for v in vals):
        return poly
    if all(v <= 0 for v in vals):
        return None
    out, n = [], len(poly)
    for i in range(n):
        p, q, vp, vq = poly[i], poly[(i + 1) % n], vals[i], vals[(i + 1) % n]
        if vp >= 0:
            out.append(p)
        if (vp > 0 > vq) or (vp < 0 < vq):
            r = vp / (vp - vq)
            out.append((p[0] + r * (q[0] - p[0]), p[1] + r * (q[1] - p[1])))
    return _clean(out)


def _hull(points):
    """Exact convex hull (monotone chain), counter-clockwise, without collinear points."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts
    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


# ----------------------------------------------------------------------------- exact splitting


def _split_act(spec, poly):
    """[(cell, choices, output Aff)] for an activation node on one piece."""
    x = _to_aff(spec.x)
    z = x.v.reshape(-1, 3)
    M, bps, nb = z.shape[0], spec.bps, len(spec.bps)
    table = spec.table()
    inner = M // len(table) if len(table) > 1 else M
    if len(table) > 1:
        assert len(x.shape) >= 1 and x.shape[0] == len(table), "per-channel slopes need dim 1 channels"
    pieces = [(poly, ())]
    for e in range(M):
        a, b, c = z[e]
        if a == 0 and b == 0:
            k = sum(1 for bp in bps if bp < c)
            pieces = [(p, ch + (k,)) for p, ch in pieces]
            continue
        new = []
        for p, ch in pieces:
            vals = [a * X + b * Y + c for X, Y in p]
            lo_v, hi_v = min(vals), max(vals)
            for k in range(nb + 1):
                lo = bps[k - 1] if k > 0 else None
                hi = bps[k] if k < nb else None
                if (lo is not None and hi_v <= lo) or (hi is not None and lo_v >= hi):
                    continue
                q = p
                if lo is not None and lo_v < lo:
                    q = _clip(q, (a, b, c - lo))
                if q is not None and hi is not None and hi_v > hi:
                    q = _clip(q, (-a, -b, hi - c))
                if q is not None:
                    new.append((q, ch + (k,)))
        pieces = new
    out = []
    for p, ch in pieces:
        rows = []
        for e in range(M):
            slope, anchor, ya = table[e // inner if len(table) > 1 else 0][ch[e]]
            a, b, c = z[e]
            rows.append((slope * a, slope * b, slope * (c - anchor) + ya))
        v = np.empty((M, 3), dtype=object)
        v[:] = rows
        out.append((p, ch, Aff(v.reshape(x.v.shape))))
    return out


def _split_max(spec, poly):
    """[(cell, choices, output Aff)] for a max node on one piece."""
    rows = [tuple(r) for s in spec.srcs for r in _to_aff(s).v.reshape(-1, 3)]
    sg = spec.sign
    pieces = [(poly, ())]
    for w in spec.wins.tolist():
        cands = [(pos, tuple(sg * q for q in rows[idx])) for pos, idx in enumerate(w) if idx >= 0]
        new = []
        for p, ch in pieces:
            for i, (pos, fi) in enumerate(cands):
                q = p
                for j, (_, fj) in enumerate(cands):
                    if j == i:
                        continue
                    da, db, dc = fi[0] - fj[0], fi[1] - fj[1], fi[2] - fj[2]
                    if da == 0 and db == 0:
                        if dc < 0 or (dc == 0 and j < i):  # loses, or identical to a lower position
                            q = None
                            break
                        continue
                    q = _clip(q, (da, db, dc))
                    if q is None:
                        break
                if q is not None:
                    new.append((q, ch + (pos,)))
        pieces = new
    wins = spec.wins.tolist()
    out = []
    for p, ch in pieces:
        v = np.empty((len(wins), 3), dtype=object)
        v[:] = [rows[w[k]] for w, k in zip(wins, ch)]
        out.append((p, ch, Aff(v.reshape(spec.out_shape + (3,)))))
    return out


def _split_sort(spec, poly):
    """[(cell, choices, output)] for a sort node on one piece: per group (the elements along the
    dimension), the cell of each order ``z[p0] <= z[p1] <= ...`` (identical functions in increasing
    index), its choice the order's lexicographic rank; the output is a (values, indices) pair."""
    x = _to_aff(spec.x)
    ax = _axis(spec.dim - 1 if spec.dim > 0 else spec.dim, len(x.shape))
    moved = np.moveaxis(x.v, ax, -2)  # (..., k, 3)
    k = moved.shape[-2]
    groups = moved.reshape(-1, k, 3)
    perms = list(itertools.permutations(range(k)))
    pieces = [(poly, ())]
    for g in groups:
        rows = [tuple(r) for r in g]
        new = []
        for p, ch in pieces:
            for code, perm in enumerate(perms):
                q = p
                for a, b in zip(perm, perm[1:]):  # rows[a] <= rows[b]
                    d = tuple(rb - ra for ra, rb in zip(rows[a], rows[b]))
                    if d[0] == 0 and d[1] == 0:
                        if d[2] < 0 or (d[2] == 0 and b < a):
                            q = None
                            break
                        continue
                    q = _clip(q, d)
                    if q is None:
                        break
                if q is not None:
                    new.append((q, ch + (code,)))
        pieces = new
    kk = k if spec.k is None else spec.k
    out = []
    for p, ch in pieces:
        v = np.empty((len(groups), kk, 3), dtype=object)
        for gi, code in enumerate(ch):
            order = perms[code][::-1] if spec.desc else perms[code]
            for i in range(kk):
                v[gi, i] = groups[gi, order[i]]
        vals = np.moveaxis(v.reshape(moved.shape[:-2] + (kk, 3)), -2, ax)
        out.append((p, ch, _SortOut((Aff(vals), None))))
    return out


# ----------------------------------------------------------------------------- public API


def _trace(model, activations):
    leaf = tuple(activations or ())

    class _Tracer(fx.Tracer):
        proxy_buffer_attributes = True  # (a buffer read in forward is a get_attr node: self.idx.expand(h.size(0)))

        def is_leaf_module(self, m, qualname):
            return (bool(leaf) and isinstance(m, leaf)) or super().is_leaf_module(m, qualname)

    root = nn.Sequential(model)  # so that a bare leaf module (nn.Linear, ...) is a call_module
    return fx.GraphModule(root, _Tracer().trace(root))


def _input_aff(plane, in_shape):
    if plane is None:
        shape = tuple(in_shape) if in_shape is not None else (2,)
        assert math.prod(shape) == 2, "without a plane the model must take 2 inputs"
        v = _zeros((2, 3))
        v[0, 0], v[1, 1] = Fr(1), Fr(1)
        return Aff(v.reshape(shape + (3,)))
    shape = tuple(plane.shape)
    origin = _fr_arr(np.asarray(plane.origin, dtype=np.float64).ravel())
    basis = _fr_arr(np.asarray(plane.basis, dtype=np.float64).reshape(2, -1))
    assert origin.size == math.prod(shape) == basis.shape[1]
    return Aff(np.stack([basis[0], basis[1], origin], -1).reshape(shape + (3,)))


def exact_graph_regions(model, bounds, plane=None, in_shape=None, activations=None):
    """The exact linear regions of ``model`` on the box ``bounds`` of a 2-D slice.

    Args:
        model: a torch module (eval mode; float64 weights recommended), traceable by torch.fx.
        bounds: ``(xmin, xmax, ymin, ymax)`` in slice coordinates (s, t); floats are taken exactly.
        plane: None (the model takes the 2 inputs (s, t), shaped ``in_shape`` or ``(2,)``), or an
            object with ``origin`` (D,), ``basis`` (2, D) and ``shape`` (the input shape without
            batch): the input is ``(origin + s*basis[0] + t*basis[1]).reshape(shape)``.
        in_shape: the input shape without batch when ``plane`` is None (2 elements).
        activations: optional ``{module_type: (breakpoints, slopes)}`` for custom continuous PL
            activation modules (``len(slopes) == len(breakpoints) + 1``); such modules are kept as
            graph leaves, and their value at ``breakpoints[0]`` is read by calling them on a
            float64 tensor.

    Returns:
        A list, sorted by pattern, of one dict per region of positive area:
        ``{"pattern": tuple of ints, "area": Fraction, "polygon": [(Fraction, Fraction), ...]
        (counter-clockwise convex hull, no collinear vertices), "output": numpy object array of
        shape (*output_shape_without_batch, 3), the exact (a, b, c) of the output on the region
        (None when the output is not a single tensor)}``. See the module docstring for the
        pattern layout.
    """
    gm = _trace(model, activations)
    parsers = _pl_parsers(gm, activations)
    nodes = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    last_use = {n: pos[n] for n in nodes}
    for n in nodes:
        for u in n.users:
            last_use[n] = max(last_use[n], pos[u])
    free_after = [[] for _ in nodes]
    for n in nodes:
        free_after[last_use[n]].append(n)

    x0, x1, y0, y1 = (_num(b) for b in bounds)
    assert x0 < x1 and y0 < y1, "an empty box"
    box = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    x_in = _input_aff(plane, in_shape)

    leaves = []
    stack = [(box, 0, {}, ())]
    while stack:
        poly, i, env, pat = stack.pop()
        while True:
            node = nodes[i]
            if node.op == "output":
                res = fx.node.map_arg(node.args[0], lambda n: env[n])
                leaves.append((pat, poly, res.v if isinstance(res, Aff) else None))
                break
            if node.op == "placeholder":
                assert not env.get("_seen_input"), "the exact reference takes one input"
                env[node] = x_in
                env["_seen_input"] = True
            else:
                args = fx.node.map_arg(node.args, lambda n: env[n])
                kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
                parser = parsers.get(node)
                if parser is not None:
                    spec = parser(*args, **kwargs)
                    split = _split_act if isinstance(spec, _Act) else _split_sort if isinstance(spec, _Sort) \
                        else _split_max
                    for cell, ch, val in split(spec, poly):
                        if isinstance(spec, _RunningMax):
                            val = _SortOut((val, None))
                        e2 = dict(env)
                        e2[node] = val
                        for dead in free_after[i]:
                            e2.pop(dead, None)
                        stack.append((cell, i + 1, e2, pat + ch))
                    break
                env[node] = _eval_node(node, gm, args, kwargs)
            for dead in free_after[i]:
                env.pop(dead, None)
            i += 1

    groups = {}
    for pat, poly, out in leaves:
        groups.setdefault(pat, []).append((poly, out))
    regions = []
    for pat in sorted(groups):
        polys = [p for p, _ in groups[pat]]
        area = sum((_area(p) for p in polys), Fr(0))
        hull = _hull([v for p in polys for v in p])
        assert _area(hull) == area, f"the pieces of pattern {pat} do not form a convex region"
        regions.append({"pattern": pat, "area": area, "polygon": hull, "output": groups[pat][0][1]})
    return regions


class _Sampler(fx.Interpreter):
    """Runs the graph in torch and records each PL node's choices (before running it, so that an
    in-place op does not change what is recorded)."""

    def __init__(self, gm, parsers):
        super().__init__(gm)
        self.parsers, self.codes = parsers, []
        self.data = set()  # the nodes whose value depends on the input (a weight made in forward does not)

    def run_node(self, n):
        if n.op == "placeholder" or any(a in self.data for a in n.all_input_nodes):
            self.data.add(n)
        parser = self.parsers.get(n)
        if parser is not None and n in self.data:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            self.codes.append(_codes(parser(*args, **kwargs)))
        return super().run_node(n)


def _codes(spec):
    if isinstance(spec, _Sort):  # each group's order (a stable argsort), as its lexicographic rank
        z = spec.x.detach().to(torch.float64).cpu().numpy()
        g = np.moveaxis(z, spec.dim, -1)
        g = g.reshape(len(z), -1, g.shape[-1])
        perm = np.argsort(g, axis=-1, kind="stable")
        k = perm.shape[-1]
        later_smaller = (perm[..., None, :] < perm[..., :, None]) & np.triu(np.ones((k, k), bool), 1)
        return (later_smaller.sum(-1) * np.array([math.factorial(k - 1 - i) for i in range(k)])).sum(-1)
    if isinstance(spec, _Act):
        z = spec.x.detach().reshape(spec.x.shape[0], -1).to(torch.float64).cpu().numpy()
        return np.searchsorted(np.array([float(b) for b in spec.bps]), z, side="left")
    srcs = [s.detach().reshape(s.shape[0], -1).to(torch.float64) for s in spec.srcs]
    src = torch.cat(srcs, 1).cpu().numpy() * spec.sign
    src = np.concatenate([src, np.full((src.shape[0], 1), -np.inf)], 1)
    g = src[:, spec.wins]  # index -1: the -inf column
    g[:, spec.wins < 0] = -np.inf
    return np.argmax(g, axis=2)  # the first (lowest) position among ties


def sampled_patterns(model, bounds, plane=None, n=200, in_shape=None, activations=None,
                     return_patterns=False):
    """The number of distinct activation patterns at the n x n cell centres of the box, in float64.

    Same pattern definition as :func:`exact_graph_regions` (interval index per activation element,
    argmax position per max window; lowest position among float ties), computed with a
    ``torch.fx`` interpreter that runs the model's own torch ops. A lower bound on the number of
    regions (up to rounding at points on a boundary). With ``return_patterns`` the set of pattern
    tuples is returned instead.
    """
    gm = _trace(model, activations)
    parsers = _pl_parsers(gm, activations)
    x0, x1, y0, y1 = (float(b) for b in bounds)
    xs = x0 + (np.arange(n) + 0.5) * ((x1 - x0) / n)
    ys = y0 + (np.arange(n) + 0.5) * ((y1 - y0) / n)
    S, T = (a.ravel() for a in np.meshgrid(xs, ys, indexing="xy"))
    params = list(model.parameters())
    dtype = params[0].dtype if params else torch.float64
    if plane is None:
        shape = tuple(in_shape) if in_shape is not None else (2,)
    else:
        shape = tuple(plane.shape)
        origin = np.asarray(plane.origin, dtype=np.float64).ravel()
        basis = np.asarray(plane.basis, dtype=np.float64).reshape(2, -1)
    seen = set()
    for lo in range(0, S.size, 4096):
        s, t = S[lo:lo + 4096], T[lo:lo + 4096]
        if plane is None:
            X = np.stack([s, t], 1)
        else:
            X = origin[None] + s[:, None] * basis[0][None] + t[:, None] * basis[1][None]
        X = torch.from_numpy(np.ascontiguousarray(X.reshape((len(s),) + shape))).to(dtype)
        interp = _Sampler(gm, parsers)
        with torch.no_grad():
            interp.run(X)
        codes = np.concatenate(interp.codes, 1) if interp.codes else np.zeros((len(s), 0), np.int64)
        seen.update(map(tuple, np.unique(codes.astype(np.int64), axis=0).tolist()))
    return seen if return_patterns else len(seen)
