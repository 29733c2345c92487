"""``Partition.verify``: check a partition against its network in float64, exact where float64 is in doubt.

A fresh forward pass of every vertex and centroid is compared with the regions' patterns (within
the forward rounding bound of a dot product, ``_abs_scales``); areas must tile the slice, patterns
be distinct, polygons convex and counter-clockwise, interior edges shared by exactly two regions.
Regions too thin for float64 to judge are judged on their exact polygons (the helpers at the end,
shared with :meth:`Partition.areas` and :meth:`Partition.centroids`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List

import numpy as np

from . import _engine, _maxpool
from ._html import dataclass_html
from ._errors import VerificationError

if TYPE_CHECKING:  # pragma: no cover
    from fractions import Fraction

    from ._partition import Partition

__all__ = ["VerifyReport", "verify"]


@dataclass
class VerifyReport:
    """What :meth:`Partition.verify` measured."""

    regions: int
    max_sign_violation: float  # largest |z| of a vertex on the wrong side of a region's pattern, relative
    area_error: float  # |sum(areas) - box area| / box area
    min_area: float  # smallest region area
    duplicate_patterns: int
    centroid_mismatches: int  # regions whose centroid's forward pass gives another pattern
    nonconvex: int  # regions whose polygon is not strictly convex-or-collinear, counter-clockwise
    unmatched_edges: int  # interior edges not shared, reversed, by exactly one other region
    ok: bool

    def _repr_html_(self) -> str:
        return dataclass_html(self)


CHUNK_ELEMENTS = 1 << 18
"""Values per array of one chunk of points' forward pass (2 MB): the chunk's rows are this over
the widest layer, so memory stays bounded whatever the width (16,384 corners of a 3x32x32 conv
net's 16,384-unit layers would be 2 GB per array: the residual net of ``benchmarks/bench_cnn.py``
ran out of 23 GB that way; the digits CNN's 18,301 regions took 14 s and 6 GB, now 1.8 s and
0.6 GB)."""


def _rows_per_chunk(net) -> int:
    """Points per chunk of the forward passes of :func:`verify` (:data:`CHUNK_ELEMENTS`)."""
    return max(16, CHUNK_ELEMENTS // max(max(l.width for l in net.layers), 1))


def _duplicates(patterns: np.ndarray) -> int:
    """How many rows of ``patterns`` (R, bytes) equal an earlier row: the rows sorted as byte
    strings (about 20x ``np.unique(axis=0)``: digits CNN, 18,301 patterns of 288 bytes, 0.3 s).

    >>> _duplicates(np.array([[1, 2], [0, 5], [1, 2], [1, 2]], np.uint8))
    2
    """
    R, nb = patterns.shape
    if nb == 0:  # every pattern is the empty one
        return max(R - 1, 0)
    rows = np.sort(np.ascontiguousarray(patterns).view(np.dtype((np.void, nb))).ravel())
    return int((rows[1:] == rows[:-1]).sum())


def _abs_scales(hidden, pts, box_scale):
    """Per layer, (pre-activations, S): S bounds the size of the terms that made each value, so
    the rounding of z is below ~n eps S (the forward error bound of a dot product)."""
    S = np.abs(pts) + box_scale
    h = pts
    for layer in hidden:
        z = layer.rows(h)
        S = layer.bound(S)
        yield z[:, :layer.units], S[:, :layer.units]
        h = layer.activate(z)
        S = np.array(S, copy=True)
        S[:, :layer.units] *= max(1.0, float(np.abs(layer.slopes()).max(initial=0.0)))


def _sign_violation(hidden, pts, box_scale, at, bits, rel) -> float:
    """Largest relative amount by which a point's pre-activation is on the wrong side of ``bits``
    (where ``rel``: the bits the function depends on); row ``i`` of ``bits`` and ``rel`` (per layer,
    packed: :func:`_packed_layers`) is judged at the point ``pts[at[i]]`` (one forward pass per point,
    however many regions meet there). Each point's signs are packed once; a corner's wrong sides are
    the bytes where they differ from its region's relevant bits, and only those values are read."""
    worst = 0.0
    for (z, S), b, r in zip(_abs_scales(hidden, pts, box_scale), bits, rel):
        zn = z / (S + 1e-300)
        neg, pos = np.packbits(zn < 0, axis=1)[at], np.packbits(zn > 0, axis=1)[at]
        wrong = r & ((b & neg) | (~b & pos))  # (corners, bytes): a value on the side its bit excludes
        rows, cols = np.nonzero(wrong)
        if 8 * len(rows) > wrong.size:  # wrong almost everywhere (a broken partition): every corner's values
            hit = np.unpackbits(wrong, axis=1, count=zn.shape[1]).astype(bool)
            worst = max(worst, float(np.abs(zn[at]).max(initial=0.0, where=hit)))
        elif len(rows):
            unit = cols[:, None] * 8 + np.arange(8)  # the bits of each wrong byte, big-endian as packbits
            hit = np.unpackbits(wrong[rows, cols][:, None], axis=1).astype(bool)
            vals = np.abs(zn[np.repeat(at[rows], 8).reshape(-1, 8)[hit], unit[hit]])
            worst = max(worst, float(vals.max(initial=0.0)))
    return worst


