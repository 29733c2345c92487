"""``partition(model, bounds=, plane=)``: every linear region of a network on a 2-D slice.

The driver (:func:`partition`) walks the layers: the engine splits the faces by each layer's
neurons (``_engine.split_all``) and carries the vertices' values to the next layer
(``_engine.transition``), in coordinates local to the slice. The result, :class:`Partition`, is
arrays, not objects per region (see the package docstring for the conventions); its views and
conversions (shapely, GeoJSON, per-region affine maps) are thin layers on top. The decision
boundary is made in ``_boundary``; ``Partition.verify`` and ``Partition.certify`` are
implemented in ``_verify`` and ``_certify``. With ``max_memory`` the box is partitioned in tiles
(``_split_layers`` on each) and stitched by ``_tiles``.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import _certify, _engine, _maxpool, _predicates, _validate, _verify
from ._boundary import _boundary
from ._certify import CertifyReport
from ._net import Network, parse
from ._plane import Plane
from ._verify import VerifyReport, _exact_area, _exact_centroid

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
    return b[0], b[1], b[2], b[3]


def _engine_layer_local(layer, center: np.ndarray):
    """The first layer in coordinates local to the slice: ``W (center + x) + b``."""
    from ._net import Layer

    if not center.any():
        return layer
    return Layer(layer.weight, layer.bias + layer.weight @ center, layer.slope, layer.names, carry=layer.carry)


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
        self._affine: Optional[np.ndarray] = None
        # coordinates local to the slice (vertices = local + center) for areas and centroids
        self._local: np.ndarray
        self._center: np.ndarray
        self._local, self._center = local if local is not None else (vertices, np.zeros(2))
        self.vertex_lines = vertex_lines  # (V, 2) the two lines each vertex lies on (exact mode)
        self._exact = exact_net
        self._areas: Optional[np.ndarray] = None
        self._grid: Optional[Tuple[np.ndarray, np.ndarray]] = None  # the tiles' cuts (xs, ys), when tiled

    # ---- views
    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __repr__(self) -> str:
        return (f"Partition({len(self)} regions, {len(self.vertices)} vertices, "
                f"{len(self.boundary)} boundary segments, layers={list(self.layer_sizes)}, bounds={self.bounds})")

    def _repr_html_(self) -> str:
        """In Jupyter: the partition drawn beside its counts (matplotlib, through ``render``)."""
        from splinescope.render._notebook import partition_html
        return partition_html(self)

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
                a[i] = float(_exact_area(self.exact_polygon(int(i), local=True)))
            self._areas = a
        return self._areas.copy()

    def _float_areas(self) -> np.ndarray:
        """Shoelace areas in local coordinates, relative to each region's first vertex."""
        return shoelace_areas(self._local, self.offsets, self.indices)

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
            c[i] = [float(x) for x in _exact_centroid(self.exact_polygon(int(i), local=True))]
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
        """(N,) index of the region holding each (s, t) point, -1 outside the box.

        By the point's activation pattern (a float64 forward pass); a point inside the box whose
        pattern names no region (a tie between identical max-pooling candidates rounded by an ulp,
        or a point within rounding of a boundary) by the region polygon holding it (the first
        one, on a shared side)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        net = self.network
        parts = []
        step = _verify._rows_per_chunk(net)  # (chunks of points: memory bounded by the widest layer)
        for s in range(0, len(pts), step):
            zs = [z[:, :layer.units] > 0 for z, layer in zip(net.forward(pts[s: s + step])[:-1], net.layers)]
            if zs:  # (the bits a max-pooling region's cells share: see _maxpool.canonical)
                parts.append(np.packbits(_maxpool.canonical(np.concatenate(zs, axis=1), net, self.layer_sizes), axis=1))
        bits = np.concatenate(parts) if parts else np.zeros((len(pts), 0), np.uint8)
        table = {row.tobytes(): i for i, row in enumerate(self.patterns)}
        out = np.array([table.get(row.tobytes(), -1) for row in bits], dtype=np.int64)
        x0, x1, y0, y1 = self.bounds
        inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
        out[~inside] = -1
        miss = np.nonzero((out < 0) & inside)[0]
        if len(miss):
            import shapely

            hit = shapely.STRtree(self.to_shapely()).query(shapely.points(pts[miss]), predicate="intersects")
            first = np.full(len(miss), len(self), np.int64)
            np.minimum.at(first, hit[0], hit[1])
            out[miss] = np.where(first < len(self), first, -1)
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
    # ---- checks (implemented in _verify and _certify)
    def verify(self, *, raise_on_error: bool = True) -> VerifyReport:
        """Check the partition against its network, in float64.

        Every vertex's pre-activations (a fresh forward pass of its coordinates) agree, within
        the rounding tolerance, with the patterns of the regions around it; each region's
        centroid has exactly the region's pattern; the areas tile the slice; the patterns are
        distinct; polygons are counter-clockwise and convex.
        """
        return _verify.verify(self, raise_on_error=raise_on_error)

    def certify(self, *, regions: Optional[Sequence[int]] = None, raise_on_error: bool = True) -> CertifyReport:
        """Recompute each region's vertices in exact rational arithmetic with pycddlib.

        The H-representation of a region (box sides plus one half-plane per hidden neuron, from
        the exact rational composition of the float64 weights under the region's pattern) is
        turned into vertices by ``cdd.gmp``; the float polygon's corners are compared with them.
        Behind max-pooling a region is the union of the cells where each window keeps one
        argmax; its H-representation says the argmax beats every rival of its window (one
        half-plane per rival). Needs the ``certify`` extra (``pip install splinescope[certify]``).
        Costs grow with the network: meant for small networks or a subset of ``regions``.
        """
        return _certify.certify(self, regions=regions, raise_on_error=raise_on_error)


def shoelace_areas(X: np.ndarray, offsets: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """(F,) the shoelace areas of CSR faces (counter-clockwise) of the points ``X``, each relative
    to its first vertex (local coordinates keep a small face's digits).

    >>> shoelace_areas(np.array([[0.0, 0], [2, 0], [2, 1], [0, 1]]), np.array([0, 4]), np.arange(4)).tolist()
    [2.0]
    """
    if len(offsets) < 2:
        return np.zeros(0)
    P = X[indices]
    Q = X[indices[_engine.next_in_face(offsets)]]
    first = np.repeat(X[indices[offsets[:-1]]], np.diff(offsets), axis=0)
    P, Q = P - first, Q - first
    cross = P[:, 0] * Q[:, 1] - P[:, 1] * Q[:, 0]
    return 0.5 * np.add.reduceat(cross, offsets[:-1])


def _capacity(V: int, width: int, room: int = 1 << 30) -> int:
    """Rows to reserve for the next layer's values: room for the vertices the splitting adds
    (up to 3 V more), but at most ``room`` bytes (1 GiB) beyond the V rows themselves, so a wide layer
    (a 16-channel 32x32 convolution carries 32,768 columns) grows on demand instead."""
    return V + min(3 * V + 1024, max(1024, room // (8 * max(width, 1))))


def _compose(net: Network, bits: np.ndarray, sizes: Sequence[int], chunk: int = 4096) -> np.ndarray:
    """Per-region affine maps of the output, from the patterns, by one map per layer.

    A layer's map depends only on the bits of the layers before it, and regions that share those
    share it: the regions are sorted by their bits (so that a prefix's regions are consecutive) and
    each layer is applied once per distinct prefix within a chunk of regions (digits CNN, 18,301
    regions: 38k maps of a layer instead of 92k; the 3x32x32 residual net's 1,791: 4.9k instead
    of 10.7k, its conv layers 16,384 wide)."""
    R = len(bits)
    K = net.out_features
    out = np.empty((R, K, 3))
    widest = max(l.width for l in net.layers)
    chunk = max(1, min(chunk, (1 << 22) // (3 * widest)))
    packed = np.ascontiguousarray(np.packbits(bits, axis=1))
    order = (np.argsort(packed.view(np.dtype((np.void, packed.shape[1]))).ravel(), kind="stable")
             if packed.shape[1] else np.arange(R))  # (bytes in order: the bits' prefixes in order)
    for s in range(0, R, chunk):
        rows_of = order[s: s + chunk]
        B = bits[rows_of]
        r = len(B)
        M = np.zeros((1, 2, 3))  # the input's map, one for the chunk: identity on (s, t)
        M[:, 0, 0] = M[:, 1, 1] = 1.0
        group = np.zeros(r, np.int64)  # each region's row of M (regions with equal bits so far share it)
        new = np.zeros(r, bool)
        new[0] = True  # where a region's bits so far differ from the previous region's
        col = 0
        for layer in net.layers:
            G = len(M)
            if layer.dense:  # (G, out, 3) = W @ M, plus the bias on the constant column
                Z = np.einsum("oi,rij->roj", layer.W, M, optimize=True)
                Z[:, :, 2] += layer.b
            else:
                rows = M.transpose(0, 2, 1).reshape(G * 3, -1)
                Z = layer.rows(rows, np.tile([0.0, 0.0, 1.0], G)).reshape(G, 3, -1).transpose(0, 2, 1)
            if layer.slope is None:
                out[rows_of] = Z[group]
                break
            n = layer.units
            own = B[:, col: col + n]
            new[1:] |= (own[1:] != own[:-1]).any(axis=1)
            first = np.nonzero(new)[0]  # the first region of each group after this layer
            d = np.where(own[first], 1.0, layer.slopes())
            M = Z[group[first]]  # (a new array)
            M[:, :n, :] *= d[:, :, None]
            group = np.cumsum(new) - 1
            col += n
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


def partition(model, bounds, *, plane: Optional[Plane] = None, rtol: float = _engine.DEFAULT_RTOL,
              boundary: bool = True, device=None, exact: bool = True, max_memory: Optional[int] = None,
              client=None) -> Partition:
    """Every linear region of a piecewise-linear network on a 2-D slice, exactly.

    Parameters
    ----------
    model : torch.nn.Module or torch.export.ExportedProgram
        A piecewise-linear network: a ``torch.nn.Sequential`` (nested too, TorchScript too),
        any module whose forward ``torch.fx`` traces (subclasses, functional calls, skip
        connections, concatenation, ``x @ W``) or a ``torch.export`` program (its ATen calls; a
        ``.pt2`` file through ``load_model(path, trust=True)``) of affine layers (Linear, Conv, ConvTranspose, average
        pooling, BatchNorm in eval mode, reshapes), max-pooling (``MaxPool``,
        ``AdaptiveMaxPool``, ``amax``) and piecewise-linear activations (ReLU, LeakyReLU, PReLU,
        Hardtanh, ReLU6, abs, clamp, :func:`register_activation`). Anything else is refused,
        naming the node and its source line. Max-pooling cells with one argmax are one region.
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
    max_memory : int, optional
        A budget in bytes for a partition that would not fit at once: the box is cut into tiles
        (a rectilinear grid, refined where the regions are dense, by a cheap estimate of each
        tile's peak memory from exact 1-D partitions along a few lines) that are partitioned one
        at a time and stitched, so that a region crossing tile edges is one region. The result
        is the one-piece partition's (the same regions, patterns, vertices and boundary, to float
        rounding; regions listed in another order, boundary segments not cut at tile edges). The
        budget covers the largest tile's working arrays and the result, not the Python process
        itself (torch, the model). A budget too small even for the smallest tiles (1/64 of the
        box side) is refused, naming the smallest that would do. Default: one piece.
    client : dask.distributed.Client, optional
        With ``max_memory``: partition the tiles on this Dask cluster's workers (each tile is a
        pure task; the stitch runs here), e.g. ``Client(LocalCluster(n_workers=2))``. The result
        is the same as in this process; the budget then holds for each worker's tile.

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
    if max_memory is not None:
        max_memory = _validate.integer("max_memory", max_memory, minimum=1)
    elif client is not None:
        raise ValueError("client= partitions tiles on Dask workers: give max_memory= (the budget of a tile) too")
    net, b = _prepare(model, bounds, plane)
    if not (0 <= rtol < 1e-3):
        raise ValueError(f"rtol must be in [0, 1e-3), got {rtol}")
    if max_memory is not None:
        from . import _tiles

        return _tiles.tiled(net, b, plane, rtol=rtol, boundary=boundary, device=device, exact=exact,
                            max_memory=max_memory, client=client)
    return _one_piece(net, b, plane, rtol=rtol, boundary=boundary, device=device, exact=exact)


def count_regions(model, bounds, *, plane: Optional[Plane] = None, rtol: float = _engine.DEFAULT_RTOL,
                  exact: bool = True, max_memory: Optional[int] = None, client=None, device=None) -> int:
    """The number of linear regions of a network on a 2-D slice, exactly, without the partition.

    ``len(partition(...))`` without keeping the regions: the slice is cut into tiles (``max_memory``
    bounds a tile's working memory, as in :func:`partition`; there is no result to hold), each
    tile is split alone (on a Dask cluster's workers with ``client=``), and the pieces that touch
    a tile side are matched across tiles by their full activation patterns. For partitions too
    large to keep (tens of millions of regions).

    Parameters
    ----------
    model, bounds, plane, rtol, exact, device
        As in :func:`partition`.
    max_memory : int, optional
        Bytes for a tile's working arrays (default: the whole slice at once).
    client : dask.distributed.Client, optional
        Split the tiles on this cluster's workers (one task each).

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> count_regions(net, (-1, 1, -1, 1)), count_regions(net, (-1, 1, -1, 1), max_memory=2**16)
    (8, 8)
    """
    if max_memory is not None:
        max_memory = _validate.integer("max_memory", max_memory, minimum=1)
    net, b = _prepare(model, bounds, plane)
    if not (0 <= rtol < 1e-3):
        raise ValueError(f"rtol must be in [0, 1e-3), got {rtol}")
    from . import _tiles
    return _tiles.count(net, b, rtol=rtol, exact=exact, max_memory=max_memory, client=client, device=device)


def _one_piece(net: Network, b, plane: Optional[Plane], *, rtol: float, boundary: bool, device, exact: bool) -> Partition:
    """The partition of the whole box at once (``net`` restricted to the slice, ``b`` checked)."""
    center = _center(b)
    r = _split_layers(net, b, center, rtol, device=device, exact=exact, merge=True)
    X, offsets, indices, patterns, lines, vals = r.X, r.offsets, r.indices, r.patterns, r.lines, r.vals
    seg = _boundary(X, offsets, indices, vals, r.scale, net.layers[-1], rtol) if boundary else np.zeros((0, 2, 2))
    if net.max_info and not r.merged:  # the cells of one argmax are one linear region
        mg = _maxpool.merge(X, offsets, indices, patterns, net, r.sizes, _corners(X, b, center), lines)
        X, offsets, indices, patterns, lines = mg.X, mg.offsets, mg.indices, mg.patterns, mg.lines
        vals = vals[mg.keep]
    return Partition(vertices=X + center, offsets=offsets, indices=indices, patterns=patterns, layer_sizes=r.sizes,
                     vertex_values=vals, boundary=seg + center, bounds=b, plane=plane, network=net, rtol=rtol,
                     local=(X, center), vertex_lines=lines, exact_net=r.exact)


def _corners(X: np.ndarray, b, center: np.ndarray) -> np.ndarray:
    """The vertices (local coordinates ``X``) at the corners of the box ``b``."""
    x0, x1, y0, y1 = b
    return np.nonzero((X[:, None, :] == np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) - center).all(2).any(1))[0]


def _prepare(model, bounds, plane: Optional[Plane]) -> Tuple[Network, Tuple[float, float, float, float]]:
    """The checked bounds and the network restricted to the slice (2 inputs)."""
    b = _check_bounds(bounds)
    net = model if isinstance(model, Network) else parse(model, in_shape=plane.shape if isinstance(plane, Plane) else None)
    if plane is not None:
        if not isinstance(plane, Plane):
            raise TypeError(f"plane must be a spatial.Plane, got {type(plane).__name__}")
        if plane.dim != net.in_features:
            raise ValueError(f"the plane lives in {plane.dim} dimensions but the network has "
                             f"{net.in_features} inputs")
        net = net.restrict(plane.origin, plane.basis)
    elif net.in_features == 2 and not net.layers[0].dense:
        net = net.restrict(np.zeros(2), np.eye(2))  # the first map as a dense (width, 2) matrix
    elif net.in_features != 2:
        raise ValueError(f"the network has {net.in_features} inputs; pass plane=spatial.Plane(...) "
                         "(or Plane.through(a, b, c); on the command line --through A B C) to take a "
                         "2-D slice of it")
    return net, b


def _center(b) -> np.ndarray:
    """The point local coordinates are measured from: 0 where the box holds it, else the middle
    (a tiny box far from 0 keeps its digits)."""
    x0, x1, y0, y1 = b
    return np.array([0.0 if x0 <= 0 <= x1 else (x0 + x1) / 2, 0.0 if y0 <= 0 <= y1 else (y0 + y1) / 2])


class _Split(NamedTuple):
    """The faces of a box after every hidden layer, in local coordinates (before any merge)."""

    X: np.ndarray  # (V, 2) local coordinates; the box's corners are vertices 0..3
    offsets: np.ndarray  # (R+1,) CSR faces, counter-clockwise
    indices: np.ndarray
    patterns: np.ndarray  # (R, ceil(N/8)) packed bits of every hidden unit
    sizes: List[int]  # units per hidden layer
    vals: np.ndarray  # (V, K) the output at each vertex
    scale: np.ndarray  # (V,) the output layer's tolerance scale at each vertex
    lines: Optional[np.ndarray]  # (V, 2) exact mode: the two lines of each vertex
    exact: Optional[_predicates.ExactNet]
    merged: bool = False  # the max-pooling cells are merged already (the patterns are canonical)


def _merge_layer(net: Network) -> Optional[int]:
    """The hidden layer after whose splitting the max-pooling cells can be merged (the one that
    holds the last round of every tournament), when a later hidden layer splits too; else None."""
    if not net.max_info:
        return None
    last = max(int(max(info.stages)) for info in net.max_info)
    return last if last < len(net.layers) - 2 else None


def _split_layers(net: Network, b, center: np.ndarray, rtol: float, *, device=None, exact: bool = True,
                  whole=None, merge: bool = False) -> _Split:
    """Split the box ``b`` by every hidden layer of ``net`` (2 inputs), in coordinates local to
    ``center``. ``whole``: the bounds of the slice whose size the tolerances are measured on
    (default ``b``; a tile passes its slice's, so that it decides as the whole would).

    ``merge``: with max-pooling, merge the cells of one region as soon as the last tournament
    round has split them (:func:`_merge_layer`), so that the later layers split regions, not
    cells, and their values are computed at fewer vertices; the patterns are then canonical."""
    x0, x1, y0, y1 = b
    X = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64) - center
    offsets = np.array([0, 4], np.int64)
    indices = np.arange(4, dtype=np.int64)
    # the rounding of a coordinate made by interpolation is relative to the box, not to the point
    if whole is None:
        scale = np.abs(X).sum(1) + (x1 - x0) + (y1 - y0)
    else:  # a tile: the largest scale of the slice's corners at each of its corners
        wx0, wx1, wy0, wy1 = whole
        far = max(abs(wx0 - center[0]), abs(wx1 - center[0])) + max(abs(wy0 - center[1]), abs(wy1 - center[1]))
        scale = np.full(4, far + (wx1 - wx0) + (wy1 - wy0))
    layers = [_engine_layer_local(net.layers[0], center)] + net.layers[1:]
    Z = X @ layers[0].weight.T + layers[0].bias
    signs = None
    ex = _predicates.ExactNet(net.layers, center, b, whole) if exact else None
    lines: Optional[np.ndarray] = np.array([[0, 2], [1, 2], [1, 3], [0, 3]], np.int64)  # corners on box sides
    slot_line: Optional[np.ndarray] = np.array([2, 1, 3, 0], np.int64)  # bottom, right, top, left
    pats: List[np.ndarray] = []  # per layer: packed bits of the faces at that layer's end
    lineage: List[np.ndarray] = []  # per layer: the face each face at its end came from
    sizes: List[int] = []
    merge_at = _merge_layer(net) if merge else None
    for li, layer in enumerate(layers[:-1]):
        ca, cb = _engine.layer_tol(layer, rtol)
        m = layer.units
        if li == 0:  # the shift to local coordinates rounds the bias: its terms set the tolerance
            cb = rtol * (np.abs(net.layers[0].b) + np.abs(net.layers[0].W) @ np.abs(center))[:m]
        # the first layer is affine in (s, t): its values are computed, never stored
        first = (layer.weight, layer.bias) if li == 0 else None
        if ex is not None:
            ex.begin_layer(li, len(offsets) - 1)
        sub = _engine.compact(_engine.split_all(X, offsets, indices, Z, scale, ca, cb, signs=signs, affine=first,
                                                exact=None if ex is None else (ex, li), lines=lines,
                                                slot_line=slot_line, m=m))
        X, offsets, indices, lines, slot_line = sub.X, sub.offsets, sub.indices, sub.lines, sub.slot_line
        origin, zin, sc = sub.origin, (X, layer.weight, layer.bias) if li == 0 else sub.Z, sub.scale
        canon = None
        if li == merge_at and li > 0:
            mg, canon = _merge_cells(net, b, center, sub, pats, lineage, sizes, ca, cb, ex, li)
            keep = mg.keep
            X, offsets, indices, slot_line = mg.X, mg.offsets, mg.indices, mg.slot_line
            lines = mg.lines
            assert sub.Z is not None  # (li > 0: the values are stored)
            zin, sc = _engine.keep_rows(sub.Z, keep), sc[keep]  # (sub.Z is this loop's own store)
            first_pat = canon.pop()  # the first cell's own bits of this layer (for the exact side)
            origin = sub.origin[mg.first]
        nxt = layers[li + 1]
        ca_next, cb_next = _engine.layer_tol(nxt, rtol) if nxt.slope is not None else (None, None)
        pos, Z, scale, signs = _engine.transition(zin, sc, ca, cb, layer.slope, nxt,
                                                  ca_next, cb_next, capacity=_capacity(len(X), nxt.width), device=device,
                                                  exact=None if ex is None else (ex, li, lines, X),
                                                  inherit=_engine.inherited_scale(sc, ca, cb, rtol, layer.slope, nxt))
        sizes.append(m)
        if canon is None:
            pats.append(_engine._reduce_or(pos, offsets, indices))
            lineage.append(origin)
            if ex is not None:
                ex.end_layer(pats[-1], origin)
        else:  # every layer so far holds the regions' canonical bits, one row per region
            G = len(offsets) - 1
            pats[:] = canon
            lineage[:] = [np.zeros(G, np.int64)] + [np.arange(G)] * li
            if ex is not None:  # the exact side names lines by the cells' own patterns: the first cell's
                ex.end_layer(first_pat, origin)
        del sub, zin  # this layer's values (the largest array) are not needed once the next layer's are made
    vals = Z.view if isinstance(Z, _engine._Rows) else Z
    patterns = _final_patterns(pats, lineage, sizes, len(offsets) - 1)
    return _Split(X, offsets, indices, patterns, sizes, np.asarray(vals), scale, lines, ex,
                  merged=merge_at is not None)


