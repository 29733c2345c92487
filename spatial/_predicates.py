"""Exact decisions where float64 is in doubt (filtered predicates), and exact vertices.

The engine decides the sign of a neuron's value at a vertex in float64 and trusts it when the
value is outside its rounding bound. A value inside the bound is *doubtful*: this module decides
its sign exactly. Every vertex is the intersection of two lines (box sides, or a neuron's zero
line inside the face where it was made), each an affine function of the slice coordinates with
exact rational coefficients: the network's float64 weights are dyadic rationals, and the map of
a neuron of layer ``l`` on a face is the composition of the layers before it under the face's
activation pattern (as ``Partition.certify`` composes it). The exact vertex is the solution of
that 2x2 system; the exact value of every neuron there is one exact forward pass
(Python ``Fraction``). Generic networks have almost no doubtful values, so this costs nothing
there; integer-weight, bias-free and near-degenerate networks pay only where they need it.

Line ids (int64): 0..3 are the box sides ``s = x0, s = x1, t = y0, t = y1``; the lines of hidden
layer ``l`` take ``ids = base[l] + origin * m_l + k`` for neuron ``k`` on the face ``origin`` of
the layer's start (layer 0 is affine everywhere: ``base[0] + k``).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._rational import Q

CHUNK_ELEMENTS = 1 << 19  # values per temporary (4 MB) in the row passes of the structural-zero tests

__all__ = ["ExactNet"]

Line = Tuple[Fraction, Fraction, Fraction]  # a s + b t + c


def decided_zero(z: np.ndarray) -> np.ndarray:
    """Values marked decided exactly 0: -0.0. Only the values of an operation layer in exact mode
    carry marks (``carries_marks``; the engine keeps the arithmetic from leaving -0.0 in their
    stores); a dense layer's values are neither marked nor sanitised. (One comparison of the
    float64 bits: -0.0 is the only float64 whose bits are those of the smallest int64.)"""
    z = np.asarray(z, np.float64)
    return z.view(np.int64) == np.iinfo(np.int64).min


def carries_marks(layer) -> bool:
    """Whether the values of this ``_net.Layer`` carry -0.0 marks of decided zeros (exact mode)."""
    return not layer.dense


class ExactNet:
    """The exact network on a slice, in coordinates local to the slice (``x = center + local``).

    Parameters
    ----------
    layers : the float64 :class:`~splinescope.spatial._net.Layer` list (2 inputs).
    center : (2,) float64, the point of the slice the local coordinates are measured from.
    bounds : (xmin, xmax, ymin, ymax) in global slice coordinates.
    whole : the bounds of the slice whose coordinates' rounding the margins are measured on
        (default ``bounds``; a tile of a slice passes the slice's).
    """

    def __init__(self, layers, center, bounds, whole=None):
        self.layers = layers
        self.hidden = [l for l in layers if l.slope is not None]
        self.sizes = [l.units for l in self.hidden]  # the units (the lines); values are full width
        cx, cy = (Fraction(float(c)) for c in center)
        x0, x1, y0, y1 = (Fraction(float(v)) for v in bounds)
        self.sides: List[Line] = [(Fraction(1), Fraction(0), cx - x0), (Fraction(1), Fraction(0), cx - x1),
                                  (Fraction(0), Fraction(1), cy - y0), (Fraction(0), Fraction(1), cy - y1)]
        self._center = (cx, cy)
        # the size of the coordinates' rounding
        self._box = 2.0 * max(abs(float(v)) for v in (bounds if whole is None else whole)) + 1.0
        self._W: Optional[Q] = None  # the first layer's exact weights (made on first use)
        self._b: Optional[Q] = None
        self._slopes = [None if l.slope is None else Q.of(l.slopes()) for l in layers]
        self.base: List[int] = [4]  # line-id base of each hidden layer
        self.faces: List[int] = []  # faces at each hidden layer's start (known when it begins)
        self.pats: List[np.ndarray] = []  # per finished layer: packed bits of the faces at its end
        self.lineage: List[np.ndarray] = []  # per finished layer: face -> face of the layer's start
        self._maps: Dict[Tuple[int, bytes], Q] = {}
        self._points: Dict[Tuple[int, int], Tuple[Fraction, Fraction]] = {}
        self._forward: Dict[Tuple[int, int], List[Q]] = {}
        self._at: Dict[Tuple[int, int, int, int], float] = {}  # (line, line, layer, column) -> exact value

    # ---- bookkeeping of the layers (called by the driver)
    def begin_layer(self, layer: int, faces: int) -> None:
        """Layer ``layer`` starts on ``faces`` faces: reserve its line ids."""
        assert layer == len(self.faces)
        self.faces.append(faces)
        m = self.sizes[layer]
        self.base.append(self.base[-1] + (m if layer == 0 else faces * m))

    def end_layer(self, pats: np.ndarray, lineage: np.ndarray) -> None:
        self.pats.append(pats)
        self.lineage.append(lineage)

    def state(self) -> Tuple[List[int], List[int], List[np.ndarray], List[np.ndarray]]:
        """The bookkeeping that names the lines (``base``, ``faces``, ``pats``, ``lineage``): plain
        lists and arrays, from which :meth:`restore` makes the same exact network elsewhere."""
        return list(self.base), list(self.faces), list(self.pats), list(self.lineage)

    @classmethod
    def restore(cls, layers, center, bounds, state, whole=None) -> "ExactNet":
        """An ExactNet whose line ids mean what they meant in the one whose :meth:`state` this is."""
        ex = cls(layers, center, bounds, whole)
        base, faces, pats, lineage = state
        ex.base, ex.faces, ex.pats, ex.lineage = list(base), list(faces), list(pats), list(lineage)
        return ex

    def line_ids(self, layer: int, origin, k) -> np.ndarray:
        origin, k = np.asarray(origin, np.int64), np.asarray(k, np.int64)
        if layer == 0:
            return self.base[0] + k + 0 * origin
        return self.base[layer] + origin * self.sizes[layer] + k

    def decode(self, ids) -> Tuple[np.ndarray, np.ndarray]:
        """(layer, neuron) of each line id; layer -1 for the box sides."""
        ids = np.asarray(ids, np.int64)
        base = np.asarray(self.base, np.int64)
        layer = np.searchsorted(base, ids, side="right") - 1  # -1: a box side
        col = np.where(layer >= 0, (ids - base[np.maximum(layer, 0)]) % np.asarray(self.sizes + [1])[np.maximum(layer, 0)], ids)
        return layer, col

    def own(self, layer: int, pairs: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Whether neuron ``k`` of ``layer`` is one of the lines of each vertex (line pairs (n, 2))."""
        if layer >= len(self.faces):
            return np.zeros(len(k), bool)
        lo, hi, m = self.base[layer], self.base[layer + 1], self.sizes[layer]
        on = (pairs >= lo) & (pairs < hi) & ((pairs - lo) % m == np.asarray(k)[:, None])
        return on.any(1)

    # ---- exact arithmetic (integers over one denominator, ._rational.Q)
    def _weights0(self) -> Tuple[Q, Q]:
        """The first layer's exact weights (m, 2) and bias (m,) in local coordinates."""
        if self._W is None:
            l = self.layers[0]
            W = Q.of(np.asarray(l.weight, np.float64))
            cx, cy = self._center  # local coordinates: z = W (center + x) + b
            self._W, self._b = W, Q.of(np.asarray(l.bias, np.float64)) + W[:, 0] * cx + W[:, 1] * cy
        assert self._b is not None
        return self._W, self._b

    @staticmethod
    def _act(z: Q, on: np.ndarray, slope: Q) -> Q:
        """Units (the first ``len(on)`` entries along axis 0 of ``z``) times 1 where ``on``, else
        their slope; the other entries unchanged."""
        n = len(on)
        f = Q(np.where(on, slope.den, slope.num), slope.den)  # 1 = den / den
        fz = z[:n] * (f.reshape((n,) + (1,) * (z.ndim - 1)))
        return Q.cat([fz, z[n:]], axis=0) if len(z) > n else fz

    def _prefix(self, layer: int, origin: int) -> bytes:
        rows = np.array([origin])
        parts = []
        for i in range(layer - 1, -1, -1):
            parts.append(np.unpackbits(self.pats[i][rows], axis=1, count=self.sizes[i])[0])
            rows = self.lineage[i][rows]
        return np.concatenate(parts[::-1]).astype(np.uint8).tobytes() if parts else b""

    def _map(self, layer: int, bits: bytes) -> Q:
        """(m_layer, 3) exact [a, b, c] of layer ``layer``'s pre-activations under a pattern prefix."""
        key = (layer, bits)
        if key not in self._maps:
            if layer == 0:
                W, b = self._weights0()
                M = Q.cat([W, b.reshape(-1, 1)], axis=1)
            else:
                prev = self._map(layer - 1, bits[: sum(self.sizes[: layer - 1])])
                act = np.frombuffer(bits, np.uint8)[sum(self.sizes[: layer - 1]):].astype(bool)
                H = self._act(prev, act, self._slopes[layer - 1])  # the carried rows pass unchanged
                M = self._exact(layer, H.T, [0, 0, 1]).T
            self._maps[key] = M
        return self._maps[key]

    def _maps_many(self, keys) -> None:
        """:meth:`_map` of many ``(layer, bits)`` keys, each level's exact map applied once to the
        rows of all the maps it needs (their [a, b, c] columns as rows of integer numerators; the
        constant column's multiplier is its map's denominator, the others' 0), not once per map."""
        need: Dict[Tuple[int, bytes], None] = {}
        for layer, bits in keys:  # each key and the prefixes it is made from, missing ones only
            while layer > 0 and (layer, bits) not in self._maps and (layer, bits) not in need:
                need[(layer, bits)] = None
                bits, layer = bits[: sum(self.sizes[: layer - 1])], layer - 1
        if (0, b"") not in self._maps:
            self._map(0, b"")
        for j in sorted({layer for layer, _ in need}):
            level = [bits for layer, bits in need if layer == j]
            slope = self._slopes[j - 1]
            cut = sum(self.sizes[: j - 1])
            Hs, cs, dens = [], [], []
            for bits in level:
                prev = self._maps[(j - 1, bits[:cut])]
                act = np.frombuffer(bits, np.uint8)[cut:].astype(bool)
                H = self._act(prev, act, slope).T  # (3, width): the s, t and constant rows
                Hs.append(H.num)
                cs.extend([0, 0, H.den])
                dens.append(H.den)
            c = np.empty(len(cs), dtype=object)
            c[:] = cs
            out = self.layers[j].exact(Q(np.concatenate(Hs, axis=0), 1), c)
            for r, bits in enumerate(level):
                self._maps[(j, bits)] = Q(out.num[3 * r: 3 * r + 3].T, out.den * dens[r])

    def _line_key(self, lid: int) -> Optional[Tuple[int, bytes]]:
        """The ``(layer, bits)`` of the map whose row is the network line ``lid`` (None: a box side)."""
        layer = int(self.decode([lid])[0][0])
        if layer < 0:
            return None
        return (layer, self._prefix(layer, (lid - self.base[layer]) // self.sizes[layer]) if layer else b"")

    def _exact(self, i: int, M: Q, c: Sequence[int]) -> Q:
        """Layer ``i``'s map at the rows of ``M`` (k, in), exactly; ``c`` (k,) integer multipliers of the constants."""
        cc = np.empty(len(c), dtype=object)
        cc[:] = [int(v) for v in c]
        return self.layers[i].exact(M, cc)

    def line(self, lid: int) -> Line:
        layer, col = (int(x[0]) for x in self.decode([lid]))
        if layer < 0:
            return self.sides[col]
        origin = 0 if layer == 0 else (lid - self.base[layer]) // self.sizes[layer]
        row = self._map(layer, self._prefix(layer, origin) if layer else b"")[col]
        a, b, c = (Fraction(int(n), row.den) for n in row.num)
        return a, b, c

    def point(self, l1: int, l2: int) -> Tuple[Fraction, Fraction]:
        """The exact intersection of two lines, in local coordinates."""
        key = (min(l1, l2), max(l1, l2))
        if key not in self._points:
            a1, b1, c1 = self.line(key[0])
            a2, b2, c2 = self.line(key[1])
            det = a1 * b2 - a2 * b1
            if det == 0:
                raise ArithmeticError(f"lines {key} are parallel: the vertex is not defined by them")
            self._points[key] = ((b1 * c2 - b2 * c1) / det, (a2 * c1 - a1 * c2) / det)
        return self._points[key]

    def values(self, l1: int, l2: int, layer: int) -> Q:
        """Exact pre-activations of a layer at a vertex."""
        key = (min(l1, l2), max(l1, l2))
        fw = self._forward.setdefault(key, [])
        if not fw:
            fw.append(self._first(self.point(*key)))
        while len(fw) <= layer:
            fw.append(self._next(fw[-1], len(fw)))
        return fw[layer]

    def _first(self, point: Tuple[Fraction, Fraction]) -> Q:
        """Exact pre-activations of layer 0 at a local point."""
        W, b = self._weights0()
        return W[:, 0] * point[0] + W[:, 1] * point[1] + b

    def _next(self, z: Q, i: int) -> Q:
        """Exact values of layer ``i`` from those of layer ``i - 1`` (carried values pass unchanged)."""
        slope = self._slopes[i - 1]
        h = self._act(z, z.num[: len(slope)] > 0, slope)
        return self._exact(i, h[None, :], [1])[0]

    MARGIN = 2.0 ** -20  # relative: far above float64's rounding of the coordinates and values

    def structural_zero(self, layer: int, X: np.ndarray, lines: Optional[np.ndarray] = None) -> np.ndarray:
        """(n, width) bool: which values of ``layer`` are exactly 0 at the exact vertex near ``X[i]``
        (made on the two lines ``lines[i]``) because every one of its terms is: it reads only
        activations certainly 0 (a unit below its slope-0 piece by far more than float64's
        rounding, ``MARGIN``, or on its own line at this vertex) or values that are themselves
        zero this way, and no constant.

        A float64 forward pass of the rows with, beside it, the absolute-value form of each map
        on a 0/1 mask of the values that may be nonzero (``Layer.bound``): a sum of nonnegative
        terms, 0 only where every term is. In chunks of rows: its temporaries stay small."""
        step = max(1, CHUNK_ELEMENTS // max(L.width for L in self.layers[: layer + 1]))
        if len(X) > step:
            return np.concatenate([self.structural_zero(layer, X[s: s + step], None if lines is None else lines[s: s + step])
                                   for s in range(0, len(X), step)])
        cx, cy = (float(c) for c in self._center)
        h = np.asarray(X, np.float64) + np.array([cx, cy])
        may = np.ones(h.shape)  # 1: the value may be nonzero
        for i in range(layer):
            L = self.layers[i]
            z = L.rows(h)
            S = (L.scale(h) + (self._box if i == 0 else 0.0))[:, None] * L.tol_coef() + L.const_abs()
            struct = (L.bound(may, np.zeros(len(h))) == 0) & (L.const_abs() == 0)  # only zeros read
            m = L.units
            dead = np.zeros(z.shape, bool)
            dead[:, :m] = (L.slopes() == 0) & (z[:, :m] < -self.MARGIN * S[:, :m])
            if lines is not None:  # a unit whose line the vertex was made on is 0 there, exactly
                lay, col = self.decode(lines.reshape(-1))
                on = (lay == i) & (col < m)
                dead[np.repeat(np.arange(len(h)), 2)[on], col[on]] = True
            may = (~(struct | dead)).astype(np.float64)
            h = L.activate(z)
        L = self.layers[layer]
        zero = (L.bound(may, np.zeros(len(h))) == 0) & (L.const_abs() == 0)
        return zero

    # ---- what the engine calls
    def fix(self, layer: int, lines: np.ndarray, v: np.ndarray, k: np.ndarray, z: np.ndarray,
            tol: np.ndarray, X: Optional[np.ndarray] = None) -> np.ndarray:
        """``z`` (values of columns ``k`` at vertices ``v``) with every doubtful entry (|z| <= tol)
        replaced by its exact value rounded to float64 (0.0 exactly on the line), so that
        ``np.sign`` of the result is the exact sign. A value of an operation layer that is -0.0
        is one the engine has already decided exactly 0 and is left as it is. ``lines`` is the (V, 2) vertex-line table;
        ``X`` (optional) the vertices' local coordinates, for the structural-zero test."""
        d = np.abs(z) <= tol
        if carries_marks(self.layers[layer]):  # -0.0: already decided exactly 0 (_engine)
            d &= ~decided_zero(z)
        d = np.nonzero(d)[0]
        if not len(d):
            return z
        z = np.array(z, dtype=np.float64, copy=True)
        dv, dk = v[d], k[d]
        # on a line it was made on: exactly 0 by construction
        own = self.own(layer, lines[dv], dk)
        z[d[own]] = 0.0
        if X is not None:  # every term certainly 0 (e.g. a max-pool comparison of two dead units)
            rest = np.nonzero(~own & (z[d] == 0.0))[0]
            if len(rest):
                rows, inv = np.unique(dv[rest], return_inverse=True)
                zero = self.structural_zero(layer, X[rows], lines[rows])
                own[rest[zero[inv.reshape(-1), dk[rest]]]] = True
        rest = np.nonzero(~own)[0]
        if len(rest):
            z[d[rest]] = self._exact_at(layer, lines[dv[rest]], dk[rest])
        return z

    def _exact_at(self, layer: int, pairs: np.ndarray, k: np.ndarray) -> np.ndarray:
        """The exact values of columns ``k`` of ``layer`` at the vertices made on the line pairs
        ``pairs``, rounded to float64 (:meth:`_face_map` where there is one, else the forward pass,
        of all the vertices that need it at once: :meth:`_forward_many`)."""
        out = np.empty(len(k))
        seen = self._at
        todo = []
        for i, ((l1, l2), kk) in enumerate(zip(pairs.tolist(), k.tolist())):
            key = (min(l1, l2), max(l1, l2), layer, kk)
            if key in seen:  # (a value the merge of max-pooling cells decided, asked again by the next pass)
                out[i] = seen[key]
            else:
                todo.append((i, key))
        keys = {self._line_key(lid) for _, key in todo if key[:2] not in self._points for lid in key[:2]}
        self._maps_many([m for m in keys if m is not None])  # (the lines' maps, their faces' maps too)
        # per vertex, its face map, point and evaluation once for all its columns (the ties of
        # coincident lines ask several columns at one vertex)
        at: Dict[Tuple[int, int], List[Tuple[int, Tuple[int, int, int, int]]]] = {}
        for i, key in todo:
            at.setdefault(key[:2], []).append((i, key))
        faces = {v: self._face_map(layer, v[0], v[1]) for v in at}
        self._forward_many([v for v, M in faces.items() if M is None], layer)
        for v, asked in at.items():
            M = faces[v]
            cols = [key[3] for _, key in asked]
            vals = (self._at_point(M, self.point(*v), cols) if M is not None
                    else self._forward[v][layer][cols].floats())
            for (i, key), val in zip(asked, vals.tolist()):
                out[i] = seen[key] = val
        return out

    def _forward_many(self, keys: Sequence[Tuple[int, int]], layer: int) -> None:
        """:meth:`values` up to ``layer`` of the vertices of the line pairs ``keys`` (each
        ``(low, high)``), each layer's exact map applied to all their rows in one call: a row
        ``z = num / den`` goes in as its integer numerators with ``den`` as its multiplier of the
        map's constants (the map is affine: ``Op(num, den) = den * Op(z)``), so the rows need no
        common denominator. The same rationals as one :meth:`_next` per vertex, which for a graph
        of many operations (a sorting network) cost most of a partition."""
        todo = [key for key in dict.fromkeys(keys) if len(self._forward.get(key, ())) <= layer]
        for key in todo:
            fw = self._forward.setdefault(key, [])
            if not fw:
                fw.append(self._first(self.point(*key)))
        for j in range(1, layer + 1):
            rows = [key for key in todo if len(self._forward[key]) == j]
            if not rows:
                continue
            zs = [self._forward[key][j - 1] for key in rows]
            slope = self._slopes[j - 1]
            m = len(slope)
            Z = np.stack([z.num for z in zs])  # (n, width) Python ints
            F = np.where(Z[:, :m] > 0, slope.den, slope.num)  # each unit's factor over slope.den (as _act)
            H = np.concatenate([Z[:, :m] * F, Z[:, m:] * slope.den], axis=1) if Z.shape[1] > m else Z * F
            dens = np.empty(len(rows), dtype=object)
            dens[:] = [z.den * slope.den for z in zs]
            out = self.layers[j].exact(Q(H, 1), dens)
            for r, key in enumerate(rows):
                self._forward[key].append(Q(out.num[r], out.den * dens[r]))

    def _exact_values(self, layer: int, l1: int, l2: int, point, cols=None) -> np.ndarray:
        """The exact values (columns ``cols``, default all) of ``layer`` at the vertex ``point`` of
        the lines ``l1``, ``l2``, rounded to float64: from :meth:`_face_map` where there is one,
        else the forward pass."""
        M = self._face_map(layer, l1, l2)
        if M is not None:
            return self._at_point(M, point, cols)
        z = self.values(l1, l2, layer)
        return (z if cols is None else z[cols]).floats()

    def _face_map(self, layer: int, l1: int, l2: int) -> Optional[Q]:
        """The exact affine map (width, 3) of ``layer``'s values on a face whose closure holds the
        vertex of the lines ``l1``, ``l2``: everywhere for the first layer; else the face a line of
        this layer was made in (the vertex lies on that line, so on the face's closure, where the
        layer is that one map: its value there, by continuity; the map is the line's own, made
        already). None when neither line is of this layer."""
        if layer == 0:
            return self._map(0, b"")
        for lid, a in zip((l1, l2), self.decode([l1, l2])[0].tolist()):
            if a == layer:
                return self._map(layer, self._prefix(layer, (lid - self.base[layer]) // self.sizes[layer]))
        return None

    @staticmethod
    def _at_point(M: Q, point: Tuple[Fraction, Fraction], cols=None) -> np.ndarray:
        """The affine map ``M`` (width, 3) at an exact point, each value rounded to the nearest
        float64 (integers over one denominator, then ``int / int``, which rounds correctly)."""
        s, t = point
        D = s.denominator * t.denominator // math.gcd(s.denominator, t.denominator)
        si, ti = s.numerator * (D // s.denominator), t.numerator * (D // t.denominator)
        num = M.num if cols is None else M.num[cols]
        den = M.den * D
        # object-array arithmetic, no list of rows: 32,768 small lists start garbage collections,
        # which walk every live container of the process (0.1 s in some calls)
        v = (num[:, 0] * si + num[:, 1] * ti + num[:, 2] * D) / den
        return np.asarray(v, dtype=np.float64).reshape(len(num))

    def exact_rows(self, lines: np.ndarray, layer: int) -> Tuple[np.ndarray, np.ndarray]:
        """Rounded exact coordinates (n, 2) and pre-activations (n, m) of vertices given by line
        pairs (from :meth:`_face_map` where there is one, else the forward pass)."""
        X = np.empty((len(lines), 2))
        Z = np.empty((len(lines), self.layers[layer].width))
        self._forward_many([(min(int(a), int(b)), max(int(a), int(b))) for a, b in lines
                            if self._face_map(layer, int(a), int(b)) is None], layer)
        for i, (l1, l2) in enumerate(lines):
            p = self.point(int(l1), int(l2))
            X[i] = float(p[0]), float(p[1])
            Z[i] = self._exact_values(layer, int(l1), int(l2), p)
        return X, Z

    def polygon(self, lines: Sequence[Tuple[int, int]]) -> List[Tuple[Fraction, Fraction]]:
        """Exact local vertices of a region from its vertices' line pairs."""
        return [self.point(int(a), int(b)) for a, b in lines]

    def pattern(self, point: Tuple[Fraction, Fraction]) -> np.ndarray:
        """Exact activation pattern (bool over all hidden neurons) at a local point."""
        z = self._first(point)
        bits = []
        for i in range(len(self.hidden)):
            bits.append((z.num[: self.sizes[i]] > 0).astype(bool))
            z = self._next(z, i + 1)
        return np.concatenate(bits) if bits else np.zeros(0, bool)
