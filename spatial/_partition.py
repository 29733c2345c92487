"""``partition(model, bounds=, plane=)``: every linear region of a network on a 2-D slice.

The result, :class:`Partition`, is arrays, not objects per region (see the package docstring
for the conventions). Conversions (shapely, GeoJSON, per-region views) are thin layers on top.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from . import _engine, _predicates
from ._errors import MissingDependencyError, VerificationError
from ._net import Network, parse
from ._plane import Plane

__all__ = ["Partition", "partition", "VerifyReport", "CertifyReport"]


def _check_bounds(bounds) -> Tuple[float, float, float, float]:
    try:
        b = tuple(float(x) for x in bounds)
    except (TypeError, ValueError):
        raise TypeError(f"bounds must be 4 numbers (xmin, xmax, ymin, ymax), got {bounds!r}") from None
    if len(b) != 4:
        raise ValueError(f"bounds must be 4 numbers (xmin, xmax, ymin, ymax), got {len(b)}")
    if not all(np.isfinite(b)):
        raise ValueError(f"bounds must be finite, got {b}")
    if not (b[0] < b[1] and b[2] < b[3]):
        raise ValueError(f"bounds must satisfy xmin < xmax and ymin < ymax, got {b}")
    return b  # type: ignore[return-value]


def _layer_tol(layer, rtol: float) -> Tuple[np.ndarray, np.ndarray]:
    """Per-neuron tolerance coefficients: tol(v, k) = |a(v)|_1 * ca[k] + cb[k]."""
    return rtol * np.abs(layer.weight).max(axis=1), rtol * np.abs(layer.bias)


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


@dataclass
class CertifyReport:
    """What :meth:`Partition.certify` measured, in exact rational arithmetic."""

    regions: int
    max_deviation: float  # largest distance between a float vertex and the exact polygon's vertices
    vertex_mismatches: int  # regions whose exact corner count differs from the float one
    empty_regions: int  # regions whose exact H-representation has no interior
    ok: bool


def _engine_layer_local(layer, center: np.ndarray):
    """The first layer in coordinates local to the slice: ``W (center + x) + b``."""
    from ._net import Layer

    if not center.any():
        return layer
    return Layer(layer.weight, layer.bias + layer.weight @ center, layer.slope, layer.names)


def _abs_scales(hidden, pts, box_scale):
    """Per layer, (pre-activations, S): S bounds the size of the terms that made each value, so
    the rounding of z is below ~n eps S (the forward error bound of a dot product)."""
    S = np.abs(pts) + box_scale
    h = pts
    for layer in hidden:
        z = h @ layer.weight.T + layer.bias
        S = S @ np.abs(layer.weight).T + np.abs(layer.bias)
        yield z, S
        h = layer.activate(z)
        S = S * max(1.0, abs(layer.slope))


def _sign_violation(hidden, pts, box_scale, bits) -> float:
    """Largest relative amount by which a point's pre-activation is on the wrong side of ``bits``."""
    worst, col = 0.0, 0
    for layer, (z, S) in zip(hidden, _abs_scales(hidden, pts, box_scale)):
        b = bits[:, col: col + layer.width]
        zi = z / (S + 1e-300)
        wrong = np.where(b, np.maximum(-zi, 0), np.maximum(zi, 0))
        worst = max(worst, float(wrong.max(initial=0.0)))
        col += layer.width
    return worst


