"""Tests of spatial/runs.py: the run folder's names, its round trip, atomic writes."""
import json

import numpy as np
import pytest
import torch

from splinescope.spatial import runs, train as train_module
from splinescope.spatial.checkpoints import load_checkpoints

ARCH = {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": {"width": 3, "depth": 1, "seed": 0}}


def test_names():
    assert (runs.ARCH_FILE, runs.DATA_FILE) == ("arch.json", "data.npz")
    assert runs.step_name(0) == "step_000000.pt" and runs.step_name(123456) == "step_123456.pt"
    # the old names stay importable from spatial.train
    assert (train_module.ARCH_FILE, train_module.DATA_FILE) == (runs.ARCH_FILE, runs.DATA_FILE)
    assert train_module.load_run_data is runs.load_run_data


def test_round_trip(tmp_path):
    X, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    Xt, yt = X[:2] + 10, y[:2]
    runs.write_data(tmp_path, X, y, Xt, yt)
    runs.write_arch(tmp_path, ARCH)
    nets = {s: train_module.toy_mlp(3, 1, seed=s) for s in (0, 7)}
    for s, net in nets.items():
        runs.save_step(tmp_path, s, net.state_dict())
    assert sorted(f.name for f in tmp_path.iterdir()) == ["arch.json", "data.npz", "step_000000.pt", "step_000007.pt"]
    assert runs.read_arch(tmp_path) == ARCH
    assert json.loads((tmp_path / runs.ARCH_FILE).read_text()) == ARCH
    Xd, yd = runs.load_run_data(tmp_path)
    np.testing.assert_array_equal(Xd, X), np.testing.assert_array_equal(yd, y)
    Xtd, ytd = runs.load_run_data(tmp_path, "test")
    np.testing.assert_array_equal(Xtd, Xt), np.testing.assert_array_equal(ytd, yt)
    assert sorted(runs.read_points(tmp_path / runs.DATA_FILE)) == ["X", "X_test", "y", "y_test"]
    loaded = load_checkpoints(tmp_path)  # the arch.json is read through runs.read_arch
    assert [s for s, _ in loaded] == [0, 7]
    for s, m in loaded:
        assert torch.equal(m[0].weight, nets[s][0].weight)
    runs.clear_steps(tmp_path)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["arch.json", "data.npz"]


def test_missing_and_bad_files(tmp_path):
    assert runs.read_arch(tmp_path) is None and runs.load_run_data(tmp_path) is None
    runs.write_data(tmp_path, np.zeros((2, 2)), np.zeros(2))
    assert runs.load_run_data(tmp_path, "test") is None  # no held-out points
    with pytest.raises(ValueError, match="'val' is not a valid split, must be one of 'train', 'test'"):
        runs.load_run_data(tmp_path, "val")
    (tmp_path / runs.ARCH_FILE).write_text("{nope")
    with pytest.raises(ValueError, match="arch.json: is not valid JSON"):
        runs.read_arch(tmp_path)
    (tmp_path / runs.ARCH_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match=r'arch.json: must hold \{"factory"'):
        runs.read_arch(tmp_path)
    np.savez(tmp_path / "pts.npz", A=np.zeros(2))
    with pytest.raises(ValueError, match=r"pts.npz holds no array 'X' \(keys: A\)"):
        runs.read_points(tmp_path / "pts.npz")


def test_a_half_written_file_never_appears(tmp_path, monkeypatch):
    runs.write_arch(tmp_path, ARCH)
    old = (tmp_path / runs.ARCH_FILE).read_text()

    def dies_midway(obj, path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        runs.save_step(tmp_path, 5, {})
    monkeypatch.setattr(np, "savez", lambda f, **a: (f.write(b"partial"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        runs.write_data(tmp_path, np.zeros((2, 2)), np.zeros(2))
    monkeypatch.undo()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["arch.json"]  # no step, no data, no temp file
    assert (tmp_path / runs.ARCH_FILE).read_text() == old


def test_log_round_trip_merges_steps_and_skips_a_partial_last_line(tmp_path):
    runs.append_log(tmp_path, {"step": 10, "loss": np.float32(0.5), "lc": torch.tensor(2.0)})
    runs.append_log(tmp_path, {"step": 0, "loss": 1.0, "note": "start", "flag": True})
    runs.append_log(tmp_path, {"step": 10, "acc": 0.75, "bad": float("nan")})
    with open(tmp_path / runs.LOG_FILE, "a") as f:
        f.write('{"step": 20, "lo')  # a writer in the middle of its line
    assert runs.read_log(tmp_path) == [{"step": 0, "loss": 1.0, "note": "start", "flag": True},
                                       {"step": 10, "loss": 0.5, "lc": 2.0, "acc": 0.75, "bad": None}]
    assert runs.read_log(tmp_path / "nowhere") == []


def test_log_errors(tmp_path):
    with pytest.raises(ValueError, match="needs an int 'step'"):
        runs.append_log(tmp_path, {"loss": 1.0})
    with pytest.raises(ValueError, match="needs an int 'step'"):
        runs.append_log(tmp_path, {"step": 1.5})
    with pytest.raises(TypeError, match="log value 'w' is a Tensor"):
        runs.append_log(tmp_path, {"step": 1, "w": torch.zeros(3)})
    with pytest.raises(TypeError, match="must be a dict"):
        runs.append_log(tmp_path, [("step", 1)])
    (tmp_path / runs.LOG_FILE).write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2: is not JSON"):
        runs.read_log(tmp_path)
    (tmp_path / runs.LOG_FILE).write_text('{"step": "one"}\n')
    with pytest.raises(ValueError, match="line 1: a log row must be a JSON object with an int 'step'"):
        runs.read_log(tmp_path)
