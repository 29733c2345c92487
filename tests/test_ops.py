"""spatial/_ops.py: exact products on integer limbs (exact_bilinear) against Fraction arithmetic,
a resampling's exact and bound forms against Fraction interpolation weights; the operations'
float, bound and exact forms are tested through whole networks in test_graph.py."""
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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**400), 2**400) | st.sampled_from([0, -1, -(2**64), 2**63, -(2**127)]), max_size=12),
       st.integers(2, 30), st.data())
def test_limbs_and_sums_of_limbs_match_python_integers(values, bits, data):
    # the word-level conversions against plain Python integer arithmetic: fields that cross a
    # 64-bit word, negative numbers (two's complement), all-zero arrays and empty ones
    A = np.array(values, dtype=object)
    limbs = _ops._limbs(A, bits)
    assert all(np.abs(l).max(initial=0) < 2**bits for l in limbs)
    assert [sum(int(l[i]) << (bits * j) for j, l in enumerate(limbs)) for i in range(len(A))] == values
    k = data.draw(st.integers(1, 20))
    S = [np.array(data.draw(st.lists(st.integers(-(2**61), 2**61), min_size=len(A), max_size=len(A))), np.int64)
         for _ in range(k)]
    want = [sum(int(s[i]) << (bits * j) for j, s in enumerate(S)) for i in range(len(A))]
    assert _ops._combine(S, bits).tolist() == want


def test_a_small_convolution_is_applied_as_its_matrix():
    # a conv whose input is small next to its fan-in runs as one matrix product (made from the
    # unit vectors, so its entries are the weights themselves): the same values as the conv and,
    # on integers, the same exact ones; a conv on a large input never makes its matrix
    import torch

    rng = np.random.default_rng(0)
    w = torch.tensor(rng.integers(-8, 9, (4, 3, 3, 3)) / 8.0, dtype=torch.float64)
    b = torch.tensor(rng.integers(-8, 9, 4) / 8.0, dtype=torch.float64)

    def f(x, ww):
        return F.conv2d(x, ww, None, 1, 1)

    op = _ops.Weighted(f, w, b, 27, (-1, 1, 1), matrix=True)
    x = torch.tensor(rng.integers(-16, 17, (_ops.MATRIX_ROWS + 5, 3, 4, 4)), dtype=torch.float64)
    c = torch.ones(len(x), dtype=torch.float64)
    y = op.run([x], c)
    assert op._matrix(x, False) is not None
    assert torch.equal(y, F.conv2d(x, w, b, 1, 1))  # small integers: every sum is exact either way
    assert torch.equal(op.bound([x.abs()], c), F.conv2d(x.abs(), w.abs(), b.abs(), 1, 1))
    xr = torch.tensor(rng.standard_normal((_ops.MATRIX_ROWS, 3, 4, 4)))
    torch.testing.assert_close(op.run([xr], c[:len(xr)]), F.conv2d(xr, w, b, 1, 1), rtol=1e-14, atol=1e-14)
    big = torch.zeros((_ops.MATRIX_ROWS, 3, 32, 32), dtype=torch.float64)
    assert op._matrix(big, False) is None  # 3072 inputs > MATRIX_FAN * 27: applied as a conv
    assert not _ops.Weighted(f, w, b, 27, (-1, 1, 1))._matrix(x, False)  # not asked for (Linear)
    wide = _ops.Weighted(f, torch.zeros((1500, 3, 3, 3), dtype=torch.float64), None, 27, (-1, 1, 1), matrix=True)
    assert wide._matrix(x, False) is None  # 48 x 24000 entries > MATRIX_ENTRIES: never made


def test_a_small_transposed_convolution_is_applied_as_its_matrix():
    import torch

    rng = np.random.default_rng(1)
    w = torch.tensor(rng.integers(-8, 9, (3, 2, 3, 3)) / 8.0, dtype=torch.float64)  # (in, out, k, k)

    def f(x, ww):
        return F.conv_transpose2d(x, ww, None, 2, 1, 1)

    op = _ops.Weighted(f, w, None, 2 * 9, (-1, 1, 1), matrix=True)
    x = torch.tensor(rng.integers(-16, 17, (_ops.MATRIX_ROWS, 3, 3, 3)), dtype=torch.float64)
    c = torch.ones(len(x), dtype=torch.float64)
    assert op._matrix(x, False) is not None  # 27 inputs <= 3 * 18
    assert torch.equal(op.run([x], c), F.conv_transpose2d(x, w, None, 2, 1, 1))
    assert torch.equal(op.bound([x.abs()], c), F.conv_transpose2d(x.abs(), w.abs(), None, 2, 1, 1))