def _merge_cells(net: Network, b, center, sub, pats, lineage, sizes, ca, cb, ex, li):
    """Merge the max-pooling cells of the faces ``sub`` (split by hidden layers ``0..li``, ``li``
    the last tournament round) into regions: the signs of layer ``li``'s units at the vertices
    (exact where in doubt), each face's pattern, and :func:`_maxpool.merge`. Returns the merge and
    the canonical bits per layer ``0..li`` (packed, one row per region), followed by the regions'
    first cells' own packed bits of layer ``li``."""
    m = len(ca)
    fix = None if ex is None else _engine.sign_fixer(ex, li, sub.lines, sub.X)
    Zs = sub.Z
    pos, _ = _engine._packed_signs(lambda sl: Zs[sl, :m], sub.scale, ca, cb, exact=fix,
                                   marks=ex is not None and _predicates.carries_marks(net.layers[li]))
    own = _engine._reduce_or(pos, sub.offsets, sub.indices)
    F = len(sub.offsets) - 1
    patterns = _final_patterns(pats + [own], lineage + [sub.origin], sizes + [m], F)
    mg = _maxpool.merge(sub.X, sub.offsets, sub.indices, patterns, net, sizes + [m], _corners(sub.X, b, center),
                        sub.lines, slot_line=sub.slot_line)
    return mg, _split_patterns(mg.patterns, sizes + [m]) + [own[mg.first]]


def _split_patterns(packed: np.ndarray, sizes: Sequence[int]) -> List[np.ndarray]:
    """Packed patterns over all layers (as :func:`_final_patterns` makes them) split into each
    layer's packed bits; byte slices where every layer but the last fills whole bytes (no unpacked
    copy: a trained digits CNN's 105k x 1,792 bits took 188 MB).

    >>> bits = np.packbits([[1, 0, 1, 1, 0, 0, 1, 0, 1, 1]], axis=1)
    >>> [p.tolist() for p in _split_patterns(bits, [3, 7])], [p.tolist() for p in _split_patterns(bits, [8, 2])]
    ([[[160]], [[150]]], [[[178]], [[192]]])
    """
    edges = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    if all(n % 8 == 0 for n in sizes[:-1]):
        return [np.ascontiguousarray(packed[:, edges[i] // 8: (edges[i + 1] + 7) // 8]) for i in range(len(sizes))]
    bits = np.unpackbits(packed, axis=1, count=int(edges[-1])).view(bool)
    return [np.packbits(bits[:, edges[i]: edges[i + 1]], axis=1) for i in range(len(sizes))]
