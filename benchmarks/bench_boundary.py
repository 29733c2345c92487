"""The decision boundary (``Partition.boundary``) of nets with many classes: a partition with
the boundary against the same partition without it (``boundary=False``), on one CPU thread, in the
same run.

Run: ``python benchmarks/bench_boundary.py [--classes 10 100 1000] [--repeat 3]``

Each net is ``Linear(2, 64) -> ReLU -> Linear(64, 64) -> ReLU -> Linear(64, K)``
(``torch.manual_seed(1)`` default init, float32 as trained) on the box ``(-3, 3)^2``: a 10-class
head, a 100-class head (CIFAR-100's), and 1000 outputs (ImageNet's). Columns: regions, seconds
without and with the boundary (the least of ``--repeat``), their ratio, the boundary's segments,
and the peak of the memory numpy allocated during the partition with the boundary (MB, by
``tracemalloc``; the partition without it peaks at about the same).

The boundary splits only the faces where two classes can both be on top, by the differences of
the pairs those faces need, and lists ties per vertex: memory and work grow with the vertices
times the classes. (Every pair at every vertex of such a face, as before: the 100-class net here
took 28 s and a peak of 9.5 GB resident, with the same 409 segments, and 512 classes asked for
650 GB on the box (-1, 1)^2.)
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import torch
from threadpoolctl import threadpool_limits

from splinescope import spatial


def net(K: int) -> torch.nn.Sequential:
    torch.manual_seed(1)
    L = torch.nn
    return L.Sequential(L.Linear(2, 64), L.ReLU(), L.Linear(64, 64), L.ReLU(), L.Linear(64, K)).eval()


def best(f, repeat: int) -> float:
    t = []
    for _ in range(repeat):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return min(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    box = (-3.0, 3.0, -3.0, 3.0)
    torch.set_num_threads(1)
    with threadpool_limits(1):
        spatial.partition(net(2), box)  # warm
        print(f"{'classes':>8} {'regions':>8} {'no boundary s':>14} {'boundary s':>11} {'ratio':>7} {'segments':>9}"
              f" {'peak MB':>8}")
        for K in args.classes:
            m = net(K)
            t0 = best(lambda: spatial.partition(m, box, boundary=False), args.repeat)
            t1 = best(lambda: spatial.partition(m, box), args.repeat)
            tracemalloc.start()
            p = spatial.partition(m, box)
            peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
            tracemalloc.stop()
            print(f"{K:>8} {len(p):>8} {t0:>14.3f} {t1:>11.3f} {t1 / t0:>6.2f}x {len(p.boundary):>9} {peak:>8.0f}")


if __name__ == "__main__":
    main()
