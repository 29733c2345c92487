"""Tests of spatial/sweep.py and `splinescope sweep`: the table is the library's numbers on every
checkpoint and slice, the same in-process, on a local Dask cluster and on a scheduler with
workers started here; interrupted sweeps resume without lost or duplicated rows; changed
checkpoints are recomputed; failures name the checkpoint and the rest goes on."""
import csv
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from splinescope import spatial
from splinescope.render.cli import main
from splinescope.spatial import runs, sweep as sweep_module
from splinescope.spatial.checkpoints import load_checkpoints
from splinescope.spatial.lc_run import lc_row, point_sets
from splinescope.spatial.local_complexity import random_frame
from splinescope.spatial.migration import partition_statistics
from splinescope.spatial.sweep import sweep
from splinescope.spatial.train import toy_mlp

ARCH = {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": {"width": 6, "depth": 2}}
STEPS = (0, 3, 10, 40)


@pytest.fixture
def run(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (40, 2))
    runs.write_arch(d, ARCH)
    runs.write_data(d, X, (X[:, 0] > 0).astype(np.int64), X[:10] * 0.5, np.zeros(10, np.int64))
    for s in STEPS:
        runs.save_step(d, s, toy_mlp(6, 2, seed=s).state_dict())
    return d


def slices_of(run):
    X = np.load(run / "data.npz")["X"]
    plane = spatial.Plane.through([0.0, 0.0], [1.0, 0.0], [0.0, 1.0])
    return {"box": (-1, 1, -1, 1), "wide": ((-2, 2, -2, 2), plane)}, X


def expected_rows(run, lc=False):
    slices, X = slices_of(run)
    d = np.load(run / "data.npz")
    sets = point_sets(d["X"], d["y"], d["X_test"], d["y_test"], points=15, seed=0)
    frame = random_frame(2, 2, seed=0, dtype=torch.float64)
    rows = []
    for step, model in load_checkpoints(run):
        extra = lc_row(model, sets, 0.1, frame=frame) if lc else {}
        for name, spec in slices.items():
            bounds, plane, pts = (spec, None, X) if name == "box" else (spec[0], spec[1], np.array([[0, 0], [1, 0], [0, 1.0]]))
            stats = partition_statistics(spatial.partition(model, bounds, plane=plane), pts)
            rows.append({"step": step, "slice": name, **stats, **extra})
    return rows


def same(rows, want):
    assert [(r["step"], r["slice"]) for r in rows] == [(r["step"], r["slice"]) for r in want]
    for r, w in zip(rows, want):
        for k, v in w.items():
            if isinstance(v, float) and np.isnan(v):
                assert r[k] is None or np.isnan(r[k]), k
            else:
                assert r[k] == pytest.approx(v), k


def read_csv(path):
    def num(v):
        return None if v == "" else (int(v) if v.lstrip("-").isdigit() else float(v) if v[:1].isdigit() or v[:1] in "-." or v in ("nan", "inf") else v)
    return [{k: num(v) for k, v in r.items()} for r in csv.DictReader(open(path))]


def test_the_table_is_the_librarys_numbers(run, tmp_path):
    slices, _ = slices_of(run)
    r = sweep(run, tmp_path / "t.csv", slices=slices, lc=True, lc_points=15, directions=2, progress=False)
    want = expected_rows(run, lc=True)
    same(r.rows, want)
    same(read_csv(tmp_path / "t.csv"), want)
    assert (r.computed, r.stored, r.failures) == (12, 0, [])
    assert {"file", "lc_train", "lc_train/3", "acc_test", "boundary_length"} <= set(r.rows[0])


def test_default_slice_and_parquet(run, tmp_path):
    pa = pytest.importorskip("pyarrow.parquet")
    r = sweep(run, tmp_path / "t.parquet", progress=False)
    assert [row["slice"] for row in r.rows] == ["box"] * len(STEPS)
    table = pa.read_table(tmp_path / "t.parquet").to_pylist()
    assert [row["regions"] for row in table] == [row["regions"] for row in r.rows]
    X = np.load(run / "data.npz")["X"]
    want = partition_statistics(spatial.partition(toy_mlp(6, 2, seed=10), spatial._validate.data_box(X)), X)
    assert r.rows[2]["regions"] == want["regions"]


def test_resume_after_an_interruption_computes_only_what_is_missing(run, tmp_path, monkeypatch):
    slices, _ = slices_of(run)
    calls = []
    real = sweep_module._compute

    def interrupted(task, ctx):
        if len(calls) == 5:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the sweep
        calls.append(task)
        return real(task, ctx)

    monkeypatch.setattr(sweep_module, "_compute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep(run, tmp_path / "t.csv", slices=slices, progress=False)
    assert not (tmp_path / "t.csv").exists()  # nothing half-written
    assert len(list((tmp_path / "t.csv.parts").glob("*.json"))) == 5
    calls.clear()
    monkeypatch.setattr(sweep_module, "_compute", lambda task, ctx: (calls.append(task), real(task, ctx))[1])
    r = sweep(run, tmp_path / "t.csv", slices=slices, progress=False)
    assert (len(calls), r.computed, r.stored) == (3, 3, 5)
    same(r.rows, expected_rows(run))
    calls.clear()
    again = sweep(run, tmp_path / "t.csv", slices=slices, progress=False)
    assert calls == [] and again.rows == r.rows


def test_a_changed_checkpoint_is_recomputed(run, tmp_path):
    first = sweep(run, tmp_path / "t.csv", progress=False)
    runs.save_step(run, 10, toy_mlp(6, 2, seed=99).state_dict())
    second = sweep(run, tmp_path / "t.csv", progress=False)
    assert (second.computed, second.stored) == (1, 3)
    assert len(second.rows) == len(STEPS)  # the stale result is not a row
    X = np.load(run / "data.npz")["X"]
    box = spatial._validate.data_box(X)
    assert second.rows[2]["regions"] == len(spatial.partition(toy_mlp(6, 2, seed=99), box)) != first.rows[2]["regions"]


def test_a_failed_checkpoint_is_named_and_the_rest_goes_on(run, tmp_path, capsys):
    (run / runs.step_name(3)).write_bytes(b"not a checkpoint")
    r = sweep(run, tmp_path / "t.csv", progress=False)
    assert [row["step"] for row in r.rows] == [0, 10, 40]
    assert len(r.failures) == 1 and r.failures[0][0].endswith("step_000003.pt") and "not a model checkpoint" in r.failures[0][2]
    assert main(["sweep", str(run), "--out", str(tmp_path / "u.csv"), "--quiet"]) == 1
    err = capsys.readouterr()
    assert "step_000003.pt" in err.out + err.err and "1 failed" in err.out


def test_errors(run, tmp_path, capsys):
    with pytest.raises(ValueError, match="'.txt' is not a supported table format, must be one of '.csv', '.parquet'"):
        sweep(run, tmp_path / "t.txt")
    with pytest.raises(ValueError, match="give workers= .* or scheduler= .*, not both"):
        sweep(run, tmp_path / "t.csv", workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="workers"):
        sweep(run, tmp_path / "t.csv", workers=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sweep(run, tmp_path / "no" / "t.csv")
    with pytest.raises(ValueError, match="has no Plane but the data have 5 features"):
        sweep(run, tmp_path / "t.csv", data=(np.zeros((3, 5)), np.zeros(3)), slices={"a": (-1, 1, -1, 1)})
    with pytest.raises(ValueError, match="nothing to compute"):
        sweep(run, tmp_path / "t.csv", slices={})
    with pytest.raises(ValueError, match="lc=True needs labelled training data"):
        sweep(run, tmp_path / "t.csv", data=None, lc=True)
    assert main(["sweep", str(run), "--out", str(tmp_path / "t.csv"), "--through", "a", "b", "c"]) == 2
    assert "a: an input must be a .npy or .pt file" in capsys.readouterr().err


def test_cli_end_to_end(run, tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert main(["sweep", str(run), "--out", str(out), "--bounds", "-1", "1", "-1", "1", "--lc", "--points", "15",
                 "--directions", "2", "--quiet"]) == 0
    rows = read_csv(out)
    slices, X = slices_of(run)
    want = [r for r in expected_rows(run, lc=True) if r["slice"] == "box"]
    same(rows, want)
    assert "8 tasks computed" in capsys.readouterr().out  # 4 slice + 4 LC tasks
    assert main(["sweep", str(run), "--out", str(out), "--bounds", "-1", "1", "-1", "1", "--quiet"]) == 0
    assert "0 tasks computed, 4 stored already" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- on Dask

def test_local_cluster_gives_the_same_table(run, tmp_path):
    pytest.importorskip("dask.distributed")
    slices, _ = slices_of(run)
    here = sweep(run, tmp_path / "a.csv", slices=slices, lc=True, lc_points=15, directions=2, progress=False)
    there = sweep(run, tmp_path / "b.csv", slices=slices, lc=True, lc_points=15, directions=2, workers=2,
                  progress=False)
    assert there.rows == here.rows and there.computed == 12
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_existing_scheduler_and_a_killed_worker(run, tmp_path):
    pytest.importorskip("dask.distributed")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask + ["--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1",
                                           "--no-dashboard", "--host", "127.0.0.1"],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client
        with Client(addr, timeout="60s") as c:
            c.wait_for_workers(2, timeout=60)
        slices, _ = slices_of(run)
        procs[1].send_signal(signal.SIGKILL)  # one worker lost before the sweep: the other does it all
        r = sweep(run, tmp_path / "t.csv", slices=slices, scheduler=addr, progress=False)
        same(r.rows, expected_rows(run))
        assert r.failures == []
    finally:
        for p in procs[::-1]:
            p.kill()
            p.wait(10)
