"""spatial.partition against independent methods: exact rational regions, dense sampling."""

import numpy as np
import pytest
import shapely
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splinescope import spatial
from splinescope.spatial._net import parse

from _exact import area as _exact_area
from _exact import argmax_boundary_length, exact_regions, zero_set_length
from common import DEVICES, L, assert_matches_exact, integer_net, mlp, reference_net, set_weights

BOX = (-1.0, 1.0, -1.0, 1.0)

try:
    import cdd.gmp  # noqa: F401

    HAVE_CDD = True
except ImportError:  # pragma: no cover - CI installs pycddlib
    HAVE_CDD = False


def pattern_set(p):
    return {tuple(row) for row in p.pattern_bits().astype(int)}




# ---- the reference counts of the issue


@pytest.mark.parametrize("width,count", [(32, 1235), (64, 6674), (128, 20609)])
def test_reference_counts(width, count):
    p = spatial.partition(reference_net(width), bounds=BOX)
    assert len(p) == count
    assert p.areas().sum() == pytest.approx(4.0, rel=1e-12)
    p.verify()


# ---- exact rational reference on small networks


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("act", ["relu", "leaky"])
def test_random_nets_match_exact(seed, act):
    assert_matches_exact(mlp([2, 6, 5, 1], act=act, seed=seed))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), act=st.sampled_from(["relu", "leaky"]))
def test_integer_weight_nets_match_exact(seed, act):
    # integer weights: lines through box corners, along box edges, concurrent and coincident lines
    assert_matches_exact(integer_net([2, 5, 4, 1], seed=seed, act=act))


def deeper_plane_case(seed, act):
    """An integer 4-6-5-4-2 net on an integer plane of its inputs, checked against the exact reference."""
    net = integer_net([4, 6, 5, 4, 2], seed=seed, act=act, lo=-3, hi=3)
    rng = np.random.default_rng(seed)
    o, u, v = (rng.integers(-2, 3, 4).astype(float) for _ in range(3))
    if np.linalg.matrix_rank(np.stack([u, v])) < 2:
        u, v = np.eye(4)[0], np.eye(4)[1]
    return assert_matches_exact(net, bounds=(-2, 2, -2, 2), plane=spatial.Plane(o, u, v))[0]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), act=st.sampled_from(["relu", "leaky"]))
def test_deeper_integer_nets_on_a_plane_match_exact(seed, act):
    p = deeper_plane_case(seed, act)
    if HAVE_CDD:  # and pycddlib's rational arithmetic finds the same corners
        assert p.certify().max_deviation < 1e-12


@pytest.mark.skipif(not HAVE_CDD, reason="needs pycddlib")
def test_certify_on_an_edge_shorter_than_float64_resolves():
    # found by hypothesis: region 15's exact polygon has an edge 4e-19 long at the box corner
    # (-2, 2); the partition keeps both of its vertices, which round to one float64 point
    p = deeper_plane_case(1168, "leaky")
    poly = p.polygon(15)
    assert len(poly) == 5 and (poly[0] == poly[1]).all()
    rep = p.certify()
    assert rep.regions == len(p) and rep.max_deviation < 1e-12


@pytest.mark.skipif(not HAVE_CDD, reason="needs pycddlib")
def test_certify_on_a_subresolution_sliver():
    # found by hypothesis (seed 2767): region 11 is a sliver of area 3e-33 at the box corner
    # (-2, -2), whose exact corners round to two float64 points; certify() compared floats and
    # called it empty, and its neighbour's corners mismatched. Now both compare exactly.
    p = deeper_plane_case(2767, "leaky")
    sliver = np.flatnonzero(p.subresolution)
    assert len(sliver) == 1 and p.areas()[sliver[0]] < 1e-30
    rep = p.certify()
    assert rep.ok and rep.regions == len(p) and rep.max_deviation < 1e-12


def test_bias_free_layers_meet_at_the_origin():
    net = mlp([2, 8, 8, 1], seed=3, bias=False)
    p, _ = assert_matches_exact(net)
    # every region touches the origin, and the origin is one vertex, not a cloud
    near = np.linalg.norm(p.vertices, axis=1) < 1e-9
    assert near.sum() == 1
    assert np.abs(p.vertices[near]).max() == 0.0


