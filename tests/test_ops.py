"""spatial/_ops.py: exact products on integer limbs (exact_bilinear) against Fraction arithmetic;
the operations' float, bound and exact forms are tested through whole networks in test_graph.py."""
from fractions import Fraction

import numpy as np
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from splinescope.spatial import _ops


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400))
def test_exact_bilinear_equals_fraction_products(seed, bits):
    rng = np.random.default_rng(seed)
    n, k, m = 2, 5, 3
    x = np.array([[Fraction(int(rng.integers(-2**62, 2**62)) << int(rng.integers(0, bits)),
                            int(rng.integers(1, 2**62))) for _ in range(k)] for _ in range(n)], dtype=object)
    w = rng.standard_normal((m, k)) * 10.0 ** rng.integers(-30, 30, (m, k))
    w[0, 0] = 0.0
    got = _ops.exact_bilinear(lambda a, b: F.linear(a, b), x, w, k)
    want = x.dot(np.array([[Fraction(float(v)) for v in r] for r in w], dtype=object).T)
    assert got.tolist() == want.tolist()


def test_exact_bilinear_of_a_convolution():
    rng = np.random.default_rng(1)
    x = np.array([Fraction(int(v), 3) for v in rng.integers(-50, 50, 2 * 1 * 5 * 5)], dtype=object).reshape(2, 1, 5, 5)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32).astype(np.float64)  # float32 weights: 29 zero bits
    got = _ops.exact_bilinear(lambda a, b: F.conv2d(a, b, padding=1), x, w, 9)
    wf = np.array([Fraction(float(v)) for v in w.ravel()], dtype=object).reshape(w.shape)
    xp = np.zeros((2, 1, 7, 7), dtype=object)
    xp[:, :, 1:6, 1:6] = x
    for o in range(2):
        for i in range(5):
            for j in range(5):
                assert got[1, o, i, j] == (xp[1, 0, i:i + 3, j:j + 3] * wf[o, 0]).sum()


def test_limbs_and_their_sum_are_inverse():
    A = np.array([0, -1, 5, -(2**100) + 3, 2**64, 7 << 300], dtype=object)
    for bits in (7, 22):
        limbs = _ops._limbs(A, bits)
        assert all(np.abs(l).max() < 2**bits for l in limbs)
        back = _ops._combine([l.astype(np.int64) for l in limbs], bits)
        assert back.tolist() == A.tolist()
