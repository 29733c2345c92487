"""Partitions larger than memory: the slice cut into tiles, each partitioned alone, then stitched.

``partition(..., max_memory=B)`` calls :func:`tiled`. The box is cut by a rectilinear grid
(:func:`_choose_grid`), every tile is partitioned by itself (:func:`_tile`: a pure function of the
network and the tile, returning plain arrays, so tiles can be handed to other processes), and
:func:`_stitch` makes one partition of them, the same as the one-piece call's.

Why stitching is exact. A region is the set of points of one activation pattern (within the
box), and that set is convex (inside it every layer is affine), so the pieces of one region in
different tiles are one region, and they meet along tile edges. The two tiles of an edge make the
same vertices on it: a vertex on a tile side is where some unit's value changes sign along the
side, between two consecutive vertices of the earlier layers; that value is the network's
(continuous, the same from either side) and, by induction over the layers, so are those two
vertices. Exact mode decides every sign exactly, so the k-th vertex of one tile's side is the
k-th of the other's, whatever their float64 coordinates: they are identified, one point. (With
``exact=False`` a sign within the tolerance could be decided differently on the two sides; the
tiles decide with the whole slice's tolerances, and where the two lists still differ the stitch
refuses, asking for ``exact=True``.) The faces along an edge have equal patterns on its two
sides unless a neuron's line runs along it; then it is a region edge, as in the one-piece
partition.

The identified vertices make one planar subdivision whose faces are the tiles' faces;
:func:`spatial._maxpool.merge` then merges the faces of equal (canonical) patterns into one
convex polygon each, cancelling the edges they share and dropping the vertices left with two
edges (collinear points where a tile edge crossed a region; the box's corners stay). The decision
boundary is computed once, on the merged regions (so a boundary segment is not cut at tile
edges). Max-pooling nets: the tiles' faces are the argmax cells (raw patterns, each convex, and
the argument above holds for them), merged by their canonical bits as ``partition()`` merges them.

How many tiles (:func:`_choose_grid`): a tile's peak memory is estimated as
``V * bytes_per_vertex``, where ``V`` is its final vertex count estimated from exact 1-D
partitions along ``PROBES`` horizontal and vertical lines through the box (``V ~ n_h n_v``, the
crossings of the tile's width and height: a planar arrangement's vertices), and
``bytes_per_vertex`` is what the engine keeps per vertex (the values of two consecutive layers,
8 bytes each, and its bookkeeping). The result of all tiles (patterns, vertices, the stitch's
arrays) is estimated the same way and counted too. Starting from one tile, while some tile's
estimate exceeds the budget, the tile with the largest is split into four by bisecting its
column and its row of the grid (every tile of that column and row is cut: the grid stays
rectilinear, so tile edges meet tile edges, with no T-junctions). Cut points are midpoints, so
both tiles of an edge share one float (dyadic on a dyadic box).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import _engine, _maxpool, _partition, _predicates
from ._boundary import _boundary
from ._errors import SplinescopeError

__all__: List[str] = []

PROBES = 4  # exact 1-D probe lines per axis for the memory estimate
MIN_TILE = 1.0 / 64  # the smallest tile side, as a fraction of the box's side

_SIDE_LINE = (2, 1, 3, 0)  # ExactNet line id of each tile side: bottom t=y0, right s=x1, top t=y1, left s=x0


class _Tile(NamedTuple):
    """One tile's partition: plain arrays (picklable), local coordinates of the slice's center."""

    bounds: Tuple[float, float, float, float]  # the tile, in slice coordinates
    X: np.ndarray  # (V, 2) local coordinates; vertices 0..3 are the tile's corners
    offsets: np.ndarray  # (F+1,) CSR faces, counter-clockwise
    indices: np.ndarray  # (E,)
    patterns: np.ndarray  # (F, ceil(N/8)) raw packed bits of every hidden unit
    sizes: List[int]
    vals: np.ndarray  # (V, K) the output at each vertex
    scale: np.ndarray  # (V,) the output layer's tolerance scale
    lines: Optional[np.ndarray]  # (V, 2) exact mode: each vertex's two lines (this tile's ids)
    exact: Optional[tuple]  # exact mode: ExactNet.state(), what the line ids mean


def _tile(net, bounds, center: np.ndarray, whole, rtol: float, exact: bool, device=None) -> _Tile:
    """The partition of one tile ``bounds`` of the slice ``whole``, before any merge (pure)."""
    r = _partition._split_layers(net, bounds, center, rtol, device=device, exact=exact, whole=whole)
    x0, x1, y0, y1 = (float(v) for v in bounds)
    return _Tile((x0, x1, y0, y1), r.X, r.offsets, r.indices, r.patterns, list(r.sizes),
                 np.array(r.vals, copy=True), r.scale, r.lines, None if r.exact is None else r.exact.state())


def tiled(net, b, plane, *, rtol: float, boundary: bool, device, exact: bool, max_memory: Optional[int] = None,
          grid: Optional[Tuple[Sequence[float], Sequence[float]]] = None, client=None) -> "_partition.Partition":
    """``partition()`` in tiles: the grid from ``max_memory`` (bytes), or given as ``grid = (xs, ys)``
    (the cut coordinates, box sides included). One tile is the one-piece partition. ``client``: a
    ``dask.distributed.Client`` whose workers partition the tiles (the stitch runs here)."""
    center = _partition._center(b)
    if grid is None:
        assert max_memory is not None
        xs, ys = _choose_grid(net, b, center, max_memory, rtol, device)
    else:
        xs, ys = _check_grid(grid, b)
    if len(xs) == 2 and len(ys) == 2:
        p = _partition._one_piece(net, b, plane, rtol=rtol, boundary=boundary, device=device, exact=exact)
    else:
        boxes = tile_boxes(xs, ys)
        if client is None:
            tiles = [_tile(net, box, center, b, rtol, exact, device) for box in boxes]
        else:
            tiles = _on_workers(client, net, boxes, center, b, rtol, exact, device)
        p = _stitch(tiles, net, b, plane, xs, ys, rtol=rtol, boundary=boundary)
    p._grid = (np.asarray(xs, np.float64), np.asarray(ys, np.float64))
    return p


def _tile_count(net, bounds, center: np.ndarray, whole, rtol: float, exact: bool, device=None
                ) -> Tuple[int, np.ndarray]:
    """The regions of one tile that no other tile has (those not touching a tile side), and the
    keys (packed canonical bits) of the others, which the pieces in other tiles may share (pure)."""
    r = _partition._split_layers(net, bounds, center, rtol, device=device, exact=exact, whole=whole)
    R = len(r.offsets) - 1
    on: np.ndarray
    if r.lines is not None:  # exact mode: the vertices made on a side carry its line
        on = np.isin(r.lines, _SIDE_LINE).any(axis=1)  # type: ignore[assignment]
    else:
        x0, y0 = r.X[0]
        x1, y1 = r.X[2]
        on = (r.X[:, 0] == x0) | (r.X[:, 0] == x1) | (r.X[:, 1] == y0) | (r.X[:, 1] == y1)
    touch = np.zeros(R, bool)  # a region piece that crosses a side has a vertex on it
    touch[np.repeat(np.arange(R), np.diff(r.offsets))[on[r.indices]]] = True
    keys = _maxpool.canonical_packed(r.patterns, net, r.sizes)  # the argmax cells of one region: one key
    first, inv = _engine.unique_rows(np.ascontiguousarray(keys))
    group_touch = np.zeros(len(first), bool)
    np.logical_or.at(group_touch, inv, touch)
    return int((~group_touch).sum()), keys[first[group_touch]]


def count(net, b, *, rtol: float, exact: bool, max_memory: Optional[int] = None, client=None,
          device=None) -> int:
    """The number of regions of ``net`` on the box ``b``, in tiles, without building the partition:
    a region is one pattern (canonical bits with max-pooling), and only the pieces touching a
    tile side can be pieces of one region in several tiles, so the count is the tiles' other
    regions plus the distinct keys of those pieces, compared in full."""
    center = _partition._center(b)
    boxes = tile_boxes(*budget_grid(net, b, center, max_memory, rtol, device))
    if client is None:
        parts = [_tile_count(net, box, center, b, rtol, exact, device) for box in boxes]
    else:
        shared = _send(client, net)
        parts = client.gather([client.submit(_tile_count, shared, box, center, b, rtol, exact, device, pure=False,
                                             retries=2) for box in boxes])
    inside = sum(n for n, _ in parts)
    edge = np.concatenate([k for _, k in parts]) if parts else np.zeros((0, 1), np.uint8)
    return inside + (len(_engine.unique_rows(np.ascontiguousarray(edge))[0]) if len(edge) else 0)


def _identity(x):
    return x


def _send(client, obj):
    """``obj`` (a network, a sweep's context) on the cluster as a task's result, which the
    scheduler recomputes elsewhere if its worker dies (scattered data would be lost); Dask's
    warning that the task is large is expected: it is sent once. Used by ``spatial.sweep`` too."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph")
        return client.submit(_identity, obj, pure=False)


