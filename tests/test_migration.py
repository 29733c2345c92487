"""Tests of spatial/migration.py against independent numpy references (no shapely)."""
import numpy as np
import pytest
import torch

from splinescope import spatial
from splinescope.spatial.migration import STATISTICS, MigrationTable, migration_table, region_distances, region_statistic
from splinescope.spatial.train import toy_mlp

torch.set_num_threads(1)

B = (-1.0, 1.0, -1.0, 1.0)


def _kink_net(kink=0.0, level=0.5):
    """One ReLU kink on the line s = kink, the decision boundary on s = level (level > kink)."""
    net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ReLU(), torch.nn.Linear(1, 1))
    with torch.no_grad():
        net[0].weight[:] = torch.tensor([[1.0, 0.0]])
        net[0].bias[:] = -kink
        net[2].weight[:] = 1.0
        net[2].bias[:] = -(level - kink)
    return net


def _point_segment(P, A, Bv):
    """(n, m) distances from points P (n, 2) to segments A-B (m, 2)."""
    d = Bv - A
    t = np.clip(((P[:, None] - A) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-300), 0, 1)
    return np.linalg.norm(P[:, None] - (A + t[..., None] * d), axis=-1)


def _ref_distances(p, pts):
    """Convex polygons: distance to segments = min of vertex-to-segment and endpoint-to-edge;
    distance to points = 0 inside (half-plane test) else point-to-edge."""
    segs = p.boundary
    out = np.zeros((len(p), 2))
    for i, poly in enumerate(p.polygons()):
        nxt = np.roll(poly, -1, 0)
        if len(segs):
            d1 = _point_segment(poly, segs[:, 0], segs[:, 1]).min()
            ends = segs.reshape(-1, 2)
            d2 = _point_segment(ends, poly, nxt).min()
            out[i, 0] = min(d1, d2)
        else:
            out[i, 0] = np.inf
        e = nxt - poly
        cross = e[:, 0][None] * (pts[:, 1:2] - poly[:, 1][None]) - e[:, 1][None] * (pts[:, 0:1] - poly[:, 0][None])
        inside = (cross >= -1e-12).all(1)
        out[i, 1] = 0.0 if inside.any() else _point_segment(pts, poly, nxt).min()
    return out


def test_distances_on_a_known_partition():
    p = spatial.partition(_kink_net(0.0, 0.5), B)
    order = np.argsort(p.centroids()[:, 0])  # left region [-1, 0], right region [0, 1]
    d = region_distances(p, [[-0.75, 0.0], [0.9, 0.9]])[order]
    np.testing.assert_allclose(d, [[0.5, 0.0], [0.0, 0.0]])
    d = region_distances(p, ([[-0.75, 0.0]], [1]))[order]  # an (X, y) pair
    np.testing.assert_allclose(d[:, 1], [0.0, 0.75])
    assert np.isnan(region_distances(p)[:, 1]).all()


def test_distances_match_an_independent_reference():
    net = toy_mlp(12, 2, seed=4)
    p = spatial.partition(net, B)
    assert len(p) > 20 and len(p.boundary) > 0
    pts = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    np.testing.assert_allclose(region_distances(p, pts), _ref_distances(p, pts), atol=1e-9)


def test_no_boundary_in_the_slice():
    net = _kink_net(0.0, 5.0)  # the output is negative on the whole box
    p = spatial.partition(net, B)
    assert len(p.boundary) == 0
    assert np.isinf(region_distances(p)[:, 0]).all()
    t = migration_table(p, [[0.0, 0.0]])
    assert t.count_boundary.sum() == 0 and np.isnan(t.density_boundary)
    assert t.count_data.sum() == len(p)