def _packed_layers(bits: np.ndarray, hidden) -> List[np.ndarray]:
    """``bits`` (R, all units) as one packed (R, bytes) array per layer."""
    edges = np.concatenate([[0], np.cumsum([layer.units for layer in hidden])])
    return [np.packbits(bits[:, a: b], axis=1) for a, b in zip(edges[:-1], edges[1:])]


def verify(p: "Partition", *, raise_on_error: bool = True) -> VerifyReport:
    """Check the partition against its network, in float64.

    Every vertex's pre-activations (a fresh forward pass of its coordinates) agree, within
    the rounding tolerance, with the patterns of the regions around it; each region's
    centroid has exactly the region's pattern; the areas tile the slice; the patterns are
    distinct; polygons are counter-clockwise and convex.
    """
    R = len(p)
    bits = p.pattern_bits()
    hidden = [l for l in p.network.layers if l.slope is not None]
    x0, x1, y0, y1 = p.bounds
    # coordinates are made by interpolation across the box: uncertain by eps times its size
    box_scale = np.array([max(abs(x0), abs(x1), x1 - x0), max(abs(y0), abs(y1), y1 - y0)])
    region_of_slot = np.repeat(np.arange(R), np.diff(p.offsets))
    # a max-pooling comparison between two losers splits nothing: its sign is free in the region
    rel = _maxpool.relevant(bits, p.network, p.layer_sizes)
    step = _rows_per_chunk(p.network)
    bits_l, rel_l = _packed_layers(bits, hidden), _packed_layers(rel, hidden)
    worst = 0.0
    # every region corner, judged in chunks of vertices (bounded memory): a vertex's forward pass
    # is made once for the (about three) regions that meet there
    slots = np.argsort(p.indices, kind="stable")
    sv = p.indices[slots]
    vstep = max(1, step // 4)
    for v0 in range(0, len(p.vertices), vstep):
        a, b = np.searchsorted(sv, [v0, v0 + vstep])
        if a < b:
            g = region_of_slot[slots[a: b]]
            worst = max(worst, _sign_violation(hidden, p.vertices[v0: v0 + vstep], box_scale, sv[a: b] - v0,
                                               [x[g] for x in bits_l], [x[g] for x in rel_l]))
    areas = p.areas()
    box = (x1 - x0) * (y1 - y0)
    area_err = abs(areas.sum() - box) / box
    dup = _duplicates(p.patterns)
    # the centroid of every region has that region's pattern (a neuron that is identically
    # zero on a region counts as inactive; at the centroid it may round to either side)
    c = p.centroids()
    mism_rows = np.zeros(R, bool)
    for s0 in range(0, R, step):
        col = 0
        sl = slice(s0, s0 + step)
        for layer, (z, S) in zip(hidden, _abs_scales(hidden, c[sl], box_scale)):
            tol = 1e3 * p.rtol * S
            b = bits[sl, col: col + layer.units]
            wrong = (b & (z < tol)) | (~b & (z > tol))
            mism_rows[sl] |= (wrong & rel[sl, col: col + layer.units]).any(axis=1)
            col += layer.units
    # a thin region's centroid is closer to its sides than float64 can tell: decide it exactly
    suspect = np.nonzero(mism_rows)[0]
    mism_rows[suspect] = ~_exact_check(p, suspect, bits)
    mism = int(mism_rows.sum())
    # convexity: every turn is left or straight
    P = p.vertices[p.indices]
    nx = _engine.next_in_face(p.offsets)
    Q = P[nx]
    S = P[nx[nx]]
    turn = (Q[:, 0] - P[:, 0]) * (S[:, 1] - Q[:, 1]) - (Q[:, 1] - P[:, 1]) * (S[:, 0] - Q[:, 0])
    size = np.abs(Q - P).sum(1) * np.abs(S - Q).sum(1) + 1e-300
    bad_turn = turn < -1e-9 * size
    bad = np.logical_or.reduceat(bad_turn, p.offsets[:-1]) if R else np.zeros(0, bool)
    # float64 polygons too thin to judge (or with a side too short to judge a turn by):
    # judged exactly
    suspect = np.nonzero(bad | p.subresolution)[0]
    bad[suspect] = ~_exact_check(p, suspect, bits)
    nonconvex = int(bad.sum())
    unmatched = _unmatched_edges(p)
    ok = (worst <= 1e3 * p.rtol and area_err <= 1e-9 and dup == 0 and mism == 0 and nonconvex == 0
          and unmatched == 0 and (areas > 0).all())
    # (sub-resolution regions have their exact areas, positive when the region is real)
    rep = VerifyReport(R, worst, float(area_err), float(areas.min(initial=np.inf)), int(dup), mism,
                       nonconvex, unmatched, bool(ok))
    if raise_on_error and not ok:
        raise VerificationError(f"partition failed verification: {rep}")
    return rep

def _exact_check(p: "Partition", regions: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """(len(regions),) bool: the exact polygon is convex, counter-clockwise, of positive area,
    and its exact centroid has the region's pattern (False where no exact form is kept)."""
    ok = np.zeros(len(regions), bool)
    if p._exact is None:
        return ok
    for n, i in enumerate(regions):
        poly = _exact_distinct(p.exact_polygon(int(i), local=True))
        if len(poly) < 3 or _exact_area(poly) <= 0 or not _exact_convex(poly):
            continue
        exact = _maxpool.canonical(p._exact.pattern(_exact_centroid(poly))[None], p.network, p.layer_sizes)[0]
        ok[n] = bool((exact == bits[i]).all())
    return ok


def _unmatched_edges(p: "Partition") -> int:
    """Directed edges (u, v) with no (v, u), other than on the box's sides: a planar subdivision
    whose regions share their vertices has none (a T-junction or a doubled vertex makes some)."""
    a = p.indices
    b = p.indices[_engine.next_in_face(p.offsets)]
    V = len(p.vertices)
    fwd = np.sort(a * V + b)
    rev = b * V + a
    pos = np.minimum(np.searchsorted(fwd, rev), len(fwd) - 1)
    lonely = fwd[pos] != rev
    # edges on the box's sides have no twin
    x0, x1, y0, y1 = p.bounds
    P, Q = p.vertices[a[lonely]], p.vertices[b[lonely]]
    tol = 1e-12 * max(x1 - x0, y1 - y0)
    on_side = ((np.abs(P[:, 0] - x0) <= tol) & (np.abs(Q[:, 0] - x0) <= tol)) | \
              ((np.abs(P[:, 0] - x1) <= tol) & (np.abs(Q[:, 0] - x1) <= tol)) | \
              ((np.abs(P[:, 1] - y0) <= tol) & (np.abs(Q[:, 1] - y0) <= tol)) | \
              ((np.abs(P[:, 1] - y1) <= tol) & (np.abs(Q[:, 1] - y1) <= tol))
    return int((~on_side).sum())


def _exact_distinct(poly):
    """Drop consecutive repeats of an exact polygon's vertices."""
    out = [P for k, P in enumerate(poly) if P != poly[k - 1]]
    return out if out else poly[:1]


def _exact_convex(poly) -> bool:
    n = len(poly)
    for k in range(n):
        (ax, ay), (bx, by), (cx, cy) = poly[k - 1], poly[k], poly[(k + 1) % n]
        if (bx - ax) * (cy - by) - (by - ay) * (cx - bx) < 0:
            return False
    return True


def _exact_centroid(poly):
    """Area centroid of a polygon of exact points (its vertex mean if it has no area)."""
    n = len(poly)
    a = cx = cy = 0
    for k in range(n):
        (x0, y0), (x1, y1) = poly[k], poly[(k + 1) % n]
        c = x0 * y1 - x1 * y0
        a += c
        cx += (x0 + x1) * c
        cy += (y0 + y1) * c
    if a == 0:
        return sum(p[0] for p in poly) / n, sum(p[1] for p in poly) / n
    return cx / (3 * a), cy / (3 * a)


def _exact_area(poly) -> "Fraction":
    """Shoelace area of a polygon of exact points."""
    n = len(poly)
    return sum(poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1] for i in range(n)) / 2
