"""spatial._engine: the splitting core, checked on line arrangements with a closed-form count."""
import itertools

import numpy as np
import pytest

from splinescope import spatial
from splinescope.spatial import _engine

from _exact import exact_regions
from common import mlp, set_weights


def arrangement_regions(W, b, box=(-1, 1, -1, 1)):
    """Regions of lines w.x + b = 0 in general position inside a box: 1 + lines crossing + crossings inside."""
    x0, x1, y0, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    s = corners @ W.T + b
    crossing = (s.max(0) > 0) & (s.min(0) < 0)
    inside = 0
    for i, j in itertools.combinations(np.nonzero(crossing)[0], 2):
        A = np.array([W[i], W[j]])
        p = np.linalg.solve(A, -np.array([b[i], b[j]]))
        inside += (x0 < p[0] < x1) and (y0 < p[1] < y1)
    return 1 + int(crossing.sum()) + inside


@pytest.mark.parametrize("n", [1, 7, 150])
def test_one_layer_matches_the_arrangement_formula(n):
    rng = np.random.default_rng(n)
    W, b = rng.normal(size=(n, 2)), rng.normal(scale=0.7, size=n)
    net = set_weights(mlp([2, n, 1], act="relu"), [(W, b), (np.ones((1, n)), [0.0])])
    p = spatial.partition(net, bounds=(-1, 1, -1, 1))
    assert len(p) == arrangement_regions(W, b)
    p.verify()


def test_column_batches_give_the_same_partition():
    # a wide first layer goes through column batches; small batches must change nothing
    rng = np.random.default_rng(0)
    n = 90
    W, b = rng.normal(size=(n, 2)), rng.normal(scale=0.5, size=n)
    X = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    offsets, indices = np.array([0, 4]), np.arange(4)
    ca, cb = _engine.DEFAULT_RTOL * np.abs(W).max(1), _engine.DEFAULT_RTOL * np.abs(b)
    scale = np.abs(X).sum(1)
    whole = _engine.split_all(X, offsets, indices, None, scale, ca, cb, affine=(W, b), batch=1000)
    parts = _engine.split_all(X, offsets, indices, None, scale, ca, cb, affine=(W, b), batch=8)
    stored = _engine.split_all(X, offsets, indices, X @ W.T + b, scale, ca, cb, batch=16)
    counts = {len(s.offsets) - 1 for s in (whole, parts, stored)}
    assert counts == {arrangement_regions(W, b)}

    def areas(s):
        P = s.X[s.indices]
        Q = s.X[s.indices[_engine.next_in_face(s.offsets)]]
        return np.sort(0.5 * np.add.reduceat(P[:, 0] * Q[:, 1] - P[:, 1] * Q[:, 0], s.offsets[:-1]))

    np.testing.assert_allclose(areas(parts), areas(whole), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(areas(stored), areas(whole), rtol=1e-9, atol=1e-15)


def test_concurrent_lines_share_one_vertex():
    # k lines through one point: 2k regions, one vertex there
    k = 9
    ang = np.linspace(0, np.pi, k, endpoint=False)
    W = np.stack([np.cos(ang), np.sin(ang)], 1)
    c = np.array([0.25, -0.125])
    b = -(W @ c)
    net = set_weights(mlp([2, k, 1], act="relu"), [(W, b), (np.ones((1, k)), [0.0])])
    p = spatial.partition(net, bounds=(-1, 1, -1, 1), exact=False)
    assert len(p) == 2 * k
    assert (np.linalg.norm(p.vertices - c, axis=1) < 1e-12).sum() == 1
    p.verify()
    # b = -(W @ c) is rounded: in exact arithmetic the lines miss each other by ~1e-17 and cut
    # sub-resolution triangles near c; exact=True keeps them (the rational reference agrees)
    q = spatial.partition(net, bounds=(-1, 1, -1, 1))
    assert len(q) == len(exact_regions(net, (-1, 1, -1, 1))) > 2 * k
    assert q.subresolution.sum() > 0 and q.areas()[q.subresolution].max() < 1e-30
    q.verify()


def test_exactly_concurrent_lines_share_one_vertex():
    # integer lines through (1/4, -1/8) exactly: one vertex there in exact mode too
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 2.0], [2.0, -4.0], [8.0, 8.0]])
    c = np.array([0.25, -0.125])
    net = set_weights(mlp([2, 5, 1], act="relu"), [(W, -(W @ c)), (np.ones((1, 5)), [0.0])])
    p = spatial.partition(net, bounds=(-1, 1, -1, 1))
    assert len(p) == 10 and (np.linalg.norm(p.vertices - c, axis=1) < 1e-15).sum() == 1
    assert not p.subresolution.any()
    p.verify()


