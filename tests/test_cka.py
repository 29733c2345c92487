"""Tests of spatial.cka against n x n Gram-matrix formulas written here, and against torch-cka / ckatorch."""

import numpy as np
import pytest
import torch

from _dist import run_gloo
from common import DEVICES
from splinescope.spatial.cka import CKA, _cka_compute, _cka_update, _hsic, _move, cka

torch.set_num_threads(1)


def features(n=120, p1=7, p2=5, seed=0, offset=3.0):
    """Correlated features with nonzero means, float64."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p1, generator=g, dtype=torch.float64) + offset
    A = torch.randn(p1, p2, generator=g, dtype=torch.float64)
    Y = torch.tanh(X @ A / p1 ** 0.5) + 0.5 * torch.randn(n, p2, generator=g, dtype=torch.float64) - offset
    return X, Y


# ---------------------------------------------------------------------- independent references

def hsic_gram(K, L):
    """tr(K H L H) / (n - 1)^2 with the centring matrix H = I - 11^T / n."""
    n = K.shape[0]
    H = np.eye(n, dtype=K.dtype) - np.ones((n, n), dtype=K.dtype) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def hsic_unbiased_gram(K, L):
    """Song et al. (2012), eq. 5: the Gram matrices with zeroed diagonals."""
    n = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n, dtype=K.dtype)
    t = np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * (one @ K @ L @ one)
    return t / (n * (n - 3))


def cka_gram(X, Y, debiased=False):
    """The n x n formulas in extended precision (np.longdouble), so their own rounding is negligible."""
    X, Y = np.asarray(X, np.float64).astype(np.longdouble), np.asarray(Y, np.float64).astype(np.longdouble)
    K, L = X @ X.T, Y @ Y.T
    h = hsic_unbiased_gram if debiased else hsic_gram
    return float(h(K, L) / np.sqrt(h(K, K) * h(L, L)))


def orthogonal(p, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((p, p)))
    return torch.as_tensor(q)


# ---------------------------------------------------------------------- the functional

@pytest.mark.parametrize("debiased", [False, True])
def test_equals_the_gram_matrix_formulas(debiased):
    # (fewer examples than features: cka() works in example space, gram_terms / gram_hsic)
    for seed, (n, p1, p2) in enumerate([(120, 7, 5), (9, 3, 12), (4, 2, 2), (50, 1, 1), (20, 60, 45)]):
        if n < 4 and debiased:
            continue
        X, Y = features(n, p1, p2, seed=seed)
        value = cka(X, Y, debiased=debiased)
        assert value.dtype == torch.float64 and value.ndim == 0
        np.testing.assert_allclose(float(value), cka_gram(X, Y, debiased), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_invariant_to_orthogonal_maps_isotropic_scaling_and_shifts(debiased):
    X, Y = features()
    base = float(cka(X, Y, debiased=debiased))
    for Xt in (X @ orthogonal(7, 1), 3.7 * X, X + 100.0, -0.01 * (X @ orthogonal(7, 2)) - 5):
        np.testing.assert_allclose(float(cka(Xt, Y, debiased=debiased)), base, rtol=1e-10)
    np.testing.assert_allclose(float(cka(X, Y @ orthogonal(5, 3) * 1e3, debiased=debiased)), base, rtol=1e-10)
    np.testing.assert_allclose(float(cka(Y, X, debiased=debiased)), base, rtol=1e-12)  # symmetric


@pytest.mark.parametrize("debiased", [False, True])
def test_self_similarity_is_one(debiased):
    X, _ = features()
    assert float(cka(X, X, debiased=debiased)) == pytest.approx(1.0, abs=1e-13)
    assert float(cka(X, torch.flip(X, [1]) * 2, debiased=debiased)) == pytest.approx(1.0, abs=1e-13)


def test_numpy_float32_and_lists_in_a_float64_tensor_out():
    X, Y = features(30)
    value = cka(X.float().numpy(), Y.tolist())
    assert isinstance(value, torch.Tensor) and value.dtype == torch.float64
    np.testing.assert_allclose(float(value), cka_gram(X.float().double(), Y), rtol=1e-12)


def test_constant_features_give_nan():
    X, _ = features(20)
    assert torch.isnan(cka(X, torch.ones(20, 3)))


def test_differentiable():
    X, Y = features(12, 3, 2)
    X.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: cka(a, Y, debiased=True), (X,))
    assert torch.autograd.gradcheck(lambda a: cka(a, Y), (X,))


def test_large_means_are_handled_by_the_reference_row():
    """1e8 offsets: sums about the origin cancel catastrophically, sums about a batch mean do not."""
    X, Y = features(200, 6, 4)
    exact = [float(cka(X, Y, debiased=d)) for d in (False, True)]
    Xb, Yb = X + 1e8, Y - 1e8
    for d in (False, True):
        m = CKA(debiased=d)
        for a, b in zip(torch.split(Xb, 37), torch.split(Yb, 37)):
            m.update(a, b)
        np.testing.assert_allclose(float(m.compute()), exact[d], rtol=1e-6)
        zero_x, zero_y = torch.zeros(6, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
        naive = _cka_compute(_cka_update(Xb, Yb, zero_x, zero_y, d), d)
        assert not abs(float(naive) - exact[d]) < 1e-3  # what the reference row is for


# ---------------------------------------------------------------------- the accumulating metric

@pytest.mark.parametrize("debiased", [False, True])
def test_streamed_over_uneven_batches_equals_the_full_data_value(debiased):
    X, Y = features(200, 9, 6)
    m = CKA(debiased=debiased)
    for a, b in zip(torch.split(X, 37), torch.split(Y, 37)):  # 5 x 37 + 15
        m.update(a, b)
    whole = cka_gram(X, Y, debiased)
    np.testing.assert_allclose(float(m.compute()), whole, rtol=1e-11)
    assert int(m.n) == 200 and "n=200" in repr(m) and "widths=(9, 6)" in repr(m)
    m.reset()
    assert m.ref_x.numel() == 0
    m.update(X[:50], Y[:50])  # a fresh reference row after reset
    np.testing.assert_allclose(float(m.compute()), cka_gram(X[:50], Y[:50], debiased), rtol=1e-11)


@pytest.mark.parametrize("debiased", [False, True])
def test_merge_equals_one_metric_over_all_data(debiased):
    X, Y = features(150, 6, 8)
    a, b, empty = CKA(debiased=debiased), CKA(debiased=debiased), CKA(debiased=debiased)
    for i in range(0, 90, 30):
        a.update(X[i:i + 30], Y[i:i + 30])
    b.update(X[90:] * 1 + 0, Y[90:])  # its own reference row (another batch mean)
    assert not torch.equal(a.ref_x, b.ref_x)
    np.testing.assert_allclose(float(a.compute()), cka_gram(X[:90], Y[:90], debiased), rtol=1e-11)
    a.merge(b, empty)  # after a compute(): its cached value must not survive the merge
    np.testing.assert_allclose(float(a.compute()), cka_gram(X, Y, debiased), rtol=1e-11)
    c = CKA(debiased=debiased)  # an empty metric takes the other's state
    c.merge_state(b)
    np.testing.assert_allclose(float(c.compute()), cka_gram(X[90:], Y[90:], debiased), rtol=1e-11)
    d = CKA(debiased=debiased)
    d.update(X[:90], Y[:90])
    d.merge_state(dict(b.metric_state))
    np.testing.assert_allclose(float(d.compute()), cka_gram(X, Y, debiased), rtol=1e-11)


def test_moving_the_reference_row_equals_summing_about_it():
    X, Y = features(40, 5, 3)
    ra, rb = X[:7].mean(0), Y[:7].mean(0)
    qa, qb = X[20:].mean(0) + 0.3, Y[20:].mean(0) - 2
    moved = _move(_cka_update(X, Y, ra, rb, True), ra - qa, rb - qb, True)
    direct = _cka_update(X, Y, qa, qb, True)
    for k, v in direct.items():
        torch.testing.assert_close(moved[k], v, rtol=1e-12, atol=1e-9, msg=k)


def test_forward_returns_the_batch_value_and_accumulates():
    X, Y = features(100, 4, 3)
    m = CKA(debiased=True)
    first = m(X[:60], Y[:60])
    second = m(X[60:], Y[60:])
    np.testing.assert_allclose(float(first), cka_gram(X[:60], Y[:60], True), rtol=1e-11)
    np.testing.assert_allclose(float(second), cka_gram(X[60:], Y[60:], True), rtol=1e-11)
    np.testing.assert_allclose(float(m.compute()), cka_gram(X, Y, True), rtol=1e-11)


def test_empty_batches_are_skipped():
    X, Y = features(30, 3, 3)
    m = CKA()
    m.update(X[:0], Y[:0])
    m.update(X, Y)
    m.update(X[:0], Y[:0])
    np.testing.assert_allclose(float(m.compute()), cka_gram(X, Y), rtol=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("device", DEVICES)
def test_on_a_device_equals_the_gram_matrix_formulas(device, debiased):
    """Features on ``device``: the functional's value there; the metric moved there (its state
    stays there, a CPU metric merged in is moved over) streams the same value."""
    X, Y = features(200, 9, 6)
    whole = cka_gram(X, Y, debiased)
    Xd, Yd = X.to(device), Y.to(device)
    value = cka(Xd, Yd, debiased=debiased)
    assert value.device.type == device
    np.testing.assert_allclose(float(value), whole, rtol=1e-11)
    np.testing.assert_allclose(float(cka(Xd.float(), Yd.float(), debiased=debiased)),
                               cka_gram(X.float(), Y.float(), debiased), rtol=1e-11)
    m = CKA(debiased=debiased).to(device)
    m.update(Xd[:37], Yd[:37])
    m.update(X[37:120], Y[37:120])  # a batch on the CPU: moved to the metric's device
    assert m.xy.device.type == device and m.ref_x.device.type == device
    rest = CKA(debiased=debiased)
    rest.update(X[120:], Y[120:])
    m.merge(rest)
    np.testing.assert_allclose(float(m.compute()), whole, rtol=1e-11)


# ---------------------------------------------------------------------- errors

@pytest.mark.parametrize("X, Y, kwargs, exc, match", [
    (np.zeros((5, 2)), np.zeros((6, 2)), {}, ValueError, r"X has 5 rows but Y has 6: one row per example"),
    (np.zeros(5), np.zeros((5, 2)), {}, ValueError, r"X of shape \(5,\) is not 2-D: \(n examples, p features\)"),
    (np.zeros((5, 2)), np.zeros((5, 2, 1)), {}, ValueError, r"Y of shape \(5, 2, 1\) is not 2-D"),
    (np.zeros((5, 0)), np.zeros((5, 2)), {}, ValueError, r"X has no features"),
    (np.ones((3, 2)), np.ones((3, 2)), {"debiased": True}, ValueError, r"debiased CKA needs at least 4 examples, got 3"),
    (np.ones((1, 2)), np.ones((1, 2)), {}, ValueError, r"linear CKA needs at least 2 examples, got 1"),
    (np.ones((4, 2)) * 1j, np.ones((4, 2)), {}, TypeError, r"X is complex"),
    ("abc", np.ones((4, 2)), {}, TypeError, r"X must be a tensor or array of numbers, got str"),
])
def test_bad_inputs(X, Y, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cka(X, Y, **kwargs)


def test_metric_errors():
    X, Y = features(10, 3, 2)
    m = CKA(debiased=True)
    with pytest.warns(UserWarning, match="before the ``update``"), pytest.raises(
            ValueError, match=r"no examples seen yet: call update\(X, Y\) before compute\(\)"):
        m.compute()
    m.update(X[:3], Y[:3])
    with pytest.raises(ValueError, match="debiased CKA needs at least 4 examples, got 3"):
        m.compute()
    with pytest.raises(ValueError, match=r"this batch has 2 and 2 features but this CKA has seen 3 and 2"):
        m.update(X[:, :2], Y)
    with pytest.raises(ValueError, match="cannot merge a debiased=False CKA into a debiased=True one"):
        m.merge(CKA())
    with pytest.raises(TypeError, match="can only merge CKA, got int"):
        m.merge(3)
    with pytest.raises(TypeError, match="expected a CKA or a dict of its states, got list"):
        m.merge_state([])
    with pytest.raises(ValueError, match="the incoming state lacks sk, sl"):
        m.merge_state({k: v for k, v in CKA().metric_state.items()})
    with pytest.raises(ValueError, match=r"X has 3 rows but Y has 2"):
        m.update(X[:3], Y[:2])


# ---------------------------------------------------------------------- other packages

def test_against_torch_cka_on_one_batch_and_its_batch_average():
    """torch-cka 0.21 (Nguyen et al.'s minibatch CKA): on one batch it is the debiased CKA of
    the data; over several it takes the ratio of per-batch HSIC_u averages, ours the data's value."""
    torch_cka = pytest.importorskip("torch_cka", reason="torch-cka is not installed (pip install torch-cka)")
    from torch.utils.data import DataLoader, TensorDataset
    X, Y = features(240, 6, 4, offset=0.0)  # centred: its float32 Gram matrices cancel less
    Xf, Yf = X.float(), Y.float()

    def run(batch):
        m1, m2 = torch.nn.Sequential(torch.nn.Identity()), torch.nn.Sequential(torch.nn.Identity())
        c = torch_cka.CKA(m1, m2, "X", "Y", model1_layers=["0"], model2_layers=["0"])
        c.compare(DataLoader(TensorDataset(Xf), batch_size=batch), DataLoader(TensorDataset(Yf), batch_size=batch))
        return float(c.export()["CKA"][0, 0])

    whole = cka_gram(Xf.double(), Yf.double(), debiased=True)
    assert run(240) == pytest.approx(whole, rel=1e-4)  # float32 Gram matrices
    batched = run(40)
    assert abs(batched - whole) > 1e-3
    m = CKA(debiased=True)
    for a, b in zip(torch.split(Xf, 40), torch.split(Yf, 40)):
        m.update(a, b)
    np.testing.assert_allclose(float(m.compute()), whole, rtol=1e-11)
    # torch-cka's value is the ratio of the per-batch unbiased HSICs' sums
    hs = [_hsic(_cka_update(a.double(), b.double(), a.double().mean(0), b.double().mean(0), True), True)
          for a, b in zip(torch.split(Xf, 40), torch.split(Yf, 40))]
    hxy, hxx, hyy = (sum(float(h[i]) for h in hs) for i in range(3))
    assert batched == pytest.approx(hxy / np.sqrt(hxx * hyy), rel=1e-4)


def test_against_ckatorch_full_batch_and_its_minibatch_average():
    ckatorch = pytest.importorskip("ckatorch", reason="ckatorch is not installed (pip install ckatorch)")
    X, Y = features(240, 6, 4)
    np.testing.assert_allclose(float(ckatorch.cka_base(X, Y)), float(cka(X, Y)), rtol=1e-11)
    np.testing.assert_allclose(float(ckatorch.cka_base(X, Y, unbiased=True)), float(cka(X, Y, debiased=True)),
                               rtol=1e-11)
    # cka_batch: per-batch unbiased HSICs, summed, then the ratio -- not the data's debiased CKA
    mini = float(ckatorch.cka_batch(X.reshape(6, 40, 6), Y.reshape(6, 40, 4)))
    whole = float(cka(X, Y, debiased=True))
    assert abs(mini - whole) > 1e-3
    hs = [_hsic(_cka_update(a, b, a.mean(0), b.mean(0), True), True)
          for a, b in zip(torch.split(X, 40), torch.split(Y, 40))]
    hxy, hxx, hyy = (sum(float(h[i]) for h in hs) for i in range(3))
    assert mini == pytest.approx(hxy / np.sqrt(hxx * hyy), rel=1e-11)
    m = CKA(debiased=True)
    for a, b in zip(torch.split(X, 40), torch.split(Y, 40)):
        m.update(a, b)
    np.testing.assert_allclose(float(m.compute()), whole, rtol=1e-11)


# ---------------------------------------------------------------------- two processes

def _sync_worker(rank, world):
    X, Y = features(200, 5, 3, offset=50.0)
    both, alone = CKA(debiased=True), CKA()
    shard = slice(rank * 100, rank * 100 + 100)
    for a, b in zip(torch.split(X[shard], 37), torch.split(Y[shard], 37)):
        both.update(a, b)
    if rank == 1:  # rank 0 sees nothing: it joins the sync with zero sums
        alone.update(X, Y)
    return float(both.compute()), float(alone.compute()), int(both.n)


def test_sync_across_two_gloo_processes():
    # fork where there is one: spawn would import torch and torchmetrics again in each child (~10 s)
    results = run_gloo(_sync_worker, 2, start="fork")
    X, Y = features(200, 5, 3, offset=50.0)
    X, Y = X - X.mean(0), Y - Y.mean(0)  # the Gram formulas are shift-invariant, and lose digits to large means
    for r in range(2):
        both, alone, n_local = results[r]
        np.testing.assert_allclose(both, cka_gram(X, Y, True), rtol=1e-10)
        np.testing.assert_allclose(alone, cka_gram(X, Y), rtol=1e-10)
        assert n_local == 100  # unsync restored the local state after compute()


def test_the_package_does_not_import_torchmetrics():
    """spatial.cka is imported on request: torchmetrics brings matplotlib and scipy (~1.5 s)."""
    import subprocess
    import sys
    code = "import sys, splinescope; print(sorted({'torchmetrics', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