def test_duplicated_and_scaled_neurons_are_one_line():
    net = mlp([2, 6, 1], act="relu")
    w = np.array([[1.0, 2.0], [1.0, 2.0], [-3.0, -6.0], [0.5, 1.0], [1.0, -1.0], [2.0, -2.0]])
    b = np.array([0.25, 0.25, -0.75, 0.125, 0.0, 0.0])  # exact multiples: truly coincident lines
    set_weights(net, [(w, b), (np.ones((1, 6)), [0.0])])
    p, _ = assert_matches_exact(net)
    assert len(p) == 4  # two distinct lines crossing in the box


def test_lines_one_rounding_apart():
    # 3 * 0.3 != 0.9 in float64: in exact arithmetic these lines are 1e-17 apart and cut two
    # slivers. exact=True keeps them, flagged, with their exact areas; exact=False merges the
    # lines (below the tolerance they are one line), and verify() passes both ways.
    net = mlp([2, 3, 1], act="relu")
    set_weights(net, [(np.array([[1.0, 2.0], [-3.0, -6.0], [1.0, -1.0]]), np.array([0.3, -0.9, 0.0])),
                      (np.ones((1, 3)), [0.0])])
    p, ref = assert_matches_exact(net)
    assert len(p) == 6 and p.subresolution.sum() == 2
    assert sorted(p.areas())[:2] == pytest.approx(sorted(float(_exact_area(q)) for q, _, _ in ref)[:2], rel=1e-12)
    merged = spatial.partition(net, bounds=BOX, exact=False)
    assert len(merged) == 4 and merged.areas().min() > 0.1
    merged.verify()


def test_lines_along_box_edges_and_through_corners():
    net = mlp([2, 4, 1], act="relu")
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    b = np.array([1.0, -1.0, 0.0, 0.0])  # x = -1 and y = 1 are box edges; the diagonals hit corners
    set_weights(net, [(w, b), (np.ones((1, 4)), [0.0])])
    p, _ = assert_matches_exact(net)
    assert len(p) == 4


def test_dead_and_constant_neurons():
    net = mlp([2, 4, 3, 1], act="relu", seed=1)
    w1 = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.5], [-0.5, 1.0]])
    b1 = np.array([0.0, 2.0, 0.1, -0.2])  # one neuron identically 0, one constant 2
    w2 = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, -1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    set_weights(net, [(w1, b1), (w2, [0.0, -1.5, 0.0]), (np.ones((1, 3)), [0.0])])
    assert_matches_exact(net)


@pytest.mark.parametrize("scale", [1e-4, 1e4])
def test_scaled_networks(scale):
    net = mlp([2, 6, 5, 1], seed=7)
    with torch.no_grad():
        for m in net:
            if isinstance(m, L.Linear):
                m.weight.mul_(scale)
                m.bias.mul_(scale)
    p_scaled, _ = assert_matches_exact(net, bounds=tuple(v / scale for v in BOX) if scale > 1 else BOX)


def test_tiny_and_huge_boxes():
    net = mlp([2, 6, 5, 1], seed=2)
    assert_matches_exact(net, bounds=(-1e-3, 1e-3, -1e-3, 1e-3))
    assert_matches_exact(net, bounds=(-1e3, 1e3, -1e3, 1e3))


def test_a_box_far_from_the_origin():
    net = mlp([2, 8, 6, 1], seed=3)
    with torch.no_grad():  # the same network moved to (100, -3): its lines cross the box there
        net[0].bias -= net[0].weight @ torch.tensor([100.0, -3.0], dtype=torch.float64)
    p, _ = assert_matches_exact(net, bounds=(99.5, 100.5, -3.5, -2.5))
    assert len(p) == len(spatial.partition(mlp([2, 8, 6, 1], seed=3), bounds=(-0.5, 0.5, -0.5, 0.5))) > 1


