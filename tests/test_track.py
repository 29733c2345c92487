"""Tests of render/track.py (Tracker) and render/_lightning.py (SplinescopeCallback): the numbers
logged are the library's on the checkpoints saved, the run folder reads back, TensorBoard and a
W&B-like run receive the same scalars."""
import numpy as np
import pytest
import torch

from splinescope import spatial
from splinescope.render import Tracker
from splinescope.spatial import runs
from splinescope.spatial.checkpoints import load_checkpoints
from splinescope.spatial.lc_run import lc_row, point_sets
from splinescope.spatial.local_complexity import random_frame
from splinescope.spatial.migration import partition_statistics
from splinescope.spatial.robust import robust_accuracy
from splinescope.spatial.train import toy_mlp

X = np.random.default_rng(0).uniform(-1, 1, (60, 2))
Y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
ARCH = {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": {"width": 8, "depth": 2}}


def train_with(tracker, steps=30, **scalars):
    torch.manual_seed(0)
    model = toy_mlp(8, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)
    for step in range(steps + 1):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y)
        tracker.step(model, step, loss=loss.item())
        opt.zero_grad(); loss.backward(); opt.step()
    tracker.close()
    return model


def test_logged_numbers_are_the_librarys_on_the_saved_checkpoints(tmp_path):
    t = Tracker(tmp_path, data=(X, Y), test=(X[:20] * 0.9, Y[:20]), at=[0, 3, 30], lc_points=25, directions=2,
                radius=0.2, arch=ARCH)
    train_with(t)
    rows = runs.read_log(tmp_path)
    assert [r["step"] for r in rows] == [0, 3, 30] and [r.keys() for r in rows] == [r.keys() for r in t.rows]
    assert rows[0]["density_boundary/box"] is None and np.isnan(t.rows[0]["density_boundary/box"])  # no boundary yet
    ckpts = load_checkpoints(tmp_path)  # arch.json: no --arch needed
    assert [s for s, _ in ckpts] == [0, 3, 30]
    sets = point_sets(X, Y, X[:20] * 0.9, Y[:20], points=25, seed=0)
    frame = random_frame(2, 2, seed=0, dtype=torch.float64)
    lo, hi = X.min(0), X.max(0)
    pad = 0.1 * (hi - lo)
    box = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
    for (step, model), row in zip(ckpts, rows):
        want = lc_row(model, sets, 0.2, frame=frame)
        for k, v in want.items():
            assert row[k] == pytest.approx(v), k
        stats = partition_statistics(spatial.partition(model, box), X)
        for k, v in stats.items():
            assert row[f"{k}/box"] == pytest.approx(v if np.isfinite(v) else None), k
        assert "loss" in row and {"lc_train/1", "lc_test/3", "acc_test"} <= set(row)
    assert rows[-1]["acc_train"] > rows[0]["acc_train"]
    d = runs.read_points(tmp_path / runs.DATA_FILE)
    np.testing.assert_array_equal(d["X"], X) and np.testing.assert_array_equal(d["y_test"], Y[:20])


def test_default_directions_fit_the_input_dimension(tmp_path):
    assert Tracker(tmp_path / "a", (X, Y), every=1)._frame.shape == (2, 2)  # 25, or D when smaller
    Xh = np.zeros((30, 40))
    assert Tracker(tmp_path / "b", (Xh, np.arange(30) % 2), every=1, slices={})._frame.shape == (25, 40)


def test_movie_of_the_saved_checkpoints(tmp_path):
    import imageio.v3 as iio
    t = Tracker(tmp_path / "run", (X, Y), at=[0, 5, 10], lc=False, arch=ARCH)
    train_with(t, steps=10)
    out = t.movie(tmp_path / "run.gif", stats=False)
    assert iio.imread(out, index=None).shape[0] == 3
    bare = Tracker(tmp_path / "bare", (X, Y), at=[0, 5], lc=False)  # no arch.json: the model's own class
    train_with(bare, steps=5)
    assert iio.imread(bare.movie(tmp_path / "bare.gif", stats=False), index=None).shape[0] == 2
    with pytest.raises(ValueError, match="'nope' is not a slice of this tracker, must be one of 'box'"):
        t.movie(tmp_path / "x.gif", slice="nope")
    with pytest.raises(ValueError, match="saved no checkpoints"):
        Tracker(tmp_path / "b", (X, Y), every=1, lc=False, save=False).movie(tmp_path / "y.gif")


def test_schedules(tmp_path):
    assert Tracker(tmp_path / "a", (X, Y), steps=1000, checkpoints=8, lc=False).schedule == \
        [0, 1, 3, 7, 19, 52, 139, 373, 1000]
    t = Tracker(tmp_path / "b", (X, Y), every=7, lc=False, slices={}, save=False)
    model = toy_mlp(4, 1)
    assert [s for s in range(20) if t.step(model, s) is not None] == [0, 7, 14]
    assert t.step(model, 14) is None  # a step measured already
    assert not list((tmp_path / "b").glob(runs.STEP_GLOB))  # save=False


