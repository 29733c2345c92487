"""Exact partition of a digits CNN on a plane through three digits, against the float32 forward
pass of a 1000x1000 grid of the same plane, on one CPU thread, in the same run.

Run: ``python benchmarks/bench_cnn.py [--half 0.25 0.5 1.0] [--repeat 2]``

The CNN (issue 10): 1x8x8 -> Conv 16 (3x3, pad 1) -> ReLU -> MaxPool 2 -> Conv 32 (3x3, pad 1)
-> ReLU -> Linear 10, ``torch.manual_seed(0)`` default init; the plane through sklearn digits
0, 1, 2 (scaled to [0, 1]); the box ``(0, h, 0, h)`` in plane coordinates for each ``--half`` h
(h = 1 is the triangle of the three digits and its mirror). Target: partition / grid <= 0.1x.
Prints regions, seconds, and the ratio partition / grid.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from splinescope import spatial


def cnn() -> torch.nn.Sequential:
    torch.manual_seed(0)
    L = torch.nn
    return L.Sequential(L.Conv2d(1, 16, 3, padding=1), L.ReLU(), L.MaxPool2d(2), L.Conv2d(16, 32, 3, padding=1),
                        L.ReLU(), L.Flatten(), L.Linear(32 * 16, 10)).eval()


def grid_forward(net, plane, h) -> float:
    g = torch.linspace(0, h, 1000, dtype=torch.float64)
    st = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2).numpy()
    X = torch.tensor(plane.lift(st), dtype=torch.float32).reshape((-1,) + plane.shape)
    with torch.no_grad():
        t = time.perf_counter()
        for c in X.split(50_000):
            net(c)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", type=float, nargs="+", default=[0.25, 0.5])
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    d = load_digits().data.reshape(-1, 1, 8, 8) / 16.0
    plane = spatial.Plane.through(d[0], d[1], d[2])
    net = cnn()
    spatial.partition(net, (0, 0.05, 0, 0.05), plane=plane)  # warm: tracing, imports
    print(f"{'box':>12} {'regions':>8} {'partition s':>12} {'grid s':>8} {'ratio':>7}")
    for h in a.half:
        tp, tg, n = [], [], 0
        for _ in range(a.repeat):
            t = time.perf_counter()
            n = len(spatial.partition(net, (0, h, 0, h), plane=plane))
            tp.append(time.perf_counter() - t)
            tg.append(grid_forward(net, plane, h))
        print(f"{f'(0,{h})^2':>12} {n:>8} {min(tp):>12.2f} {min(tg):>8.2f} {min(tp) / min(tg):>7.2f}x")


if __name__ == "__main__":
    main()