def test_next_in_face_and_rows():
    assert _engine.next_in_face(np.array([0, 1, 3])).tolist() == [0, 2, 1]
    r = _engine._Rows(np.zeros((2, 3)))
    ids = r.extend(np.ones((5, 3)))
    assert ids.tolist() == [2, 3, 4, 5, 6] and r.view.shape == (7, 3) and r.view[6].sum() == 3


def test_a_decided_zero_is_marked_and_never_made_by_arithmetic():
    # -0.0 marks a stored value decided exactly 0 (ExactNet.fix leaves it). A new vertex on an
    # edge whose two ends are marked is marked too (the value is affine along the edge, exactly 0
    # at both ends); any other new value is never -0.0, even where the arithmetic gives 0 or
    # underflows to it
    from splinescope.spatial._engine import _Rows, _interpolate_into
    from splinescope.spatial._predicates import decided_zero
    Zs = _Rows(np.array([[-0.0, 1.0, -0.0, -0.0], [-0.0, -1.0, 1e-300, -1e-300]]))
    ids = _interpolate_into(Zs, np.array([0, 0]), np.array([1, 1]), np.array([0.5, 1e-30]), sanitize=True)
    new = Zs.a[ids]
    assert decided_zero(new).tolist() == [[True, False, False, False]] * 2
    assert new[0, 1] == 0.0 and new[1, 2] == 0.0 and new[1, 3] == 0.0  # 0 by arithmetic, unmarked
    assert decided_zero(np.array([-0.0, 0.0, -1e-300])).tolist() == [True, False, False]
    # without sanitize (a dense layer's values carry no marks) the arithmetic is left alone
    Zd = _Rows(np.array([[-0.0, 1.0], [-0.0, -1.0]]))
    ids = _interpolate_into(Zd, np.array([0]), np.array([1]), np.array([0.5]))
    new = Zd.a[ids]
    assert new[0, 0] == 0.0 and new[0, 1] == 0.0


class _AbsMap:
    """A stand-in next layer: z = h @ W.T (no constants), its absolute-value form for bound()."""

    def __init__(self, W):
        self.W = np.asarray(W, np.float64)

    def bound(self, S, c):
        return S @ np.abs(self.W).T

    def rows(self, H):
        return H @ self.W.T