def test_tensorboard_and_wandb_receive_the_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    class FakeRun:  # what the tracker uses of a wandb run
        def __init__(self):
            self.logged = []

        def log(self, row, step=None):
            self.logged.append((step, row))

    run = FakeRun()
    t = Tracker(tmp_path / "run", (X, Y), at=[0, 5], lc_points=10, directions=2, tensorboard=tmp_path / "tb",
                wandb=run, frames=True)
    with pytest.raises(ModuleNotFoundError):  # frames for W&B need the wandb package
        train_with(t, steps=5)
    t = Tracker(tmp_path / "run", (X, Y), at=[0, 5], lc_points=10, directions=2, tensorboard=tmp_path / "tb",
                wandb=run, frames=False)
    run.logged.clear()
    train_with(t, steps=5)
    assert [s for s, _ in run.logged] == [0, 5]
    assert run.logged[1][1]["regions/box"] == t.rows[1]["regions/box"]
    acc = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert {"lc_train", "regions/box", "loss"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("regions/box")][-2:] == [0, 5]


def test_frames_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t = Tracker(tmp_path / "run", (X, Y), at=[0], lc=False, tensorboard=tmp_path / "tb", frames=True)
    t.step(toy_mlp(4, 1), 0)
    t.close()
    acc = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert acc.Tags()["images"] == ["partition/box"]


def test_a_plane_slice_of_a_higher_dimensional_model(tmp_path):
    Xh = np.random.default_rng(1).uniform(0, 1, (40, 5))
    plane = spatial.Plane.through(Xh[0], Xh[1], Xh[2])
    t = Tracker(tmp_path, (Xh, np.arange(40) % 2), at=[0], lc_points=10, directions=2,
                slices={"abc": ((-0.5, 1.5, -0.5, 1.5), plane)})
    model = toy_mlp(6, 2, in_features=5)
    row = t.step(model, 0)
    assert row["regions/abc"] == len(spatial.partition(model, (-0.5, 1.5, -0.5, 1.5), plane=plane))


def test_robust_accuracy_is_the_librarys_on_the_saved_checkpoints(tmp_path):
    Xt, yt = X[:30] * 0.9, Y[:30]
    t = Tracker(tmp_path, (X, Y), test=(Xt, yt), at=[0, 30], lc=False, slices={}, arch=ARCH,
                robust={"eps": (0.1, 0.05, 0.3), "points": 20, "steps": 5})
    train_with(t)
    Xr, yr = t.robust_data  # 20 of the 30 test points, drawn once
    assert Xr.shape == (20, 2) and len({tuple(x) for x in Xr.tolist()}) == 20
    assert all(any(np.allclose(x, row) for row in Xt) for x in Xr.numpy())
    rows = runs.read_log(tmp_path)
    for (step, model), row, logged in zip(load_checkpoints(tmp_path), t.rows, rows):
        want = robust_accuracy(model, Xr, yr, [0.1, 0.05, 0.3], steps=5).tolist()
        assert [row["robust_test/0.1"], row["robust_test/0.05"], row["robust_test/0.3"]] == want
        assert row["robust_test"] == want[0] == logged["robust_test"]  # the first radius is the headline
    assert t.rows[-1]["robust_test/0.05"] > 0 and t.seconds["robust"] > 0
    assert "robust_test at eps ['0.1', '0.05', '0.3']" in repr(t)
    t = Tracker(tmp_path / "b", (X, Y), at=[0], lc=False, slices={}, robust={"eps": 0.2, "set": "train"})
    row = t.step(toy_mlp(8, 2), 0)
    assert len(t.robust_data[0]) == 60 and torch.equal(t.robust_data[1], torch.as_tensor(Y))  # all, in order
    assert row["robust_train"] == row["robust_train/0.2"] == float(robust_accuracy(toy_mlp(8, 2), X, Y, 0.2))


