"""Tests of spatial/train.py: the toy network factory, the log-spaced schedule, the runner."""
import json

import numpy as np
import pytest
import torch

from splinescope import spatial
from splinescope.spatial._net import parse
from splinescope.spatial.checkpoints import load_checkpoints
from splinescope.spatial.data import blobs, moons
from splinescope.spatial.train import ARCH_FILE, DATA_FILE, load_run_data, log_schedule, loss_value, toy_mlp, train

torch.set_num_threads(1)

X2 = np.array([[-0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [0.5, -0.5]], np.float32)
Y2 = np.array([0, 0, 1, 1])


def _params(m):
    return torch.cat([p.detach().reshape(-1) for p in m.parameters()])


def test_log_schedule_is_log_spaced():
    s = log_schedule(10000, 30)
    assert s[0] == 0 and s[-1] == 10000
    assert all(a < b for a, b in zip(s, s[1:]))
    gaps = np.diff(s[1:])
    assert gaps[-1] > 100 * gaps[0]  # dense early, sparse late
    assert 20 <= len(s) <= 31
    assert log_schedule(0) == [0]
    assert log_schedule(3, 40) == [0, 1, 2, 3]


def test_log_schedule_errors():
    with pytest.raises(ValueError, match="steps must be an int >= 0, got -1"):
        log_schedule(-1)
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        log_schedule(10, 0)


def test_toy_mlp_is_seeded_and_parsable():
    a, b, c = toy_mlp(8, 2, seed=1), toy_mlp(8, 2, seed=1), toy_mlp(8, 2, seed=2)
    assert torch.equal(_params(a), _params(b)) and not torch.equal(_params(a), _params(c))
    net = parse(toy_mlp(8, 3, "leaky_relu", negative_slope=0.2, out_features=3))
    assert [l.width for l in net.layers] == [8, 8, 8, 3]
    assert [l.slope for l in net.layers] == pytest.approx([0.2, 0.2, 0.2, None])
    state = torch.random.get_rng_state()
    toy_mlp()
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched


def test_toy_mlp_errors():
    with pytest.raises(ValueError, match="'tanh' is not a valid activation, must be one of 'relu', 'leaky_relu'"):
        toy_mlp(activation="tanh")
    with pytest.raises(ValueError, match="width must be a positive int, got 0"):
        toy_mlp(0)
    with pytest.raises(ValueError, match="depth must be a positive int, got 1.5"):
        toy_mlp(4, 1.5)
    with pytest.raises(ValueError, match="init_scale must be a finite number > 0, got 0.0"):
        toy_mlp(4, 1, init_scale=0.0)
    with pytest.raises(TypeError, match="init_scale must be a number, got str"):
        toy_mlp(4, 1, init_scale="8")


def test_init_scale_multiplies_every_initial_weight_and_bias():
    a, b = toy_mlp(8, 2, in_features=5, out_features=3, seed=3), toy_mlp(8, 2, in_features=5, out_features=3,
                                                                         init_scale=8, seed=3)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(8 * p, q), name
    state = torch.random.get_rng_state()
    toy_mlp(init_scale=2.5)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_train_learns_and_is_deterministic():
    X, y = moons(64, seed=0)
    a = train(toy_mlp(16, 2), X, y, steps=150, lr=1e-2, checkpoints=[0, 150], progress=False)
    b = train(toy_mlp(16, 2), X, y, steps=150, lr=1e-2, checkpoints=[0, 150], progress=False)
    assert [s for s, _ in a] == [0, 150]
    assert torch.equal(_params(a[-1][1]), _params(b[-1][1]))
    assert not torch.equal(_params(a[0][1]), _params(a[-1][1]))
    acc = ((a[-1][1](torch.tensor(X))[:, 0] > 0).long() == torch.tensor(y)).float().mean()
    assert acc > 0.9
    assert not a[-1][1].training


def test_train_multiclass_uses_class_scores():
    X, y = blobs(60, centers=3, std=0.1)
    (_, m0), (_, m1) = train(toy_mlp(8, 1, out_features=3), X, y, steps=100, lr=2e-2,
                             checkpoints=[0, 100], progress=False, batch_size=16)
    acc = (m1(torch.tensor(X)).argmax(1) == torch.tensor(y)).float().mean()
    assert acc > 0.9


def test_train_writes_checkpoints_arch_and_data(tmp_path):
    arch = {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": {"width": 4, "depth": 1, "seed": 3}}
    kept = train(toy_mlp(4, 1, seed=3), X2, Y2, steps=30, checkpoints=5, out_dir=tmp_path, arch=arch,
                 progress=False)
    steps = [s for s, _ in kept]
    assert steps == log_schedule(30, 5)
    names = sorted(f.name for f in tmp_path.iterdir())
    assert names == sorted([f"step_{s:06d}.pt" for s in steps] + [ARCH_FILE, DATA_FILE])
    assert json.loads((tmp_path / ARCH_FILE).read_text()) == arch
    Xd, yd = load_run_data(tmp_path)
    assert np.array_equal(Xd, X2) and np.array_equal(yd, Y2)
    assert load_run_data(tmp_path / "nothing") is None
    # the folder reloads without an explicit architecture, in step order, with the same weights
    loaded = load_checkpoints(tmp_path)
    assert [s for s, _ in loaded] == steps
    for (_, a), (_, b) in zip(kept, loaded):
        assert torch.equal(_params(a), _params(b))
    # and the regions of the reloaded model are those of the kept one
    p, q = spatial.partition(kept[-1][1], (-1, 1, -1, 1)), spatial.partition(loaded[-1][1], (-1, 1, -1, 1))
    assert np.array_equal(p.region_keys(), q.region_keys())


def test_a_reused_folder_keeps_only_the_new_run(tmp_path):
    X, y = moons(32, seed=0)
    train(toy_mlp(4, 1, seed=0), X, y, steps=30, checkpoints=[0, 7, 30], out_dir=tmp_path, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    train(toy_mlp(4, 1, seed=0), X, y, steps=10, checkpoints=[0, 10], out_dir=tmp_path, progress=False)
    assert sorted(f.name for f in tmp_path.glob("step_*.pt")) == ["step_000000.pt", "step_000010.pt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_train_writes_atomically(tmp_path, monkeypatch):
    calls = []

    def failing_save(obj, path):
        calls.append(path)
        with open(path, "wb") as f:
            f.write(b"partial")
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second checkpoint

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        train(toy_mlp(4, 1), X2, Y2, steps=10, checkpoints=[0, 5, 10], out_dir=tmp_path, progress=False)
    names = sorted(f.name for f in tmp_path.iterdir())
    assert names == [DATA_FILE, "step_000000.pt"]  # the first, complete; no partial second, no temp


def test_train_takes_images_and_saves_them_as_images(tmp_path):
    from splinescope.spatial.data import digits
    X, y = digits()
    imgs = X[:200].reshape(-1, 1, 8, 8)
    L = torch.nn
    torch.manual_seed(0)
    cnn = L.Sequential(L.Conv2d(1, 2, 3, padding=1), L.ReLU(), L.MaxPool2d(2), L.Flatten(), L.Linear(32, 10))
    ckpts = train(cnn, imgs, y[:200], steps=30, batch_size=64, checkpoints=[0, 30], out_dir=tmp_path, progress=False)
    xt, yt = torch.tensor(imgs, dtype=torch.float32), torch.tensor(y[:200])
    with torch.no_grad():
        loss = [torch.nn.functional.cross_entropy(m(xt), yt).item() for _, m in ckpts]
    assert loss[1] < loss[0]
    Xs, ys = load_run_data(tmp_path)
    assert Xs.shape == (200, 1, 8, 8) and (Xs == imgs.astype(np.float32)).all() and (ys == y[:200]).all()
    plane = spatial.Plane.through(*imgs[:3])
    p = spatial.partition(ckpts[-1][1], (0, 1, 0, 1), plane=plane)
    assert len(p) > 1 and p.verify().ok


def test_train_errors():
    m = toy_mlp(4, 1)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        train("net", X2, Y2, steps=1)
    with pytest.raises(ValueError, match="steps must be an int >= 0, got -5"):
        train(m, X2, Y2, steps=-5)
    with pytest.raises(ValueError, match=r"X must hold one sample per row, \(N, D\) or \(N, C, H, W\).*got shape \(4,\)"):
        train(m, X2[:, 0], Y2, steps=1)
    with pytest.raises(ValueError, match=r"y must have shape \(4,\) to match X, got \(3,\)"):
        train(m, X2, Y2[:3], steps=1)
    with pytest.raises(ValueError, match=r"checkpoint steps must lie in \[0, 10\], got 0 .. 20"):
        train(m, X2, Y2, steps=10, checkpoints=[0, 20])
    with pytest.raises(TypeError, match="X must be an array or tensor of numbers, got object"):
        train(m, object(), Y2, steps=1)


def test_toy_run_is_the_one_configuration(tmp_path):
    import argparse
    import dataclasses

    from splinescope.render.cli import train as _cli_train
    from splinescope.spatial.train import ToyRun, train_toy

    sub = argparse.ArgumentParser().add_subparsers()
    args = _cli_train.add_parser(sub).parse_args(["--out", str(tmp_path)])
    assert {f.name: getattr(args, f.name) for f in dataclasses.fields(ToyRun)} == dataclasses.asdict(ToyRun())
    ck = train_toy(ToyRun(toy="xor", n=16, width=4, depth=1, steps=6, checkpoints=2, test=4), tmp_path, progress=False)
    assert [s for s, _ in ck] == [0, 1, 6]
    assert json.loads((tmp_path / ARCH_FILE).read_text())["kwargs"]["width"] == 4
    assert load_run_data(tmp_path, "test")[0].shape == (4, 2)
    with pytest.raises(ValueError, match="noise applies to moons, circles and spirals, not to 'xor'"):
        train_toy(ToyRun(toy="xor", noise=0.1), progress=False)


def test_mse_loss_on_one_hot_targets():
    X, y = blobs(60, centers=3, seed=0)
    target = torch.nn.functional.one_hot(torch.as_tensor(y), 3).float()
    mse = lambda m: float(torch.nn.functional.mse_loss(m(torch.as_tensor(X)), target))
    ck = train(toy_mlp(8, 1, out_features=3), X, y, steps=200, lr=1e-2, checkpoints=[0, 200], loss="mse",
               progress=False)
    assert mse(ck[-1][1]) < 0.5 * mse(ck[0][1])
    with pytest.raises(ValueError, match="'l1' is not a valid loss, must be one of 'auto', 'mse'"):
        train(toy_mlp(4, 1), X2, Y2, steps=1, loss="l1", progress=False)


def test_loss_value():
    logits, y = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]), torch.tensor([0, 2])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert float(loss_value(logits, y, "mse")) == pytest.approx(float(((logits - target) ** 2).mean()))
    assert float(loss_value(logits, y)) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)))
    z, b = torch.tensor([[0.3], [-1.0]]), torch.tensor([1, 0])
    assert float(loss_value(z, b, "mse")) == pytest.approx(((0.3 - 1) ** 2 + 1.0) / 2)  # one logit: to y itself
    assert float(loss_value(z, b)) == pytest.approx(
        float(torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], b.float())))
    with pytest.raises(ValueError, match="'l2' is not a valid loss"):
        loss_value(z, b, "l2")
