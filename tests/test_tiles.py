"""Tiled partitions (spatial/_tiles.py, ``partition(..., max_memory=)``) against the one-piece
partition and the independent exact reference: the same regions (count, patterns, areas), the
same vertices (the tile edges' crossings dropped), the same boundary (length and point set),
verify() passing; tile edges along neuron lines and through vertices; the grid and the errors."""
import pickle

import numpy as np
import pytest
import shapely
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _exact import area as exact_area
from _exact import exact_regions
from common import DEVICES, dyadic_images, dyadic_model, integer_net, mlp, reference_net, set_weights
from splinescope import spatial
from splinescope.spatial import _engine, _partition, _tiles

torch.set_num_threads(1)
BOX = (-1.0, 1.0, -1.0, 1.0)


def tiled(model, bounds, grid, plane=None, exact=True):
    """The partition in the tiles of ``grid = (xs, ys)``, and the one-piece partition."""
    net, b = _partition._prepare(model, bounds, plane)
    kw = dict(rtol=_engine.DEFAULT_RTOL, boundary=True, device=None, exact=exact)
    return _tiles.tiled(net, b, plane, grid=grid, **kw), _partition._one_piece(net, b, plane, **kw)


def assert_same(q, p):
    """``q`` (tiled) has ``p``'s (one piece) regions, vertices and boundary; q.verify() passes."""
    assert len(q) == len(p)
    areas_p = {row.tobytes(): a for row, a in zip(p.patterns, p.areas())}
    areas_q = {row.tobytes(): a for row, a in zip(q.patterns, q.areas())}
    assert areas_q.keys() == areas_p.keys()  # the same patterns
    x0, x1, y0, y1 = p.bounds
    span = max(x1 - x0, y1 - y0)
    for k, a in areas_p.items():
        assert areas_q[k] == pytest.approx(a, rel=1e-12, abs=1e-14 * span ** 2)
    # the same vertices: the tile edges' crossings are gone, nothing else is
    assert len(q.vertices) == len(p.vertices)
    for a, c in ((p.vertices, q.vertices), (q.vertices, p.vertices)):
        _, dist = shapely.STRtree(shapely.points(c)).query_nearest(shapely.points(a), return_distance=True)
        assert dist.max() <= 1e-12 * span
    # the same boundary: length and point set (segments may be cut differently)
    length = [np.linalg.norm(s[:, 1] - s[:, 0], axis=1).sum() for s in (q.boundary, p.boundary)]
    assert length[0] == pytest.approx(length[1], rel=1e-9, abs=1e-12)
    if len(p.boundary):
        lp, lq = shapely.MultiLineString(list(p.boundary)), shapely.MultiLineString(list(q.boundary))
        assert lp.hausdorff_distance(lq) <= 1e-9 * span
    assert q.verify().ok


def tie_at(net, x=None):
    """All classes equal at ``x`` (default the origin): the boundary runs through the box (and
    through a tile corner)."""
    x = torch.zeros(1, 2, dtype=torch.float64) if x is None else torch.as_tensor(x, dtype=torch.float64)[None]
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.bias.sub_(net(x)[0])
    return net


def conv_pool():
    model = dyadic_model(nn.Sequential(nn.Conv2d(1, 2, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                       nn.Linear(8, 2)), 1)
    plane = spatial.Plane.through(*dyadic_images(1, (1, 3, 3)))
    return tie_at(model, plane.lift(np.array([[0.25, 0.0]]))[0].reshape(plane.shape)), plane


def plane_net():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 6), nn.LeakyReLU(0.1), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(1)
    plane = spatial.Plane.through(*(torch.rand(12, generator=g) for _ in range(3)))
    return tie_at(net, plane.lift(np.array([[0.5, 0.5]]))[0]), plane


def breakpoints_net():
    torch.manual_seed(3)
    return tie_at(nn.Sequential(nn.Linear(2, 10), nn.Hardtanh(-0.3, 0.4), nn.Linear(10, 8), nn.ReLU6(),
                                nn.Linear(8, 2)).double())


