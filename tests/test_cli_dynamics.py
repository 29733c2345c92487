"""``splinescope dynamics``: CKA across checkpoints, probe agreement and imbalance of a run folder."""
import csv

import numpy as np
import pytest
import torch

from splinescope.render.cli import main
from splinescope.spatial.dynamics import cka_matrices
from splinescope.spatial.imbalance import layer_imbalance
from splinescope.spatial.train import toy_mlp, train


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_toy_run(tmp_path, capsys):
    from splinescope.spatial.data import moons
    X, y = moons(64, seed=0)
    net = toy_mlp(6, 2, seed=0)
    ckpts = train(net, X, y, steps=40, checkpoints=[0, 10, 40], out_dir=tmp_path / "run", progress=False,
                  arch={"factory": "splinescope.spatial.train:toy_mlp", "kwargs": {"width": 6, "depth": 2, "seed": 0}})
    out = tmp_path / "dyn"
    assert main(["dynamics", str(tmp_path / "run"), "--out", str(out), "--grid", "30", "--points", "64"]) == 0
    assert {p.name for p in out.iterdir()} == {"cka.png", "cka.csv", "probes.png", "probes.csv"}
    got = rows(out / "cka.csv")
    assert len(got) == 2 * 3 * 3 and {r["layer"] for r in got} == {"1", "3"}
    want = cka_matrices([m.double() for _, m in ckpts], torch.as_tensor(X, dtype=torch.float64))
    for r in got:
        i, j = [0, 10, 40].index(int(r["step_i"])), [0, 10, 40].index(int(r["step_j"]))
        assert float(r["cka"]) == pytest.approx(want[r["layer"]][i, j], rel=1e-5)
    probes = rows(out / "probes.csv")
    assert [int(r["step"]) for r in probes] == [0, 10, 40]
    assert float(probes[-1]["exact_1"]) == pytest.approx(1.0)
    for r in probes:
        assert abs(float(r["exact_3"]) - float(r["grid_3"])) < 0.05
    # --max-memory 0: each joint partition at once, not in tiles of 1024 MB: the same table
    whole = tmp_path / "dyn0"
    assert main(["dynamics", str(tmp_path / "run"), "--out", str(whole), "--grid", "30", "--points", "64",
                 "--max-memory", "0"]) == 0
    assert (whole / "probes.csv").read_text() == (out / "probes.csv").read_text()
    # the agreements on a local Dask cluster: the same table
    pytest.importorskip("dask.distributed")
    there = tmp_path / "dyn2"
    assert main(["dynamics", str(tmp_path / "run"), "--out", str(there), "--grid", "30", "--points", "64",
                 "--workers", "2"]) == 0
    assert (there / "probes.csv").read_text() == (out / "probes.csv").read_text()
    assert main(["dynamics", str(tmp_path / "run"), "--out", str(there), "--workers", "2",
                 "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "give --workers or --scheduler, not both" in capsys.readouterr().err


def test_deep_linear_run_gives_imbalance(tmp_path, capsys):
    (tmp_path / "arch.py").write_text(
        "import torch\n"
        "def linear():\n"
        "    L = torch.nn.Linear\n"
        "    return torch.nn.Sequential(L(3, 4, bias=False), L(4, 4, bias=False), L(4, 2, bias=False))\n")
    run = tmp_path / "run"
    run.mkdir()
    nets = []
    for step in (0, 5):
        torch.manual_seed(step)
        net = torch.nn.Sequential(*(torch.nn.Linear(a, b, bias=False) for a, b in ((3, 4), (4, 4), (4, 2))))
        torch.save(net.state_dict(), run / f"step_{step:06d}.pt")
        nets.append(net)
    np.savez(run / "data.npz", X=np.random.default_rng(0).random((20, 3)), y=np.zeros(20, int))
    out = tmp_path / "dyn"
    assert main(["dynamics", str(run), "--arch", f"{tmp_path / 'arch.py'}:linear", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"cka.png", "cka.csv", "imbalance.png", "imbalance.csv"}
    got = rows(out / "imbalance.csv")
    for r, net in zip(got, nets):
        want = layer_imbalance(net).numpy()
        assert [float(r["imbalance_1"]), float(r["imbalance_2"])] == pytest.approx(want, rel=1e-5)


def test_errors(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    torch.save(toy_mlp(4, 1).state_dict(), run / "step_000000.pt")
    code = main(["dynamics", str(run), "--arch", "splinescope.spatial.train:toy_mlp(width=4, depth=1)",
                 "--out", str(tmp_path / "o")])
    assert code == 2
    assert "has no data.npz: pass --data" in capsys.readouterr().err
    np.savez(run / "data.npz", X=np.zeros((8, 2)), y=np.zeros(8, int))
    code = main(["dynamics", str(run), "--arch", "splinescope.spatial.train:toy_mlp(width=4, depth=1)",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "dynamics compares at least 2" in capsys.readouterr().err
    code = main(["dynamics", str(run), "--arch", "splinescope.spatial.train:toy_mlp(width=4, depth=1)",
                 "--out", str(tmp_path / "o"), "--max-memory", "-1"])
    assert code == 2 and "--max-memory must be >= 0 MB (0: the whole slice at once), got -1" in capsys.readouterr().err
