"""Tests of spatial/data.py: seeded toys in [-1, 1]^2 and the digits."""
import numpy as np
import pytest

from splinescope.spatial import data
from splinescope.spatial.data import TOYS, blobs, checkerboard, circles, digits, moons, spirals, toy, xor


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_shapes_range_and_balance(name):
    X, y = toy(name, 101, seed=3)
    assert X.shape == (101, 2) and X.dtype == np.float32
    assert y.shape == (101,) and y.dtype == np.int64
    assert np.abs(X).max() <= 0.9 + 1e-6
    counts = np.bincount(y)
    assert counts.min() >= 1
    if name != "checkerboard" and name != "xor":  # those are labelled by position
        assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_is_seeded_and_leaves_the_global_rng_alone(name):
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a = toy(name, 50, seed=1)
    b = toy(name, 50, seed=1)
    c = toy(name, 50, seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(np.random.get_state()[1], state)


def test_moons_geometry_without_noise():
    X, y = moons(200, noise=0.0, seed=0)
    # upper moon above the lower's bottom
    assert np.all(X[y == 0, 1] >= X[y == 1, 1].min() - 1e-6)
    assert len(np.unique(y)) == 2
    # the documented scaling: bounding box centred on 0, largest |coordinate| 0.9
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(X64.max(0) + X64.min(0), 0.0, atol=1e-6)
    assert np.abs(X64).max() == pytest.approx(0.9, abs=1e-6)

    def circle(P):  # least-squares circle x^2 + y^2 + D x + E y + F = 0 through the points
        (D, E, F), *_ = np.linalg.lstsq(np.c_[P, np.ones(len(P))], -(P ** 2).sum(1), rcond=None)
        c = -np.array([D, E]) / 2
        return c, np.sqrt(c @ c - F)

    # undo it: x = X / s + t, with s the upper moon's radius (1 before scaling) and t its centre
    c0, s = circle(X64[y == 0])
    c1, r1 = circle(X64[y == 1])
    assert r1 == pytest.approx(s, abs=1e-6)  # both moons have one radius
    raw = X64 / s - c0 / s
    up, low = raw[y == 0], raw[y == 1]
    # the upper moon: the unit circle about (0, 0), its upper half; the lower: about (1, 0.5), lower half
    np.testing.assert_allclose(np.hypot(*up.T), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.hypot(*(low - [1.0, 0.5]).T), 1.0, atol=1e-6)
    assert up[:, 1].min() >= -1e-6 and low[:, 1].max() <= 0.5 + 1e-6
    # the half circles are covered end to end (200 uniform angles: gaps far below 0.2 rad)
    for P, o, sign in ((up, (0.0, 0.0), 1), (low, (1.0, 0.5), -1)):
        ang = np.sort(np.arctan2(sign * (P[:, 1] - o[1]), sign * (P[:, 0] - o[0])))
        assert ang[0] < 0.2 and ang[-1] > np.pi - 0.2 and np.diff(ang).max() < 0.2


def test_circles_are_concentric():
    X, y = circles(400, noise=0.0, factor=0.5, seed=0)
    r = np.hypot(*X.T)
    np.testing.assert_allclose(r[y == 0], 0.9, atol=1e-6)
    np.testing.assert_allclose(r[y == 1], 0.45, atol=1e-6)


def test_spirals_classes_and_blobs_centres():
    X, y = spirals(90, classes=3, noise=0.0)
    assert sorted(set(y.tolist())) == [0, 1, 2]
    Xb, yb = blobs(300, centers=4, std=0.0)
    assert len(np.unique(Xb.round(5), axis=0)) == 4
    assert np.array_equal(xor(64, seed=5)[1], checkerboard(64, cells=2, seed=5)[1])


def test_checkerboard_labels_follow_cells():
    X, y = checkerboard(500, cells=4, seed=0)
    cell = np.floor((X + 0.9) / 1.8 * 4).clip(0, 3).astype(int)
    assert np.array_equal(y, cell.sum(1) % 2)


def test_errors():
    with pytest.raises(ValueError, match="'swiss' is not a valid toy, must be one of 'blobs'"):
        toy("swiss")
    with pytest.raises(TypeError, match="n must be an int, got float"):
        moons(10.0)
    with pytest.raises(ValueError, match="n must be at least 2"):
        moons(1)
    with pytest.raises(ValueError, match=r"noise must be a finite number >= 0, got -1"):
        moons(10, noise=-1)
    with pytest.raises(ValueError, match=r"factor must be in \(0, 1\), got 1.5"):
        circles(10, factor=1.5)
    with pytest.raises(ValueError, match="classes must be an int >= 2, got 1"):
        spirals(10, classes=1)
    with pytest.raises(ValueError, match="n must be at least 3"):
        spirals(2, classes=3)
    with pytest.raises(ValueError, match="cells must be an int >= 2, got 1"):
        checkerboard(10, cells=1)
    with pytest.raises(ValueError, match="centers must be an int >= 2, got 1"):
        blobs(10, centers=1)


def test_digits():
    pytest.importorskip("sklearn")
    X, y = digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert sorted(set(y.tolist())) == list(range(10))


def test_digits_without_sklearn(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    from splinescope.spatial import MissingDependencyError
    with pytest.raises(MissingDependencyError, match="digits\\(\\) needs scikit-learn"):
        data.digits()