class Residual(nn.Module):
    """A skip connection (carried columns) around two convolutions."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 2, padding=1)
        self.conv2 = nn.Conv2d(2, 1, 2)
        self.fc = nn.Linear(9, 2)

    def forward(self, x):
        return self.fc(torch.relu(x + self.conv2(torch.relu(self.conv1(x)))).flatten(1))


def residual():
    model = dyadic_model(Residual(), 6)
    plane = spatial.Plane.through(*dyadic_images(6, (1, 3, 3)))
    return tie_at(model, plane.lift(np.array([[0.25, 0.25]]))[0].reshape(plane.shape)), plane


GRID = ([-1.0, -0.25, 0.5, 1.0], [-1.0, 0.0, 1.0])
CASES = {  # name: (model, plane, bounds, grid)
    "relu": (lambda: (mlp([2, 10, 8, 1], act="relu", seed=1), None), BOX, GRID),
    "leaky_multiclass": (lambda: (tie_at(mlp([2, 8, 6, 4], seed=0)), None), BOX,
                         ([-1.0, 0.0, 1.0], [-1.0, 0.0, 0.5, 1.0])),
    "plane": (plane_net, (-0.2, 1.2, -0.2, 1.2), ([-0.2, 0.5, 1.2], [-0.2, 0.15, 0.5, 1.2])),
    "hardtanh_relu6": (lambda: (breakpoints_net(), None), (-2.0, 2.0, -2.0, 2.0),
                       ([-2.0, -1.0, 0.0, 2.0], [-2.0, 0.0, 2.0])),
    "maxpool": (conv_pool, (-1.0, 1.5, -1.0, 1.5), ([-1.0, 0.25, 0.5, 1.5], [-1.0, 0.0, 1.5])),
    "residual_conv": (residual, (-1.0, 1.5, -1.0, 1.5), ([-1.0, 0.25, 1.5], [-1.0, 0.5, 0.75, 1.5])),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tiles_equal_one_piece(name):
    make, bounds, grid = CASES[name]
    model, plane = make()
    q, p = tiled(model, bounds, grid, plane=plane)
    assert_same(q, p)
    # regions cross tile edges (they are counted once), and the boundary is there to compare
    assert len(q) < sum(len(_partition._one_piece(q.network, (xa, xb, ya, yb), None, rtol=q.rtol, boundary=False,
                                                  device=None, exact=True))
                        for xa, xb in zip(grid[0], grid[0][1:]) for ya, yb in zip(grid[1], grid[1][1:]))
    if name != "relu":
        assert len(p.boundary) > 0


def lines_on_tile_edges():
    """First-layer lines x = 0, y = 0 (tile edges), x + y = 0 and x - y = 1/2 (through the tile
    corner (0, 0) and the corner (1/2, 0)); the second layer bends at all of them."""
    net = mlp([2, 5, 4, 2], act="relu")
    w1 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0], [0.5, 0.75]])
    b1 = np.array([0.0, 0.0, 0.0, -0.5, 0.125])
    rng = np.random.default_rng(0)
    w2, b2 = rng.integers(-3, 4, (4, 5)) / 4, rng.integers(-2, 3, 4) / 8
    return set_weights(net, [(w1, b1), (w2, b2), (rng.integers(-3, 4, (2, 4)) / 4, [0.0, 0.0])])


def test_tile_edges_along_lines_and_through_vertices():
    net = lines_on_tile_edges()
    grid = ([-1.0, 0.0, 0.5, 1.0], [-1.0, 0.0, 1.0])
    q, p = tiled(net, BOX, grid)
    assert_same(q, p)
    assert (np.abs(q.vertices).max(1) == 0).sum() == 1  # the tile corner on 3 lines: one vertex
    ref = exact_regions(net, BOX)  # and the independent exact reference
    ref_area = {tuple(bits): float(exact_area(poly)) for poly, bits, _ in ref}
    assert len(q) == len(ref)
    for bits, a in zip(q.pattern_bits().astype(int), q.areas()):
        assert a == pytest.approx(ref_area[tuple(bits)], rel=1e-12)


QUARTERS = st.lists(st.sampled_from([-0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75]), min_size=1, max_size=3, unique=True)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), act=st.sampled_from(["relu", "leaky"]), xs=QUARTERS, ys=QUARTERS,
       exact=st.sampled_from([True, True, False]))
def test_integer_nets(seed, act, xs, ys, exact):
    # integer weights, tiles cut at quarters: lines along tile edges, through tile corners,
    # concurrent and coincident
    net = integer_net([2, 5, 4, 2], seed=seed, act=act)
    q, p = tiled(net, BOX, ([-1.0] + sorted(xs) + [1.0], [-1.0] + sorted(ys) + [1.0]), exact=exact)
    assert_same(q, p)


def test_tiled_matches_exact_reference():
    net = mlp([2, 6, 5, 1], seed=2)
    q, _ = tiled(net, BOX, ([-1.0, -0.3, 0.4, 1.0], [-1.0, 0.2, 1.0]))
    ref = exact_regions(net, BOX)
    assert len(q) == len(ref)
    ref_area = {tuple(bits): float(exact_area(poly)) for poly, bits, _ in ref}
    assert {tuple(row) for row in q.pattern_bits().astype(int)} == set(ref_area)
    for bits, a in zip(q.pattern_bits().astype(int), q.areas()):
        assert a == pytest.approx(ref_area[tuple(bits)], rel=1e-9, abs=1e-12)


def test_slivers_below_float64_across_a_tile_edge():
    # two lines 1e-17 apart (3 * 0.3 != 0.9) cut two slivers that cross the tile edge x = 0:
    # stitched exactly, with their exact polygons and areas (from each vertex's own tile)
    net = mlp([2, 3, 1], act="relu")
    set_weights(net, [(np.array([[1.0, 2.0], [-3.0, -6.0], [1.0, -1.0]]), np.array([0.3, -0.9, 0.0])),
                      (np.ones((1, 3)), [0.0])])
    q, p = tiled(net, BOX, ([-1.0, 0.0, 1.0], [-1.0, 1.0]))
    assert len(q) == len(p) == 6 and q.subresolution.sum() == 2
    assert_same(q, p)
    for i in np.nonzero(q.subresolution)[0]:
        assert float(exact_area(q.exact_polygon(int(i)))) == pytest.approx(q.areas()[i], rel=1e-12)


def test_exact_false():
    net = integer_net([2, 5, 4, 1], seed=5, act="leaky")
    q, p = tiled(net, BOX, ([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]), exact=False)
    assert_same(q, p)


# ---- max_memory: the grid, the pure pieces, the errors


def test_max_memory_chooses_a_grid():
    net = reference_net(64)
    p = spatial.partition(net, BOX)
    q = spatial.partition(net, BOX, max_memory=2 ** 23)
    xs, ys = q._grid
    assert len(xs) > 2 and len(ys) > 2 and xs[0] == -1 and xs[-1] == 1
    assert len(q) == len(p) == 6674
    assert_same(q, p)
    whole = spatial.partition(net, BOX, max_memory=2 ** 32)  # fits: one piece
    assert [len(c) for c in whole._grid] == [2, 2] and len(whole) == 6674


@pytest.mark.parametrize("device", DEVICES)
def test_torch_device_path(device):
    net = reference_net(64)
    q = spatial.partition(net, BOX, max_memory=2 ** 23, device=device)
    assert len(q._grid[0]) > 2
    assert_same(q, spatial.partition(net, BOX))


def test_tiles_are_plain_arrays_that_stitch_anywhere():
    net, b = _partition._prepare(mlp([2, 8, 8, 2], seed=4), BOX, None)
    center = _partition._center(b)
    xs, ys = [-1.0, 0.0, 1.0], [-1.0, 0.5, 1.0]
    tiles = [_tiles._tile(net, (xs[i], xs[i + 1], ys[j], ys[j + 1]), center, b, _engine.DEFAULT_RTOL, True)
             for j in range(2) for i in range(2)]
    back = pickle.loads(pickle.dumps(tiles))  # what a worker process would send back
    q = _tiles._stitch(back, net, b, None, xs, ys, rtol=_engine.DEFAULT_RTOL, boundary=True)
    assert_same(q, _partition._one_piece(net, b, None, rtol=_engine.DEFAULT_RTOL, boundary=True, device=None,
                                         exact=True))


def test_max_memory_errors():
    net = mlp([2, 4, 1])
    for bad in ("1GB", 1.5, True, None.__class__):
        with pytest.raises(TypeError, match="max_memory must be a positive int"):
            spatial.partition(net, BOX, max_memory=bad)
    for bad in (0, -2 ** 20):
        with pytest.raises(ValueError, match="max_memory must be a positive int"):
            spatial.partition(net, BOX, max_memory=bad)
    with pytest.raises(ValueError, match=r"max_memory=1,000 bytes is too small.*smallest that works is about "
                                         r"[\d,]+ bytes"):
        spatial.partition(reference_net(32), BOX, max_memory=1000)
    with pytest.raises(ValueError, match="grid xs must increase from -1.0 to 1.0"):
        tiled(net, BOX, ([-1.0, 1.0, 0.0, 1.0], [-1.0, 1.0]))


def test_tiles_on_dask_workers():
    """Each tile a task on a local Dask cluster of 2 processes: the same partition (a dense net,
    a max-pooling conv net and a residual one: their layers travel to the workers)."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        for name in ("relu", "maxpool", "residual_conv"):
            make, bounds, grid = CASES[name]
            model, plane = make()
            net, b = _partition._prepare(model, bounds, plane)
            kw = dict(rtol=_engine.DEFAULT_RTOL, boundary=True, device=None, exact=True)
            assert_same(_tiles.tiled(net, b, plane, grid=grid, client=client, **kw),
                        _partition._one_piece(net, b, plane, **kw))
        big = reference_net(32)
        q = spatial.partition(big, BOX, max_memory=2 ** 20, client=client)
        assert len(q._grid[0]) > 2 and len(q) == len(spatial.partition(big, BOX)) == 1235
        assert spatial.count_regions(big, BOX, max_memory=2 ** 18, client=client) == 1235
        model, plane = conv_pool()
        assert spatial.count_regions(model, (-1.0, 1.5, -1.0, 1.5), plane=plane, max_memory=2 ** 16,
                                     client=client) == len(spatial.partition(model, (-1.0, 1.5, -1.0, 1.5), plane=plane))
    with pytest.raises(ValueError, match="client= partitions tiles on Dask workers: give max_memory="):
        spatial.partition(big, BOX, client=object())


