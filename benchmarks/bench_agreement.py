"""Exact decision-region agreement (``spatial.agreement``) against its sampled estimate on a
1000x1000 grid of the same box, on one CPU thread, in the same run.

Run: ``python benchmarks/bench_agreement.py [--repeat 3] [--tiles]``

Each pair is a net ``Linear(2, w) -> ReLU -> Linear(w, w) -> ReLU -> Linear(w, K)``
(``torch.manual_seed(0)``) and a copy with every weight moved by ``0.05 N(0, 1)`` (two
checkpoints of one run, say), on the box ``(-3, 3)^2``. Columns: the joint partition's regions,
the exact fraction and its seconds (the least of ``--repeat``), the grid's fraction and seconds,
their ratio (exact / grid), and the grid's error. The last row: the digits CNN of
``bench_cnn`` (Conv 16 -> ReLU -> MaxPool 2 -> Conv 32 -> ReLU -> Linear 10) and a copy moved by
``0.02 N(0, 1)``, on the plane through digits 0, 1, 2, box ``(0, 0.5)^2`` (the grid pass is the
agreement function's own: both float32 models on 65,536 points at a time).

``--tiles``: the CNN pair on ``(-0.2, 1.2)^2`` (the box ``splinescope dynamics`` uses on a plane),
the whole joint partition at once against ``max_memory=`` tiles (seconds and peak memory, and
their ratios to the whole box's).

The exact method splits only the joint regions where a classifier's top class can change, by the
differences of its candidate classes (``_boundary.top_split``, as the decision boundary). (It
clipped those regions class by class in Python before: K^2 half-planes per class and region; the
100-class pair took 8.5 s, against 1.1 s for the grid; and it read dense layers with one activation
only: a CNN was refused.)
"""
from __future__ import annotations

import argparse
import copy
import time
import tracemalloc

import torch
from threadpoolctl import threadpool_limits

from splinescope import spatial
from splinescope.spatial.agreement import _Joint


def pair(w: int, K: int):
    torch.manual_seed(0)
    L = torch.nn
    a = L.Sequential(L.Linear(2, w), L.ReLU(), L.Linear(w, w), L.ReLU(), L.Linear(w, K)).eval()
    b = copy.deepcopy(a)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return a, b


def best(f, repeat: int):
    out, t = None, []
    for _ in range(repeat):
        s = time.perf_counter()
        out = f()
        t.append(time.perf_counter() - s)
    return out, min(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tiles", action="store_true", help="also the CNN pair on (-0.2, 1.2)^2, whole and in tiles "
                                                         "(about two minutes)")
    args = ap.parse_args()
    box = (-3.0, 3.0, -3.0, 3.0)
    torch.set_num_threads(1)
    with threadpool_limits(1):
        spatial.agreement(*pair(8, 2), box)  # warm
        print(f"{'w':>4} {'K':>4} {'regions':>8} {'exact':>9} {'exact s':>8} {'grid':>9} {'grid s':>7} {'ratio':>7}"
              f" {'grid err':>9}")
        for w, K in [(16, 10), (64, 10), (64, 100), (128, 10)]:
            a, b = pair(w, K)
            n = len(spatial.partition(_Joint(a, b), box, boundary=False))
            e, te = best(lambda: spatial.agreement(a, b, box), args.repeat)
            g, tg = best(lambda: spatial.agreement(a, b, box, method="grid", grid=1000), args.repeat)
            print(f"{w:>4} {K:>4} {n:>8} {e:>9.6f} {te:>8.3f} {g:>9.6f} {tg:>7.3f} {te / tg:>6.2f}x {abs(g - e):>9.1e}")
        from bench_cnn import cnn
        from sklearn.datasets import load_digits

        d = load_digits().data.reshape(-1, 1, 8, 8) / 16.0

        a = cnn()
        b = copy.deepcopy(a)
        with torch.no_grad():
            for p in b.parameters():
                p.add_(0.02 * torch.randn_like(p))
        plane, box = spatial.Plane.through(d[0], d[1], d[2]), (0.0, 0.5, 0.0, 0.5)
        n = len(spatial.partition(_Joint(a, b), box, plane=plane, boundary=False))
        e, te = best(lambda: spatial.agreement(a, b, box, plane=plane), args.repeat)
        g, tg = best(lambda: spatial.agreement(a, b, box, plane=plane, method="grid", grid=1000), args.repeat)
        print(f"{'cnn':>4} {10:>4} {n:>8} {e:>9.6f} {te:>8.3f} {g:>9.6f} {tg:>7.3f} {te / tg:>6.2f}x {abs(g - e):>9.1e}")
        if args.tiles:
            tiles(a, b, plane)


def tiles(a, b, plane) -> None:
    """The CNN pair on the box ``splinescope dynamics`` uses on a plane, (-0.2, 1.2)^2: the whole
    joint partition at once against tiles of ``max_memory`` (1 GiB, 256 MiB), each run once, with
    the peak of the arrays numpy and Python allocate (tracemalloc, which slows every run alike)."""
    box = (-0.2, 1.2, -0.2, 1.2)
    print(f"\ndigits CNN pair on {box}: the joint partition whole or in tiles")
    print(f"{'max_memory':>12} {'agreement':>20} {'s':>7} {'peak MB':>8} {'x time':>7} {'x peak':>7}")
    base = None
    for budget in (None, 2 ** 30, 2 ** 28):
        tracemalloc.start()
        s = time.perf_counter()
        v = spatial.agreement(a, b, box, plane=plane, max_memory=budget)
        t = time.perf_counter() - s
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        base = base or (t, peak)
        print(f"{'whole' if budget is None else f'{budget >> 20} MiB':>12} {v:>20.17f} {t:>7.1f} {peak:>8.0f} "
              f"{t / base[0]:>6.2f}x {peak / base[1]:>6.3f}x")


if __name__ == "__main__":
    main()