def test_plane_slice_of_a_high_dimensional_net():
    torch.manual_seed(5)
    net = L.Sequential(L.Flatten(), L.Linear(12, 8), L.ReLU(), L.Linear(8, 6), L.LeakyReLU(0.1), L.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(1)
    a, b, c = (torch.rand(3, 4, generator=g) for _ in range(3))
    plane = spatial.Plane.through(a, b, c)
    p, _ = assert_matches_exact(net, bounds=(-0.2, 1.2, -0.2, 1.2), plane=plane)
    # the slice's corners are the images: the partition's outputs there match the model's
    st = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        want = net(torch.stack([a, b, c]).double()).numpy()
    i = p.locate(st)
    A = p.affine_maps()[i]
    got = A[:, :, 0] * st[:, :1] + A[:, :, 1] * st[:, 1:] + A[:, :, 2]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_float32_weights_are_read_exactly():
    net32 = mlp([2, 16, 16, 1], seed=4, dtype=torch.float32)
    net64 = mlp([2, 16, 16, 1], seed=4, dtype=torch.float32).double()
    p32 = spatial.partition(net32, bounds=BOX)
    p64 = spatial.partition(net64, bounds=BOX)
    assert len(p32) == len(p64)
    np.testing.assert_array_equal(p32.vertices, p64.vertices)


def test_batchnorm_prelu_dropout_identity_nested():
    torch.manual_seed(0)
    bn = L.BatchNorm1d(6)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    net = L.Sequential(L.Linear(2, 6), bn, L.PReLU(init=0.2), L.Sequential(L.Dropout(0.5), L.Identity(),
                       L.Linear(6, 5), L.ReLU()), L.Linear(5, 2)).double().eval()
    # the reference folds Linear and BatchNorm in Fractions, the engine in float64: one rounding
    # of the folded weights apart, far below the comparison's rel=1e-9
    p, _ = assert_matches_exact(net)
    # the folded network computes what the module computes
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        np.testing.assert_allclose(parse(net)(x.numpy()), net(x).numpy(), rtol=1e-12, atol=1e-12)


def test_consecutive_linear_layers_are_composed():
    # small integer weights: the engine's float64 composition is exact, as the reference's is
    rng = np.random.default_rng(2)
    net = L.Sequential(L.Linear(2, 4), L.Linear(4, 5), L.ReLU(), L.Sequential(L.Linear(5, 3), L.Identity()),
                       L.Linear(3, 4), L.LeakyReLU(0.25), L.Linear(4, 1)).double()
    set_weights(net, [(rng.integers(-2, 3, (m.out_features, m.in_features)), rng.integers(-2, 3, m.out_features))
                      for m in net.modules() if isinstance(m, L.Linear)])
    p, ref = assert_matches_exact(net, bounds=(-2, 2, -2, 2))
    assert len(p) > 4 and [l.width for l in parse(net).layers] == [5, 4, 1]


def test_torchscript_model():
    net = mlp([2, 6, 5, 1], seed=3)
    scripted = torch.jit.script(net)
    assert len(spatial.partition(scripted, bounds=BOX)) == len(spatial.partition(net, bounds=BOX))


# ---- the torch path (a GPU where there is one)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_device_path_gives_the_same_regions(device):
    for net in (reference_net(32), integer_net([2, 7, 6, 2], seed=4, act="leaky"), mlp([2, 9, 1], bias=False)):
        a = spatial.partition(net, bounds=BOX)
        b = spatial.partition(net, bounds=BOX, device=device)
        assert len(a) == len(b)
        assert pattern_set(a) == pattern_set(b)
        np.testing.assert_allclose(np.sort(a.areas()), np.sort(b.areas()), rtol=1e-9, atol=1e-15)
        b.verify()


# ---- dense sampling on larger networks


@pytest.mark.parametrize("width", [32, 64])
def test_dense_sampling_is_a_lower_bound_and_a_subset(width):
    net = reference_net(width)
    p = spatial.partition(net, bounds=BOX)
    g = np.linspace(-1, 1, 700)
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    zs = parse(net).forward(pts)[:-1]
    sampled = {r.tobytes() for r in np.packbits(np.concatenate([z > 0 for z in zs], 1), axis=1)}
    mine = {r.tobytes() for r in p.patterns}
    assert sampled <= mine
    assert len(mine) >= len(sampled)
    # every sampled point lies in the polygon of the region of its pattern
    i = p.locate(pts[::997])
    polys = p.to_shapely()
    assert all(shapely.intersects(polys[k], shapely.Point(*q).buffer(1e-9)) for k, q in zip(i, pts[::997]))


def test_locate_in_chunks_of_points_equals_locate_at_once(monkeypatch):
    from splinescope.spatial import _verify
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 2), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(16, 2)).double()
    a, b, c = (torch.rand(1, 5, 5, dtype=torch.float64).numpy() for _ in range(3))
    p = spatial.partition(net, (0, 1, 0, 1), plane=spatial.Plane.through(a, b, c))
    pts = np.random.default_rng(0).uniform(-0.1, 1.1, (3000, 2))
    whole = p.locate(pts)
    monkeypatch.setattr(_verify, "CHUNK_ELEMENTS", 1)  # 16 points per chunk
    assert (p.locate(pts) == whole).all() and (whole >= 0).sum() > 2000 and len(np.unique(whole)) > 10