class Partition:
    """The linear regions of a network on a 2-D slice, with its decision boundary.

    Attributes
    ----------
    bounds : (xmin, xmax, ymin, ymax) of the slice, in slice coordinates.
    plane : the :class:`Plane` of the slice, or None for a 2-input network.
    vertices : (V, 2) float64 vertex coordinates, shared by the regions that meet there.
    offsets, indices : CSR lists of regions: region i is ``vertices[indices[offsets[i]:offsets[i+1]]]``,
        counter-clockwise (collinear vertices where a neighbour's edge ends are kept).
    patterns : (R, ceil(N/8)) uint8, the activation pattern of each region (bit set: neuron
        active, z > 0), ``np.packbits`` order over all N hidden neurons, layer by layer.
    layer_sizes : the number of neurons of each hidden layer.
    vertex_values : (V, K) float64, the network's output at each vertex.
    boundary : (S, 2, 2) float64 segments of the exact decision boundary: the zero set of the
        output for K = 1, where the top class changes for K > 1.
    """

    def __init__(self, *, vertices, offsets, indices, patterns, layer_sizes, vertex_values, boundary,
                 bounds, plane, network: Network, rtol: float, local=None, vertex_lines=None, exact_net=None):
        self.vertices = vertices
        self.offsets = offsets
        self.indices = indices
        self.patterns = patterns
        self.layer_sizes = tuple(layer_sizes)
        self.vertex_values = vertex_values
        self.boundary = boundary
        self.bounds = bounds
        self.plane = plane
        self.network = network  # the network restricted to the slice (2 inputs)
        self.rtol = rtol
        self._affine = None
        # coordinates local to the slice (vertices = local + center) for areas and centroids
        self._local, self._center = local if local is not None else (vertices, np.zeros(2))
        self.vertex_lines = vertex_lines  # (V, 2) the two lines each vertex lies on (exact mode)
        self._exact = exact_net
        self._areas = None

    # ---- views
    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __repr__(self) -> str:
        return (f"Partition({len(self)} regions, {len(self.vertices)} vertices, "
                f"{len(self.boundary)} boundary segments, layers={list(self.layer_sizes)}, bounds={self.bounds})")

    @property
    def n_outputs(self) -> int:
        return self.vertex_values.shape[1]

    def polygon(self, i: int) -> np.ndarray:
        """The (d, 2) counter-clockwise vertices of region i."""
        return self.vertices[self.indices[self.offsets[i]: self.offsets[i + 1]]]

    def polygons(self) -> List[np.ndarray]:
        """Every region's (d_i, 2) polygon."""
        return np.split(self.vertices[self.indices], self.offsets[1:-1])

    def areas(self) -> np.ndarray:
        """(R,) region areas (shoelace), summing to the area of the slice.

        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ReLU(), torch.nn.Linear(1, 1))
        >>> with torch.no_grad(): _ = net[0].weight.copy_(torch.tensor([[1.0, 0.0]])); _ = net[0].bias.zero_()
        >>> partition(net, bounds=(-1, 1, -1, 1)).areas().tolist()
        [2.0, 2.0]
        """
        if self._areas is None:
            a = self._float_areas()
            sub = self.subresolution
            for i in np.nonzero(sub)[0]:  # too thin for float64 coordinates: the exact area
                a[i] = float(_exact_area(self.exact_polygon(i, local=True)))
            self._areas = a
        return self._areas.copy()

    def _float_areas(self) -> np.ndarray:
        """Shoelace areas in local coordinates, relative to each region's first vertex."""
        if not len(self):
            return np.zeros(0)
        P = self._local[self.indices]
        Q = self._local[self.indices[_engine.next_in_face(self.offsets)]]
        first = np.repeat(self._local[self.indices[self.offsets[:-1]]], np.diff(self.offsets), axis=0)
        P, Q = P - first, Q - first
        cross = P[:, 0] * Q[:, 1] - P[:, 1] * Q[:, 0]
        return 0.5 * np.add.reduceat(cross, self.offsets[:-1])

    @property
    def subresolution(self) -> np.ndarray:
        """(R,) bool: regions too thin for their float64 polygon to be trusted.

        Exact arithmetic keeps every region, however thin (a sliver of area 1e-30 made by a
        slope of 0.1, which is not 1/10 in binary); where a region's float64 area is within the
        rounding of its coordinates (``64 eps * box size * perimeter``) its polygon may be
        degenerate in float64. Such regions are still counted, with their patterns;
        :meth:`areas` gives their exact area and :meth:`exact_polygon` their exact vertices.
        """
        if not hasattr(self, "_sub"):
            if self._exact is None or not len(self):
                self._sub = np.zeros(len(self), bool)
            else:
                P = self._local[self.indices]
                Q = self._local[self.indices[_engine.next_in_face(self.offsets)]]
                per = np.add.reduceat(np.abs(Q - P).sum(1), self.offsets[:-1])
                x0, x1, y0, y1 = self.bounds
                self._sub = self._float_areas() <= 64 * _engine.EPS * max(x1 - x0, y1 - y0) * per
        return self._sub

    def exact_polygon(self, i: int, *, local: bool = False):
        """The exact vertices of region i (a list of ``(Fraction, Fraction)``), counter-clockwise.

        Each vertex is the exact intersection of the two lines it was made on (a box side, or a
        neuron's zero line on the face where it was made), from the float64 weights' exact values.
        Needs a partition made with ``exact=True``.
        """
        if self._exact is None:
            raise ValueError("exact_polygon needs a partition made with exact=True")
        pts = self._exact.polygon(self.vertex_lines[self.indices[self.offsets[i]: self.offsets[i + 1]]])
        if local:
            return pts
        from fractions import Fraction
        cx, cy = (Fraction(float(c)) for c in self._center)
        return [(s + cx, t + cy) for s, t in pts]

    def centroids(self) -> np.ndarray:
        """(R, 2) area centroids of the regions."""
        P = self._local[self.indices]
        Q = self._local[self.indices[_engine.next_in_face(self.offsets)]]
        # relative to each region's first vertex, for accuracy on small regions far from 0
        first = np.repeat(self._local[self.indices[self.offsets[:-1]]], np.diff(self.offsets), axis=0)
        P, Q = P - first, Q - first
        cross = P[:, 0] * Q[:, 1] - P[:, 1] * Q[:, 0]
        a = np.add.reduceat(cross, self.offsets[:-1])
        cx = np.add.reduceat((P[:, 0] + Q[:, 0]) * cross, self.offsets[:-1])
        cy = np.add.reduceat((P[:, 1] + Q[:, 1]) * cross, self.offsets[:-1])
        sub = self.subresolution
        a[sub] = 1.0  # their centroids come from the exact polygons
        c = np.stack([cx, cy], 1) / (3 * a[:, None]) + self._local[self.indices[self.offsets[:-1]]]
        for i in np.nonzero(sub)[0]:
            c[i] = [float(x) for x in _exact_centroid(self.exact_polygon(i, local=True))]
        return c + self._center

    def region_keys(self) -> np.ndarray:
        """(R,) uint64 hash of each region's activation pattern: stable across checkpoints."""
        h = np.full(len(self), np.uint64(1469598103934665603))
        prime = np.uint64(1099511628211)
        with np.errstate(over="ignore"):
            for byte in self.patterns.T:
                h = (h ^ byte.astype(np.uint64)) * prime
        return h

    def pattern_bits(self) -> np.ndarray:
        """(R, N) bool activation patterns, unpacked."""
        return np.unpackbits(self.patterns, axis=1, count=sum(self.layer_sizes)).astype(bool)

    def edges(self) -> np.ndarray:
        """(Ed, 2) unique undirected edges as vertex-index pairs."""
        a = self.indices
        b = self.indices[_engine.next_in_face(self.offsets)]
        e = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1), axis=0)
        return e

    def affine_maps(self) -> np.ndarray:
        """(R, K, 3) the network's output on each region: ``out_k = A[k, 0] s + A[k, 1] t + A[k, 2]``.

        Composed exactly from each region's pattern (float64), computed once and cached.
        """
        if self._affine is None:
            self._affine = _compose(self.network, self.pattern_bits(), self.layer_sizes)
        return self._affine

    def locate(self, points) -> np.ndarray:
        """(N,) index of the region holding each (s, t) point (by its activation pattern), -1 outside."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        zs = self.network.forward(pts)[:-1]
        bits = np.packbits(np.concatenate([z > 0 for z in zs], axis=1), axis=1) if zs else np.zeros((len(pts), 0), np.uint8)
        table = {row.tobytes(): i for i, row in enumerate(self.patterns)}
        out = np.array([table.get(row.tobytes(), -1) for row in bits], dtype=np.int64)
        x0, x1, y0, y1 = self.bounds
        inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
        out[~inside] = -1
        return out

    # ---- conversions
    def to_shapely(self):
        """A numpy array of shapely Polygons, one per region."""
        import shapely

        ring = np.repeat(np.arange(len(self)), np.diff(self.offsets))
        return shapely.polygons(shapely.linearrings(self.vertices[self.indices], indices=ring))

    def to_geojson(self) -> Dict[str, Any]:
        """A GeoJSON FeatureCollection: one Polygon feature per region (with its index, area and
        pattern as hex) and one MultiLineString feature for the decision boundary."""
        areas = self.areas()
        feats = []
        for i, poly in enumerate(self.polygons()):
            ring = np.vstack([poly, poly[:1]]).tolist()
            feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                          "properties": {"region": i, "area": float(areas[i]),
                                         "pattern": self.patterns[i].tobytes().hex()}})
        feats.append({"type": "Feature",
                      "geometry": {"type": "MultiLineString", "coordinates": self.boundary.tolist()},
                      "properties": {"kind": "decision_boundary"}})
        return {"type": "FeatureCollection", "features": feats}

    # ---- checks
    def verify(self, *, raise_on_error: bool = True) -> VerifyReport:
        """Check the partition against its network, in float64.

        Every vertex's pre-activations (a fresh forward pass of its coordinates) agree, within
        the rounding tolerance, with the patterns of the regions around it; each region's
        centroid has exactly the region's pattern; the areas tile the slice; the patterns are
        distinct; polygons are counter-clockwise and convex.
        """
        R = len(self)
        bits = self.pattern_bits()
        hidden = [l for l in self.network.layers if l.slope is not None]
        x0, x1, y0, y1 = self.bounds
        # coordinates are made by interpolation across the box: uncertain by eps times its size
        box_scale = np.array([max(abs(x0), abs(x1), x1 - x0), max(abs(y0), abs(y1), y1 - y0)])
        region_of_slot = np.repeat(np.arange(R), np.diff(self.offsets))
        worst = 0.0
        for s0 in range(0, len(self.indices), 16384):  # chunks of region corners: bounded memory
            v = self.indices[s0: s0 + 16384]
            worst = max(worst, _sign_violation(hidden, self.vertices[v], box_scale,
                                               bits[region_of_slot[s0: s0 + 16384]]))
        areas = self.areas()
        box = (x1 - x0) * (y1 - y0)
        area_err = abs(areas.sum() - box) / box
        dup = R - len(np.unique(self.patterns, axis=0)) if R else 0
        # the centroid of every region has that region's pattern (a neuron that is identically
        # zero on a region counts as inactive; at the centroid it may round to either side)
        c = self.centroids()
        mism_rows = np.zeros(R, bool)
        for s0 in range(0, R, 16384):
            col = 0
            sl = slice(s0, s0 + 16384)
            for layer, (z, S) in zip(hidden, _abs_scales(hidden, c[sl], box_scale)):
                tol = 1e3 * self.rtol * S
                b = bits[sl, col: col + layer.width]
                mism_rows[sl] |= ((b & (z < tol)) | (~b & (z > tol))).any(axis=1)
                col += layer.width
        # a thin region's centroid is closer to its sides than float64 can tell: decide it exactly
        suspect = np.nonzero(mism_rows)[0]
        mism_rows[suspect] = ~self._exact_check(suspect, bits)
        mism = int(mism_rows.sum())
        # convexity: every turn is left or straight
        P = self.vertices[self.indices]
        nx = _engine.next_in_face(self.offsets)
        Q = P[nx]
        S = P[nx[nx]]
        turn = (Q[:, 0] - P[:, 0]) * (S[:, 1] - Q[:, 1]) - (Q[:, 1] - P[:, 1]) * (S[:, 0] - Q[:, 0])
        size = np.abs(Q - P).sum(1) * np.abs(S - Q).sum(1) + 1e-300
        bad_turn = turn < -1e-9 * size
        bad = np.logical_or.reduceat(bad_turn, self.offsets[:-1]) if R else np.zeros(0, bool)
        # float64 polygons too thin to judge (or with a side too short to judge a turn by):
        # judged exactly
        suspect = np.nonzero(bad | self.subresolution)[0]
        bad[suspect] = ~self._exact_check(suspect, bits)
        nonconvex = int(bad.sum())
        unmatched = _unmatched_edges(self)
        ok = (worst <= 1e3 * self.rtol and area_err <= 1e-9 and dup == 0 and mism == 0 and nonconvex == 0
              and unmatched == 0 and (areas > 0).all())
        # (sub-resolution regions have their exact areas, positive when the region is real)
        rep = VerifyReport(R, worst, float(area_err), float(areas.min(initial=np.inf)), int(dup), mism,
                           nonconvex, unmatched, bool(ok))
        if raise_on_error and not ok:
            raise VerificationError(f"partition failed verification: {rep}")
        return rep

    def _exact_check(self, regions: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """(len(regions),) bool: the exact polygon is convex, counter-clockwise, of positive area,
        and its exact centroid has the region's pattern (False where no exact form is kept)."""
        ok = np.zeros(len(regions), bool)
        if self._exact is None:
            return ok
        for n, i in enumerate(regions):
            poly = _exact_distinct(self.exact_polygon(int(i), local=True))
            if len(poly) < 3 or _exact_area(poly) <= 0 or not _exact_convex(poly):
                continue
            ok[n] = bool((self._exact.pattern(_exact_centroid(poly)) == bits[i]).all())
        return ok

    def certify(self, *, regions: Optional[Sequence[int]] = None, raise_on_error: bool = True) -> CertifyReport:
        """Recompute each region's vertices in exact rational arithmetic with pycddlib.

        The H-representation of a region (box sides plus one half-plane per hidden neuron, from
        the exact rational composition of the float64 weights under the region's pattern) is
        turned into vertices by ``cdd.gmp``; the float polygon's corners are compared with them.
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
        from fractions import Fraction

        sel = range(len(self)) if regions is None else [int(i) for i in regions]
        bits = self.pattern_bits()
        layers = [(*_dyadic(l.weight), *_dyadic(l.bias), l.slope) for l in self.network.layers]
        x0, x1, y0, y1 = (Fraction(v) for v in self.bounds)
        box = [[-x0, 1, 0], [x1, -1, 0], [-y0, 0, 1], [y1, 0, -1]]
        cache: Dict[Tuple[int, bytes], Tuple[np.ndarray, int]] = {}  # maps shared by a pattern prefix
        worst = 0.0
        mismatch = empty = 0
        count = 0
        for i in sel:
            count += 1
            rows = [list(r) for r in box]
            # exact integer maps [c, g1, g2] of the current layer's inputs, over a denominator 2**D
            M = np.array([[0, 1, 0], [0, 0, 1]], dtype=object)
            D = 0
            col = 0
            for li, (Wi, Ew, bi, Eb, slope) in enumerate(layers):
                key = (li, np.packbits(bits[i, :col]).tobytes())
                if key not in cache:
                    Dz = max(Ew + D, Eb)
                    Z = Wi.dot(M) * (1 << (Dz - Ew - D))
                    Z[:, 0] += bi * (1 << (Dz - Eb))
                    cache[key] = (Z, Dz)
                Z, Dz = cache[key]
                if slope is None:
                    break
                n = len(Z)
                act = bits[i, col: col + n]
                rows.extend(np.where(act[:, None], Z, -Z).tolist())  # z >= 0 where active, <= 0 where not
                sl = Fraction(float(slope))
                Es = sl.denominator.bit_length() - 1
                M = np.where(act[:, None], Z * (1 << Es), Z * sl.numerator)
                D = Dz + Es
                col += n
            mat = cdd.gmp.matrix_from_array(rows, rep_type=cdd.RepType.INEQUALITY)
            gen = cdd.gmp.copy_generators(cdd.gmp.polyhedron_from_matrix(mat)).array
            exact = np.array([[float(g[1]), float(g[2])] for g in gen if g[0] == 1], dtype=np.float64)
            poly = self.polygon(i)
            if len(exact) < 3 or _area(exact) <= 0:
                empty += 1
                continue
            corners = _corners(poly)
            if len(corners) != len(exact):
                mismatch += 1
            d1 = np.sqrt(((exact[:, None, :] - poly[None, :, :]) ** 2).sum(-1)).min(1).max()
            d2 = np.sqrt(((corners[:, None, :] - exact[None, :, :]) ** 2).sum(-1)).min(1).max()
            worst = max(worst, float(d1), float(d2))
        scale = max(abs(v) for v in self.bounds)
        ok = empty == 0 and mismatch == 0 and worst <= 1e-9 * max(scale, 1.0)
        rep = CertifyReport(count, worst, mismatch, empty, bool(ok))
        if raise_on_error and not ok:
            raise VerificationError(f"partition failed certification: {rep}")
        return rep


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


def _dyadic(a: np.ndarray) -> Tuple[np.ndarray, int]:
    """``a == ints / 2**E`` exactly (float64 values are dyadic rationals): Python ints and E."""
    from fractions import Fraction

    fr = [Fraction(float(x)) for x in np.ravel(a)]
    E = max((f.denominator.bit_length() - 1 for f in fr), default=0)
    ints = [f.numerator << (E - (f.denominator.bit_length() - 1)) for f in fr]
    return np.array(ints, dtype=object).reshape(np.shape(a)), E


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


def _area(poly: np.ndarray) -> float:
    c = np.mean(poly, 0)
    ang = np.arctan2(poly[:, 1] - c[1], poly[:, 0] - c[0])
    p = poly[np.argsort(ang)]
    q = np.roll(p, -1, 0)
    return 0.5 * float((p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum())


def _corners(poly: np.ndarray) -> np.ndarray:
    """The strictly convex corners of a polygon (drops collinear vertices)."""
    prev, nxt = np.roll(poly, 1, 0), np.roll(poly, -1, 0)
    turn = (poly[:, 0] - prev[:, 0]) * (nxt[:, 1] - poly[:, 1]) - (poly[:, 1] - prev[:, 1]) * (nxt[:, 0] - poly[:, 0])
    size = np.abs(poly - prev).sum(1) * np.abs(nxt - poly).sum(1)
    return poly[turn > 1e-10 * size]


def _compose(net: Network, bits: np.ndarray, sizes: Sequence[int], chunk: int = 4096) -> np.ndarray:
    """Per-region affine maps of the output, from the patterns, by one matrix product per layer."""
    R = len(bits)
    K = net.out_features
    out = np.empty((R, K, 3))
    for s in range(0, R, chunk):
        B = bits[s: s + chunk]
        r = len(B)
        M = np.zeros((r, 2, 3))  # maps of the input features: identity on (s, t)
        M[:, 0, 0] = M[:, 1, 1] = 1.0
        col = 0
        for layer in net.layers:
            # (r, out, 3) = W @ M, plus the bias on the constant column
            Z = np.einsum("oi,rij->roj", layer.weight, M, optimize=True)
            Z[:, :, 2] += layer.bias
            if layer.slope is None:
                M = Z
                break
            n = layer.width
            d = np.where(B[:, col: col + n], 1.0, layer.slope)
            M = Z * d[:, :, None]
            col += n
        out[s: s + chunk] = M
    return out


def _final_patterns(pats, lineage, sizes, R) -> np.ndarray:
    """Each final region's packed pattern over all layers, following the lineage back."""
    if not pats:
        return np.zeros((R, 0), np.uint8)
    rows = np.arange(R)
    parts = []
    for p, org in zip(reversed(pats), reversed(lineage)):
        parts.append(p[rows])
        rows = org[rows]
    parts.reverse()
    if all(n % 8 == 0 for n in sizes[:-1]):
        return np.ascontiguousarray(np.concatenate(parts, axis=1))
    bits = np.concatenate([np.unpackbits(p, axis=1, count=n) for p, n in zip(parts, sizes)], axis=1)
    return np.packbits(bits, axis=1)


