"""spatial.dynamics: layer-wise CKA across checkpoints, linear probes, and their exact agreement."""
import numpy as np
import pytest
import torch

from splinescope import spatial
from splinescope.spatial.cka import cka
from splinescope.spatial.dynamics import (activation_layers, cka_matrices, fit_probe, probe_agreement,
                                          probe_model, representations)

from common import L
from test_cka import cka_gram  # the n x n formulas in extended precision, written in the tests


def nets(T=3, seed=0):
    out = []
    for t in range(T):
        torch.manual_seed(seed + t)
        out.append(L.Sequential(L.Linear(2, 6), L.ReLU(), L.Linear(6, 5), L.LeakyReLU(0.1), L.Linear(5, 3)).double())
    return out


def test_representations_are_the_modules_outputs():
    net = nets(1)[0]
    x = torch.randn(40, 2, dtype=torch.float64)
    reps = representations(net, x, batch=7)  # several batches, concatenated in order
    assert list(reps) == activation_layers(net) == ["1", "3"]
    # the reference in the same batches: a matmul's last bits depend on the batch size
    with torch.no_grad():
        want = {k: torch.cat([net[:n](c) for c in x.split(7)]) for k, n in (("1", 2), ("3", 4))}
    assert torch.equal(reps["1"], want["1"]) and torch.equal(reps["3"], want["3"])


def test_cka_matrix_equals_pairwise_cka():
    models = nets(3)
    x = torch.randn(60, 2, dtype=torch.float64)
    mats = cka_matrices(models, x)
    reps = [representations(m, x) for m in models]
    for name, M in mats.items():
        assert np.allclose(M, M.T) and np.allclose(np.diag(M), 1.0)
        for i in range(3):
            for j in range(3):
                assert M[i, j] == pytest.approx(float(cka(reps[i][name], reps[j][name])), rel=1e-12)
    deb = cka_matrices(models, x, debiased=True)
    assert deb["3"][0, 1] == pytest.approx(float(cka(reps[0]["3"], reps[1]["3"], debiased=True)), rel=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matrices_with_more_features_than_examples(debiased):
    # a convolution's 4 x 6 x 6 = 144 features of 30 images: in example space (n x n Gram matrices),
    # against the tests' own extended-precision Gram formulas
    def cnn(seed):
        torch.manual_seed(seed)
        return L.Sequential(L.Conv2d(1, 4, 3, padding=1), L.ReLU(), L.Flatten(), L.Linear(144, 2)).double()

    models = [cnn(s) for s in range(3)]
    x = torch.rand(30, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    M = cka_matrices(models, x, debiased=debiased)["1"]
    reps = [representations(m, x)["1"] for m in models]
    assert reps[0].shape == (30, 144)
    for i in range(3):
        assert M[i, i] == 1.0
        for j in range(3):
            if i != j:
                assert M[i, j] == pytest.approx(cka_gram(reps[i], reps[j], debiased), rel=1e-10)
    dead = [L.Sequential(L.Conv2d(1, 4, 3, padding=1), L.ReLU()).double() for _ in range(2)]
    with torch.no_grad():
        dead[1][0].bias.fill_(-100.0)  # every unit dead: no variance
    assert np.isnan(cka_matrices(dead, x, debiased=debiased)["1"][0, 1])


def test_probe_fits_and_composes():
    torch.manual_seed(0)
    x = torch.randn(200, 2, dtype=torch.float64)
    y = (x[:, 0] + x[:, 1] > -0.5).long() + (x[:, 0] + x[:, 1] > 0.5).long()  # three separable classes
    net = nets(1)[0]
    probe = fit_probe(representations(net, x)["1"], y)
    composed = probe_model(net, "1", probe)
    assert isinstance(composed[2], L.Flatten) and len(composed) == 4 and torch.equal(composed(x), probe(net[:2](x)))
    acc = float((fit_probe(x, y)(x).argmax(1) == y).float().mean())
    assert acc > 0.95
    with pytest.raises(ValueError, match="not a top-level module"):
        probe_model(net, "7", probe)
    with pytest.raises(ValueError, match="at least 2 classes"):
        fit_probe(x, torch.zeros(200, dtype=torch.long))


def test_probe_agreement_exact_and_sampled():
    models = nets(3)
    torch.manual_seed(1)
    x = torch.rand(150, 2, dtype=torch.float64) * 2 - 1
    y = (x.sum(1) > 0).long()
    res = probe_agreement(models, x, y, (-1, 1, -1, 1), grid=200)
    for name, r in res.items():
        assert r["exact"][-1] == pytest.approx(1.0)  # the reference agrees with itself
        assert np.all((0 <= r["exact"]) & (r["exact"] <= 1))
        assert np.abs(r["exact"] - r["grid"]).max() < 0.02
    tiled = probe_agreement(models, x, y, (-1, 1, -1, 1), grid=200, max_memory=20_000)  # joint partitions in tiles
    for name, r in res.items():
        np.testing.assert_allclose(tiled[name]["exact"], r["exact"], rtol=0, atol=1e-13)
        np.testing.assert_array_equal(tiled[name]["grid"], r["grid"])


def test_probe_agreement_of_cnn_checkpoints():
    # probes on a convolution's and a max-pooling's outputs (flattened), composed and partitioned
    # exactly on a plane through three images
    def cnn(seed):
        torch.manual_seed(seed)
        return L.Sequential(L.Conv2d(1, 2, 3, padding=1), L.ReLU(), L.MaxPool2d(2), L.Flatten(),
                            L.Linear(8, 2)).double().eval()

    models = [cnn(s) for s in (0, 1)]
    g = torch.Generator().manual_seed(2)
    x = torch.rand(120, 1, 4, 4, generator=g, dtype=torch.float64)
    y = (x.mean((1, 2, 3)) > 0.5).long()
    plane = spatial.Plane.through(x[0], x[1], x[2])
    res = probe_agreement(models, x, y, (-0.5, 1.5, -0.5, 1.5), plane=plane, layers=["1", "2"], grid=300)
    assert set(res) == {"1", "2"}
    for r in res.values():
        assert r["exact"][-1] == pytest.approx(1.0)
        assert 0.2 < r["exact"][0] < 0.8 and abs(r["exact"][0] - r["grid"][0]) < 0.01


def test_errors():
    net = nets(1)[0]
    with pytest.raises(ValueError, match="no module named 'nope'"):
        representations(net, torch.zeros(2, 2), ["nope"])
    act = L.ReLU()
    reused = L.Sequential(L.Linear(2, 2), act, L.Linear(2, 2), act)
    with pytest.raises(ValueError, match="ran 2 times in one forward pass"):
        representations(reused, torch.zeros(3, 2), ["1"])
    with pytest.raises(ValueError, match="no checkpoints"):
        cka_matrices([], torch.zeros(3, 2))