# ---- the decision boundary


@pytest.mark.parametrize("seed", range(3))
def test_zero_set_matches_exact_length(seed):
    net = mlp([2, 6, 5, 1], seed=seed)
    with torch.no_grad():
        net[-1].bias.fill_(0.0)  # put the zero set inside the box
        net[-1].bias.sub_(float(net(torch.zeros(1, 2, dtype=torch.float64))))
    p = spatial.partition(net, bounds=BOX)
    ref = exact_regions(net, BOX)
    seg = p.boundary
    length = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum()
    assert length > 0
    assert length == pytest.approx(zero_set_length(ref), rel=1e-9)
    # both ends of every segment are zeros of the network
    ends = seg.reshape(-1, 2)
    np.testing.assert_allclose(parse(net)(ends)[:, 0], 0.0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_argmax_boundary_matches_exact_length(seed):
    net = mlp([2, 6, 5, 4], seed=seed)
    with torch.no_grad():  # all four classes tie at the origin: the boundary runs through the box
        net[-1].bias.sub_(net(torch.zeros(1, 2, dtype=torch.float64))[0])
    p = spatial.partition(net, bounds=BOX)
    ref = argmax_boundary_length(exact_regions(net, BOX))
    seg = p.boundary
    length = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum()
    assert ref > 0
    assert length == pytest.approx(ref, rel=1e-9)


def assert_boundary_is_where_the_top_changes(seg, f, g):
    """Every segment's midpoint and ends are a tie between the two top classes of ``f`` (points ->
    logits), and neighbouring points of the grid ``g`` x ``g`` with different top classes are
    separated by a segment. Returns the segments as one shapely geometry."""
    for pts in (seg.mean(1), seg[:, 0], seg[:, 1]):
        v = np.sort(f(pts), axis=1)
        np.testing.assert_allclose(v[:, -1], v[:, -2], atol=1e-10)
    P = np.stack(np.meshgrid(g, g), -1)
    top = f(P.reshape(-1, 2)).argmax(1).reshape(P.shape[:2])
    lines = shapely.MultiLineString([s for s in seg])
    changes = np.nonzero(top[:, 1:] != top[:, :-1])
    assert len(changes[0]) > 0
    for r, c in zip(*changes):
        assert shapely.LineString([P[r, c], P[r, c + 1]]).intersects(lines)
    return lines


def test_multiclass_boundary_only_where_the_top_class_changes():
    net = mlp([2, 16, 16, 4], seed=11)
    p = spatial.partition(net, bounds=BOX)
    seg = p.boundary
    assert len(seg) > 0
    lines = assert_boundary_is_where_the_top_changes(seg, parse(net), np.linspace(-1, 1, 120))
    # and nowhere else: a pairwise line between two classes that are never on top is not drawn
    lines_len = lines.length
    assert lines_len < 2 * 4 * 6  # far fewer than all pairwise lines through the box


@pytest.mark.parametrize("seed", range(2))
def test_twelve_class_boundary_matches_exact_length(seed):
    # twelve classes tied at the origin: faces with many candidates, pairs that only some faces need
    net = mlp([2, 6, 5, 12], seed=seed)
    with torch.no_grad():
        net[-1].bias.sub_(net(torch.zeros(1, 2, dtype=torch.float64))[0])
    p = spatial.partition(net, bounds=BOX)
    ref = argmax_boundary_length(exact_regions(net, BOX))
    seg = p.boundary
    assert ref > 0
    assert np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum() == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("K", [100, 3000])
def test_many_class_boundary_is_where_the_top_class_changes(K):
    # the pairs some face needs are the columns, and ties are listed per vertex: all K (K - 1) / 2
    # pairs at every vertex of a mixed face took 6 GB and 17 s for K = 100 on this net's 2,943
    # regions, and asked for 650 GB at K = 512 (4.5 million pairs here at K = 3000)
    net = mlp([2, 64, 64, K], act="relu", seed=1)
    p = spatial.partition(net, bounds=BOX)
    seg = p.boundary
    assert len(seg) > 20
    assert_boundary_is_where_the_top_changes(seg, parse(net), np.linspace(-1, 1, 150))


def test_ten_class_conv_boundary_is_where_the_top_class_changes():
    # a max-pooling net with 10 classes: most vertices have one class on top by far (their faces
    # skip the pairwise work); every segment is a tie of the top two classes, and wherever the
    # top class changes between neighbouring grid points a segment lies between them
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(16, 10)).double().eval()
    imgs = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64).numpy()
    plane = spatial.Plane.through(*imgs)
    box = (-1.0, 2.0, -1.0, 2.0)
    p = spatial.partition(net, box, plane=plane)
    seg = p.boundary
    assert len(seg) > 0

    def f(pts):
        with torch.no_grad():
            return net(torch.as_tensor(plane.lift(pts)).reshape((-1, 1, 4, 4))).numpy()

    assert_boundary_is_where_the_top_changes(seg, f, np.linspace(-1, 2, 90))


