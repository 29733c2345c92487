"""Tests of spatial/lc_run.py: the points of each set, one row per checkpoint, against the functional LC."""
import numpy as np
import pytest
import torch

from splinescope.spatial.lc_run import accuracy, lc_over_training, point_sets
from splinescope.spatial.local_complexity import local_complexity, random_frame
from splinescope.spatial.train import toy_mlp

G = np.random.default_rng(0)
XTR, YTR = G.normal(size=(30, 3)).astype(np.float32), G.integers(0, 2, 30)
XTE, YTE = G.normal(size=(12, 3)).astype(np.float32), G.integers(0, 2, 12)


def test_point_sets():
    sets = point_sets(XTR, YTR, XTE, YTE, points=10, seed=1)
    assert list(sets) == ["train", "test", "random"]
    assert [tuple(x.shape) for x, _ in sets.values()] == [(10, 3), (10, 3), (10, 3)]
    assert sets["random"][1] is None and sets["test"][1].dtype == torch.int64
    x = sets["train"][0].numpy()
    assert np.isin(x, XTR).all(axis=1).all()  # a subsample of the training points
    r = sets["random"][0].numpy()
    assert (r >= XTR.min(0)).all() and (r <= XTR.max(0)).all()  # inside the box of the training inputs
    again = point_sets(XTR, YTR, XTE, YTE, points=10, seed=1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(sets.values(), again.values()))
    assert list(point_sets(XTR, YTR, points=100)) == ["train", "random"]
    assert len(point_sets(XTR, YTR, points=100)["train"][0]) == 30  # at most all of them
    with pytest.raises(ValueError, match="points must be a positive int, got 0"):
        point_sets(XTR, YTR, points=0)


def test_rows_match_the_functional_estimator():
    models = [(s, toy_mlp(5, 2, in_features=3, seed=s)) for s in (0, 4)]
    sets = point_sets(XTR, YTR, XTE, YTE, points=8)
    frame = random_frame(3, 3, seed=0)
    rows = list(lc_over_training(models, sets, 0.2, frame=frame))
    assert [r["step"] for r in rows] == [0, 4]
    for (step, m), row in zip(models, rows):
        for name, (x, y) in sets.items():
            counts = local_complexity(m, x, 0.2, frame=frame).double()  # (N, L) counts
            ref = counts.mean(0)  # (L,) means
            assert row[f"lc_{name}"] == pytest.approx(float(ref.sum()))
            # the whole counts over N, rounded once, as a table reader expects (8180 / 200 is 40.9)
            assert row[f"lc_{name}"] == int(counts.sum()) / len(counts)
            assert row[f"lc_{name}/3"] == pytest.approx(float(ref[1]))
            assert (f"acc_{name}" in row) == (y is not None)
        pred = (m(sets["train"][0])[:, 0] > 0).long()
        assert row["acc_train"] == pytest.approx(float((pred == sets["train"][1]).float().mean()))


def test_accuracy_of_class_scores():
    m = torch.nn.Linear(2, 3)
    with torch.no_grad():
        m.weight.copy_(torch.eye(3, 2)), m.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert accuracy(m, x, torch.tensor([0, 1])) == 1.0 and accuracy(m, x, torch.tensor([1, 1])) == 0.5
    x = torch.tensor([[1.0, 0.0]] * 26 + [[0.0, 1.0]] * 174)
    assert accuracy(m, x, torch.zeros(200, dtype=torch.long)) == 0.13  # 26 of 200 (float32's mean: 0.12999999523)


def test_digits_split():
    pytest.importorskip("sklearn")
    from splinescope.spatial.data import digits_split
    Xtr, ytr, Xte, yte = digits_split(1000, seed=0)
    assert Xtr.shape == (1000, 64) and len(Xte) == 797 and len(ytr) == 1000 and len(yte) == 797
    with pytest.raises(ValueError, match="n_train must be between 1 and 1796, got 0"):
        digits_split(0)
