"""Tests of render.lc (the plot) and render.cli.lc (``splinescope lc``)."""
import csv
import json

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from splinescope.render.cli import main  # noqa: E402
from splinescope.render.lc import plot_lc  # noqa: E402
from splinescope.spatial.local_complexity import local_complexity, random_frame  # noqa: E402
from splinescope.spatial.train import toy_mlp  # noqa: E402

torch.set_num_threads(1)


def test_plot_lc_draws_one_line_per_series():
    axes = plot_lc([0, 1, 10], {"train": [1, 2, 3], "random": [3, 2, 1]}, {"test": [0.1, 0.5, 0.9]},
                   linewidth=3)
    assert len(axes) == 2 and len(axes[0].lines) == 2 and len(axes[1].lines) == 1
    np.testing.assert_array_equal(axes[0].lines[0].get_xdata(), [1, 2, 11])
    assert axes[0].lines[0].get_linewidth() == 3
    assert len(plot_lc([5], {"train": [1.0]})) == 1


@pytest.mark.parametrize("args,match", [
    (([], {"a": []}), "steps is not a non-empty 1-D sequence"),
    (([1, 2], {}), "lc is empty"),
    (([1, 2], {"train": [1.0]}), r"lc\['train'\] has shape \(1,\), expected \(2,\)"),
    (([1, 2], {"train": [1, 2]}, {"test": [1]}), r"accuracy\['test'\] has shape"),
])
def test_plot_lc_errors(args, match):
    with pytest.raises(ValueError, match=match):
        plot_lc(*args)


def test_plot_lc_needs_two_axes_for_accuracy():
    import matplotlib.pyplot as plt
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="need 2 axes"):
        plot_lc([1], {"a": [1]}, {"b": [1]}, axes=ax)


@pytest.fixture
def run(tmp_path):
    """A folder like gallery/lc_digits.py writes: 3 checkpoints, arch.json, data.npz."""
    kwargs = {"width": 8, "depth": 2, "in_features": 5, "out_features": 3}
    (tmp_path / "arch.json").write_text(json.dumps({"factory": "splinescope.spatial.train:toy_mlp", "kwargs": kwargs}))
    g = np.random.default_rng(0)
    X, Xt = g.random((40, 5), np.float32), g.random((30, 5), np.float32)
    np.savez(tmp_path / "data.npz", X=X, y=g.integers(0, 3, 40), X_test=Xt, y_test=g.integers(0, 3, 30))
    for step in (0, 10, 100):
        torch.save(toy_mlp(**kwargs, seed=step).state_dict(), tmp_path / f"step_{step:06d}.pt")
    return tmp_path


def test_cli_lc_end_to_end(run, tmp_path, capsys):
    out, table = tmp_path / "lc.png", tmp_path / "lc.csv"
    assert main(["lc", str(run), "--points", "20", "--radius", "0.2", "--directions", "3", "--out", str(out),
                 "--csv", str(table), "--threads", "1"]) == 0
    assert out.stat().st_size > 0
    rows = list(csv.DictReader(table.open()))
    assert [int(r["step"]) for r in rows] == [0, 10, 100]
    # the CSV's train LC is the library's, at the 20 points the CLI drew with its seed
    g = torch.Generator().manual_seed(0)
    X = torch.from_numpy(np.load(run / "data.npz")["X"])
    pts = X[torch.randperm(40, generator=g)[:20]]
    model = toy_mlp(width=8, depth=2, in_features=5, out_features=3, seed=10)
    expected = local_complexity(model, pts, 0.2, frame=random_frame(3, 5, seed=0)).double().mean(0)
    assert float(rows[1]["lc_train"]) == pytest.approx(float(expected.sum()))
    assert float(rows[1]["lc_train/3"]) == pytest.approx(float(expected[1]))
    assert {"lc_test", "lc_random", "acc_train", "acc_test"} <= set(rows[0])
    assert "wrote" in capsys.readouterr().out


