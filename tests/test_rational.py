"""spatial/_rational.py: Q (integers over one denominator) against Python's Fractions."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splinescope.spatial._rational import Q

fracs = st.fractions(min_value=-10**6, max_value=10**6, max_denominator=10**9)
floats = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)


def _arr(xs):
    a = np.empty(len(xs), dtype=object)
    a[:] = xs
    return a


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(fracs, fracs, fracs), min_size=1, max_size=8))
def test_arithmetic_equals_fractions(rows):
    a, b, c = (_arr([r[i] for r in rows]) for i in range(3))
    qa, qb, qc = Q.of(a), Q.of(b), Q.of(c)
    assert ((qa + qb) * qc - qa).fractions().tolist() == ((a + b) * c - a).tolist()
    assert (qa.sum() * Fraction(3, 7)).fractions()[()] == sum(a) * Fraction(3, 7)
    nz = np.array([v != 0 for v in c])
    if nz.any():
        assert (qa[nz] / qc[nz]).fractions().tolist() == (a[nz] / c[nz]).tolist()
        assert (qa / Fraction(c[nz][0])).fractions().tolist() == (a / c[nz][0]).tolist()
    assert ((qa > 0) == np.array([v > 0 for v in a])).all() and ((qa < 0) == np.array([v < 0 for v in a])).all()
    assert Q.cat([qa, qb.reshape(-1)]).fractions().tolist() == list(a) + list(b)
    assert qa.reduced().fractions().tolist() == a.tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(floats, min_size=1, max_size=8))
def test_floats_are_exact_and_round_back(xs):
    a = np.array(xs, dtype=np.float64)
    q = Q.of(a)
    assert q.fractions().tolist() == [Fraction(x) for x in xs]
    assert q.floats().tolist() == a.tolist()


def test_rounding_to_float_is_to_nearest():
    q = Q.of(_arr([Fraction(1, 3), Fraction(2, 3), Fraction(10**400 + 1, 10**400)]))
    assert q.floats().tolist() == [1 / 3, 2 / 3, 1.0]  # and no overflow for huge parts
    assert Q.of(_arr([Fraction(1, 10)]))[0].floats() == 0.1


def test_integer_multipliers_and_broadcasting():
    q = Q.of(np.array([[0.5, 0.25], [1.0, -2.0]]))
    c = _arr([1, 0]).reshape(-1, 1)
    assert (c * q).fractions().tolist() == [[Fraction(1, 2), Fraction(1, 4)], [0, 0]]
    assert (q * Q.of(np.array([2.0, 4.0]))[None, :]).fractions().tolist() == [[1, 1], [2, -8]]


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="only finite values"):
        Q.of(np.array([1.0, np.inf]))