# ---- the Partition object


def test_polygons_are_ccw_and_tile_the_box():
    p = spatial.partition(reference_net(32), bounds=BOX)
    polys = p.to_shapely()
    assert all(shapely.is_ccw(shapely.get_exterior_ring(polys)))
    assert shapely.union_all(polys).area == pytest.approx(4.0, rel=1e-9)
    assert polys[0].area == pytest.approx(p.areas()[0])
    np.testing.assert_allclose(shapely.area(polys), p.areas(), rtol=1e-9, atol=1e-15)
    assert len(p.polygons()) == len(p)


def test_affine_maps_are_the_network_inside_each_region():
    net = mlp([2, 12, 12, 3], seed=6)
    p = spatial.partition(net, bounds=BOX)
    A = p.affine_maps()
    assert A.shape == (len(p), 3, 3)
    c = p.centroids()
    got = A[:, :, 0] * c[:, :1] + A[:, :, 1] * c[:, 1:] + A[:, :, 2]
    np.testing.assert_allclose(got, parse(net)(c), rtol=1e-9, atol=1e-12)
    # and at the vertices of each region (continuity)
    got_v = np.einsum("rkj,rj->rk", A[np.repeat(np.arange(len(p)), np.diff(p.offsets))],
                      np.c_[p.vertices[p.indices], np.ones(len(p.indices))])
    np.testing.assert_allclose(got_v, p.vertex_values[p.indices], rtol=1e-8, atol=1e-10)


def test_affine_maps_apply_each_layer_once_per_distinct_prefix(monkeypatch):
    from splinescope.spatial import _partition
    net = mlp([2, 12, 12, 3], seed=6)
    p = spatial.partition(net, bounds=BOX)
    bits, sizes = p.pattern_bits(), p.layer_sizes
    calls = []
    real = np.einsum
    monkeypatch.setattr(_partition.np, "einsum", lambda spec, W, M, **k: (calls.append(len(M)), real(spec, W, M, **k))[1])
    A = _partition._compose(p.network, bits, sizes)
    # the first layer once; each next layer once per distinct pattern of the layers before it
    want = [1] + [len(np.unique(bits[:, :sum(sizes[:i])], axis=0)) for i in range(1, len(sizes) + 1)]
    assert calls == want and want[-1] == len(p) > want[1] > 1
    calls.clear()
    one = _partition._compose(p.network, bits, sizes, chunk=1)  # one region at a time
    np.testing.assert_allclose(A, one, rtol=1e-13, atol=1e-15)


