"""Max-pooling regions (spatial/_maxpool.py): the engine's merged cells against the independent
exact reference (tests/_exact_graph.py), verify(), the output maps, locate() and the bits."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from common import (DEVICES, assert_graph_matches_exact, assert_maps_equal_model, assert_same_on_device, dyadic_images,
                    dyadic_model)
from splinescope import spatial
from splinescope.spatial import _maxpool
from splinescope.spatial._net import parse

torch.set_num_threads(1)
D = torch.float64


class Amax(nn.Module):
    """A subclass with a max over a dimension: max of 3 affine pieces per window."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 6)
        self.fc2 = nn.Linear(2, 2)

    def forward(self, x):
        h = self.fc1(x).view(-1, 2, 3)
        return self.fc2(torch.relu(h.amax(dim=2)))


def _conv_pool():
    return nn.Sequential(nn.Conv2d(1, 2, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8, 1))


def _conv_adaptive():
    return nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(2, 3))


def _pool_conv():  # a splitting layer after the pooling: its cells are merged before it splits
    return nn.Sequential(nn.Conv2d(1, 2, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 3, 2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(27, 2))


def _pool_dense():
    return nn.Sequential(nn.Conv2d(1, 3, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 5),
                         nn.ReLU(), nn.Linear(5, 2))


def _two_pools():  # two max-poolings: every cell merged after the second one's last round
    return nn.Sequential(nn.Conv2d(1, 2, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 2, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))


def _pad_single():  # every window one element and padding: a selection, not a max
    return nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.MaxPool2d(2, stride=2, padding=1), nn.Flatten(),
                         nn.Linear(4, 1))


def _pad_wide():  # windows of 9 entries with at most 4 elements: two rounds, not four
    return nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(),
                         nn.Linear(8, 1))