def test_statistics():
    net = toy_mlp(6, 2, seed=1)
    p = spatial.partition(net, B)
    np.testing.assert_allclose(region_statistic(p, "area").sum(), 4.0)
    # slope: the Jacobian of the network at each centroid, by central differences
    c = torch.tensor(p.centroids())
    h = 1e-6
    with torch.no_grad():
        net = net.double()
        gs = (net(c + torch.tensor([h, 0.0], dtype=torch.float64)) - net(c - torch.tensor([h, 0.0], dtype=torch.float64))) / (2 * h)
        gt = (net(c + torch.tensor([0.0, h], dtype=torch.float64)) - net(c - torch.tensor([0.0, h], dtype=torch.float64))) / (2 * h)
    ref = torch.sqrt((gs ** 2 + gt ** 2).sum(1)).numpy()
    np.testing.assert_allclose(region_statistic(p, "slope"), ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(region_statistic(p, "boundary_distance"), region_distances(p)[:, 0])
    pts = np.array([[0.1, 0.2]])
    np.testing.assert_array_equal(region_statistic(p, "data_distance", pts), region_distances(p, pts)[:, 1])
    assert STATISTICS == ("area", "slope", "boundary_distance", "data_distance")


def test_table_on_a_known_partition():
    p = spatial.partition(_kink_net(0.0, 0.5), B)
    t = migration_table(p, [[-0.75, 0.0]], bins=[0, 0.25, 1], radius=0.1)
    assert isinstance(t, MigrationTable)
    assert t.n_regions == 2
    assert t.count_boundary.tolist() == [1, 1] and t.area_boundary.tolist() == [2.0, 2.0]
    assert t.count_data.tolist() == [1, 1]
    # density near the boundary: 1 region meets the strip |s - 0.5| <= 0.1 (area 0.2 * 2)
    assert t.density_boundary == pytest.approx(1 / 0.4)
    # near the data: 1 region meets the disc of radius 0.1 (area ~ pi 0.01, polygonised)
    assert t.density_data == pytest.approx(1 / (np.pi * 0.01), rel=0.01)
    assert "2 bins" in repr(t)


def test_table_over_training_sums_and_shapes():
    nets = [toy_mlp(10, 2, seed=s) for s in range(3)]
    parts = [spatial.partition(n, B) for n in nets]
    pts = np.random.default_rng(1).uniform(-1, 1, (30, 2))
    t = migration_table(parts, pts, bins=5)
    assert t.count_boundary.shape == (3, 5) and t.density_data.shape == (3,)
    np.testing.assert_allclose(t.edges, np.linspace(0, 1.0, 6))
    assert t.n_regions.tolist() == [len(p) for p in parts]
    assert t.count_data.sum(1).tolist() == t.n_regions.tolist()  # every region in some bin
    np.testing.assert_allclose(t.area_data.sum(1), 4.0)
    # each row equals the table of that partition alone, and the histograms match the reference
    for i, p in enumerate(parts):
        one = migration_table(p, pts, bins=5)
        np.testing.assert_array_equal(one.count_data, t.count_data[i])
        ref = _ref_distances(p, pts)
        fin = ref[np.isfinite(ref[:, 0]), 0]  # a slice without boundary has no boundary histogram
        hb = np.bincount(np.clip(np.searchsorted(t.edges, fin, "right") - 1, 0, 4), minlength=5)
        np.testing.assert_array_equal(t.count_boundary[i], hb)
        assert t.density_data[i] == pytest.approx(
            np.count_nonzero(ref[:, 1] <= t.radius) / one_area(pts, t.radius), rel=0.02)
    assert "3 checkpoints" in repr(t)


def test_given_distances_are_used_instead_of_computed_again():
    parts = [spatial.partition(toy_mlp(10, 2, seed=s), B) for s in range(2)]
    pts = np.random.default_rng(2).uniform(-1, 1, (20, 2))
    d = [region_distances(p, pts) for p in parts]
    t, td = migration_table(parts, pts, bins=4), migration_table(parts, pts, bins=4, distances=d)
    for k in ("n_regions", "count_boundary", "area_boundary", "count_data", "area_data",
              "density_boundary", "density_data"):
        np.testing.assert_array_equal(getattr(td, k), getattr(t, k))
    np.testing.assert_array_equal(migration_table(parts[0], pts, distances=d[0]).count_data,
                                  migration_table(parts[0], pts).count_data)
    fake = np.full_like(d[0], 7.0)  # given distances are taken as they are
    assert region_statistic(parts[0], "boundary_distance", pts, distances=fake).tolist() == [7.0] * len(parts[0])
    np.testing.assert_array_equal(region_statistic(parts[0], "data_distance", pts, distances=d[0]), d[0][:, 1])
    with pytest.raises(ValueError, match="distances has 1 arrays for 2 partitions"):
        migration_table(parts, pts, distances=d[:1])


def one_area(pts, r, n=400):
    """Area of the union of discs of radius r around pts inside [-1, 1]^2, on a fine grid."""
    g = (np.arange(n) + 0.5) / n * 2 - 1
    S, T = np.meshgrid(g, g)
    q = np.stack([S.ravel(), T.ravel()], 1)
    near = np.zeros(len(q), bool)
    for c in pts:
        near |= ((q - c) ** 2).sum(1) <= r * r
    return near.mean() * 4.0


def test_errors():
    p = spatial.partition(_kink_net(), B)
    with pytest.raises(ValueError, match="'volume' is not a valid statistic, must be one of 'area', 'slope'"):
        region_statistic(p, "volume")
    with pytest.raises(ValueError, match="the 'data_distance' statistic needs data="):
        region_statistic(p, "data_distance")
    with pytest.raises(ValueError, match=r"data must be \(N, 2\) points in slice coordinates"):
        region_distances(p, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="partitions is empty: need at least one partition"):
        migration_table([])
    with pytest.raises(ValueError, match="bins must be a positive int or a sequence of edges, got 0"):
        migration_table(p, bins=0)
    with pytest.raises(ValueError, match="bins must be increasing edges starting at 0"):
        migration_table(p, bins=[0.1, 0.5])
    with pytest.raises(ValueError, match="radius must be > 0, got -1"):
        migration_table(p, radius=-1)


def test_partition_statistics_are_the_tables_numbers():
    from splinescope.spatial.migration import partition_statistics
    from splinescope.spatial.train import toy_mlp
    p = spatial.partition(toy_mlp(8, 2, seed=3), (-1, 1, -1, 1))
    X = np.random.default_rng(0).uniform(-1, 1, (30, 2))
    t = migration_table(p, X, radius=0.1)
    d = region_distances(p, X)
    for stats in (partition_statistics(p, X, radius=0.1), partition_statistics(p, X, radius=0.1, distances=d)):
        assert stats["regions"] == len(p) == t.n_regions
        assert stats["density_data"] == t.density_data and stats["density_boundary"] == t.density_boundary
        segs = np.asarray(p.boundary)
        assert stats["boundary_length"] == pytest.approx(sum(np.linalg.norm(b - a) for a, b in segs))
        assert stats["boundary_length"] > 0
