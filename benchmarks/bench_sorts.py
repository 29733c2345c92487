"""GroupSort / MaxMin networks (sorting activations, as in Lipschitz networks): exact partitions
against the float32 forward pass of a 1000x1000 grid of the same box, on one CPU thread, in the
same run.

Run: ``python benchmarks/bench_sorts.py [--repeat 2]``

Each net is ``Linear(2, w) -> sort of groups of g -> ... -> Linear(w, 2)`` (``torch.manual_seed(0)``
default init, float64) on the box ``(-2, 2)^2``: MaxMin (g = 2) and GroupSort (g = 4, 8) with two
hidden layers, and one full sort of 16 values. A sort's values are read as a sorting network of
maxima of pairs (Batcher's), so its tournaments hold many ties and doubtful signs, each decided
exactly from the vertex's two lines by a forward pass in rational arithmetic.

Columns: regions, partition seconds (the least of ``--repeat``), ``1 by 1 s``: the same partition
with the exact forward passes made one vertex at a time (``ExactNet._forward_many`` replaced by
one :meth:`ExactNet.values` call per vertex, as before they were batched: every layer's map
interpreted once per vertex), ``grid s`` (the fastest of three batch sizes) and partition / grid.
"""
from __future__ import annotations

import argparse
import time

import torch
from threadpoolctl import threadpool_limits

from splinescope import spatial
from splinescope.spatial import _predicates


class SortNet(torch.nn.Module):
    def __init__(self, width: int, group: int, layers: int):
        super().__init__()
        torch.manual_seed(0)
        dims = [2] + [width] * layers
        self.hidden = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.out = torch.nn.Linear(width, 2)
        self.group = group

    def forward(self, x):
        for fc in self.hidden:
            h = fc(x)
            x = h.view(-1, h.shape[1] // self.group, self.group).sort(-1).values.flatten(1)
        return self.out(x)


NETS = {"MaxMin 2-32-32-2 (g=2)": (32, 2, 2), "GroupSort 2-32-32-2 (g=4)": (32, 4, 2),
        "GroupSort 2-16-16-2 (g=8)": (16, 8, 2), "full sort 2-16-2 (g=16)": (16, 16, 1)}
BOX = (-2.0, 2.0, -2.0, 2.0)


def grid_seconds(args) -> float:
    """The fastest float32 forward pass of the 1000x1000 grid of BOX in batches of 1k, 10k, 100k
    through the net ``SortNet(*args)``."""
    g = torch.linspace(BOX[0], BOX[1], 1000)
    pts = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    net32 = SortNet(*args).float().eval()
    best = float("inf")
    with torch.no_grad():
        for batch in (1_000, 10_000, 100_000):
            t = time.perf_counter()
            for i in range(0, len(pts), batch):
                net32(pts[i: i + batch])
            best = min(best, time.perf_counter() - t)
    return best


def one_by_one(self, keys, layer):
    """``ExactNet._forward_many`` as it was: one :meth:`ExactNet.values` (a map per layer) per vertex."""
    for key in dict.fromkeys(keys):
        self.values(key[0], key[1], layer)


def timed(net, repeat: int) -> tuple:
    best, n = float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = len(spatial.partition(net, BOX))
        best = min(best, time.perf_counter() - t)
    return best, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS too: one thread for every method, as torch
    print(f"{'net':>28} {'regions':>8} {'partition s':>12} {'1 by 1 s':>9} {'x faster':>8} {'grid s':>7} {'ratio':>7}")
    for name, args in NETS.items():
        net = SortNet(*args).double().eval()
        spatial.partition(net, (-0.1, 0.1, -0.1, 0.1))  # warm: tracing, imports
        tp, n = timed(net, a.repeat)
        batched = _predicates.ExactNet._forward_many
        _predicates.ExactNet._forward_many = one_by_one  # type: ignore[method-assign]
        try:
            t1, n1 = timed(net, a.repeat)
        finally:
            _predicates.ExactNet._forward_many = batched  # type: ignore[method-assign]
        tg = grid_seconds(args)
        same = "" if n1 == n else f"  COUNTS DIFFER: {n1}"
        print(f"{name:>28} {n:>8} {tp:>12.2f} {t1:>9.2f} {t1 / tp:>7.1f}x {tg:>7.2f} {tp / tg:>6.3f}x{same}")


if __name__ == "__main__":
    main()
