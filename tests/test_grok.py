"""Tests of render/grok.py (the grokking runs) and render/cli/grok.py (``splinescope grok``): the run
folders are complete and read back, the table is the log, the numbers logged are the library's on
the saved checkpoints, the control differs only in the initial scale, the errors."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from splinescope import spatial
from splinescope.render import grok as G
from splinescope.render.cli import main
from splinescope.spatial import runs
from splinescope.spatial.checkpoints import load_checkpoints
from splinescope.spatial.lc_run import accuracy, lc_row, point_sets
from splinescope.spatial.local_complexity import random_frame
from splinescope.spatial.migration import partition_statistics
from splinescope.spatial.robust import robust_accuracy

pytest.importorskip("sklearn")  # the digits

CFG = G.GrokRun(data="digits", width=12, steps=30, checkpoints=4, lc_points=40, directions=3, robust_points=2000,
                eps=(0.05, 0.1), bounds=(-0.1, 1.1, -0.1, 1.1), init_scale=4.0, lr=1e-2)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("grok")
    return out, G.grok(out, CFG, progress=False)


def test_run_folders_are_complete_and_read_back(runs_dir):
    out, res = runs_dir
    assert sorted(res) == ["control", "large"]
    for name in ("large", "control"):
        d = out / name
        assert {"arch.json", "data.npz", "log.jsonl", "table.csv", "grok.json", *G.PLANE_FILES} <= \
            {p.name for p in d.iterdir()}
        ckpts = load_checkpoints(d)  # arch.json: no --arch
        assert [s for s, _ in ckpts] == [0, 1, 3, 10, 30] == [r["step"] for r in res[name].rows]
        table = G.read_table(d)
        log = runs.read_log(d)
        assert list(table[0])[:7] == ["step", "train_acc", "test_acc", "robust_acc", "robust_acc/0.05",
                                      "robust_acc/0.1", "lc_train"]
        assert set(G.TABLE_COLUMNS) <= set(table[0])
        for t, r, l in zip(table, res[name].rows, log):
            assert t["step"] == r["step"] == l["step"]
            for k in ("train_acc", "test_acc", "lc_train", "lc_test", "lc_random", "train_loss"):
                assert t[k] == r[k] == l[k], k
            assert t["robust_acc"] == l["robust_test"] == l["robust_test/0.05"]
            assert t["regions"] == l["regions/abc"] and t["seconds_train"] <= res[name].seconds["train"]
        meta = json.loads((d / G.GROK_FILE).read_text())
        assert meta["milestones"] == res[name].milestones and len(meta["plane_images"]) == 3
    assert res["large"].measure_ratio > 0 and "checkpoints" in repr(res["large"])


def test_logged_numbers_are_the_librarys_on_the_saved_checkpoints(runs_dir):
    out, res = runs_dir
    d = out / "large"
    Xtr, ytr = runs.load_run_data(d)
    Xte, yte = runs.load_run_data(d, "test")
    want = G.grok_data(CFG)
    np.testing.assert_array_equal(Xtr, want[0]) and np.testing.assert_array_equal(yte, want[3])
    assert len(Xtr) == 1000 and len(Xte) == 797
    sets = point_sets(Xtr, ytr, Xte, yte, points=CFG.lc_points, seed=CFG.seed)
    frame = random_frame(CFG.directions, 64, seed=CFG.seed, dtype=torch.float64)
    plane = spatial.Plane.through(*(np.load(d / f) for f in G.PLANE_FILES))
    np.testing.assert_array_equal(np.load(d / "plane_b.npy"), Xtr[np.nonzero(ytr == 1)[0][0]])
    anchors = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    for (step, model), row in zip(load_checkpoints(d), res["large"].rows):
        xtr, xte = torch.as_tensor(Xtr), torch.as_tensor(Xte)
        assert row["train_acc"] == accuracy(model, xtr, torch.as_tensor(ytr))
        assert row["test_acc"] == accuracy(model, xte, torch.as_tensor(yte))
        lc = lc_row(model, sets, CFG.lc_radius, frame=frame)
        assert [row[k] for k in ("lc_train", "lc_test", "lc_random")] == \
            [pytest.approx(lc[k]) for k in ("lc_train", "lc_test", "lc_random")]
        robust = robust_accuracy(model, xte, yte, [0.05, 0.1], steps=CFG.pgd_steps, clip=(0, 1))  # all 797 points
        assert [row["robust_acc"], row["robust_acc/0.1"]] == robust.tolist()
        stats = partition_statistics(spatial.partition(model, CFG.bounds, plane=plane), anchors)
        assert row["regions"] == stats["regions"]
        assert row["density_data"] == pytest.approx(stats["density_data"])
    assert res["control"].rows[-1]["train_acc"] > res["control"].rows[0]["train_acc"] + 0.05  # it learns


def test_the_init_scale_multiplies_the_weights_and_the_control_differs_only_in_it(runs_dir):
    out, _ = runs_dir
    large, control = (dict(load_checkpoints(out / n))[0] for n in ("large", "control"))
    for (name, a), (_, b) in zip(large.state_dict().items(), control.state_dict().items()):
        assert torch.equal(a, 4.0 * b), name  # weights and biases
    arch = {n: runs.read_arch(out / n) for n in ("large", "control")}
    assert arch["large"]["kwargs"] == {**arch["control"]["kwargs"], "init_scale": 4.0}
    assert arch["large"]["kwargs"]["depth"] == CFG.depth - 1  # depth counts Linear layers
    cfgs = {n: json.loads((out / n / G.GROK_FILE).read_text())["config"] for n in ("large", "control")}
    assert cfgs["large"] == {**cfgs["control"], "init_scale": 4.0}
    a, b = (np.load(out / n / runs.DATA_FILE) for n in ("large", "control"))
    assert all(np.array_equal(a[k], b[k]) for k in runs.DATA_KEYS)
    assert json.loads((out / "control" / G.GROK_FILE).read_text())["plane_images"] == \
        json.loads((out / "large" / G.GROK_FILE).read_text())["plane_images"]


def test_the_command_line(tmp_path, capsys):
    args = ["grok", "--out", str(tmp_path), "--data", "digits", "--steps", "6", "--width", "6", "--checkpoints", "2",
            "--scale", "2", "--quiet"]
    assert main(args + ["--no-control"]) == 0
    text = capsys.readouterr().out
    assert "large: train acc >= 0.99 at never" in text and "control" not in text
    assert [s for s, _ in load_checkpoints(tmp_path / "large")] == [0, 1, 6]
    assert runs.read_arch(tmp_path / "large")["kwargs"]["init_scale"] == 2.0
    assert G.read_table(tmp_path / "large")[-1]["step"] == 6
    assert (tmp_path / "grok.png").stat().st_size > 10_000


@pytest.mark.parametrize("change,exc,match", [
    (dict(data="mnist"), ValueError, "'mnist' is not a valid data, must be one of 'fashion-mnist', 'digits'"),
    (dict(depth=1), ValueError, "depth must be at least 2"),
    (dict(width=0), ValueError, "width must be a positive int"),
    (dict(steps=1.5), TypeError, "steps must be an int"),
    (dict(init_scale=0.0), ValueError, "init_scale must be a finite number > 0"),
    (dict(weight_decay=-1), ValueError, "weight_decay must be a finite number >= 0"),
    (dict(eps=()), ValueError, "eps must be one or more finite radii > 0"),
    (dict(eps=(0.1, -0.1)), ValueError, "eps must be one or more"),
    (dict(eps="big"), TypeError, "eps must be a radius or a sequence of radii"),
    (dict(plane_classes=(0, 0, 1)), ValueError, "plane_classes must be three different classes"),
    (dict(plane_classes=3), ValueError, "plane_classes must be three different classes"),
    (dict(bounds=None), TypeError, "bounds must be \\(xmin, xmax, ymin, ymax\\)"),
    (dict(bounds=(1, 0, 0, 1)), ValueError, "bounds .* must be \\(xmin, xmax, ymin, ymax\\)"),
    (dict(loss="hinge"), ValueError, "'hinge' is not a valid loss"),
])
def test_bad_settings(tmp_path, change, exc, match):
    with pytest.raises(exc, match=match):
        G.grok(tmp_path, dataclasses.replace(CFG, **change), progress=False)
    assert not list(tmp_path.iterdir())  # checked before any work


def test_bad_arguments_and_a_missing_class(tmp_path):
    with pytest.raises(TypeError, match="config must be a GrokRun"):
        G.grok(tmp_path, {"steps": 10})
    with pytest.raises(TypeError, match="out_dir must be a path"):
        G.grok(3, CFG)
    with pytest.raises(ValueError, match="plane_classes: no training image of class 7"):
        G.grok_plane(np.eye(3), np.array([0, 1, 2]), (0, 1, 7))


def test_missing_fashion_mnist(tmp_path, monkeypatch, capsys):
    from splinescope.spatial import idx
    monkeypatch.setattr(idx, "FASHION_MNIST", tmp_path / "not-installed")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*data='digits'"):
        G.grok(tmp_path / "out", G.GrokRun(steps=10), progress=False)
    assert main(["grok", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("splinescope grok: error: Fashion-MNIST is not installed") and "\n" not in err
    assert "apt-get install dataset-fashion-mnist" in err and "--data digits" in err


def test_milestones():
    rows = [dict(step=s, train_acc=a, test_acc=b, robust_acc=c, lc_train=d) for s, a, b, c, d in
            [(0, 0.1, 0.1, 0.0, 5.0), (10, 0.5, 0.9, 0.0, 9.0), (100, 0.6, 0.5, 0.0, 7.0), (1000, 0.7, 0.9, 0.0, 4.0)]]
    m = G.milestones(rows)
    assert m["fit_step"] is None and m["test_delay"] is None  # never fitted
    assert m["test_step"] == 1000  # reached at step 10, but lost again at 100: held from 1000 on
    assert m["robust_step"] is None and m["final_robust_acc"] == 0.0  # no robustness to plateau
    assert m["lc_train_peak_step"] == 10
    line = G.summary("run", G.GrokResult(Path("run"), rows, {"train": 2.0, "lc": 0.5}, m), 0.05)
    assert line.startswith("run: train acc >= 0.99 at never; test acc 0.900, within 95% of it from step 1,000 "
                           "(the last checkpoint: still rising?); robust acc at eps 0.05 0.000, within 95% from never")
    assert line.endswith("peaks at step 10 (9.00), ends 4.00; measurements 0.25x training")
