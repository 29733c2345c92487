"""spatial/_certify.py: the exact vertices of a region's half-planes, cdd given only the few that
can bound it (then every one an exact vertex violates), against cdd given all of them."""
from fractions import Fraction

import numpy as np
import pytest

from splinescope.spatial import _certify

cdd = pytest.importorskip("cdd")  # pycddlib (libcdd) may be absent: certify() needs it


def _rows(seed, n):
    """``n`` random integer half-planes ``b + a1 s + a2 t >= 0`` that all hold at (0, 0)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-50, 51, (n, 2))
    return [[int(rng.integers(1, 60)), int(u), int(v)] for u, v in a]


BOX = [[1, 1, 0], [1, -1, 0], [1, 0, 1], [1, 0, -1]]  # [-1, 1]^2


@pytest.mark.parametrize("seed", range(6))
def test_exact_vertices_equal_cdd_on_every_half_plane(seed):
    rows = _rows(seed, 300)
    want = set(_certify._cdd_vertices(BOX + rows))
    poly = np.array([[float(x), float(y)] for x, y in want])
    order = np.argsort(np.arctan2(poly[:, 1] - poly[:, 1].mean(), poly[:, 0] - poly[:, 0].mean()))
    assert set(_certify._exact_vertices(BOX, rows, poly[order])) == want
    # a float polygon far from the region: no half-plane looks tight, the violated ones are added
    # until every exact vertex satisfies all of them: still the region
    assert set(_certify._exact_vertices(BOX, rows, np.array([[50.0, 50.0], [51.0, 50.0], [50.0, 51.0]]))) == want
    assert set(_certify._exact_vertices(BOX, rows, np.zeros((0, 2)))) == want


def test_an_empty_region_has_no_vertices():
    rows = [[-3, 1, 0], [-3, -1, 0]]  # s >= 3 and s <= -3
    assert _certify._exact_vertices(BOX, rows, np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])) == []
    assert set(_certify._cdd_vertices(BOX)) == {(Fraction(s), Fraction(t)) for s in (-1, 1) for t in (-1, 1)}