def _boundary(X, off, idx, vals, scale, layer, rtol) -> np.ndarray:
    """Segments where the top class changes (K > 1), or where the output is zero (K = 1)."""
    V, K = vals.shape
    ca_o, cb_o = _layer_tol(layer, rtol)
    if K == 1:  # the zero set of f is the boundary between the classes (0, f)
        vals = np.concatenate([np.zeros((V, 1)), vals], 1)
        ca_o, cb_o = np.concatenate([[0.0], ca_o]), np.concatenate([[0.0], cb_o])
        K = 2
    ci, ai = np.triu_indices(K, 1)
    P = len(ci)
    D = vals[:, ai] - vals[:, ci]  # (V, P) positive where class a beats class c
    ca = np.concatenate([ca_o[ai] + ca_o[ci], np.zeros(K)])
    cb = np.concatenate([cb_o[ai] + cb_o[ci], np.full(K, np.inf)])  # class columns never split
    tol = scale[:, None] * ca[:P] + cb[:P]
    Ds = np.where(np.abs(D) <= tol, 0.0, D)
    F = len(off) - 1
    if F == 0:
        return np.zeros((0, 2, 2))
    mx = np.maximum.reduceat(Ds[idx], off[:-1], axis=0)  # max of f_a - f_c over each face
    mn = np.minimum.reduceat(Ds[idx], off[:-1], axis=0)  # -max of f_c - f_a
    cand = np.ones((F, K), bool)  # classes that can be on top somewhere in the face
    for p in range(P):
        cand[:, ci[p]] &= mn[:, p] <= 0
        cand[:, ai[p]] &= mx[:, p] >= 0
    split = cand.sum(1) >= 2
    if split.any():
        deg = np.diff(off)
        s_off = np.zeros(int(split.sum()) + 1, np.int64)
        np.cumsum(deg[split], out=s_off[1:])
        s_idx = idx[np.repeat(split, deg)]
        allow = np.concatenate([cand[split][:, ci] & cand[split][:, ai], np.zeros((len(s_off) - 1, K), bool)], 1)
        sub = _engine.split_all(X, s_off, s_idx, np.concatenate([D, vals], 1), scale, ca, cb,
                                allowed=np.packbits(allow, axis=1))
        Xa, Za, Sa = sub.X, sub.Z, sub.scale
        keep = ~split
        f_idx = [idx[np.repeat(keep, deg)], sub.idx]
        f_off_parts = [deg[keep], np.diff(sub.off)]
        f_idx = np.concatenate(f_idx)
        f_off = np.zeros(sum(len(x) for x in f_off_parts) + 1, np.int64)
        np.cumsum(np.concatenate(f_off_parts), out=f_off[1:])
        D, vals = Za[:, :P], Za[:, P:]
        tol = Sa[:, None] * ca[:P] + cb[:P]
    else:
        Xa, f_off, f_idx = X, off, idx
    # at each vertex: which pairs tie at the top
    top = vals.max(1)
    ttol = tol.max(1)
    tie = (np.abs(D) <= tol) & (vals[:, ci] >= top[:, None] - ttol[:, None]) & (vals[:, ai] >= top[:, None] - ttol[:, None])
    a = f_idx
    b = f_idx[_engine.next_in_face(f_off)]
    on = (tie[a] & tie[b]).any(1)
    e = np.stack([np.minimum(a[on], b[on]), np.maximum(a[on], b[on])], 1)
    e = np.unique(e, axis=0) if len(e) else e.reshape(0, 2)
    return np.stack([Xa[e[:, 0]], Xa[e[:, 1]]], 1) if len(e) else np.zeros((0, 2, 2))