def test_values_zero_by_structure_are_marked_and_cancellations_are_not():
    # next0 = h0 - h1, next1 = h0, next2 = carried; two units then one carried column
    from splinescope.spatial._engine import _dead, _mark_structural
    from splinescope.spatial._predicates import decided_zero
    nxt = _AbsMap([[1.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    sl = np.zeros(2)

    def marks(z, q, own=None, marked=True):
        z = np.asarray(z, np.float64)
        h = np.where(z[:, :2] > 0, z[:, :2], 0.0)
        zn = nxt.rows(np.concatenate([h, z[:, 2:]], 1)) + 0.0
        _mark_structural(z, _dead(np.asarray(q), sl, own), 2, nxt, zn, np.ones(3, bool), marked)
        return decided_zero(zn).tolist()

    # two live units with equal values: h0 - h1 is 0.0 by cancellation, not by structure
    assert marks([[0.5, 0.5, 1.0]], [[False, False]]) == [[False, False, False]]
    # two certainly dead units: both comparisons read only zeros
    assert marks([[-1.0, -2.0, 1.0]], [[True, True]]) == [[True, True, False]]
    # unit 0 on a line its vertex was made on (exactly 0), unit 1 doubtful (may be nonzero)
    assert marks([[0.0, 1e-300, 1.0]], [[False, False]], own=np.array([[0, -1]])) == [[False, True, False]]
    # a carried value marked decided 0 is read as 0 only where this layer's values carry marks
    assert marks([[-1.0, -1.0, -0.0]], [[True, True]]) == [[True, True, True]]
    assert marks([[-1.0, -1.0, -0.0]], [[True, True]], marked=False) == [[True, True, False]]


def _groups_by_python(a):
    seen = {}
    inv = [seen.setdefault(r.tobytes(), len(seen)) for r in a]
    first = [inv.index(g) for g in range(len(seen))]
    return first, inv


@pytest.mark.parametrize("width", [1, 7, 8, 33])
def test_unique_rows_groups_equal_rows_in_order_of_first_row(width):
    rng = np.random.default_rng(width)
    a = rng.integers(0, 3, (40, width)).astype(np.uint8)[rng.integers(0, 40, 500)]
    first, inv = _engine.unique_rows(a)
    assert (first.tolist(), inv.tolist()) == _groups_by_python(a)


def test_unique_rows_is_exact_when_rows_collide(monkeypatch):
    # a hash that makes every row collide: the grouping must still be exact
    monkeypatch.setattr(_engine, "_row_hash", lambda words: np.zeros(len(words), np.uint64))
    a = np.array([[1, 2, 3], [3, 2, 1], [1, 2, 3], [0, 0, 0]], np.uint8)
    first, inv = _engine.unique_rows(a)
    assert (first.tolist(), inv.tolist()) == ([0, 1, 3], [0, 1, 0, 2])


def test_unique_rows_hash_separates_rows_that_differ_in_top_bits():
    # two rows differing only in the top bit of two words: any sum of odd multiples of the
    # words mod 2**64 cancels it (2**63 m1 + 2**63 m2 = 0)
    a = np.zeros((2, 16), np.uint8)
    a[0, 7] = a[0, 15] = 0x80
    h = _engine._row_hash(a.view(np.uint64))
    assert h[0] != h[1]


def test_row_hash_does_not_depend_on_its_chunks(monkeypatch):
    rng = np.random.default_rng(5)
    words = rng.integers(0, 2 ** 63, (300, 5), dtype=np.uint64) * np.uint64(2)
    whole = _engine._row_hash(words)
    monkeypatch.setattr(_engine, "HASH_CHUNK", 7)  # a row or two per chunk
    assert (_engine._row_hash(words) == whole).all()
    assert len(np.unique(whole)) == len(np.unique(words, axis=0))


def test_compact_drops_unused_vertices_and_their_values_in_place():
    X = np.arange(10.0).reshape(5, 2)
    Z = np.arange(15.0).reshape(5, 3)
    sub = _engine.Subdivision(X, np.array([0, 3]), np.array([4, 0, 2]), np.zeros(1, np.int64), Z, np.ones(5))
    out = _engine.compact(sub)
    assert out.X.tolist() == [[0, 1], [4, 5], [8, 9]]
    assert out.indices.tolist() == [2, 0, 1]
    assert out.Z.tolist() == [[0, 1, 2], [6, 7, 8], [12, 13, 14]] and np.shares_memory(out.Z, Z)


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_keep_rows_in_place_equals_a_gather(chunk):
    rng = np.random.default_rng(chunk)
    a = rng.normal(size=(50, 7))
    keep = np.sort(rng.choice(50, 31, replace=False))
    want = a[keep].copy()
    got = _engine.keep_rows(a, keep, chunk=chunk)
    assert np.shares_memory(got, a) and (got == want).all()


def test_keep_rows_refuses_indices_that_are_not_increasing():
    with pytest.raises(ValueError, match="strictly increasing"):
        _engine.keep_rows(np.zeros((4, 2)), np.array([2, 1]))