def _on_workers(client, net, boxes, center, b, rtol: float, exact: bool, device) -> List[_Tile]:
    """The tiles of ``boxes`` computed on a Dask cluster, in order. The network is sent once, as a
    task's result (recomputed elsewhere if its worker dies), and each tile is one task."""
    shared = _send(client, net)
    futures = [client.submit(_tile, shared, box, center, b, rtol, exact, device, pure=False, retries=2)
               for box in boxes]
    return client.gather(futures)


def _check_grid(grid, b) -> Tuple[List[float], List[float]]:
    xs, ys = ([float(v) for v in g] for g in grid)
    for cuts, lo, hi, name in ((xs, b[0], b[1], "xs"), (ys, b[2], b[3], "ys")):
        if len(cuts) < 2 or cuts[0] != lo or cuts[-1] != hi or any(u >= v for u, v in zip(cuts, cuts[1:])):
            raise ValueError(f"grid {name} must increase from {lo} to {hi}, got {cuts}")
    return xs, ys


# ---- stitching

class _TiledExact:
    """The exact side of a stitched partition: each vertex's line ids are its tile's, offset by
    ``line_off[tile]``; its exact point is its tile's ExactNet's (all share the slice's center)."""

    def __init__(self, layers, center, whole, tiles: Sequence[Tuple[tuple, tuple]], line_off: np.ndarray):
        self._args = (layers, center, whole)
        self._tiles = list(tiles)  # (bounds, ExactNet.state()) per tile
        self.line_off = line_off
        self._nets: Dict[int, _predicates.ExactNet] = {}

    def net(self, t: int) -> _predicates.ExactNet:
        if t not in self._nets:
            layers, center, whole = self._args
            bounds, state = self._tiles[t]
            self._nets[t] = _predicates.ExactNet.restore(layers, center, bounds, state, whole)
        return self._nets[t]

    def point(self, l1: int, l2: int) -> Tuple[Fraction, Fraction]:
        t = int(np.searchsorted(self.line_off, l1, side="right")) - 1
        off = int(self.line_off[t])
        return self.net(t).point(int(l1) - off, int(l2) - off)

    def polygon(self, lines) -> List[Tuple[Fraction, Fraction]]:
        return [self.point(int(a), int(b)) for a, b in lines]

    def pattern(self, point) -> np.ndarray:
        return self.net(0).pattern(point)