@pytest.mark.parametrize("name", sorted(CASES))
def test_count_regions_equals_the_partitions_count(name):
    make, bounds, grid = CASES[name]
    model, plane = make()
    n = len(spatial.partition(model, bounds, plane=plane))
    assert spatial.count_regions(model, bounds, plane=plane) == n
    net, b = _partition._prepare(model, bounds, plane)
    xs, ys = grid
    # the forced grid's tiles: the pieces along tile edges matched by their patterns
    parts = [_tiles._tile_count(net, (xs[i], xs[i + 1], ys[j], ys[j + 1]), _partition._center(b), b,
                                _engine.DEFAULT_RTOL, True) for j in range(len(ys) - 1) for i in range(len(xs) - 1)]
    edge = np.concatenate([k for _, k in parts])
    assert sum(c for c, _ in parts) + len(np.unique(edge, axis=0)) == n
    assert sum(c for c, _ in parts) < n  # some regions do cross tile edges


def test_count_regions_in_tiles_against_the_exact_reference():
    net = reference_net(32)
    assert spatial.count_regions(net, BOX, max_memory=2 ** 20) == 1235  # the exact rational count
    with pytest.raises(ValueError, match="max_memory must be a positive int"):
        spatial.count_regions(net, BOX, max_memory=0)
