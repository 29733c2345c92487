"""The exact 2-D partition engine: hyperplane-arrangement splitting, layer by layer.

A planar subdivision is kept as flat arrays: vertex coordinates ``X`` (V, 2) float64, faces as
CSR (``offsets`` (F+1,), ``indices`` (E,) vertex indices, counter-clockwise; the layout of
``Partition.offsets/indices``), and at every vertex the current layer's pre-activations ``Z``
(V, m). The network is continuous, so a vertex has one value of every neuron whatever face it is
seen from, and inside a face of the previous layer's subdivision every neuron of the current
layer is affine. Hence:

* a neuron crosses a face iff its values at the face's vertices take both strict signs;
* the crossing point on an edge sits at ``t = z_a / (z_a - z_b)``, and the whole vector of the
  layer's pre-activations there is the same interpolation of the endpoints' vectors.

Each face of the layer's start (its *origin*) is split by its crossing neurons in increasing
order, all faces at once, one neuron per *round*; every descendant of an origin sees the same
neuron in the same round. A new vertex is named by what it lies on, so the faces that share it
agree on it without any search: on a layer-start edge ``e`` crossed by neuron ``k`` it is
``(e, k)`` (all such vertices are made before the rounds, since the two faces beside ``e`` reach
``k`` in different rounds); inside origin ``o`` on the chord of neuron ``j`` it is ``(o, j, k)``
(both faces beside the chord reach ``k`` in the same round).

Degenerate geometry is decided by one tolerance rule: ``|z| <= rtol * (|a|_1 max|w_k| + |b_k|)``
(a bound on the rounding of the dot product that made ``z``) means the vertex is on the line. Such
a vertex splits nothing: coincident lines, lines through existing vertices and lines along
edges create no vertex and no sliver face.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Protocol, Tuple

import numpy as np

from . import _predicates
from ._predicates import carries_marks, decided_zero

EPS = float(np.finfo(np.float64).eps)
DEFAULT_RTOL = 256 * EPS

__all__ = ["Subdivision", "split_all", "next_in_face", "unique_rows", "DEFAULT_RTOL"]


class _Rows:
    """A row store grown by amortised doubling (coordinates, values, scales)."""

    def __init__(self, a: np.ndarray):
        self.a = np.ascontiguousarray(a)
        self.n = len(a)

    def extend(self, rows: np.ndarray) -> np.ndarray:
        """Append rows; returns their indices."""
        ids = self.alloc(len(rows))
        self.a[self.n - len(rows): self.n] = rows
        return ids

    def alloc(self, k: int) -> np.ndarray:
        """Reserve k rows (to be filled by the caller); returns their indices."""
        if self.n + k > len(self.a):
            cap = max(2 * len(self.a), self.n + k, 16)
            b = np.empty((cap,) + self.a.shape[1:], dtype=self.a.dtype)
            b[: self.n] = self.a[: self.n]
            self.a = b
        ids = np.arange(self.n, self.n + k)
        self.n += k
        return ids

    @property
    def view(self) -> np.ndarray:
        return self.a[: self.n]


@dataclass
class Subdivision:
    """A planar subdivision: vertices, CSR faces, and for each face the face it came from."""

    X: np.ndarray  # (V, 2) float64
    offsets: np.ndarray  # (F+1,) int64
    indices: np.ndarray  # (E,) int64
    origin: np.ndarray  # (F,) int64: index of the face it was split from
    Z: Optional[np.ndarray]  # (V, m) values of the splitting functions (0 on a line); None if computed
    scale: np.ndarray  # (V,) the |a|_1 scale of each vertex (for tolerances)
    lines: Optional[np.ndarray] = None  # (V, 2) the two lines each vertex lies on (exact mode)
    slot_line: Optional[np.ndarray] = None  # (E,) the line of the edge from each slot to the next


def _row_hash(words: np.ndarray) -> np.ndarray:
    """``unique_rows``' hash of rows of 8-byte words: each word, offset by its column, mixed by
    splitmix64's finaliser, then summed mod 2**64 (a plain weighted sum would let differences in
    the top bits cancel)."""
    n, w = words.shape
    out = np.empty(n, np.uint64)
    off = np.arange(1, w + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    step = max(1, HASH_CHUNK // max(w, 1))
    with np.errstate(over="ignore"):
        for s in range(0, n, step):  # in chunks of rows, in place: small temporaries, no fresh pages
            z = words[s: s + step] + off
            t = z >> np.uint64(30)
            z ^= t
            z *= np.uint64(0xBF58476D1CE4E5B9)
            np.right_shift(z, np.uint64(27), out=t)
            z ^= t
            z *= np.uint64(0x94D049BB133111EB)
            np.right_shift(z, np.uint64(31), out=t)
            z ^= t
            z.sum(1, dtype=np.uint64, out=out[s: s + step])
    return out


HASH_CHUNK = 1 << 16
"""Words per chunk of rows in :func:`_row_hash` (two 512 KB temporaries)."""


def unique_rows(a: np.ndarray):
    """Groups of equal rows of a 2-D uint8 array: ``(first, inverse)``, where ``first[g]`` is the
    first row of group ``g`` and ``inverse[i]`` the group of row ``i``; groups are numbered in the
    order of their first rows.

    The rows are hashed (``_row_hash``) and sorted by hash;
    rows with equal hashes are compared in full, so the grouping is exact; on a collision the rows
    are sorted in full (``np.unique(axis=0)``, ~25x slower on wide rows).

    >>> first, inv = unique_rows(np.array([[1, 2], [3, 4], [1, 2]], np.uint8))
    >>> first.tolist(), inv.tolist()
    ([0, 1], [0, 1, 0])
    """
    n, b = a.shape
    w = max(1, (b + 7) // 8)
    pad = np.zeros((n, 8 * w), np.uint8)
    pad[:, :b] = a
    words = pad.view(np.uint64)
    h = _row_hash(words)
    o = np.argsort(h, kind="stable")
    new = np.ones(n, bool)
    new[1:] = h[o[1:]] != h[o[:-1]]
    same = np.flatnonzero(~new)
    if len(same) and not (words[o[same]] == words[o[same - 1]]).all():
        _, first, inv = np.unique(a, axis=0, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
    else:
        inv = np.empty(n, np.int64)
        inv[o] = np.cumsum(new) - 1
        first = o[new]  # the stable sort puts each group's first row first
    rank = np.empty(len(first), np.int64)
    order = np.argsort(first, kind="stable")
    rank[order] = np.arange(len(first))
    return first[order], rank[inv]


def next_in_face(offsets: np.ndarray) -> np.ndarray:
    """For each slot of a CSR face list, the slot of the next vertex (cyclic within the face).

    >>> next_in_face(np.array([0, 3, 7])).tolist()
    [1, 2, 0, 4, 5, 6, 3]
    """
    E = int(offsets[-1])
    nxt = np.arange(1, E + 1, dtype=np.int64)
    nonempty = offsets[1:] > offsets[:-1]
    nxt[offsets[1:][nonempty] - 1] = offsets[:-1][nonempty]
    return nxt


def layer_tol(layer, rtol: float) -> Tuple[np.ndarray, np.ndarray]:
    """Per-neuron tolerance coefficients: tol(v, k) = scale(v) * ca[k] + cb[k] (the units only;
    the scale is ``layer.scale`` of the layer's input, ``|h|_1`` or ``|h|_inf``)."""
    m = layer.units
    return rtol * layer.tol_coef()[:m], rtol * layer.const_abs()[:m]


def _signs(z: np.ndarray, tol: np.ndarray) -> np.ndarray:
    return (z > tol).astype(np.int8) - (z < -tol).astype(np.int8)


def _packed_signs(Z, scale: np.ndarray, ca: np.ndarray, cb: np.ndarray,
                  chunk: int = 8192, exact=None, marks: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Packed bits of z > tol and z < -tol for every vertex and column.

    ``Z`` is an array (V, m), or a function of a row slice that returns those rows. With
    ``exact`` (:func:`sign_fixer`: a function ``(rows, cols, z, t)`` of the doubtful entries
    (|z| <= t) that returns their exact values) the bits are the exact signs; ``marks``: the
    values carry marks of decided zeros (-0.0, never asked again)."""
    get = Z if callable(Z) else Z.__getitem__
    V, m = len(scale), len(ca)
    chunk = max(32, min(chunk, (1 << 17) // max(m, 1)))
    nb = (m + 7) // 8
    pos = np.empty((V, nb), np.uint8)
    neg = np.empty((V, nb), np.uint8)
    for s in range(0, V, chunk):
        z = get(slice(s, s + chunk))
        p, q, zc = _tol_signs(z, scale[s: s + chunk], ca, cb, marks)
        if exact is not None and zc.any():
            rows = np.nonzero(zc)[0]
            d = ~(p[rows] | q[rows])
            if marks:
                d &= ~decided_zero(z[rows])
            rr, c = np.nonzero(d)
            r = rows[rr]
            zf = exact(s + r, c, z[r, c], scale[s + r] * ca[c] + cb[c])
            p[r, c], q[r, c] = zf > 0, zf < 0
        pos[s: s + chunk] = np.packbits(p, axis=1)
        neg[s: s + chunk] = np.packbits(q, axis=1)
    return pos, neg


def _bit_pairs(bits: np.ndarray, m: int) -> Tuple[np.ndarray, np.ndarray]:
    """(row, column) of every set bit of a packed (R, nb) array, sorted by row then column."""
    r, byte = np.nonzero(bits)
    if len(r) == 0:
        return r.astype(np.int64), r.astype(np.int64)
    unpacked = np.unpackbits(bits[r, byte][:, None], axis=1).astype(bool)  # (P, 8)
    pr, pb = np.nonzero(unpacked)
    rows = r[pr].astype(np.int64)
    cols = byte[pr].astype(np.int64) * 8 + pb
    keep = cols < m
    return rows[keep], cols[keep]


def _interpolate_into(Zs: _Rows, u: np.ndarray, w: np.ndarray, t: np.ndarray, chunk: int = 1024,
                      sanitize: bool = False) -> np.ndarray:
    """Append rows ``Z[u] + t (Z[w] - Z[u])`` to the store, chunk by chunk (no large temporaries);
    ``sanitize``: the store carries marks of decided zeros (-0.0, see ``_predicates.decided_zero``):
    a new value is marked where both ends of its edge are (the value is affine along the edge, so
    it is exactly 0 all along it), and no other new value is -0.0."""
    ids = Zs.alloc(len(u))
    base = int(ids[0]) if len(ids) else 0
    a = Zs.a
    for s in range(0, len(u), chunk):
        zu = a[u[s: s + chunk]]
        zw = a[w[s: s + chunk]]
        both = decided_zero(zu) & decided_zero(zw) if sanitize else None
        np.subtract(zw, zu, out=zw)
        zw *= t[s: s + chunk, None]
        zw += zu
        if both is not None:
            zw += 0.0  # an interpolation is not a decided zero ...
            zw[both] = -0.0  # ... unless both ends are
        a[base + s: base + s + len(zw)] = zw
    return ids


class _Values(Protocol):
    """The values at the vertices of the ``m`` functions that split the faces (one column each,
    affine on every face): what the splitting reads, and extends to each vertex it makes.

    ``X`` is the (V, 2) coordinate array the vertex indices refer to (a stored kind ignores it).
    Two kinds: :class:`_StoredValues` (a row per vertex) and :class:`_AffineValues` (computed
    from the coordinates, never stored). Every reading of a vertex's value gives the same float,
    so every decision taken on it agrees, whichever face asks.
    """

    m: int  # the number of columns

    def at(self, X: np.ndarray, v: np.ndarray, k: np.ndarray) -> np.ndarray:
        """(n,) the value of column ``k[i]`` at vertex ``v[i]``."""
        ...

    def add(self, u: np.ndarray, w: np.ndarray, t: np.ndarray,
            zero: List[Tuple[Any, np.ndarray]]) -> None:
        """Values for the n vertices just appended, in order, at ``X[u] + t (X[w] - X[u])``: the
        same interpolation of their edges' values, and exactly 0 at each ``(rows, cols)`` of
        ``zero`` (rows among the new vertices, on those columns' lines by construction)."""
        ...

    def set_rows(self, ids: np.ndarray, Z: np.ndarray) -> None:
        """Overwrite the values of the vertices ``ids`` with ``Z`` (len(ids), m): the exact values
        of vertices given exact coordinates (a computed kind has nothing to overwrite)."""
        ...

    def full(self, X: np.ndarray) -> np.ndarray:
        """(V, m) every vertex's values."""
        ...

    def block(self, X: np.ndarray, cols: np.ndarray, rows: slice) -> np.ndarray:
        """(len(rows), len(cols)) the values of the consecutive columns ``cols`` at ``rows``."""
        ...


class _StoredValues(_Values):
    """Values kept as a row per vertex; a new vertex gets the interpolation of its edge's rows.

    ``Z`` is a (V, m) array (copied) or a :class:`_Rows` store (shared: rows are appended to it).
    """

    def __init__(self, Z, m: Optional[int] = None):
        self.rows = Z if isinstance(Z, _Rows) else _Rows(np.ascontiguousarray(Z, dtype=np.float64).copy())
        self.stride = self.rows.a.shape[1]  # every stored column: the units, then carried values
        self.m = self.stride if m is None else m
        self.sanitize = False  # new rows without -0.0 (an operation layer's values in exact mode)

    def at(self, X: np.ndarray, v: np.ndarray, k: np.ndarray) -> np.ndarray:
        return self.rows.a.reshape(-1)[v * self.stride + k]

    def add(self, u: np.ndarray, w: np.ndarray, t: np.ndarray, zero: List[Tuple[Any, np.ndarray]]):
        ids = _interpolate_into(self.rows, u, w, t, sanitize=self.sanitize)
        for rows, cols in zero:  # on these lines by construction: exactly 0
            self.rows.a[ids[rows], cols] = 0.0

    def set_rows(self, ids: np.ndarray, Z: np.ndarray) -> None:
        self.rows.a[ids] = Z

    def full(self, X: np.ndarray) -> np.ndarray:
        return self.rows.view[:, :self.m]

    def block(self, X: np.ndarray, cols: np.ndarray, rows: slice) -> np.ndarray:
        return self.rows.view[rows, cols[0]: cols[-1] + 1]


class _AffineValues(_Values):
    """Values of affine functions of the coordinates, ``z = W x + b``: computed, never stored.

    The first layer (and a plane's restriction of it) is affine everywhere, so its vertices need
    no rows: memory stays O(V) however wide the layer. Every evaluation uses the same expression,
    so a vertex's value, and the decision taken on it, is the same wherever it is asked for.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray, m: Optional[int] = None):
        self.W0, self.W1, self.b = W[:, 0].copy(), W[:, 1].copy(), b.copy()
        self.width = len(b)  # every column: the units, then carried values
        self.m = self.width if m is None else m

    def at(self, X: np.ndarray, v: np.ndarray, k: np.ndarray) -> np.ndarray:
        return X[v, 0] * self.W0[k] + X[v, 1] * self.W1[k] + self.b[k]

    def add(self, u, w, t, zero):
        pass

    def set_rows(self, ids, Z):
        pass

    def rows(self, X: np.ndarray) -> np.ndarray:
        """(V, m) the values at the points ``X`` (V, 2)."""
        return X[:, :1] * self.W0 + X[:, 1:2] * self.W1 + self.b

    def full(self, X: np.ndarray) -> np.ndarray:
        return self.rows(X)[:, :self.m]

    def block(self, X: np.ndarray, cols: np.ndarray, rows: slice) -> np.ndarray:
        X = X[rows]
        return X[:, :1] * self.W0[cols] + X[:, 1:2] * self.W1[cols] + self.b[cols]


_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1).astype(np.uint8)


def _reduce_or(bits: np.ndarray, offsets: np.ndarray, indices: Optional[np.ndarray] = None) -> np.ndarray:
    """OR of the packed rows ``bits[indices]`` over each CSR face (as 64-bit words when wide)."""
    nb = bits.shape[1]
    if nb < 8:
        return np.bitwise_or.reduceat(bits if indices is None else bits[indices], offsets[:-1], axis=0)
    pad = (-nb) % 8
    if pad or not bits.flags.c_contiguous:
        b = np.zeros((len(bits), nb + pad), np.uint8)
        b[:, :nb] = bits
        bits = b
    words = bits.view(np.uint64)
    r = np.bitwise_or.reduceat(words if indices is None else words[indices], offsets[:-1], axis=0)
    return r.view(np.uint8)[:, :nb]


def split_all(X: np.ndarray, offsets: np.ndarray, indices: np.ndarray, Z, scale: np.ndarray,
              ca: np.ndarray, cb: np.ndarray, allowed: Optional[np.ndarray] = None,
              signs: Optional[Tuple[np.ndarray, np.ndarray]] = None,
              affine: Optional[Tuple[np.ndarray, np.ndarray]] = None, batch: int = 64,
              exact=None, lines: Optional[np.ndarray] = None,
              slot_line: Optional[np.ndarray] = None, m: Optional[int] = None) -> Subdivision:
    """Split every face by every column of ``Z`` that crosses it.

    Parameters
    ----------
    X : (V, 2) vertex coordinates.
    offsets, indices : CSR faces (convex, counter-clockwise).
    Z : (V, m) values at the vertices of m functions, each affine on every face: an array
        (copied), or a ``_Rows`` store (shared: the new vertices' rows are appended to it).
    scale, ca, cb : the tolerance of column k at vertex v is ``scale[v] * ca[k] + cb[k]``.
    allowed : optional packed (F, ceil(m/8)) bits: which columns may split which face.
    signs : optional packed (pos, neg) signs of Z at the vertices, when the caller has them.
    affine : optional (W (m, 2), b (m,)): the columns are ``W x + b`` of the coordinates; Z is
        then ignored and no values are stored (``Subdivision.Z`` is None).
    m : the columns that split (default all); the others are carried: interpolated, never split.
    batch : when a face is crossed by more than ``2 * batch`` columns (a wide first layer: every
        line crosses the box), the columns are applied ``batch`` at a time, each batch to the
        faces the previous ones made: a face of an arrangement of N lines meets few of the next
        lines, so the work falls from cubic to about quadratic in the number of lines.

    exact : optional ``(ExactNet, layer)``: decide every doubtful sign exactly (see
        ``_predicates``); then ``lines`` (V, 2) names the two lines of each vertex and
        ``slot_line`` (E,) the line of each face edge, and both are returned for the new faces.

    Returns
    -------
    Subdivision with the new vertices appended after the old ones (old indices are kept).
    """
    vals: _Values
    stored: Optional[_StoredValues] = None
    if affine is not None:
        vals = _AffineValues(*affine, m=m)
    else:
        vals = stored = _StoredValues(Z, m=m)
        stored.sanitize = exact is not None and carries_marks(exact[0].layers[exact[1]])
    m = vals.m
    F = len(offsets) - 1
    Xs = _Rows(X.copy())
    Ss = _Rows(scale.astype(np.float64).copy())
    ctx = _Exact(exact[0], exact[1], lines if lines is not None else np.zeros((len(X), 2), np.int64), vals, ca, cb,
                 Xs) if exact is not None else None
    if signs is None:
        signs = _packed_signs(vals.full(X), scale, ca, cb, exact=None if ctx is None else ctx.block(np.arange(m)),
                              marks=stored is not None and stored.sanitize)
    if F == 0:
        return Subdivision(Xs.view.copy(), offsets, indices, np.zeros(0, np.int64),
                           None if stored is None else stored.rows.view, Ss.view.copy(),
                           None if ctx is None else ctx.Ls.view.copy(), slot_line)
    cross = _reduce_or(signs[0], offsets, indices) & _reduce_or(signs[1], offsets, indices)
    if allowed is not None:
        cross &= allowed
    most = int(_POPCOUNT[cross].sum(1, dtype=np.int64).max(initial=0)) if m else 0  # most crossings of a face
    if most <= 2 * batch or m <= batch:
        offsets, indices, org, slot_line = _split_batch(Xs, Ss, vals, offsets, indices, np.arange(m), signs,
                                                        cross, ca, cb, ctx, np.arange(F), slot_line)
    else:
        org = np.arange(F)
        for c0 in range(0, m, batch):
            cols = np.arange(c0, min(m, c0 + batch))
            nb0, nb1 = c0 // 8, (cols[-1] + 8) // 8
            if c0 == 0:
                sg = (signs[0][:, nb0:nb1], signs[1][:, nb0:nb1])
            else:
                Xv = Xs.view
                sg = _packed_signs(lambda sl: vals.block(Xv, cols, sl), Ss.view, ca[cols], cb[cols],
                                   exact=None if ctx is None else ctx.block(cols),
                                   marks=stored is not None and stored.sanitize)
            cr = _reduce_or(sg[0], offsets, indices) & _reduce_or(sg[1], offsets, indices)
            if allowed is not None:
                cr &= allowed[org][:, nb0:nb1]
            offsets, indices, o, slot_line = _split_batch(Xs, Ss, vals, offsets, indices, cols, sg, cr, ca, cb, ctx,
                                                          org, slot_line)
            org = org[o]
    return Subdivision(Xs.view.copy(), offsets, indices, org,
                       None if stored is None else stored.rows.view, Ss.view.copy(),
                       None if ctx is None else ctx.Ls.view.copy(), slot_line)


def sign_fixer(ex, layer: int, lines, X, cols: Optional[np.ndarray] = None):
    """The ``exact`` argument of :func:`_packed_signs`: a function ``(rows, c, z, t)`` of entries
    (vertex ``rows``, column ``c`` of the block, values ``z`` within their tolerances ``t``) that
    returns them decided by ``ex.fix`` (``ExactNet``) at layer ``layer``. ``lines``/``X``: the
    vertices' lines and local coordinates (arrays, or ``_Rows`` stores read when called);
    ``cols``: the layer's column of each column of the block (default: the same)."""
    def fix(rows, c, z, t):
        L, Xa = (lines.a if isinstance(lines, _Rows) else lines), (X.a if isinstance(X, _Rows) else X)
        return ex.fix(layer, L, rows, c if cols is None else cols[c], z, t, X=Xa)
    return fix


class _Exact:
    """The exact side of one layer's splitting: the vertex-line store and the doubtful fixes."""

    COND = 2.0 ** -20  # a crossing whose t is less certain than this gets its exact vertex

    def __init__(self, ex, layer: int, lines: np.ndarray, vals: _Values, ca: np.ndarray, cb: np.ndarray,
                 Xs: "_Rows"):
        self.ex, self.layer, self.vals, self.ca, self.cb = ex, layer, vals, ca, cb
        self.Ls = _Rows(np.asarray(lines, np.int64).copy())
        self.Xs = Xs  # the splitting's coordinate store (for the structural-zero test of ExactNet.fix)

    def value(self, Xs: "_Rows", Ss: "_Rows", v: np.ndarray, k: np.ndarray):
        """Values of global columns ``k`` at vertices ``v``, doubtful ones exact; and their tolerances."""
        z = self.vals.at(Xs.a, v, k)
        tol = Ss.a[v] * self.ca[k] + self.cb[k]
        return self.ex.fix(self.layer, self.Ls.a, v, k, z, tol, X=Xs.a), tol

    def block(self, cols: np.ndarray):
        """A fixer for ``_packed_signs`` over the columns ``cols``."""
        return sign_fixer(self.ex, self.layer, self.Ls, self.Xs, cols)

    def lines(self, origin, k) -> np.ndarray:
        return self.ex.line_ids(self.layer, origin, k)

    def new_vertices(self, Xs: "_Rows", ids: np.ndarray, pairs: np.ndarray, tol_sum: np.ndarray,
                     dz: np.ndarray) -> None:
        """Record the new vertices' lines; ill-conditioned ones get exact coordinates and values."""
        self.Ls.extend(pairs)
        bad = np.nonzero(tol_sum > self.COND * np.abs(dz))[0]
        if len(bad):
            Xe, Ze = self.ex.exact_rows(pairs[bad], self.layer)
            Xs.a[ids[bad]] = Xe
            self.vals.set_rows(ids[bad], Ze)


@dataclass
class _Batch:
    """What every step of one batch's splitting shares: the stores it reads and grows, the
    columns and their tolerances, and (exact mode) the exact side."""

    Xs: _Rows  # (V, 2) vertex coordinates, grown by the new vertices
    Ss: _Rows  # (V,) each vertex's tolerance scale
    vals: _Values  # (V, m_all) the splitting functions' values
    cols: np.ndarray  # (m,) the global columns of this batch; "local" column j is cols[j]
    ca: np.ndarray  # (m_all,) tolerance coefficients: tol(v, k) = scale[v] ca[k] + cb[k]
    cb: np.ndarray
    ctx: Optional[_Exact]  # exact mode: doubtful signs decided exactly, lines kept
    org_map: np.ndarray  # (F,) the layer-start face of each face of the batch's start
    F: int  # faces at the batch's start

    @property
    def m(self) -> int:
        return len(self.cols)


@dataclass
class _Faces:
    """Faces as degrees and concatenated slots (the CSR offsets are ``cumsum(deg)``)."""

    deg: np.ndarray  # (F,) vertices per face
    indices: np.ndarray  # (E,) the vertex of each slot, counter-clockwise per face
    sup: np.ndarray  # (E,) what the edge from each slot to the next lies on: >= 0 a batch-start
    #                  edge (its index), < 0 the chord of local column -sup-1
    org: np.ndarray  # (F,) the batch-start face each face came from

    def take(self, faces: np.ndarray, slots: np.ndarray) -> "_Faces":
        """The faces selected by ``faces`` (F,), whose slots are ``slots`` (E,)."""
        return _Faces(self.deg[faces], self.indices[slots], self.sup[slots], self.org[faces])

    @staticmethod
    def concat(parts: List["_Faces"]) -> "_Faces":
        return _Faces(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("deg", "indices", "sup", "org")))


@dataclass
class _EdgeCrossings:
    """The batch-start edges and the vertices made on them, found by ``key = edge * m + j``."""

    slot_edge: np.ndarray  # (E,) the edge of each batch-start slot (to the next slot)
    key: np.ndarray  # (C,) sorted: edge * m + local column, one per strict crossing
    vid: np.ndarray  # (C,) the vertex made there
    line: np.ndarray  # (Ed,) exact mode: the line each edge lies on (empty otherwise)


def _new_vertices(b: _Batch, u: np.ndarray, w: np.ndarray, k: np.ndarray,
                  zero: List[Tuple[Any, np.ndarray]], lines: Optional[np.ndarray]) -> np.ndarray:
    """Append, for each i, the point where global column ``k[i]`` is 0 on the edge ``(u[i], w[i])``
    (its values, 0 on ``k`` and at ``zero``; in exact mode its two ``lines`` (n, 2)); returns their ids."""
    Xs, Ss = b.Xs, b.Ss
    if b.ctx is None:
        zu, zw = b.vals.at(Xs.a, u, k), b.vals.at(Xs.a, w, k)  # (n,)
    else:
        (zu, tu), (zw, tw) = b.ctx.value(Xs, Ss, u, k), b.ctx.value(Xs, Ss, w, k)
    t = zu / (zu - zw)  # (n,) where along u -> w
    ids = Xs.extend(Xs.a[u] + t[:, None] * (Xs.a[w] - Xs.a[u]))  # (n, 2)
    Ss.extend(np.maximum(Ss.a[u], Ss.a[w]))
    b.vals.add(u, w, t, [(slice(None), k)] + zero)
    if b.ctx is not None and lines is not None:
        b.ctx.new_vertices(Xs, ids, lines, tu + tw, zu - zw)
    return ids


def _edge_crossings(b: _Batch, offsets: np.ndarray, indices: np.ndarray, signs: Tuple[np.ndarray, np.ndarray],
                    slot_line: Optional[np.ndarray]) -> _EdgeCrossings:
    """Every batch-start edge, once, and a vertex at each of its strict crossings, made now: the
    two faces beside an edge meet a column in different rounds, and both find the vertex by key."""
    pos, neg = signs  # (V, ceil(m/8)) packed strict signs
    m, V = b.m, b.Xs.n
    a, c = indices, indices[next_in_face(offsets)]  # (E,) each slot's edge, from a to c
    lo, hi = np.minimum(a, c), np.maximum(a, c)
    ekeys, e_slot, slot_edge = np.unique(lo * V + hi, return_index=True, return_inverse=True)  # (Ed,)
    slot_edge = slot_edge.reshape(-1).astype(np.int64)
    eu, ev = ekeys // V, ekeys % V
    ee, ek = _bit_pairs((pos[eu] & neg[ev]) | (neg[eu] & pos[ev]), m)  # (C,) edge, local column
    edge_line = slot_line[e_slot] if b.ctx is not None and slot_line is not None else np.zeros(0, np.int64)
    if len(ee):
        lines = None
        if b.ctx is not None:
            slot_face = np.repeat(np.arange(b.F), np.diff(offsets))
            lines = np.stack([edge_line[ee], b.ctx.lines(b.org_map[slot_face[e_slot[ee]]], b.cols[ek])], 1)
        vid = _new_vertices(b, eu[ee], ev[ee], b.cols[ek], [], lines)
    else:
        vid = np.zeros(0, np.int64)
    return _EdgeCrossings(slot_edge, ee * m + ek, vid, edge_line)


def _round_signs(b: _Batch, v: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(n,) int8 sign of global column ``k[i]`` at vertex ``v[i]`` (0: on the line)."""
    if b.ctx is None:
        return _signs(b.vals.at(b.Xs.a, v, k), b.Ss.a[v] * b.ca[k] + b.cb[k])
    return np.sign(b.ctx.value(b.Xs, b.Ss, v, k)[0]).astype(np.int8)


def _crossing_points(b: _Batch, cut: _Faces, fid: np.ndarray, j: np.ndarray, nxt: np.ndarray,
                     change: np.ndarray, edges: _EdgeCrossings) -> np.ndarray:
    """(E,) for each slot of the faces being cut whose edge (to the next slot) changes sign: the
    vertex where it crosses its face's column, found (a batch-start edge's, by key) or made (a
    chord's ``(origin, j, k)``, once for both faces beside it); -1 elsewhere."""
    m = b.m
    mm = np.int64(m) * np.int64(m)
    q = np.full(len(cut.indices), -1, np.int64)
    chi = np.nonzero(change)[0]  # (n,) slots whose edge is crossed
    if not len(chi):
        return q
    sup, k = cut.sup[chi], j[chi]
    is_e = sup >= 0
    found = np.zeros(len(chi), bool)
    if is_e.any() and len(edges.key):
        key = sup[is_e] * m + k[is_e]
        p = np.minimum(np.searchsorted(edges.key, key), len(edges.key) - 1)
        hit = edges.key[p] == key
        sel = np.nonzero(is_e)[0]
        q[chi[sel[hit]]] = edges.vid[p[hit]]
        found[sel[hit]] = True
    make = np.nonzero(~found)[0]
    if not len(make):
        return q
    org = cut.org[fid[chi[make]]]
    k2, sc = k[make], sup[make]
    jc = np.where(sc < 0, -sc - 1, 0)  # the chord's column
    nkey = np.where(sc < 0,
                    org * mm + np.minimum(jc, k2) * m + np.maximum(jc, k2),
                    np.int64(b.F) * mm + sc * m + k2)
    _, first, inv = np.unique(nkey, return_index=True, return_inverse=True)
    sl = chi[make[first]]
    chord = sc[first] < 0
    kf = k2[first]
    lines = None
    if b.ctx is not None:
        o_l = b.org_map[org[first]]
        sup_line = np.where(chord, b.ctx.lines(o_l, b.cols[jc[first]]),
                            edges.line[np.maximum(sc[first], 0)] if len(edges.line) else 0)
        lines = np.stack([sup_line, b.ctx.lines(o_l, b.cols[kf])], 1)
    nid = _new_vertices(b, cut.indices[sl], cut.indices[nxt[sl]], b.cols[kf], [(chord, b.cols[jc[first][chord]])],
                        lines)
    q[chi[make]] = nid[inv.reshape(-1)]
    return q


def _cut_faces(b: _Batch, cut: _Faces, j_face: np.ndarray, s: np.ndarray,
               edges: _EdgeCrossings) -> Tuple[_Faces, _Faces]:
    """Cut each face by its column ``j_face`` (local), given the column's sign ``s`` at each slot:
    the (positive side, negative side) faces, each vertex then the crossing point after it."""
    offsets = np.zeros(len(cut.deg) + 1, np.int64)
    np.cumsum(cut.deg, out=offsets[1:])
    fid = np.repeat(np.arange(len(cut.deg)), cut.deg)  # (E,) face of each slot
    j = j_face[fid]  # (E,) local column
    nxt = next_in_face(offsets)
    s_n = s[nxt]  # (E,) sign at the next slot
    change = (s.astype(np.int16) * s_n) < 0
    q = _crossing_points(b, cut, fid, j, nxt, change, edges)
    chord = -(j + 1)
    zero = s == 0
    ent_v = np.stack([cut.indices, q], 1).reshape(-1)  # (2E,) slot, then its crossing
    plus = np.stack([s >= 0, change], 1).reshape(-1)
    minus = np.stack([s <= 0, change], 1).reshape(-1)
    sup_p = np.stack([np.where(zero & (s_n < 0), chord, cut.sup), np.where(s_n < 0, chord, cut.sup)], 1).reshape(-1)
    sup_m = np.stack([np.where(zero & (s_n > 0), chord, cut.sup), np.where(s_n > 0, chord, cut.sup)], 1).reshape(-1)
    e_off = 2 * offsets[:-1]
    n_p = np.add.reduceat(plus.astype(np.int64), e_off) if len(e_off) else np.zeros(0, np.int64)
    n_m = np.add.reduceat(minus.astype(np.int64), e_off) if len(e_off) else np.zeros(0, np.int64)
    return (_Faces(n_p, ent_v[plus], sup_p[plus], cut.org),
            _Faces(n_m, ent_v[minus], sup_m[minus], cut.org))


def _rounds(b: _Batch, faces: _Faces, cnt: np.ndarray, cand_off: np.ndarray, cand: np.ndarray,
            edges: _EdgeCrossings) -> List[_Faces]:
    """Round r cuts every face (still active) by the r-th column crossing its origin; a face is
    finished once its origin's columns are used up. Returns the finished faces, in batches."""
    done: List[_Faces] = []
    idle = cnt == 0  # (F,) faces crossed by nothing
    if idle.any():
        done.append(faces.take(idle, np.repeat(idle, faces.deg)))
    act = faces.take(~idle, np.repeat(~idle, faces.deg))
    r = 0
    while len(act.org):
        offsets = np.zeros(len(act.deg) + 1, np.int64)
        np.cumsum(act.deg, out=offsets[1:])
        j = cand[cand_off[act.org] + r]  # (Fa,) the local column each face meets this round
        fid = np.repeat(np.arange(len(act.org)), act.deg)  # (Ea,)
        s = _round_signs(b, act.indices, b.cols[j[fid]])  # (Ea,)
        crossing = np.logical_or.reduceat(s > 0, offsets[:-1]) & np.logical_or.reduceat(s < 0, offsets[:-1])  # (Fa,)
        slots = crossing[fid]
        kept = act.take(~crossing, ~slots)  # faces the column does not cross stay as they are
        plus, minus = _cut_faces(b, act.take(crossing, slots), j[crossing], s[slots], edges)
        new = _Faces.concat([kept, plus, minus])
        r += 1
        fin = cnt[new.org] <= r
        if fin.any():
            fs = np.repeat(fin, new.deg)
            done.append(new.take(fin, fs))
            act = new.take(~fin, ~fs)
        else:
            act = new
    return done


def _finish(b: _Batch, done: List[_Faces], edges: _EdgeCrossings):
    """The finished faces as CSR (offsets, indices), their batch-start faces and, in exact mode, each
    slot's edge line."""
    out_deg = np.concatenate([f.deg for f in done]) if done else np.zeros(0, np.int64)
    out_offsets = np.zeros(len(out_deg) + 1, np.int64)
    np.cumsum(out_deg, out=out_offsets[1:])
    out_indices = np.concatenate([f.indices for f in done]) if done else np.zeros(0, np.int64)
    out_org = np.concatenate([f.org for f in done]) if done else np.zeros(0, np.int64)
    out_line = None
    if b.ctx is not None:
        sup = np.concatenate([f.sup for f in done]) if done else np.zeros(0, np.int64)
        face = np.repeat(out_org, out_deg)
        chord = sup < 0
        out_line = np.empty(len(sup), np.int64)
        out_line[~chord] = edges.line[sup[~chord]]
        out_line[chord] = b.ctx.lines(b.org_map[face[chord]], b.cols[-sup[chord] - 1])
    return out_offsets, out_indices.astype(np.int64), out_org, out_line


def _split_batch(Xs: _Rows, Ss: _Rows, vals: _Values, offsets: np.ndarray, indices: np.ndarray, cols: np.ndarray,
                 signs: Tuple[np.ndarray, np.ndarray], cross: np.ndarray, ca: np.ndarray, cb: np.ndarray,
                 ctx: Optional[_Exact] = None, org_map: Optional[np.ndarray] = None,
                 slot_line: Optional[np.ndarray] = None):
    """Split the faces by the columns ``cols`` (signs and crossings given for those columns).

    Steps: the strict crossings on the batch-start edges (:func:`_edge_crossings`), then rounds
    (:func:`_rounds`: each cuts faces by one column, :func:`_cut_faces`), then the finished faces
    as CSR (:func:`_finish`). With ``ctx`` (exact mode) doubtful values are decided exactly, and
    the lines of the new vertices and edges are kept; ``org_map`` takes these faces to the faces
    of the layer's start. Returns (offsets, indices, origin, slot_line) of the new faces."""
    F = len(offsets) - 1
    b = _Batch(Xs, Ss, vals, cols, ca, cb, ctx, np.arange(F) if org_map is None else org_map, F)
    cf, cand = _bit_pairs(cross, b.m)  # every (face, local column) crossing, by face then column
    cnt = np.bincount(cf, minlength=F).astype(np.int64)  # (F,) columns crossing each face
    cand_off = np.zeros(F + 1, np.int64)  # CSR into cand
    np.cumsum(cnt, out=cand_off[1:])
    edges = _edge_crossings(b, offsets, indices, signs, slot_line)
    faces = _Faces(np.diff(offsets), indices, edges.slot_edge, np.arange(F))
    return _finish(b, _rounds(b, faces, cnt, cand_off, cand, edges), edges)


def transition(Z, scale: np.ndarray, ca: np.ndarray, cb: np.ndarray, slope,
               nxt, ca_next: Optional[np.ndarray], cb_next: Optional[np.ndarray],
               capacity: int = 0, chunk: int = 1024, device=None, exact=None,
               inherit: Optional[np.ndarray] = None):
    """From one layer's pre-activations at the vertices to the next layer's, in one pass.

    Per chunk of vertices: the signs of the units of ``Z`` (its first ``len(ca)`` columns; the
    others are carried) under the tolerance rule (a value on the line is exactly 0, so the
    activation there is exactly 0), the activation ``h`` (``slope``: a number or one per unit;
    carried columns unchanged), its scale ``nxt.scale(h)``, the next layer's values ``nxt.rows(h)``
    (``nxt``: a ``_net.Layer``, a dense matrix or an operation) and, when the next layer splits
    too, the packed signs of its units. Returns (pos bits of the units, next Z as a row store,
    next scale, next (pos, neg)). ``Z`` is an array, or ``(X, W1, b1)`` for values computed from
    the coordinates (first layer). With a torch ``device`` the work after the current values
    (signs, activation, the next map, the next signs) runs there in float64, in large chunks;
    every formula is the one the splitting uses, so the decisions agree. With
    ``exact = (ExactNet, layer, lines, X)`` (X: the vertices' coordinates) every doubtful sign, of this layer and of the next, is
    decided exactly (a pass after the fast one); the fast pass has already marked decided (-0.0)
    the next values that are 0 by structure (:func:`_mark_structural`), which that pass skips.
    ``inherit`` (V,): added to each vertex's next scale, for the errors its values carry
    (:func:`inherited_scale`).
    """
    sl = np.broadcast_to(np.asarray(slope, np.float64), (len(ca),))
    sanitize = exact is not None and carries_marks(nxt)  # no -0.0 but the marks of decided zeros
    marked = exact is not None and not isinstance(Z, tuple) and carries_marks(exact[0].layers[exact[1]])
    own = _own_columns(exact, len(ca)) if exact is not None else None
    if device is not None:
        out = _transition_torch(Z, scale, ca, cb, sl, nxt, ca_next, cb_next, capacity, device, sanitize, marked, own,
                                inherit)
    else:
        out = _transition_np(Z, scale, ca, cb, sl, nxt, ca_next, cb_next, capacity, chunk, sanitize, marked, own, inherit)
    pos, und, Zn, scn, nsigns = out
    if exact is not None:
        _exact_transition(exact, Z, scale, ca, cb, sl, nxt, ca_next, cb_next, pos, und, Zn, scn, nsigns, marked, own,
                          inherit)
    return pos, Zn, scn, nsigns


INHERIT = 1 / 32
"""The part of a value's tolerance taken as the error it carries into the next layer: the
tolerance allows ``rtol`` (256 ulps) of the size of its terms, an interpolated value is a few
ulps of its edge's ends off (8 here, for chains of interpolations)."""


def inherited_scale(scale: np.ndarray, ca: np.ndarray, cb: np.ndarray, rtol: float, slope, nxt) -> np.ndarray:
    """(V,) what the errors a layer's values carry at each vertex add to the next layer's scale.

    A value's tolerance ``scale * ca + cb`` bounds its error (rounding, and the interpolation a
    new vertex's values come from, relative to its edge's ends); the next layer reads the
    activations, and so their errors, at most ``max |slope|`` times them. The next layer's own
    scale (``nxt.scale(h)``: the size of the activations at the vertex) bounds only the rounding
    of its map; where the activations all nearly cancel at a vertex (ties of max-pooling
    candidates, a point where every unit vanishes) the carried errors are larger, and a value
    within them would be decided by its float sign (two max-poolings whose candidates tie at a
    vertex: a value of 1e-16 against a tolerance of 1e-29 made a region of zero area). With this
    term added, the next tolerance ``rtol * scale * coef`` covers ``sum_j |w_kj| err_j``, each
    ``err_j`` taken as :data:`INHERIT` of the value's tolerance: ``max_j err_j`` for a local map
    (whose coef is its row's |weight| sum), ``sum_j err_j`` for a dense one (coef: its largest
    |weight|). Generic vertices keep their tolerance within a few percent."""
    lip = max(1.0, float(np.abs(np.asarray(slope, np.float64)).max(initial=0.0)))
    if nxt.tol_inf():
        a, b = float(ca.max(initial=0.0)), float(cb.max(initial=0.0))
    else:
        a, b = float(ca.sum()), float(cb.sum())
    return (INHERIT * lip / rtol) * (scale * a + b)


def _own_columns(exact, m: int) -> np.ndarray:
    """(V, 2) the columns of this layer's units whose lines each vertex was made on (-1: none):
    those values are exactly 0 at the vertex."""
    ex, layer, lines = exact[:3]
    lay, col = ex.decode(lines.reshape(-1))
    return np.where((lay == layer) & (col < m), col, -1).reshape(-1, 2)


def _dead(q: np.ndarray, sl: np.ndarray, own: Optional[np.ndarray]) -> np.ndarray:
    """Which units' activations are certainly exactly 0 (a chunk of rows): certainly below a
    slope-0 piece (``q``), or on a line the vertex was made on (``own``, the chunk's rows)."""
    dead = q & (sl == 0)
    if own is not None:
        rr, kk = np.nonzero(own >= 0)
        dead[rr, own[rr, kk]] = True
    return dead


def _activate(z: np.ndarray, p: np.ndarray, q: np.ndarray, sl: np.ndarray, m: int) -> np.ndarray:
    """The activation of the units (the first ``m`` columns; ``p``/``q``: their strict signs), the
    carried columns unchanged."""
    h = z[:, :m] * p  # (0.0 where not p, or -0.0: the next map's values are sanitised where marks matter)
    if sl.any():
        h += (sl * z[:, :m]) * q
    if z.shape[1] > m:
        h = np.concatenate([h, z[:, m:]], axis=1)
    return h


def _exact_transition(exact, Z, scale, ca, cb, sl, nxt, ca_next, cb_next, pos, und, Zn, scn, nsigns, marked, own,
                      inherit=None):
    """Redo, exactly, the rows of ``transition`` that hold a doubtful value (in place).

    A row's values on the lines its vertex was made on are 0 in the fast pass and exactly; any
    other value the fast pass left at 0 (within its rounding bound) and did not mark decided is
    decided exactly here, the row's activation and next values recomputed (and their zeros by
    structure marked again), and the next layer's doubtful values fixed. ``und = (zeros,
    next_zeros)``: per row, how many of this layer's values the fast pass left at 0 unmarked, and
    how many of the next layer's (None when the next layer does not split). ``marked``: this
    layer's values carry marks; ``own``: :func:`_own_columns`."""
    ex, layer, lines, X = exact  # X: the vertices' local coordinates (for ExactNet.fix)
    marks = carries_marks(ex.layers[layer])
    computed = _AffineValues(Z[1], Z[2]) if isinstance(Z, tuple) else None
    m = len(ca)
    V = len(scale)
    zeros, next_zeros = und
    if V:  # rows with more zeros than their own lines (unmarked) hold a doubtful value
        mine = own >= 0
        if marked:
            mine &= ~decided_zero(Z[np.arange(V)[:, None], np.maximum(own, 0)])
        rows = np.nonzero(zeros > mine.sum(1))[0]
    else:
        rows = np.zeros(0, np.int64)
    r = rows
    if len(rows):
        z = computed.rows(Z[0][rows]) if computed is not None else np.array(Z[rows], copy=True)
        t = scale[rows, None] * ca + cb
        d = np.abs(z[:, :m]) <= t
        if marks:
            d &= ~decided_zero(z[:, :m])
        cols = np.arange(m)
        keep = (d & (cols != own[rows, :1]) & (cols != own[rows, 1:])).any(1)
        r, z, t = rows[keep], z[keep], t[keep]
    if len(r):
        rr, cc = np.nonzero(np.abs(z[:, :m]) <= t)
        z[rr, cc] = ex.fix(layer, lines, r[rr], cc, z[rr, cc], t[rr, cc], X=X)
        p = z[:, :m] > 0
        q = z[:, :m] < 0
        h = _activate(z, p, q, sl, m)
        pos[r] = np.packbits(p, axis=1)
        scn[r] = nxt.scale(h) + (0.0 if inherit is None else inherit[r])
        if carries_marks(nxt):
            zn = nxt.rows(h) + 0.0
            free = nxt.const_abs() == 0
            if free.any():  # exact now: a unit at 0 is exactly 0
                _mark_structural(z, _dead(q, sl, None) | (z[:, :m] == 0), m, nxt, zn, free, marked)
            Zn.a[r] = zn
        else:
            Zn.a[r] = nxt.rows(h)
    if nsigns is None:
        return
    n = len(ca_next)
    redo = np.union1d(r, np.nonzero(next_zeros)[0])
    if not len(redo):
        return
    zn = Zn.a[redo]
    tn = scn[redo, None] * ca_next + cb_next
    dn = np.abs(zn[:, :n]) <= tn
    if carries_marks(nxt):
        dn &= ~decided_zero(zn[:, :n])
    rr, cc = np.nonzero(dn)
    ask = np.ones(len(rr), bool)  # the doubtful values still to decide
    zero = zn[rr, cc] == 0.0
    if zero.any() and not nxt.dense:
        ask[zero] = ~_structural_zeros(Z, computed, r, z if len(r) else None, redo, rr[zero], cc[zero],
                                       scale, ca, cb, sl, m, nxt, marked)
    if ask.any():
        ra, ka = rr[ask], cc[ask]
        zn[ra, ka] = ex.fix(layer + 1, lines, redo[ra], ka, zn[ra, ka], tn[ra, ka], X=X)
    if carries_marks(nxt):
        dec = zn[rr, cc] == 0.0  # every doubtful value is exact now: its zeros are marked decided
        zn[rr[dec], cc[dec]] = -0.0
    Zn.a[redo] = zn
    zu = zn[:, :n]
    # doubtful entries are exact now: their sign is np.sign
    nsigns[0][redo] = np.packbits(np.where(dn, zu > 0, zu > tn), axis=1)
    nsigns[1][redo] = np.packbits(np.where(dn, zu < 0, zu < -tn), axis=1)


def _structural_zeros(Z, computed, r, zr, redo, rows, cols, scale, ca, cb, sl, m, nxt, marked) -> np.ndarray:
    """Which next-layer values (``redo[rows]``, columns ``cols``), all exactly 0.0 in float64, are
    exactly 0 because every term behind them is: no constant, and they read only units of this
    layer whose activation is 0 with its sign decided (a dead unit, or one on its own line), and
    carried values marked decided zeros (``marked``; else counted as nonzero). One
    absolute-value pass of the next map on a 0/1 mask, in chunks of rows (small temporaries)."""
    u, inv = np.unique(rows, return_inverse=True)
    width = computed.width if computed is not None else Z.shape[1]
    step = max(1, _predicates.CHUNK_ELEMENTS // max(nxt.width, width, 1))
    struct = np.concatenate([_structural_block(Z, computed, r, zr, redo[u[s: s + step]], scale, ca, cb, sl, m, nxt,
                                               marked)
                             for s in range(0, len(u), step)]) if len(u) else np.zeros((0, nxt.width), bool)
    return struct[inv.reshape(-1), cols]


def _structural_block(Z, computed, r, zr, vr, scale, ca, cb, sl, m, nxt, marked) -> np.ndarray:
    """``_structural_zeros`` at the vertices ``vr``: (len(vr), next width) bool."""
    z = computed.rows(Z[0][vr]) if computed is not None else np.array(Z[vr], copy=True)
    if zr is not None and len(r):  # rows redone exactly above: their fixed values
        at = np.searchsorted(r, vr)
        hit = (at < len(r)) & (r[np.minimum(at, len(r) - 1)] == vr)
        z[hit] = zr[at[hit]]
    t = scale[vr, None] * ca + cb
    fixed = np.isin(vr, r)[:, None]  # exact rows: np.sign is the sign; others: outside the bound
    p = np.where(fixed, z[:, :m] > 0, z[:, :m] > t)
    q = np.where(fixed, z[:, :m] < 0, z[:, :m] < -t)
    h = _activate(z, p, q, sl, m)
    may = _may(z, h[:, :m] == 0, m, marked)
    return (nxt.bound(may, np.zeros(len(vr))) == 0) & (nxt.const_abs() == 0)


def _may(z: np.ndarray, dead: np.ndarray, m: int, marked: bool) -> np.ndarray:
    """A 0/1 float64 mask of the values of ``z``'s rows whose activations may be nonzero: the
    units not ``dead`` (nor marked decided 0) and the carried values not marked decided 0 (marks
    are read only where this layer's values carry them, ``marked``)."""
    may = np.empty(z.shape)
    if marked:
        dead = dead | decided_zero(z[:, :m])
        np.logical_not(decided_zero(z[:, m:]), out=may[:, m:])
    else:
        may[:, m:] = 1.0
    np.logical_not(dead, out=may[:, :m])
    return may


def _mark_structural(z: np.ndarray, dead: np.ndarray, m: int, nxt, zn: np.ndarray,
                     free: np.ndarray, marked: bool) -> None:
    """Mark decided (-0.0) the next values ``zn`` (a chunk of rows, in place) that are exactly 0
    by structure: in a column with no constant (``free``), they read only activations certainly 0
    (``dead``, :func:`_dead`, or marked decided 0) and carried values marked decided 0 (marks are
    read only where this layer's values carry them, ``marked``). One absolute-value pass of the
    next map on a 0/1 mask of what may be nonzero, on the rows with a 0.0 in such a column (on
    all of them when that is most)."""
    zero = zn == 0.0
    if not free.all():
        zero &= free
    rows: Any = np.nonzero(zero.any(1))[0]
    if not len(rows):
        return
    if 2 * len(rows) > len(zn):
        rows = slice(None)
    zr = z[rows]
    st = nxt.bound(_may(zr, dead[rows], m, marked), np.zeros(len(zr))) == 0
    st &= zero[rows]
    if isinstance(rows, slice):
        _mark_zeros(zn, st)
    else:
        sub = zn[rows]
        _mark_zeros(sub, st)
        zn[rows] = sub


def _mark_zeros(z: np.ndarray, where: np.ndarray) -> None:
    """Mark decided (-0.0) the values of ``z`` (C-contiguous, in place) that are 0.0 ``where``: their
    sign bit set, as 64-bit words (5x ``np.copyto(z, -0.0, where=...)``, which branches per value).

    >>> z = np.array([[0.0, 0.0, 1.0]]); _mark_zeros(z, np.array([[True, False, False]])); z.tolist()
    [[-0.0, 0.0, 1.0]]
    """
    words = z.view(np.int64)
    np.bitwise_or(words, np.left_shift(where, 63, dtype=np.int64), out=words)


OP_CHUNK_ELEMENTS = 1 << 18
"""Values per chunk of rows in the fast pass of an operation layer: 2 MB temporaries, which the
allocator reuses; larger ones are fresh pages each time, and page faults cost more than the
extra calls (digits CNN, (0, 0.5)^2: 1.39 s and 190k faults with 16 MB, 0.81 s and 62k with 2 MB)."""
OP_CHUNK_ROWS = 16
"""At least this many rows per chunk, however wide the layer (a call per row costs more)."""


def _transition_np(Z, scale, ca, cb, sl, nxt, ca_next, cb_next, capacity, chunk, sanitize=False, marked=False,
                   own=None, inherit=None):
    """The fast pass of :func:`transition` in numpy (an operation's map through torch on the CPU).
    With ``sanitize`` (exact mode, the next layer an operation) the next values zero by structure
    are marked decided (:func:`_mark_structural`); ``marked``: this layer's values carry marks."""
    computed = _AffineValues(Z[1], Z[2]) if isinstance(Z, tuple) else None
    X = Z[0] if computed is not None else None
    V, width = (len(X), computed.width) if computed is not None else Z.shape
    m = len(ca)
    n = nxt.width
    if nxt.dense:
        chunk = max(32, min(chunk, (1 << 18) // max(width, n, 1)))  # temporaries of ~2 MB stay in cache
        Wt = np.ascontiguousarray(nxt.weight.T)
    else:
        chunk = max(OP_CHUNK_ROWS, OP_CHUNK_ELEMENTS // max(width, n, 1))
    pos = np.empty((V, (m + 7) // 8), np.uint8)
    zeros = np.empty(V, np.int64)  # per row: values left at 0 (within the bound), unmarked
    Zn = _Rows(np.empty((max(capacity, V), n)))
    Zn.n = V
    scn = np.empty(V)
    free = nxt.const_abs() == 0 if sanitize else None  # next columns that may be zero by structure
    if free is not None and not free.any():
        free = None
    split_next = ca_next is not None
    if split_next:
        mn = len(ca_next)
        pn = np.empty((V, (mn + 7) // 8), np.uint8)
        nn = np.empty((V, (mn + 7) // 8), np.uint8)
        next_zeros = np.empty(V, np.int64)
    for s in range(0, V, chunk):
        z = computed.rows(X[s: s + chunk]) if computed is not None else Z[s: s + chunk]
        p, q, zeros[s: s + chunk] = _tol_signs(z[:, :m], scale[s: s + chunk], ca, cb, marked)
        pos[s: s + chunk] = np.packbits(p, axis=1)
        h = _activate(z, p, q, sl, m)
        sc = nxt.scale(h)
        if inherit is not None:
            sc += inherit[s: s + chunk]
        scn[s: s + chunk] = sc
        zn = Zn.a[s: s + len(z)]
        if nxt.dense:
            np.matmul(h, Wt, out=zn)
            zn += nxt.bias
        elif sanitize:  # no -0.0 (the mark of a decided zero) from the arithmetic ...
            np.add(nxt.rows(h), 0.0, out=zn)
        else:
            zn[:] = nxt.rows(h)
        if free is not None:  # ... but the marks of values zero by structure
            _mark_structural(z, _dead(q, sl, None if own is None else own[s: s + chunk]), m, nxt, zn, free, marked)
        if split_next:
            pz, nz, next_zeros[s: s + chunk] = _tol_signs(zn[:, :mn], sc, ca_next, cb_next, sanitize)
            pn[s: s + chunk] = np.packbits(pz, axis=1)
            nn[s: s + chunk] = np.packbits(nz, axis=1)
    return pos, (zeros, next_zeros if split_next else None), Zn, scn, ((pn, nn) if split_next else None)


def _tol_signs(z: np.ndarray, scale: np.ndarray, ca: np.ndarray, cb: np.ndarray, marks: bool):
    """The strict signs (pos, neg) of the rows ``z`` under the tolerance ``scale * ca + cb``, and
    per row how many values are left at 0 within it (not counting marked decided zeros when
    ``marks``)."""
    t = scale[:, None] * ca
    t += cb
    p = z > t
    np.negative(t, out=t)
    q = z < t
    u = p | q
    if marks:  # (a mark, -0.0, is neither above t >= 0 nor below -t)
        u |= decided_zero(z)
    return p, q, z.shape[1] - _row_counts(u)


def _row_counts(b: np.ndarray) -> np.ndarray:
    """(R,) int64 the True values in each row of a bool (R, n) array (summed as bytes: ~4x
    ``np.count_nonzero(axis=1)``)."""
    return b.view(np.uint8).sum(1, dtype=np.uint16 if b.shape[1] < 65536 else np.int64).astype(np.int64)


def _transition_torch(Z, scale, ca, cb, sl, nxt, ca_next, cb_next, capacity, device, sanitize=False, marked=False,
                      own=None, inherit=None):
    """The fast pass of :func:`transition` on a torch device (the same formulas; the marks of
    values zero by structure, in exact mode, on the CPU)."""
    import torch

    computed = _AffineValues(Z[1], Z[2]) if isinstance(Z, tuple) else None
    X = Z[0] if computed is not None else None
    V, width = (len(X), computed.width) if computed is not None else Z.shape
    m = len(ca)
    n = nxt.width
    dev = torch.device(device)
    f64 = dict(dtype=torch.float64, device=dev)
    if nxt.dense:
        Wt, bt = torch.as_tensor(np.ascontiguousarray(nxt.weight.T), **f64), torch.as_tensor(nxt.bias, **f64)
    cat, cbt = torch.as_tensor(ca, **f64), torch.as_tensor(cb, **f64)
    slt = torch.tensor(sl, **f64)  # a copy: sl may be a read-only broadcast view
    any_slope = bool(sl.any())
    split_next = ca_next is not None
    if split_next:
        mn = len(ca_next)
        pn = np.empty((V, (mn + 7) // 8), np.uint8)
        nn = np.empty((V, (mn + 7) // 8), np.uint8)
    pos = np.empty((V, (m + 7) // 8), np.uint8)
    zeros = np.empty(V, np.int64)  # per row: values left at 0 (within the bound), unmarked
    Zn = _Rows(np.empty((max(capacity, V), n)))
    Zn.n = V
    scn = np.empty(V)
    free = nxt.const_abs() == 0 if sanitize else None  # next columns that may be zero by structure
    if free is not None and not free.any():
        free = None
    if split_next:
        next_zeros = np.empty(V, np.int64)
    chunk = max(256, (1 << 22) // max(width, n, 1))  # ~32 MB per temporary on the device
    for s in range(0, V, chunk):
        z_np = computed.rows(X[s: s + chunk]) if computed is not None else Z[s: s + chunk]
        z = torch.as_tensor(np.ascontiguousarray(z_np), **f64)
        zs = z[:, :m]
        t = torch.as_tensor(scale[s: s + chunk], **f64)[:, None] * cat + cbt
        p, q = zs > t, zs < -t
        h = torch.where(p, zs, torch.zeros((), **f64))
        if any_slope:
            h = h + torch.where(q, slt * zs, torch.zeros((), **f64))
        if width > m:
            h = torch.cat([h, z[:, m:]], 1)
        sc = nxt.scale(h)
        zn = h @ Wt + bt if nxt.dense else nxt.op.rows_torch(h)
        pos[s: s + chunk] = np.packbits(p.cpu().numpy(), axis=1)
        und = ~(p | q)
        if marked:
            und &= ~((zs == 0) & torch.signbit(zs))
        zeros[s: s + chunk] = und.sum(1).cpu().numpy()
        zn_np = Zn.a[s: s + len(z_np)]
        zn_np[:] = zn.cpu().numpy()
        if sanitize:
            zn_np += 0.0  # no -0.0 (the mark of a decided zero) from the arithmetic ...
            if free is not None:  # ... but the marks of values zero by structure
                dead = _dead(q.cpu().numpy(), sl, None if own is None else own[s: s + chunk])
                _mark_structural(np.asarray(z_np), dead, m, nxt, zn_np, free, marked)
        sc_np = sc.cpu().numpy()
        if inherit is not None:
            sc_np = sc_np + inherit[s: s + chunk]
        scn[s: s + chunk] = sc_np
        if split_next:
            # the next layer's tolerance from the scale as stored (what the splitting will use)
            pz, nz, next_zeros[s: s + chunk] = _tol_signs(zn_np[:, :mn], sc_np, ca_next, cb_next, sanitize)
            pn[s: s + chunk] = np.packbits(pz, axis=1)
            nn[s: s + chunk] = np.packbits(nz, axis=1)
    return pos, (zeros, next_zeros if split_next else None), Zn, scn, ((pn, nn) if split_next else None)


def keep_rows(a: np.ndarray, keep: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """``a[keep]`` for strictly increasing ``keep``, written over the first rows of ``a`` itself,
    chunk by chunk (each row is read before it is overwritten: ``keep[i] >= i``), and returned as
    that prefix: no new array of the kept rows (a fresh one costs its pages; digits CNN, the
    conv-32 layer's 31k x 512 values after the max-pooling merge: 0.01 s against 0.1-0.3 s).

    >>> a = np.arange(10.0).reshape(5, 2)
    >>> keep_rows(a, np.array([1, 3, 4])).tolist()
    [[2.0, 3.0], [6.0, 7.0], [8.0, 9.0]]
    """
    keep = np.asarray(keep, np.int64)
    if len(keep) and (keep[0] < 0 or (np.diff(keep) <= 0).any() or keep[-1] >= len(a)):
        raise ValueError("keep_rows needs strictly increasing row indices within the array")
    for s in range(0, len(keep), chunk):
        k = keep[s: s + chunk]
        a[s: s + len(k)] = a[k]
    return a[: len(keep)]


def compact(sub: Subdivision) -> Subdivision:
    """Drop vertices that no face uses (crossings that snapping made redundant). ``sub.Z`` is
    compacted in place (:func:`keep_rows`): the caller's store, not read again (a trained digits
    CNN's 148k x 256 round-2 values: a fresh copy took 0.2-1.0 s of page faults)."""
    V = len(sub.X)
    used = np.bincount(sub.indices, minlength=V) > 0
    if used.all():
        return sub
    remap = np.cumsum(used) - 1
    keep = np.nonzero(used)[0]  # the values (the largest array) compacted in place: no fresh pages
    return Subdivision(sub.X[used], sub.offsets, remap[sub.indices], sub.origin,
                       None if sub.Z is None else keep_rows(sub.Z, keep), sub.scale[used],
                       None if sub.lines is None else sub.lines[used], sub.slot_line)