def _side_slots(t: _Tile) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each slot's edge ``(a, b)`` and the tile sides it runs along (bit ``s``: side ``s``)."""
    a = t.indices
    b = a[_engine.next_in_face(t.offsets)]
    bits = np.zeros(len(t.X), np.uint8)  # the sides each vertex lies on
    for side in range(4):
        if t.lines is not None:  # exact mode: the vertices made on a side carry its line
            on = (t.lines == _SIDE_LINE[side]).any(1)
        else:  # corner ``side`` starts side ``side`` (counter-clockwise)
            axis = 1 if side in (0, 2) else 0
            on = t.X[:, axis] == t.X[side, axis]
        bits[on] |= np.uint8(1 << side)
    return a, b, bits[a] & bits[b]


def _side_chain(t: _Tile, side: int, slots_of) -> Tuple[np.ndarray, np.ndarray]:
    """The vertices (n+1,) and face slots (n,) along side ``side`` (0 bottom, 1 right, 2 top,
    3 left) of a tile, in increasing coordinate, corner to corner (the faces run along the
    bottom and right sides that way, along the top and left the other). ``slots_of``:
    ``_side_slots(t)``."""
    a, b, on = slots_of
    s = np.nonzero(on & np.uint8(1 << side))[0]
    succ = dict(zip(a[s].tolist(), zip(b[s].tolist(), s.tolist())))
    v, end = side, (side + 1) % 4
    verts, slots = [v], []
    while v != end:  # the side's edges run from corner ``side`` to the next corner
        v, sl = succ[v]
        verts.append(v)
        slots.append(sl)
    if side in (2, 3):
        verts.reverse()
        slots.reverse()
    return np.array(verts, np.int64), np.array(slots, np.int64)