def test_geojson_and_keys():
    p = spatial.partition(mlp([2, 5, 1], seed=0), bounds=BOX)
    gj = p.to_geojson()
    assert gj["type"] == "FeatureCollection"
    assert len(gj["features"]) == len(p) + 1
    ring = gj["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    keys = p.region_keys()
    assert len(set(keys.tolist())) == len(p)
    assert "regions" in repr(p)


def test_certify_in_rational_arithmetic():
    pytest.importorskip("cdd")
    p = spatial.partition(integer_net([2, 5, 4, 1], seed=3), bounds=BOX)
    rep = p.certify()
    assert rep.ok and rep.regions == len(p)
    assert rep.max_deviation < 1e-12
    p2 = spatial.partition(mlp([2, 6, 5, 1], seed=1), bounds=BOX)
    assert p2.certify().max_deviation < 1e-12


def test_certify_without_pycddlib_says_how_to_get_it(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cdd", None)
    monkeypatch.setitem(sys.modules, "cdd.gmp", None)
    p = spatial.partition(mlp([2, 3, 1]), bounds=BOX)
    with pytest.raises(spatial.MissingDependencyError, match=r"pycddlib >= 3.*splinescope\[certify\]"):
        p.certify()


def test_verify_catches_a_wrong_partition():
    p = spatial.partition(mlp([2, 6, 5, 1], seed=1), bounds=BOX)
    p.patterns = p.patterns.copy()
    p.patterns[0] ^= 0xFF  # corrupt one region's pattern
    with pytest.raises(spatial.VerificationError, match="failed verification"):
        p.verify()
    assert not p.verify(raise_on_error=False).ok


def test_verify_counts_duplicate_patterns():
    p = spatial.partition(mlp([2, 6, 5, 1], seed=1), bounds=BOX)
    assert p.verify().duplicate_patterns == 0
    p.patterns = p.patterns.copy()
    p.patterns[[2, 5]] = p.patterns[0]  # three regions with one pattern: two duplicates
    assert p.verify(raise_on_error=False).duplicate_patterns == 2


def test_verify_judges_every_region_corner_whatever_the_chunks(monkeypatch):
    from splinescope.spatial import _verify
    p = spatial.partition(mlp([2, 6, 5, 1], seed=1), bounds=BOX)
    X = p.vertices.copy()

    def worst(elements):  # one chunk; or 16 points (4 vertices) per chunk
        monkeypatch.setattr(_verify, "CHUNK_ELEMENTS", elements)
        return p.verify(raise_on_error=False).max_sign_violation

    assert worst(1 << 18) == worst(1) <= 1e3 * p.rtol
    inner = np.nonzero(np.bincount(p.indices) >= 3)[0]  # vertices where three regions meet
    for v in inner[[0, len(inner) // 2, -1]]:  # each moved off its lines, alone
        p.vertices = X.copy()
        p.vertices[v] += 0.01
        assert worst(1 << 18) == worst(1) > 1e3 * p.rtol


def test_verify_forward_passes_hold_a_bounded_number_of_values(monkeypatch):
    # chunks of points sized by the widest layer (a 3x32x32 conv net's 16,384-unit layers
    # in chunks of 16,384 corners ran out of memory)
    from splinescope.spatial import _verify
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(16 * 64, 2)).double()
    a, b, c = (torch.rand(1, 8, 8, dtype=torch.float64).numpy() for _ in range(3))
    p = spatial.partition(net, (0, 1, 0, 1), plane=spatial.Plane.through(a, b, c))
    seen = []
    real = _verify._abs_scales
    monkeypatch.setattr(_verify, "_abs_scales", lambda hidden, pts, box: (seen.append(len(pts)), real(hidden, pts, box))[1])
    monkeypatch.setattr(_verify, "CHUNK_ELEMENTS", 1 << 14)
    assert p.verify().ok
    assert sum(seen) >= len(p.vertices) + len(p) and max(seen) * 1024 <= 1 << 14


# ---- errors


class _SoftmaxNet(L.Module):
    def __init__(self):
        super().__init__()
        self.fc = L.Linear(2, 3)

    def forward(self, x):
        return L.functional.softmax(self.fc(x), dim=1)


def test_unsupported_layer_is_named():
    net = L.Sequential(L.Linear(2, 4), L.GELU(), L.Linear(4, 1))
    with pytest.raises(spatial.UnsupportedLayerError,
                       match=r"layer 1 \(GELU\) is not piecewise linear.*supported: Linear"):
        spatial.partition(net, bounds=BOX)
    nested = L.Sequential(L.Linear(2, 4), L.Sequential(L.ReLU(), L.Tanh()), L.Linear(4, 1))
    with pytest.raises(spatial.UnsupportedLayerError, match=r"layer 1\.1 \(Tanh\)"):
        spatial.partition(nested, bounds=BOX)
    with pytest.raises(spatial.UnsupportedLayerError, match=r"layer 1 \(Softmax\)"):
        spatial.partition(L.Sequential(L.Linear(2, 4), L.Softmax(dim=1), L.Linear(4, 1)), bounds=BOX)
    # a chain the graph reader would read but for one layer: that layer is named, not the first graph layer
    conv = L.Sequential(L.Conv2d(1, 2, 2), L.ReLU(), L.Flatten(), L.Linear(8, 3), L.LogSoftmax(1))
    with pytest.raises(spatial.UnsupportedLayerError, match=r"layer 4 \(LogSoftmax\) is not piecewise linear; a "
                                                            r"softmax at the output .* partition those"):
        spatial.partition(conv, bounds=BOX, plane=spatial.Plane.through(*np.eye(3, 9).reshape(3, 1, 3, 3)))
    with pytest.raises(spatial.UnsupportedLayerError, match=r"node 'softmax' \(F.softmax\).* partition those"):
        spatial.partition(_SoftmaxNet(), bounds=BOX)


def test_bad_inputs():
    net = mlp([2, 4, 1])
    with pytest.raises(ValueError, match="xmin < xmax"):
        spatial.partition(net, bounds=(1, -1, 0, 1))
    with pytest.raises(ValueError, match="4 numbers"):
        spatial.partition(net, bounds=(0, 1, 0))
    with pytest.raises(TypeError, match="4 numbers"):
        spatial.partition(net, bounds=None)
    with pytest.raises(ValueError, match="finite"):
        spatial.partition(net, bounds=(0, np.inf, 0, 1))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        spatial.partition("net.pt", bounds=BOX)
    net3 = mlp([3, 4, 1])
    with pytest.raises(ValueError, match="3 inputs; pass plane="):
        spatial.partition(net3, bounds=BOX)
    with pytest.raises(ValueError, match="plane lives in 5 dimensions but the network has 3 inputs"):
        spatial.partition(net3, bounds=BOX, plane=spatial.Plane(np.zeros(5), np.eye(5)[0], np.eye(5)[1]))
    with pytest.raises(TypeError, match="spatial.Plane"):
        spatial.partition(net3, bounds=BOX, plane=(0, 1, 2))
    bn = L.Sequential(L.Linear(2, 3), L.BatchNorm1d(3), L.ReLU(), L.Linear(3, 1))
    with pytest.raises(spatial.UnsupportedLayerError, match="training mode.*model.eval"):
        spatial.partition(bn, bounds=BOX)
    assert spatial.partition(L.Sequential(L.Linear(2, 3), L.PReLU(3), L.Linear(3, 1)), bounds=BOX).verify().ok
    with pytest.raises(ValueError, match="rtol"):
        spatial.partition(net, bounds=BOX, rtol=0.5)


@pytest.mark.parametrize("flip", [0.01, 0.5])  # a few wrong sides (read one by one), or most (read densely)
def test_the_sign_violation_is_the_largest_wrong_side_value(monkeypatch, flip):
    from splinescope.spatial import _verify
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(7, 13)), rng.normal(size=(7, 5))]  # (points, units) per layer, S = 1
    monkeypatch.setattr(_verify, "_abs_scales", lambda hidden, pts, box: [(z, np.ones_like(z)) for z in layers])
    at = rng.integers(0, 7, 40)  # 40 region corners at 7 points
    bits = [(z[at] > 0) ^ (rng.random((40, z.shape[1])) < flip) for z in layers]
    rel = [rng.random((40, z.shape[1])) < 0.8 for z in layers]
    expected = max(float((np.where(b, np.maximum(-z[at], 0), np.maximum(z[at], 0)) * r).max()) for z, b, r
                   in zip(layers, bits, rel))
    got = _verify._sign_violation(None, None, None, at, [np.packbits(b, axis=1) for b in bits],
                                  [np.packbits(r, axis=1) for r in rel])
    assert got == expected > 0
