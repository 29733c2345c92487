"""``Partition.certify``: recompute each region's vertices in exact rational arithmetic (pycddlib).

A region's H-representation (the box sides plus one half-plane per hidden neuron) comes from the
exact composition of the float64 weights (dyadic rationals, ``_dyadic``) under its pattern (for
operation layers, through ``_predicates.ExactNet``'s maps); behind a max-pooling layer, each
window's argmax against every rival (``_maxpool.duels``: the tournament rigged so that the two
meet), which is the merged region, not one of its cells; the rows are integers, normalised and
deduplicated (``_distinct``) before ``cdd.gmp`` turns them into vertices, which are compared
with the float polygon's corners. cdd is given the half-planes that can bound the region (near
the float polygon) and then every one an exact vertex violates (``_exact_vertices``): the answer
is that of all of them, at a fraction of the cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple

import numpy as np

from ._errors import MissingDependencyError, VerificationError
from ._html import dataclass_html

if TYPE_CHECKING:  # pragma: no cover
    from ._partition import Partition

__all__ = ["CertifyReport", "certify"]


@dataclass
class CertifyReport:
    """What :meth:`Partition.certify` measured, in exact rational arithmetic."""

    regions: int
    max_deviation: float  # largest distance between a float vertex and the exact polygon's vertices
    vertex_mismatches: int  # regions whose exact corner count differs from the float one
    empty_regions: int  # regions whose exact H-representation has no interior
    ok: bool

    def _repr_html_(self) -> str:
        return dataclass_html(self)


def certify(p: "Partition", *, regions: Optional[Sequence[int]] = None,
            raise_on_error: bool = True) -> CertifyReport:
    """Recompute each region's vertices in exact rational arithmetic with pycddlib.

    The H-representation of a region (box sides plus one half-plane per hidden neuron, from
    the exact rational composition of the float64 weights under the region's pattern) is
    turned into vertices by ``cdd.gmp``. A partition made with ``exact=True`` is compared
    exactly: each region's exact polygon (:meth:`Partition.exact_polygon`) must have those
    vertices as its corners, sub-resolution slivers included; otherwise the float polygon's
    corners are compared with them as float64 resolves them. ``max_deviation`` is the largest
    distance from an exact corner to the float polygon.
    Needs the ``certify`` extra (``pip install splinescope[certify]``). Costs grow with the
    network: meant for small networks or a subset of ``regions``.
    """
    try:
        import cdd
        import cdd.gmp  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "certify() needs pycddlib >= 3 (pip install 'splinescope[certify]'; on Linux it builds "
            "against libcdd-dev and libgmp-dev)") from e
    sel = range(len(p)) if regions is None else [int(i) for i in regions]
    bits = p.pattern_bits()
    rows_of = _rows_dense if p.network.dense else _rows_graph(p)
    x0, x1, y0, y1 = (Fraction(v) for v in p.bounds)
    box = [[-x0, 1, 0], [x1, -1, 0], [-y0, 0, 1], [y1, 0, -1]]
    cache: Dict = {}  # maps shared by a pattern prefix
    worst = 0.0
    mismatch = empty = 0
    count = 0
    for i in sel:
        count += 1
        poly = p.polygon(i)
        verts = _exact_vertices([list(r) for r in box], _distinct(rows_of(p, bits[i], cache)), poly)
        if p._exact is not None:  # the partition's exact polygon: compared exactly, slivers too
            if len(verts) < 3 or _exact_area(verts) <= 0:
                empty += 1
                continue
            if set(verts) != set(_exact_corners(p.exact_polygon(i))):
                mismatch += 1
            exact = np.array([[float(a), float(b)] for a, b in verts])
            d1 = np.sqrt(((exact[:, None, :] - poly[None, :, :]) ** 2).sum(-1)).min(1).max()
            worst = max(worst, float(d1))
            continue
        exact = np.unique(np.array([[float(a), float(b)] for a, b in verts], dtype=np.float64), axis=0) \
            if verts else np.zeros((0, 2))  # as float64 resolves them
        if len(exact) < 3 or _area(exact) <= 0:
            empty += 1
            continue
        corners = _corners(poly)
        if len(corners) != len(exact):
            mismatch += 1
        d1 = np.sqrt(((exact[:, None, :] - poly[None, :, :]) ** 2).sum(-1)).min(1).max()
        d2 = np.sqrt(((corners[:, None, :] - exact[None, :, :]) ** 2).sum(-1)).min(1).max()
        worst = max(worst, float(d1), float(d2))
    scale = max(abs(v) for v in p.bounds)
    ok = empty == 0 and mismatch == 0 and worst <= 1e-9 * max(scale, 1.0)
    rep = CertifyReport(count, worst, mismatch, empty, bool(ok))
    if raise_on_error and not ok:
        raise VerificationError(f"partition failed certification: {rep}")
    return rep


def _rows_dense(p: "Partition", bits: np.ndarray, cache: Dict) -> list:
    """The half-planes ``[c, g1, g2]`` (``c + g1 s + g2 t >= 0``) of one pattern's hidden neurons,
    in exact integers, composing the dense layers under the pattern."""
    from fractions import Fraction

    if "layers" not in cache:
        cache["layers"] = [(*_dyadic(l.W), *_dyadic(l.b), l.slope) for l in p.network.layers]
    rows: list = []
    # exact integer maps [c, g1, g2] of the current layer's inputs, over a denominator 2**D
    M = np.array([[0, 1, 0], [0, 0, 1]], dtype=object)
    D = 0
    col = 0
    for li, (Wi, Ew, bi, Eb, slope) in enumerate(cache["layers"]):
        key = (li, np.packbits(bits[:col]).tobytes())
        if key not in cache:
            Dz = max(Ew + D, Eb)
            Z = Wi.dot(M) * (1 << (Dz - Ew - D))
            Z[:, 0] += bi * (1 << (Dz - Eb))
            cache[key] = (Z, Dz)
        Z, Dz = cache[key]
        if slope is None:
            break
        n = len(Z)
        act = bits[col: col + n]
        rows.extend(np.where(act[:, None], Z, -Z).tolist())  # z >= 0 where active, <= 0 where not
        sl = Fraction(float(slope))
        Es = sl.denominator.bit_length() - 1
        M = np.where(act[:, None], Z * (1 << Es), Z * sl.numerator)
        D = Dz + Es
        col += n
    return rows


def _rows_graph(p: "Partition"):
    """``_rows_dense`` for networks of operation layers (convolutions, skips, multi-piece
    activations, max-pooling): each stage's units under the pattern prefix, composed exactly by
    ``_predicates.ExactNet`` (its maps are in coordinates local to the slice's center).

    A max-pooling comparison is not a side of the merged region (its opponent is a running
    maximum); the window's argmax against each of its rivals is (``_maxpool.duels``)."""
    from fractions import Fraction
    from math import lcm

    from . import _maxpool, _predicates

    net = p.network
    center = np.asarray(p._center, np.float64)
    ex = _predicates.ExactNet(net.layers, center, p.bounds)
    cx, cy = (Fraction(float(c)) for c in center)
    sizes = list(p.layer_sizes)
    first = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    tour = np.zeros(int(first[-1]), bool)  # the comparisons of the tournaments
    for t in _maxpool._tours(net, sizes):
        for col in t.cols:
            tour[col] = True

    D = lcm(cx.denominator, cy.denominator)
    kx, ky = cx.numerator * (D // cx.denominator), cy.numerator * (D // cy.denominator)

    def rows(bits: np.ndarray, cols: np.ndarray, sign: np.ndarray) -> list:
        """Integer rows ``sign * [c', a, b]`` (a positive multiple of ``c' + a s + b t``, global
        coordinates) of the units at pattern columns ``cols`` under ``bits``."""
        out: list = []
        li = np.searchsorted(first, cols, side="right") - 1
        for l in np.unique(li):
            at = li == l
            num = ex._map(int(l), bits[:first[l]].astype(np.uint8).tobytes()).num[cols[at] - first[l]]
            a, b, c = num[:, 0], num[:, 1], num[:, 2]
            r = np.stack([c * D - a * kx - b * ky, a * D, b * D], 1)  # s' = s - cx, times D
            out.extend(np.where(sign[at, None] > 0, r, -r).tolist())
        return out

    plain = np.nonzero(~tour)[0]

    def rows_of(p_, bits: np.ndarray, cache: Dict) -> list:
        out = rows(bits, plain, np.where(bits[plain], 1, -1))  # z >= 0 where active, <= 0 where not
        for b2, cols, sign in _maxpool.duels(bits, net, sizes):
            out.extend(rows(b2, cols, sign))
        return out
    return rows_of


TIGHT = 1e-6
"""A half-plane goes to cdd at once when its line passes within this fraction of the box's size of
a corner of the float polygon; the others join only if an exact vertex violates them."""


def _cdd_vertices(rows: list) -> list:
    """The exact vertices (Fractions) of the bounded polygon ``b + a1 s + a2 t >= 0`` over ``rows``."""
    import cdd
    import cdd.gmp

    mat = cdd.gmp.matrix_from_array(rows, rep_type=cdd.RepType.INEQUALITY)  # type: ignore[arg-type]
    gen = cdd.gmp.copy_generators(cdd.gmp.polyhedron_from_matrix(mat)).array
    return [(Fraction(g[1]), Fraction(g[2])) for g in gen if g[0] == 1]


def _exact_vertices(box: list, rows: list, poly: np.ndarray) -> list:
    """The exact vertices of the region ``box`` and ``rows`` (half-planes ``b + a1 s + a2 t >= 0``),
    with cdd on the few half-planes that can bound it: those whose line passes near a corner of the
    float polygon ``poly`` (:data:`TIGHT`), then every half-plane an exact vertex violates, until
    none does. Exact whatever ``poly`` is: the polygon of a subset of the half-planes contains the
    region, and when all its vertices satisfy every half-plane it is inside the region (convex), so
    it is the region (2,300 half-planes of a digits-CNN region: cdd on all of them took 0.13 s)."""
    if not rows:
        return _cdd_vertices(box)
    R = np.array(rows, dtype=object)
    if len(poly):
        big = np.array([max(abs(int(v)) for v in r[1:]) or 1 for r in rows], dtype=object)
        unit = np.array([[float(Fraction(int(v), int(m))) for v in r] for r, m in zip(rows, big)])  # |a|_inf = 1
        span = float(np.ptp(poly, axis=0).max()) or 1.0
        near = (unit[:, :1] + unit[:, 1:] @ poly.T).min(1) <= TIGHT * span * 2
    else:
        near = np.ones(len(rows), bool)
    use = np.nonzero(near)[0].tolist()
    while True:
        verts = _cdd_vertices(box + [rows[k] for k in use])
        bad: set = set()
        for x, y in verts:  # b q + a1 p + a2 r >= 0 for the vertex (p / q, r / q), in integers
            q = x.denominator * y.denominator // gcd(x.denominator, y.denominator)
            p_, r_ = x.numerator * (q // x.denominator), y.numerator * (q // y.denominator)
            v = R[:, 0] * q + R[:, 1] * p_ + R[:, 2] * r_
            bad.update(np.nonzero(v < 0)[0].tolist())
        if not bad:
            return verts
        use = sorted(set(use) | bad)


def _distinct(rows: list) -> list:
    """The half-planes once each: integer rows divided by their gcd, duplicates and ``0 >= 0`` dropped."""
    from math import gcd

    seen: Dict[tuple, None] = {}
    for r in rows:
        g = gcd(*(int(v) for v in r))
        if g:
            seen.setdefault(tuple(int(v) // g for v in r), None)
    return [list(r) for r in seen]


def _dyadic(a: np.ndarray) -> Tuple[np.ndarray, int]:
    """``a == ints / 2**E`` exactly (float64 values are dyadic rationals): Python ints and E."""
    from ._rational import Q

    q = Q.of(np.asarray(a, np.float64))
    return q.num, q.den.bit_length() - 1  # den is a power of two


def _area(poly: np.ndarray) -> float:
    c = np.mean(poly, 0)
    ang = np.arctan2(poly[:, 1] - c[1], poly[:, 0] - c[0])
    p = poly[np.argsort(ang)]
    q = np.roll(p, -1, 0)
    return 0.5 * float((p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum())


def _exact_area(verts) -> "Fraction":
    """The exact area of the convex polygon of exact vertices given in any order, a Fraction."""
    import math
    from fractions import Fraction
    cx = sum((a for a, _ in verts), Fraction(0)) / len(verts)
    cy = sum((b for _, b in verts), Fraction(0)) / len(verts)
    order = sorted(verts, key=lambda v: math.atan2(float(v[1] - cy), float(v[0] - cx)))
    return sum((a * d - b * c for (a, b), (c, d) in zip(order, order[1:] + order[:1])), Fraction(0)) / 2


def _exact_corners(poly) -> list:
    """The strictly convex corners of an exact counter-clockwise polygon (``(Fraction, Fraction)``
    vertices): repeated and collinear vertices dropped, exactly."""
    pts = [v for k, v in enumerate(poly) if v != poly[k - 1]]
    n = len(pts)
    out = []
    for k in range(n):
        (ax, ay), (bx, by), (cx, cy) = pts[k - 1], pts[k], pts[(k + 1) % n]
        if (bx - ax) * (cy - by) - (by - ay) * (cx - bx) != 0:
            out.append(pts[k])
    return out


def _corners(poly: np.ndarray) -> np.ndarray:
    """The strictly convex corners of a polygon: drops repeated vertices (an exact edge shorter
    than float64 resolves is two vertices with one float image) and collinear ones."""
    poly = poly[np.any(poly != np.roll(poly, 1, 0), axis=1)]
    prev, nxt = np.roll(poly, 1, 0), np.roll(poly, -1, 0)
    turn = (poly[:, 0] - prev[:, 0]) * (nxt[:, 1] - poly[:, 1]) - (poly[:, 1] - prev[:, 1]) * (nxt[:, 0] - poly[:, 0])
    size = np.abs(poly - prev).sum(1) * np.abs(nxt - poly).sum(1)
    return poly[turn > 1e-10 * size]