def _bilinear_1d(n_in, n_out):
    """Linear interpolation weights (n_out, n_in) of torch's rule without aligned corners, in Fractions."""
    W = np.zeros((n_out, n_in), dtype=object)
    for j in range(n_out):
        src = max((j + Fraction(1, 2)) * Fraction(n_in, n_out) - Fraction(1, 2), Fraction(0))
        i0 = min(int(src), n_in - 1)
        W[j, i0] += 1 - (src - i0)
        W[j, min(i0 + 1, n_in - 1)] += src - i0
    return W


def test_resample_exact_and_bound_read_the_interpolation_weights():
    # bilinear 3x3 -> 6x6: its exact form against Fraction weights of torch's rule (independent of
    # the unit-vector matrix), and its bound the map with |weights|
    from splinescope.spatial._rational import Q
    import torch
    op = _ops.Resample(lambda v: F.interpolate(v, size=6, mode="bilinear"), (1, 3, 3), (1, 6, 6))
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 9, (2, 1, 3, 3)) / 8.0
    W = _bilinear_1d(3, 6)
    xf = np.vectorize(Fraction)(x)
    want = np.stack([W.dot(xf[i, 0]).dot(W.T) for i in range(2)])  # rows then columns
    got = op.exact([Q.of(xf)], None)
    assert [[Fraction(int(n), got.den) for n in r] for r in got.num.reshape(2, -1)] == want.reshape(2, -1).tolist()
    xt = torch.tensor(x)
    np.testing.assert_allclose(op.run([xt], None).numpy(), np.vectorize(float)(want)[:, None], atol=1e-15)
    np.testing.assert_array_equal(op.bound([xt.abs()], None).numpy(), op.run([xt.abs()], None).numpy())
    cubic = _ops.Resample(lambda v: F.interpolate(v, size=6, mode="bicubic"), (1, 3, 3), (1, 6, 6))
    assert (cubic.weights < 0).any()  # the bound takes |w|: above |the map| of any input
    y, b = cubic.run([xt], None).numpy(), cubic.bound([xt.abs()], None).numpy()
    assert (b >= np.abs(y) - 1e-15).all() and (b > np.abs(y) + 1e-3).any()


def test_scale_by_a_constant_tensor_divides_exactly():
    # x / t with t = 3 (not dyadic): the exact form divides by Fraction(3), not by the float 1/3
    from splinescope.spatial._rational import Q
    import torch
    t = np.array([3.0, -0.5]).reshape(2, 1)
    op, mul = _ops.ScaleConst(t, divide=True), _ops.ScaleConst(t)
    x = np.array([[[1.0, 2.0], [3.0, -4.0]]])
    got = op.exact([Q.of(np.vectorize(Fraction)(x))], None)
    assert [Fraction(int(n), got.den) for n in got.num.reshape(-1)] == [Fraction(1, 3), Fraction(2, 3), -6, 8]
    np.testing.assert_array_equal(op.run([torch.tensor(x)], None).numpy(), x / t)
    np.testing.assert_array_equal(mul.bound([torch.tensor(np.abs(x))], None).numpy(), np.abs(x) * np.abs(t))


def test_resamplings_are_made_once_per_key_and_shape(monkeypatch):
    monkeypatch.setattr(_ops.Resample, "_made", __import__("collections").OrderedDict())
    monkeypatch.setattr(_ops.Resample, "KEEP", 2)

    def up(v):
        return F.interpolate(v, scale_factor=2, mode="bilinear")
    a = _ops.Resample.of("up2", up, (1, 3, 3), (1, 6, 6))
    assert _ops.Resample.of("up2", up, (1, 3, 3), (1, 6, 6)) is a  # a model parsed again: no new matrix
    b = _ops.Resample.of("up2", up, (2, 3, 3), (2, 6, 6))
    assert b is not a and b.table.shape == (72, 4)
    assert _ops.Resample.of("up2", up, (1, 3, 3), (1, 6, 6)) is a  # used again: b is now the least recent
    _ops.Resample.of("up2", up, (1, 4, 4), (1, 8, 8))  # a third: the least recently used (b) goes
    assert _ops.Resample.of("up2", up, (1, 3, 3), (1, 6, 6)) is a
    assert _ops.Resample.of("up2", up, (2, 3, 3), (2, 6, 6)) is not b