def _walk(A, B, X: np.ndarray, axis: int, tol: float, pairs: List[Tuple[int, int]]) -> None:
    """Identify two tiles' chains along their shared edge (both in increasing coordinate
    ``axis``; ``A`` and ``B`` their vertices in global ids, ``X`` the coordinates): the k-th
    vertex of one is the k-th of the other (see the module docstring). A gross check of the
    coordinates (``tol``) guards the pairing."""
    n = len(A)
    gap = np.abs(X[A, axis] - X[B, axis]).max() if len(B) == n else np.inf
    if not gap <= tol:
        raise SplinescopeError(f"the two tiles of an edge made {n} and {len(B)} vertices on it, {gap:.3g} apart: a "
                               "sign within the rounding tolerance was decided differently on the two sides "
                               "(exact=False), or a bug; partition with exact=True")
    pairs.extend(zip(A.tolist(), B.tolist()))


def _labels(V: int, pairs: np.ndarray) -> np.ndarray:
    """(V,) for each vertex the smallest id of the vertices identified with it (``pairs`` (P, 2)):
    labels lowered along the pairs and through each other until every pair agrees."""
    lab = np.arange(V)
    if not len(pairs):
        return lab
    u, w = pairs[:, 0], pairs[:, 1]
    while True:
        lu, lw = lab[u], lab[w]
        if (lu == lw).all():
            return lab
        m = np.minimum(lu, lw)
        np.minimum.at(lab, u, m)
        np.minimum.at(lab, w, m)
        np.minimum.at(lab, lu, m)
        np.minimum.at(lab, lw, m)
        lab = lab[lab]