@pytest.mark.parametrize("robust,exc,match", [
    ([0.1], TypeError, "robust must be a dict"),
    ({"eps": 0.1, "radius": 1}, ValueError, "robust has no option 'radius'; valid: eps, set"),
    ({"steps": 3}, ValueError, "robust needs 'eps'"),
    ({"eps": -0.1}, ValueError, "eps must be finite and >= 0"),
    ({"eps": (0.1, 0.1)}, ValueError, "repeats a radius"),
    ({"eps": 0.1, "set": "val"}, ValueError, "'val' is not a valid robust set, must be one of 'test', 'train'"),
    ({"eps": 0.1}, ValueError, "robust set 'test' needs labelled test points"),
    ({"eps": 0.1, "set": "train", "clip": (0, 1)}, ValueError, "robust clip=\\(0.0, 1.0\\): the train points"),
    ({"eps": 0.1, "set": "train", "steps": 0}, ValueError, "robust steps must be a positive int"),
    ({"eps": 0.1, "set": "train", "norm": "l1"}, ValueError, "'l1' is not a valid robust norm"),
    ({"eps": 0.1, "set": "train", "points": 0}, ValueError, "robust points must be a positive int"),
])
def test_bad_robust_options(tmp_path, robust, exc, match):
    with pytest.raises(exc, match=match):
        Tracker(tmp_path, (X, Y), every=1, lc=False, robust=robust)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(), ValueError, "give one schedule: steps="),
    (dict(every=3, at=[1]), ValueError, "got every, at"),
    (dict(every=0), ValueError, "every"),
    (dict(every=3, slices=[(-1, 1, -1, 1)]), TypeError, "slices must be a dict"),
    (dict(every=3, slices={"a/b": (-1, 1, -1, 1)}), ValueError, "without '/'"),
    (dict(every=3, slices={"a": (1, -1, -1, 1)}), ValueError, "xmin < xmax"),
    (dict(every=3, slices={"a": "box"}), TypeError, "must be \\(xmin, xmax, ymin, ymax\\)"),
])
def test_bad_arguments(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Tracker(tmp_path, (X, Y), **kwargs)


def test_bad_data_and_steps(tmp_path):
    with pytest.raises(ValueError, match="data needs labels"):
        Tracker(tmp_path, (X, None), every=1)
    with pytest.raises(TypeError, match="data must be an \\(X, y\\) pair"):
        Tracker(tmp_path, X, every=1)
    with pytest.raises(ValueError, match=r"y of shape \(3,\) is not \(60,\)"):
        Tracker(tmp_path, (X, Y[:3]), every=1)
    with pytest.raises(ValueError, match="has no Plane but the data have 5 features"):
        Tracker(tmp_path, (np.zeros((4, 5)), np.zeros(4)), every=1, slices={"a": (-1, 1, -1, 1)})
    t = Tracker(tmp_path, (X, Y), every=1, lc=False)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        t.step("net", 0)
    with pytest.raises(ValueError, match="step"):
        t.step(toy_mlp(4, 1), -1)
    assert "Tracker(" in repr(t) and "rows=0" in repr(t)


# ------------------------------------------------------------------------------------- Lightning

def test_lightning_callback_and_metric_logging(tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from splinescope.render import SplinescopeCallback
    from splinescope.spatial import LocalComplexity

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = toy_mlp(8, 2)
            self.lc = LocalComplexity(self.net, 0.2, directions=2, seed=0, per_layer=False)

        def training_step(self, batch, _):
            x, y = batch
            self.lc.update(x)
            self.log("lc", self.lc, on_step=False, on_epoch=True)
            return torch.nn.functional.binary_cross_entropy_with_logits(self.net(x)[:, 0], y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.05)

    data = torch.utils.data.TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32))
    loader = torch.utils.data.DataLoader(data, batch_size=20)  # 3 steps per epoch
    cb = SplinescopeCallback(tmp_path / "run", module="net", data=(X, Y), lc_points=20, directions=2,
                             checkpoints=4, arch=ARCH)
    logger = L.loggers.CSVLogger(tmp_path / "logs")
    trainer = L.Trainer(max_epochs=2, callbacks=[cb], logger=logger, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
    module = Module()
    trainer.fit(module, loader)
    rows = runs.read_log(tmp_path / "run")
    assert [r["step"] for r in rows] == cb.tracker.schedule == [0, 1, 2, 3, 6]  # log_schedule(6, 4): 2 epochs of 3
    assert "loss" in rows[1] and "regions/box" in rows[0]
    assert [s for s, _ in load_checkpoints(tmp_path / "run")] == [0, 1, 2, 3, 6]
    import csv
    table = list(csv.DictReader((tmp_path / "logs").rglob("metrics.csv").__next__().open()))
    assert "regions/box" in table[0]
    # the metric follows the live weights: epoch 0's LC is the mean over its 3 batches, each
    # counted with the weights before its optimiser step, which the callback saved as steps 0, 1, 2
    epoch0 = next(float(r["lc"]) for r in table if r.get("lc"))
    frame = random_frame(2, 2, seed=0, dtype=torch.float64)
    weights = dict(load_checkpoints(tmp_path / "run"))
    xs = torch.tensor(X, dtype=torch.float32).split(20)
    want = sum(float(spatial.local_complexity(weights[b], xs[b], 0.2, frame=frame).double().sum()) for b in range(3)) / 60
    assert epoch0 == pytest.approx(want, rel=1e-6)
    assert module.lc.layer_names == ["1", "3"]