CASES = {  # name: (model, seed, plane input shape or None, bounds)
    "maxpool2d": (_conv_pool, 1, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "adaptive": (_conv_adaptive, 2, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "amax": (Amax, 3, None, (-2.0, 2.0, -2.0, 2.0)),
    "pool_conv": (_pool_conv, 4, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "pool_dense": (_pool_dense, 5, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "two_pools": (_two_pools, 0, (1, 4, 4), (-1.0, 1.5, -1.0, 1.5)),
    "pad_single": (_pad_single, 0, (1, 2, 2), (-1.0, 1.5, -1.0, 1.5)),
    "pad_wide": (_pad_wide, 0, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
}


def _case(name):
    make, seed, shape, bounds = CASES[name]
    model = dyadic_model(make(), seed)
    plane = None if shape is None else spatial.Plane.through(*dyadic_images(seed, shape))
    return model, plane, bounds


@pytest.mark.parametrize("name", sorted(CASES))
def test_regions_equal_exact_reference(name):
    model, plane, bounds = _case(name)
    p, ref = assert_graph_matches_exact(model, bounds, plane=plane)
    # the max is read as a tournament, not refused; over one element and padding, as a selection
    assert bool(p.network.max_info) == (name != "pad_single")


def test_candidates_that_tie_at_a_vertex_across_two_poolings_equal_exact_reference():
    # two max-poolings with no splitting layer between, two pixels the same constant: at the
    # point (1/2, 1/4) four candidates are 0, and the second pooling's comparison there came out
    # -1.3e-16 (the running maxima interpolated from values of size 1) against a tolerance of
    # 1e-29 (the size of the activations at the vertex): two regions of zero area
    o = np.array([[0.0, 0.0, 0.5], [-1.0, 0.25, -4.0], [-4.0, -4.0, 0.0]])
    u = np.array([[-0.5, 0.0, -1.0], [0.0, -0.5, 0.0], [0.0, 0.0, 0.0]])
    v = np.array([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    plane = spatial.Plane.through(o[None], (o + u)[None], (o + v)[None])
    for second in (nn.MaxPool2d(2, stride=1), nn.AdaptiveMaxPool2d(1)):
        model = nn.Sequential(nn.MaxPool2d(2, stride=1), second, nn.Flatten()).double().eval()
        p, ref = assert_graph_matches_exact(model, (0.25, 0.625, 0.125, 0.375), plane=plane)
        assert len(p) == 4 and (p.areas() > 0).all()


def test_locate_finds_points_where_a_float_forward_pass_breaks_a_tie():
    # overlapping windows that share their argmax, then a max of the two: the two maxima are one
    # affine function, but the float64 tournament (b + relu(a - b)) rounds one of them by an ulp,
    # so the point's pattern named no region (-1 for 4% of the points)
    import shapely
    model = nn.Sequential(nn.MaxPool1d(2, stride=1), nn.MaxPool1d(2)).double().eval()
    plane = spatial.Plane.through(np.array([[-1.0, 0.0, 1.0]]), np.array([[-1.0, 0.25, 0.0]]),
                                  np.array([[-1.0, 0.0, 0.5]]))
    p, ref = assert_graph_matches_exact(model, (-1.0, 1.0, -1.0, 1.0), plane=plane)
    pts = np.random.default_rng(0).uniform(-1, 1, size=(4000, 2))
    i = p.locate(pts)
    assert (i >= 0).all()
    polys = p.to_shapely()
    assert all(shapely.intersects(polys[k], shapely.Point(*q)) for k, q in zip(i, pts))
    assert (p.locate([[1.5, 0.0], [0.0, -2.0]]) == -1).all()  # outside the box


def _count_marks(monkeypatch, into: list) -> None:
    """Make ``_engine._mark_structural`` append to ``into`` how many values each call marks."""
    from splinescope.spatial import _engine, _predicates

    f = _engine._mark_structural

    def counting(z, dead, m, nxt, zn, free, marked):
        before = int(_predicates.decided_zero(zn).sum())
        f(z, dead, m, nxt, zn, free, marked)
        into.append(int(_predicates.decided_zero(zn).sum()) - before)

    monkeypatch.setattr(_engine, "_mark_structural", counting)


@pytest.mark.parametrize("seed", range(4))
def test_dead_units_zero_by_structure_equal_exact_reference(seed, monkeypatch):
    # biases pushed down: many units are dead in parts of the box, so round-one comparisons of
    # two dead units, and round-two comparisons of the running maxima they carry, are 0 by
    # structure; the fast pass marks them decided (never asking the exact side) and the regions
    # still equal the exact reference's
    model = dyadic_model(_conv_pool(), 10 + seed)
    with torch.no_grad():
        model[0].bias.sub_(0.75)
    plane = spatial.Plane.through(*dyadic_images(10 + seed, (1, 3, 3)))
    marks: list = []
    _count_marks(monkeypatch, marks)
    assert_graph_matches_exact(model, (-1.5, 2.0, -1.5, 2.0), plane=plane)
    assert sum(marks) > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_affine_maps_equal_model_at_centroids(name):
    model, plane, bounds = _case(name)
    assert_maps_equal_model(model, bounds, plane=plane)


@pytest.mark.parametrize("device", DEVICES)
def test_device_path_gives_the_same_regions(device):
    """partition(device=...): the tournaments' forward pass of the vertices runs there."""
    for name in sorted(CASES):
        model, plane, bounds = _case(name)
        assert_same_on_device(model, bounds, plane, device)


@pytest.mark.parametrize("name", ["pool_conv", "pool_dense", "two_pools"])
def test_cells_merged_before_later_layers_equal_the_merge_at_the_end(name, monkeypatch):
    # partition() merges the max-pooling cells right after the last tournament round; merged at
    # the end instead (every layer splitting cells), the regions, their patterns, vertices and
    # output maps are the same
    from splinescope.spatial import _partition

    model, plane, bounds = _case(name)
    p = spatial.partition(model, bounds, plane=plane)
    assert _partition._merge_layer(p.network) is not None
    monkeypatch.setattr(_partition, "_merge_layer", lambda net: None)
    q = spatial.partition(model, bounds, plane=plane)
    assert len(p) == len(q)
    key = [bytes(r) for r in p.patterns]
    o = sorted(range(len(p)), key=key.__getitem__)
    o2 = sorted(range(len(q)), key=[bytes(r) for r in q.patterns].__getitem__)
    np.testing.assert_array_equal(p.patterns[o], q.patterns[o2])
    np.testing.assert_allclose(p.areas()[o], q.areas()[o2], rtol=1e-12)
    np.testing.assert_allclose(p.affine_maps()[o], q.affine_maps()[o2], rtol=1e-12, atol=1e-14)
    pv, qv = np.unique(p.vertices.round(12), axis=0), np.unique(q.vertices.round(12), axis=0)
    np.testing.assert_allclose(pv, qv, atol=1e-12)
    assert p.verify().ok and q.verify().ok


def test_merge_is_needed():
    # without the merge, cells split by comparisons between two losers would be extra regions:
    # the cells of the raw tournament outnumber the regions
    model, plane, bounds = _case("maxpool2d")
    p = spatial.partition(model, bounds, plane=plane)
    rng = np.random.default_rng(0)
    st = rng.uniform([bounds[0], bounds[2]], [bounds[1], bounds[3]], size=(4000, 2))
    net = p.network
    zs = [z[:, :l.units] > 0 for z, l in zip(net.forward(st)[:-1], net.layers)]
    raw = np.concatenate(zs, 1)
    canon = _maxpool.canonical(raw, net, p.layer_sizes)
    assert len(np.unique(raw, axis=0)) > len(np.unique(canon, axis=0))
    assert len(np.unique(canon, axis=0)) <= len(p)  # sampling is a lower bound


def test_argmax_of_a_hand_tournament():
    # amax over 3 candidates of pieces (s, t, -s): argmax read back from the bits agrees with numpy
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 3, bias=False).double()
            with torch.no_grad():
                self.fc.weight.copy_(torch.tensor([[1, 0], [0, 1], [-1, 0]], dtype=D))

        def forward(self, x):
            return self.fc(x).amax(dim=1, keepdim=True)

    net = parse(M(), in_shape=(2,))
    pts = np.random.default_rng(1).normal(size=(500, 2))
    zs = [z[:, :l.units] > 0 for z, l in zip(net.forward(pts)[:-1], net.layers)]
    bits = np.concatenate(zs, 1)
    sizes = [l.units for l in net.hidden]
    (A,) = _maxpool.argmax(bits, net, sizes)
    cand = np.stack([pts[:, 0], pts[:, 1], -pts[:, 0]], 1)
    np.testing.assert_array_equal(A[:, 0], cand.argmax(1))
    assert _maxpool.relevant(bits, net, sizes).any(1).all()


class _Wide(nn.Module):
    """Windows of 17 and 3 candidates (a max over a dimension), and 9 (a 3x3 pooling)."""

    def __init__(self):
        super().__init__()
        self.fa, self.fb, self.fc = nn.Linear(2, 17), nn.Linear(2, 3), nn.Linear(2, 9)

    def forward(self, x):
        a = torch.cat([self.fa(x).amax(1, keepdim=True), self.fb(x).amax(1, keepdim=True)], 1)
        b = nn.functional.max_pool2d(torch.relu(self.fc(x)).reshape(-1, 1, 3, 3), 3).flatten(1)
        return torch.cat([a, b], 1)


@pytest.mark.parametrize("make, shape", [(_two_pools, (1, 4, 4)), (_pad_wide, (1, 3, 3)), (Amax, (2,)),
                                         (_Wide, (2,)), (lambda: nn.Sequential(nn.AdaptiveMaxPool2d(2)), (1, 5, 5))])
def test_canonical_packed_equals_the_boolean_replay(make, shape, monkeypatch):
    # the bit-sliced replay (8 patterns a byte, candidates as bit planes) against the boolean one,
    # on random bits (any tournament state), over several chunks and a partial last byte
    monkeypatch.setattr(_maxpool, "CHUNK", 1000)
    torch.manual_seed(0)
    net = parse(make().double().eval(), in_shape=shape)
    sizes = [l.units for l in net.hidden]
    bits = np.random.default_rng(0).random((2501, sum(sizes))) < 0.5
    want = np.packbits(_maxpool.canonical(bits, net, sizes), axis=1)
    got = _maxpool.canonical_packed(np.packbits(bits, axis=1), net, sizes)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(want, np.packbits(bits, axis=1))  # the replay changed bits


def _conv_pool3():
    return nn.Sequential(nn.Conv2d(1, 2, 2, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2), nn.Flatten(),
                         nn.Linear(8, 2))


@pytest.mark.parametrize("name", sorted(CASES) + ["pool3"])
def test_certify_on_max_pooling(name):
    pytest.importorskip("cdd")  # pycddlib (libcdd) may be absent: certify() needs it
    # cdd's exact vertices of each merged region (its argmax against every rival, ExactNet's maps)
    # are the engine's corners; a moved corner is caught
    if name == "pool3":  # 9 overlapping candidates per window: rounds with a bye
        model = dyadic_model(_conv_pool3(), 4)
        plane, bounds = spatial.Plane.through(*dyadic_images(4, (1, 4, 4))), (-1.0, 1.5, -1.0, 1.5)
    else:
        model, plane, bounds = _case(name)
    p = spatial.partition(model, bounds, plane=plane)
    sel = range(0, len(p), 1 if len(p) < 300 else 9)  # pool3: 1351 regions, every 9th (~10 ms each)
    rep = p.certify(regions=sel)
    assert rep.ok and rep.regions == len(sel) > 10 and rep.max_deviation < 1e-12
    v = p.indices[p.offsets[2]]
    p.vertices[v] += 1e-6
    assert not p.certify(regions=[2], raise_on_error=False).ok


def test_duels_compare_the_argmax_with_every_rival():
    # amax over the 5 pieces (s, t, -s, -t, s + t + 1/2): at random points, the duels' values are
    # v_argmax - v_j for each other candidate j, once each (the tournament path alone has 3)
    from splinescope.spatial._predicates import ExactNet

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 5).double()
            with torch.no_grad():
                self.fc.weight.copy_(torch.tensor([[1, 0], [0, 1], [-1, 0], [0, -1], [1, 1]], dtype=D))
                self.fc.bias.copy_(torch.tensor([0, 0, 0, 0, 0.5], dtype=D))

        def forward(self, x):
            return self.fc(x).amax(dim=1, keepdim=True)

    p = spatial.partition(M(), (-2.0, 2.0, -2.0, 2.0))
    net, sizes, center = p.network, p.layer_sizes, np.asarray(p._center)
    first = np.concatenate([[0], np.cumsum(sizes)])
    ex = ExactNet(net.layers, center, p.bounds)  # maps in coordinates local to the center
    pts = np.random.default_rng(5).uniform(-2, 2, size=(40, 2))
    zs = [z[:, :l.units] > 0 for z, l in zip(net.forward(pts)[:-1], net.layers)]
    bits = _maxpool.canonical(np.concatenate(zs, 1), net, sizes)
    for x, b in zip(pts, bits):
        cand = np.array([x[0], x[1], -x[0], -x[1], x[0] + x[1] + 0.5])
        w = cand.argmax()
        got = []
        for b2, cols, sign in _maxpool.duels(b, net, sizes):
            for c, s in zip(cols, sign):
                li = int(np.searchsorted(first, c, side="right") - 1)
                a, bb, cc = ex._map(li, b2[:first[li]].astype(np.uint8).tobytes()).floats()[c - first[li]]
                got.append(s * (a * (x[0] - center[0]) + bb * (x[1] - center[1]) + cc))
        np.testing.assert_allclose(np.sort(got), np.sort(cand[w] - np.delete(cand, w)), atol=1e-12)


def test_exact_polygons_are_rational():
    # the exact form of an operation network stays in Fractions (a float constant once turned a
    # stage's exact values into floats, and verify() judged thin regions in float64)
    from fractions import Fraction

    model, plane, bounds = _case("maxpool2d")
    p = spatial.partition(model, bounds, plane=plane)
    pts = [c for i in range(len(p)) for v in p.exact_polygon(i) for c in v]
    assert pts and all(type(c) is Fraction for c in pts)


def test_structural_zeros_in_small_chunks_give_the_same_partition(monkeypatch):
    # the structural-zero passes run in chunks of rows; chunks of one or a few rows change nothing
    from splinescope.spatial import _engine, _predicates

    model = dyadic_model(_conv_pool3(), 4)
    plane = spatial.Plane.through(*dyadic_images(4, (1, 4, 4)))
    bounds = (-1.0, 1.5, -1.0, 1.5)
    calls = []
    for mod, name in ((_predicates.ExactNet, "structural_zero"), (_engine, "_structural_block"),
                      (_engine, "_mark_structural")):  # (the last one counted again by _count_marks)
        f = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _f=f, _n=name, **k: calls.append(_n) or _f(*a, **k))
    decided = []  # how many values each run decides zero by structure (not by exact arithmetic)
    f = _engine._structural_zeros
    monkeypatch.setattr(_engine, "_structural_zeros", lambda *a: decided.append(int(f(*a).sum())) or f(*a))
    _count_marks(monkeypatch, decided)
    p = spatial.partition(model, bounds, plane=plane)
    assert set(calls) == {"structural_zero", "_structural_block", "_mark_structural"}  # every pass runs here
    n, first = len(calls), sum(decided)
    monkeypatch.setattr(_predicates, "CHUNK_ELEMENTS", 7)
    monkeypatch.setattr(_engine, "OP_CHUNK_ELEMENTS", 7)
    monkeypatch.setattr(_engine, "OP_CHUNK_ROWS", 1)
    q = spatial.partition(model, bounds, plane=plane)
    assert len(calls) > 2 * n  # now in many chunks
    assert sum(decided) - first == first > 0
    assert len(q) == len(p)
    np.testing.assert_array_equal(q.patterns, p.patterns)
    np.testing.assert_array_equal(q.vertices, p.vertices)
    np.testing.assert_array_equal(q.offsets, p.offsets)


def test_merge_refuses_an_edge_of_three_faces():
    # three triangles on the edge (0, 1): not a planar subdivision, which the twin search relies on
    X = np.array([[0, 0], [1, 0], [0, 1], [0, -1], [1, 1]], np.float64)
    offsets = np.array([0, 3, 6, 9])
    indices = np.array([0, 1, 2, 1, 0, 3, 0, 1, 4])
    net = type("Net", (), {"max_info": []})()
    with pytest.raises(spatial.SplinescopeError, match="more than two faces"):
        _maxpool.merge(X, offsets, indices, np.eye(3, dtype=np.uint8), net, [3], np.array([0, 1, 2, 3]))


def test_merge_joins_the_faces_of_one_pattern_and_drops_their_collinear_points():
    # two squares of one pattern side by side under two of other patterns: the pair becomes one
    # rectangle; the point where their shared edge met the bottom side is dropped (a collinear
    # point of two edges), the one on the top side stays (three edges meet there)
    X = np.array([[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1], [0, 2], [2, 2], [1, 2]], np.float64)
    offsets = np.array([0, 4, 8, 12, 16])
    indices = np.array([0, 1, 4, 3, 1, 2, 5, 4, 3, 4, 8, 6, 4, 5, 7, 8])
    net = type("Net", (), {"max_info": []})()
    pats = np.array([[1], [1], [2], [3]], np.uint8)
    mg = _maxpool.merge(X, offsets, indices, pats, net, [2], np.array([0, 2, 6, 7]))
    assert mg.offsets.tolist() == [0, 5, 9, 13]
    assert mg.keep.tolist() == [0, 2, 3, 4, 5, 6, 7, 8]  # vertex 1 dropped
    assert mg.first.tolist() == [0, 2, 3]
    assert mg.X[mg.indices[:5]].tolist() == [[0, 0], [2, 0], [2, 1], [1, 1], [0, 1]]
    np.testing.assert_array_equal(mg.patterns, pats[[0, 2, 3]])