def _stitch(tiles: Sequence[_Tile], net, b, plane, xs: Sequence[float], ys: Sequence[float], *, rtol: float,
            boundary: bool) -> "_partition.Partition":
    """One partition of the tiles of the grid ``xs`` x ``ys`` (row by row from the bottom, left to
    right), the same as the one-piece partition of the box ``b`` (pure: the tiles are not changed).

    Only the faces with an edge on a tile edge are merged (every piece of a region that crosses
    a tile edge has one; with max-pooling, every face: a region's argmax cells); the others are
    kept as they are. Regions are listed tile by tile, then the merged ones."""
    nx, ny = len(xs) - 1, len(ys) - 1
    assert len(tiles) == nx * ny
    center = _partition._center(b)
    exact = tiles[0].lines is not None
    sizes = tiles[0].sizes
    vbase = np.concatenate([[0], np.cumsum([len(t.X) for t in tiles])]).astype(np.int64)
    ebase = np.concatenate([[0], np.cumsum([len(t.indices) for t in tiles])]).astype(np.int64)
    line_off = np.zeros(len(tiles) + 1, np.int64)
    if exact:
        states = [t.exact for t in tiles if t.exact is not None]
        line_off[1:] = np.cumsum([state[0][-1] for state in states])  # (ExactNet.base: ids in use)
        nets = _TiledExact(net.layers, center, b, list(zip([t.bounds for t in tiles], states)), line_off[:-1])
    X = np.concatenate([t.X for t in tiles])
    on_edge: List[np.ndarray] = []  # the slots along tile edges
    slots_of: Dict[int, tuple] = {}

    def chain(k: int, side: int) -> np.ndarray:
        if k not in slots_of:
            slots_of[k] = _side_slots(tiles[k])
        verts, slots = _side_chain(tiles[k], side, slots_of[k])
        on_edge.append(slots + ebase[k])
        return verts + vbase[k]

    pairs: List[Tuple[int, int]] = []
    for j in range(ny):
        for i in range(nx):
            k = j * nx + i
            if i + 1 < nx:  # the edge x = xs[i + 1] with the tile on the right
                _walk(chain(k, 1), chain(k + 1, 3), X, 1, 2.0 ** -10 * (ys[j + 1] - ys[j]), pairs)
            if j + 1 < ny:  # the edge y = ys[j + 1] with the tile above
                _walk(chain(k, 2), chain(k + nx, 0), X, 0, 2.0 ** -10 * (xs[i + 1] - xs[i]), pairs)
    # one id per point (the smallest)
    vid = _labels(len(X), np.array(pairs, np.int64).reshape(-1, 2))
    indices = np.concatenate([vid[t.indices + vbase[k]] for k, t in enumerate(tiles)])
    deg = np.concatenate([np.diff(t.offsets) for t in tiles])
    face = np.repeat(np.arange(len(deg)), deg)
    touch = np.zeros(len(deg), bool)  # the faces along tile edges
    touch[face[np.concatenate(on_edge)]] = True
    if net.max_info:  # the cells of one argmax are merged everywhere
        touch[:] = True
    del face
    lines = np.concatenate([t.lines + line_off[k] for k, t in enumerate(tiles)]) if exact else None
    # the faces along tile edges: one polygon per pattern; vertices of the others stay
    at = np.repeat(touch, deg)
    ind_u, deg_u = indices[~at], deg[~touch]
    off_t = np.zeros(int(touch.sum()) + 1, np.int64)
    np.cumsum(deg[touch], out=off_t[1:])
    fixed = np.zeros(len(X), bool)  # vertices that stay: the box's corners, those of the other faces
    fixed[ind_u] = True
    fixed[_partition._corners(X, b, center)] = True
    tile_face = np.concatenate([[0], np.cumsum([len(t.offsets) - 1 for t in tiles])])
    pat_t = np.concatenate([t.patterns[touch[tile_face[k]: tile_face[k + 1]]] for k, t in enumerate(tiles)])
    mg = _maxpool.merge(X, off_t, indices[at], pat_t, net, sizes, np.nonzero(fixed)[0], lines)
    del pat_t
    indices = np.concatenate([ind_u, mg.keep[mg.indices]])
    deg = np.concatenate([deg_u, np.diff(mg.offsets)])
    patterns = np.concatenate([t.patterns[~touch[tile_face[k]: tile_face[k + 1]]] for k, t in enumerate(tiles)]
                              + [mg.patterns])
    used = np.zeros(len(X), bool)
    used[indices] = True
    indices = (np.cumsum(used) - 1)[indices]
    offsets = np.zeros(len(deg) + 1, np.int64)
    np.cumsum(deg, out=offsets[1:])
    X = X[used]
    lines = lines[used] if lines is not None else None
    vals = np.concatenate([t.vals for t in tiles])[used]
    scale = np.concatenate([t.scale for t in tiles])[used]
    seg = _boundary(X, offsets, indices, vals, scale, net.layers[-1], rtol) if boundary else np.zeros((0, 2, 2))
    return _partition.Partition(vertices=X + center, offsets=offsets, indices=indices, patterns=patterns,
                                layer_sizes=sizes, vertex_values=vals, boundary=seg + center, bounds=b, plane=plane,
                                network=net, rtol=rtol, local=(X, center), vertex_lines=lines,
                                exact_net=nets if exact else None)


# ---- how many tiles

class _Probe(NamedTuple):
    """An exact 1-D partition along a line across the box: where the regions change."""

    at: float  # the line's fixed coordinate (y of a horizontal probe, x of a vertical one)
    pos: np.ndarray  # (n,) sorted slice coordinates of the crossings along it
    cum: np.ndarray  # (n+1, H) crossings of hidden layers 0..l among the first i