def partition(model, bounds, *, plane: Optional[Plane] = None, rtol: float = _engine.DEFAULT_RTOL,
              boundary: bool = True, device=None, exact: bool = True) -> Partition:
    """Every linear region of a piecewise-linear network on a 2-D slice, exactly.

    Parameters
    ----------
    model : torch.nn.Module
        A ``torch.nn.Sequential`` (nested too, TorchScript too) of Linear, ReLU, LeakyReLU, PReLU
        (one slope), Identity, Flatten, Dropout and BatchNorm1d (eval mode) layers.
    bounds : (xmin, xmax, ymin, ymax)
        The box of the slice, in the network's two inputs or in the plane's (s, t).
    plane : Plane, optional
        For a network of more than 2 inputs: the slice ``x = origin + s u + t v``.
    rtol : float
        Relative tolerance that decides "on the line" (times the size of the terms of each
        pre-activation); the default is 256 ulps.
    boundary : bool
        Compute the decision boundary (default True).
    device : torch device or str, optional
        Run each layer's forward pass of the vertices (the matrix products) there, e.g.
        ``"cuda"``; the splitting itself stays in numpy. Default: numpy on the CPU.
    exact : bool
        Decide every sign that float64 cannot (a value within ``rtol`` of its rounding bound)
        in exact rational arithmetic (default). The regions are then those of exact arithmetic
        on the float64 weights, on every input; regions too thin for float64 coordinates are
        kept and flagged (:attr:`Partition.subresolution`). ``exact=False`` treats such values
        as exactly on the line (faster on degenerate nets, merges sub-resolution slivers).

    Returns
    -------
    Partition

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> p = partition(net, bounds=(-1, 1, -1, 1))
    >>> len(p), round(float(p.areas().sum()), 12)
    (8, 4.0)
    """
    b = _check_bounds(bounds)
    net = model if isinstance(model, Network) else parse(model)
    if plane is not None:
        if not isinstance(plane, Plane):
            raise TypeError(f"plane must be a spatial.Plane, got {type(plane).__name__}")
        if plane.dim != net.in_features:
            raise ValueError(f"the plane lives in {plane.dim} dimensions but the network has "
                             f"{net.in_features} inputs")
        net = net.restrict(plane.origin, plane.basis)
    elif net.in_features != 2:
        raise ValueError(f"the network has {net.in_features} inputs; pass plane=spatial.Plane(...) "
                         "(or Plane.through(a, b, c); on the command line --through A B C) to take a "
                         "2-D slice of it")
    if not (0 <= rtol < 1e-3):
        raise ValueError(f"rtol must be in [0, 1e-3), got {rtol}")
    x0, x1, y0, y1 = b
    # coordinates local to the slice: a tiny box far from 0 keeps its digits
    center = np.array([0.0 if x0 <= 0 <= x1 else (x0 + x1) / 2, 0.0 if y0 <= 0 <= y1 else (y0 + y1) / 2])
    X = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64) - center
    off = np.array([0, 4], np.int64)
    idx = np.arange(4, dtype=np.int64)
    # the rounding of a coordinate made by interpolation is relative to the box, not to the point
    scale = np.abs(X).sum(1) + (x1 - x0) + (y1 - y0)
    layers = [_engine_layer_local(net.layers[0], center)] + net.layers[1:]
    Z = X @ layers[0].weight.T + layers[0].bias
    signs = None
    ex = _predicates.ExactNet(net.layers, center, b) if exact else None
    lines = np.array([[0, 2], [1, 2], [1, 3], [0, 3]], np.int64)  # box corners on box sides
    slot_line = np.array([2, 1, 3, 0], np.int64)  # bottom, right, top, left
    pats: List[np.ndarray] = []  # per layer: packed bits of the faces at that layer's end
    lineage: List[np.ndarray] = []  # per layer: the face each face at its end came from
    sizes = []
    for li, layer in enumerate(layers[:-1]):
        ca, cb = _layer_tol(layer, rtol)
        if li == 0:  # the shift to local coordinates rounds the bias: its terms set the tolerance
            cb = rtol * (np.abs(net.layers[0].bias) + np.abs(net.layers[0].weight) @ np.abs(center))
        # the first layer is affine in (s, t): its values are computed, never stored
        first = (layer.weight, layer.bias) if li == 0 else None
        if ex is not None:
            ex.begin_layer(li, len(off) - 1)
        sub = _engine.compact(_engine.split_all(X, off, idx, Z, scale, ca, cb, signs=signs, affine=first,
                                                exact=None if ex is None else (ex, li), lines=lines,
                                                slot_line=slot_line))
        X, off, idx, lines, slot_line = sub.X, sub.off, sub.idx, sub.lines, sub.slot_line
        nxt = layers[li + 1]
        tol_next = _layer_tol(nxt, rtol) if nxt.slope is not None else (None, None)
        zin = (X, layer.weight, layer.bias) if li == 0 else sub.Z
        pos, Z, scale, signs = _engine.transition(zin, sub.scale, ca, cb, layer.slope, nxt.weight, nxt.bias,
                                                  *tol_next, capacity=4 * len(X) + 1024, device=device,
                                                  exact=None if ex is None else (ex, li, lines))
        pats.append(_engine._reduce_or(pos, off, idx))
        lineage.append(sub.origin)
        sizes.append(layer.width)
        if ex is not None:
            ex.end_layer(pats[-1], sub.origin)
    vals = Z.view if isinstance(Z, _engine._Rows) else Z
    patterns = _final_patterns(pats, lineage, sizes, len(off) - 1)
    seg = _boundary(X, off, idx, vals, scale, net.layers[-1], rtol) if boundary else np.zeros((0, 2, 2))
    return Partition(vertices=X + center, offsets=off, indices=idx, patterns=patterns, layer_sizes=sizes,
                     vertex_values=vals, boundary=seg + center, bounds=b, plane=plane, network=net, rtol=rtol,
                     local=(X, center), vertex_lines=lines, exact_net=ex)