class TinyCnn(torch.nn.Module):
    """A CNN on (1, 4, 4) images, for a run folder of images (``tests/test_lc_render.py``'s own)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                       torch.nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x)


def test_cli_lc_on_images(tmp_path, capsys):
    # a run whose data.npz holds images (N, 1, 4, 4), as render.Tracker saves a CNN's: the random points
    # keep the images' shape (they were drawn as (N, 1) and failed) and the frame lives in the 16 pixels
    g = np.random.default_rng(1)
    X = g.random((30, 1, 4, 4), np.float32)
    np.savez(tmp_path / "data.npz", X=X, y=g.integers(0, 3, 30))
    torch.manual_seed(0)
    model = TinyCnn()
    torch.save(model.state_dict(), tmp_path / "step_000005.pt")
    table = tmp_path / "lc.csv"
    assert main(["lc", str(tmp_path), "--arch", "test_lc_render:TinyCnn", "--points", "12", "--radius", "0.2",
                 "--directions", "4", "--out", str(tmp_path / "lc.png"), "--csv", str(table), "--threads", "1"]) == 0
    row = next(csv.DictReader(table.open()))
    gen = torch.Generator().manual_seed(0)
    pts = torch.from_numpy(X)[torch.randperm(30, generator=gen)[:12]]
    expected = local_complexity(model.eval(), pts, 0.2, frame=random_frame(4, 16, seed=0)).double().mean(0)
    assert float(row["lc_train"]) == pytest.approx(float(expected.sum()))
    assert float(row["lc_random"]) >= 0 and "acc_train" in row


def test_cli_lc_dim_is_a_deprecated_alias_of_directions(run, tmp_path, capsys):
    args = ["lc", str(run), "--points", "5", "--radius", "0.2", "--threads", "1"]
    assert main(args + ["--directions", "3", "--csv", str(tmp_path / "new.csv"), "--out", str(tmp_path / "a.png")]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(args + ["--dim", "3", "--csv", str(tmp_path / "old.csv"), "--out", str(tmp_path / "b.png")]) == 0
    assert "splinescope lc: warning: --dim is deprecated, use --directions" in capsys.readouterr().err
    assert (tmp_path / "old.csv").read_text() == (tmp_path / "new.csv").read_text()
    assert main(args + ["--dim", "3", "--directions", "3"]) == 2
    assert "give --directions or its deprecated old name --dim, not both" in capsys.readouterr().err


def test_cli_lc_reads_idx_folders(tmp_path):
    from splinescope.render.cli._common import load_data as _load_data

    class Args:
        data, checkpoints = str(tmp_path), str(tmp_path)
    import struct
    for prefix, n in (("train", 4), ("t10k", 2)):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            bytes([0, 0, 8, 3]) + struct.pack(">3I", n, 2, 2) + bytes(range(4 * n)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + struct.pack(">I", n) + bytes(range(n)))
    Xtr, ytr, Xte, yte = _load_data(Args)
    assert Xtr.shape == (4, 4) and Xte.shape == (2, 4) and Xtr.dtype == np.float32
    assert Xtr[1, 0] == pytest.approx(4 / 255) and ytr.tolist() == [0, 1, 2, 3]


def test_cli_lc_errors(run, tmp_path, capsys, monkeypatch):
    assert main(["lc", str(run), "--data", str(tmp_path / "nope.txt")]) == 2
    assert "is not 'digits', 'fashion-mnist', a folder of IDX files or an .npz file" in capsys.readouterr().err
    from splinescope.spatial import idx
    monkeypatch.setattr(idx, "FASHION_MNIST", tmp_path / "not-installed")
    assert main(["lc", str(run), "--data", "fashion-mnist"]) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "step_000000.pt").write_bytes(b"")
    assert main(["lc", str(empty)]) == 2
    assert "has no data.npz: pass --data" in capsys.readouterr().err
    assert main(["lc", str(run), "--points", "0"]) == 2
    assert "--points 0 must be at least 1" in capsys.readouterr().err


def test_cli_lc_picks_files_with_glob(run, tmp_path, capsys):
    model = toy_mlp(width=8, depth=2, in_features=5, out_features=3)
    torch.save(torch.optim.Adam(model.parameters()).state_dict(), run / "optimizer.pt")
    args = ["lc", str(run), "--points", "5", "--dim", "2", "--out", str(tmp_path / "lc.png"), "--threads", "1"]
    assert main(args) == 2
    assert "optimizer.pt: holds no weights of the architecture" in capsys.readouterr().err
    assert main(args + ["--glob", "step_*.pt"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["0", "10", "100"]
    assert "3 checkpoints, steps from the file name" in err