def _probe(net, b, center, rtol: float, axis: int, at: float, device=None) -> _Probe:
    """The crossings along the line ``x[axis] = at``: the vertices on one long side of a thin box
    around it (its regions' partition, in exact mode, names each crossing's line and layer)."""
    x0, x1, y0, y1 = b
    h = 2.0 ** -20 * ((y1 - y0) if axis == 1 else (x1 - x0))
    thin = (x0, x1, at, at + h) if axis == 1 else (at, at + h, y0, y1)
    r = _partition._split_layers(net, thin, center, rtol, device=device, exact=True, whole=b)
    assert r.lines is not None and r.exact is not None
    side = 2 if axis == 1 else 0  # the bottom (t = y0) or the left (s = x0) side
    on = (r.lines == side).any(1)
    other = np.where(r.lines[on, 0] == side, r.lines[on, 1], r.lines[on, 0])
    layer, _ = r.exact.decode(other)
    pos = r.X[on, 1 - axis] + center[1 - axis]
    o = np.argsort(pos)
    pos, layer = pos[o], layer[o]
    cross = layer >= 0  # (not the corners)
    H = len(net.layers) - 1
    cum = np.zeros((int(cross.sum()) + 1, H))
    np.cumsum(layer[cross, None] <= np.arange(H), axis=0, out=cum[1:])
    return _Probe(float(at), pos[cross], cum)


def _probes(net, b, center, rtol: float, device=None) -> Tuple[List[_Probe], List[_Probe]]:
    """``PROBES`` horizontal and vertical probes, through the middles of an even grid."""
    x0, x1, y0, y1 = b
    f = (np.arange(PROBES) + 0.5) / PROBES
    return ([_probe(net, b, center, rtol, 1, y0 + v * (y1 - y0), device) for v in f],
            [_probe(net, b, center, rtol, 0, x0 + v * (x1 - x0), device) for v in f])


def _crossings(probes: List[_Probe], lo, hi, a, c) -> np.ndarray:
    """(T, H) for each of T tiles, the crossings of hidden layers 0..l along ``[a, c]``: the mean
    of the probes in ``[lo, hi]`` (the probe nearest the middle where none is)."""
    at = np.array([p.at for p in probes])
    inside = (at >= lo[:, None]) & (at <= hi[:, None])  # (T, P)
    none = np.nonzero(~inside.any(1))[0]
    inside[none, np.argmin(np.abs(at - 0.5 * (lo + hi)[none, None]), 1)] = True
    n = np.zeros((len(lo), probes[0].cum.shape[1]))
    for k, p in enumerate(probes):
        rows = np.nonzero(inside[:, k])[0]
        n[rows] += p.cum[np.searchsorted(p.pos, c[rows], "left")] - p.cum[np.searchsorted(p.pos, a[rows], "right")]
    return n / inside.sum(1)[:, None]


def _vertices(probes, tiles: np.ndarray) -> np.ndarray:
    """(T, H) the estimated vertices of each tile (T, 4) after each hidden layer: a planar
    arrangement crossed ``n_h`` times along a tile's width and ``n_v`` along its height has about
    ``n_h n_v`` vertices inside (measured 0.75 to 1.05 on dense nets), plus those on its sides."""
    xa, xb, ya, yb = tiles.T
    nh = _crossings(probes[0], ya, yb, xa, xb)
    nv = _crossings(probes[1], xa, xb, ya, yb)
    return nh * nv + 2 * (nh + nv) + 4


