"""Sweep throughput: in this process, and on a local Dask cluster of 1 and 2 worker processes.

Run: ``python benchmarks/bench_sweep.py [--checkpoints 16] [--width 96] [--slices 2]``

A run folder of ``--checkpoints`` state_dicts of a 2 -> [w, w, w] -> 1 LeakyReLU(0.01) network
(``torch.manual_seed(k)``, default init), each swept on ``--slices`` boxes of [-1, 1]^2 (shifted
copies), with fresh stores each time (nothing reused). Prints the wall time, tasks per second
and the speed-up against the in-process run of the same tasks, measured in the same run, with
the cluster's start-up timed apart (``start s``: a ``LocalCluster`` of that many processes,
one thread each, started here and handed to the sweep as ``scheduler=``; ``sweep s``: the sweep
on it, connecting included). Every run must give the same table. Issue 13: the ratio of 2 workers to 1 on this 2-core machine.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from splinescope.spatial import runs
from splinescope.spatial.sweep import sweep


def net_for(width: int, seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    L = torch.nn
    return L.Sequential(L.Linear(2, width), L.LeakyReLU(0.01), L.Linear(width, width), L.LeakyReLU(0.01),
                        L.Linear(width, width), L.LeakyReLU(0.01), L.Linear(width, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=16)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--slices", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        run.mkdir()
        for k in range(a.checkpoints):
            runs.save_step(run, k, net_for(a.width, k).state_dict())
        slices = {f"s{i}": (-1 + 0.1 * i, 1 + 0.1 * i, -1, 1) for i in range(a.slices)}
        kw = dict(arch=f"benchmarks/bench_sweep.py:net_for(width={a.width}, seed=0)", slices=slices, data=None,
                  progress=False)
        from dask.distributed import LocalCluster
        results = {}
        for name, workers in (("in-process", 0), ("1 worker", 1), ("2 workers", 2)):
            cluster, start = None, 0.0
            if workers:
                t = time.perf_counter()
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
                start = time.perf_counter() - t
            try:
                t = time.perf_counter()
                r = sweep(run, Path(d) / f"{name.replace(' ', '_')}.csv", **kw,
                          scheduler=None if cluster is None else cluster.scheduler_address)
                results[name] = (time.perf_counter() - t, start, r)
            finally:
                if cluster is not None:
                    cluster.close()
        base = results["in-process"][0]
        tables = {n: [(row["step"], row["slice"], row["regions"]) for row in r.rows] for n, (_, _, r) in results.items()}
        assert len({str(t) for t in tables.values()}) == 1, "the tables differ"
        n_tasks = len(results["in-process"][2].rows)
        regions = np.mean([row["regions"] for row in results["in-process"][2].rows])
        print(f"{a.checkpoints} checkpoints x {a.slices} slices = {n_tasks} tasks, 2->[{a.width}]x3->1, "
              f"{regions:,.0f} regions per task on average")
        print(f"{'':>12} {'start s':>8} {'sweep s':>8} {'tasks/s':>8} {'vs here':>8}")
        for name, (work, start, _) in results.items():
            print(f"{name:>12} {start:>8.2f} {work:>8.2f} {n_tasks / work:>8.2f} {base / work:>7.2f}x")
        (w1, s1, _), (w2, s2, _) = results["1 worker"], results["2 workers"]
        print(f"2 workers / 1 worker throughput: {w1 / w2:.2f}x (sweep), {(w1 + s1) / (w2 + s2):.2f}x (start-up included)")


if __name__ == "__main__":
    main()