def _peak_bytes(net, V: np.ndarray) -> np.ndarray:
    """(T,) each tile's peak memory from its vertices after each hidden layer ``V`` (T, H): the
    engine keeps a row of 8-byte values per vertex, one layer's while it is split, two while it
    is carried to the next (the first layer's values are computed, not kept), and some
    bookkeeping per vertex."""
    W = [layer.width for layer in net.layers]
    units = [layer.units for layer in net.layers[:-1]]
    N = sum(units)
    H = V.shape[1]
    peak = np.zeros(len(V))
    for li in range(H):
        carry = (V[:, li] * W[li] if li else 0.0) + V[:, li] * W[li + 1]
        split = V[:, li + 1] * W[li + 1] if li + 1 < H else 0.0
        peak = np.maximum(peak, np.maximum(carry, split))
    return 8 * peak + V[:, -1] * (256 + 6 * ((max(units) + 7) // 8) + 2 * ((N + 7) // 8))


def _result_bytes(net, V: float) -> float:
    """The tiles' results and the stitched partition for ``V`` vertices in all: a pattern and a
    few numbers per region and per vertex, twice (the tiles', the result), and the names of the
    lines of each layer."""
    N = sum(layer.units for layer in net.layers[:-1])
    K = net.layers[-1].width
    return V * (2 * ((N + 7) // 8 + 100 + 8 * K) + (N + 7) // 8 + 8 * len(net.layers))


def tile_boxes(xs: Sequence[float], ys: Sequence[float]) -> List[Tuple[float, float, float, float]]:
    """The tiles ``(x0, x1, y0, y1)`` of the grid cut at ``xs`` and ``ys``, row by row.

    >>> tile_boxes([0, 1, 2], [0, 1])
    [(0, 1, 0, 1), (1, 2, 0, 1)]
    """
    return [(xs[i], xs[i + 1], ys[j], ys[j + 1]) for j in range(len(ys) - 1) for i in range(len(xs) - 1)]


def budget_grid(net, b, center, max_memory: Optional[int], rtol: float, device=None
                ) -> Tuple[List[float], List[float]]:
    """The grid of :func:`_choose_grid` for a budget that keeps no result (a count, an area), or
    the whole box ``b`` as one tile when ``max_memory`` is None."""
    if max_memory is None:
        return [b[0], b[1]], [b[2], b[3]]
    return _choose_grid(net, b, center, max_memory, rtol, device, result=False)


def _choose_grid(net, b, center, max_memory: int, rtol: float, device=None,
                 result: bool = True) -> Tuple[List[float], List[float]]:
    """The grid: one tile, then, while the largest estimated tile peak plus the estimated result
    exceeds the budget, the column and the row of the tile with the largest peak are bisected.
    Tiles stay at least ``MIN_TILE`` of the box's sides; a budget that this cannot meet is
    refused, naming the smallest met along the way (the way does not depend on the budget)."""
    x0, x1, y0, y1 = b
    if len(net.layers) == 1:  # affine: one region
        return [x0, x1], [y0, y1]
    probes = _probes(net, b, center, rtol, device)
    small = (MIN_TILE * (x1 - x0), MIN_TILE * (y1 - y0))

    def estimate(xs, ys):
        tiles = np.array(tile_boxes(xs, ys))
        V = _vertices(probes, tiles)
        return tiles, _peak_bytes(net, V), _result_bytes(net, V[:, -1].sum()) if result else 0.0

    xs, ys = [x0, x1], [y0, y1]
    smallest = np.inf  # the least budget met along the way (the way does not depend on the budget)
    least = np.inf  # the result alone
    while True:
        tiles, peak, result = estimate(xs, ys)
        least = min(least, result)
        need = result + peak.max()
        smallest = min(smallest, need)
        if need <= max_memory:
            return xs, ys
        w, h = tiles[:, 1] - tiles[:, 0], tiles[:, 3] - tiles[:, 2]
        can = np.nonzero((w / 2 >= small[0]) | (h / 2 >= small[1]))[0]
        if not len(can):
            kept = f"; the result alone takes about {int(least):,} bytes" if result else ""
            raise ValueError(f"max_memory={max_memory:,} bytes is too small for this partition: the smallest "
                             f"that works is about {int(smallest):,} bytes (tiles down to 1/{round(1 / MIN_TILE)} "
                             f"of the box's sides{kept})")
        t = tiles[can[np.argmax(peak[can])]]
        if (t[1] - t[0]) / 2 >= small[0]:
            xs = sorted(xs + [float(0.5 * (t[0] + t[1]))])
        if (t[3] - t[2]) / 2 >= small[1]:
            ys = sorted(ys + [float(0.5 * (t[2] + t[3]))])
