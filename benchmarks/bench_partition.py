"""Exact partition time against the forward pass of a 1000x1000 grid, on one CPU thread.

Run: ``python benchmarks/bench_partition.py [--widths 32 64 128 256 -1000] [--repeat 3] [--device cpu]``

For each width w the network is ``torch.manual_seed(0)``, default init, 2 -> [w, w, w] -> 1 with
LeakyReLU(0.01), on the box [-1, 1]^2 (a width -w: one ReLU layer of w neurons). In the same run it times the float32 forward pass of the
1000x1000 grid through the same network (what a sampling approximation costs) and prints
partition / grid, the peak memory of one partition call, and the cost floor (a float64 forward
pass of the final vertices through the network) with partition / floor, and the same partition with
``exact=False`` (float decisions only), timed alternately, with exact / fast. Goals: <= 0.10x at w=128, <= 0.15x
at w=256, peak memory under 1 GB.
Reference counts (exact rational computation): w=32: 1,235; w=64: 6,674; w=128: 20,609.
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from splinescope import spatial

EXPECTED = {32: 1235, 64: 6674, 128: 20609}


def net_for(width: int) -> torch.nn.Sequential:
    """2 -> [w, w, w] -> 1; a negative width -w gives one hidden layer 2 -> [w] -> 1."""
    torch.manual_seed(0)
    L = torch.nn
    if width < 0:
        return L.Sequential(L.Linear(2, -width), L.ReLU(), L.Linear(-width, 1))
    return L.Sequential(L.Linear(2, width), L.LeakyReLU(0.01), L.Linear(width, width), L.LeakyReLU(0.01),
                        L.Linear(width, width), L.LeakyReLU(0.01), L.Linear(width, 1))


def grid_forward(net: torch.nn.Module, device: str) -> float:
    g = torch.linspace(-1, 1, 1000)
    X = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2).to(device)
    net = net.to(device)
    with torch.no_grad():
        t = time.perf_counter()
        for c in X.split(100_000):
            net(c)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t


def best(f, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256, -1000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu",
                    help="cpu (numpy engine, grid on the CPU) or a torch device such as cuda (the "
                         "engine's matrix products and the grid baseline both run there)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    goals = {128: 0.10, 256: 0.15}
    print(f"{'width':>6} {'regions':>8} {'expected':>8} {'partition s':>11} {'grid s':>7} {'ratio':>6} {'goal':>5} "
          f"{'peak MB':>8} {'floor s':>8} {'x floor':>7} {'exact=False s':>13} {'x fast':>6}")
    with threadpool_limits(1):
        for w in args.widths:
            net = net_for(w)
            tg, _ = best(lambda: grid_forward(net, args.device), args.repeat)
            net = net.cpu()
            dev = None if args.device == "cpu" else args.device
            # the exact signs' cost: the same partition with exact=False, timed alternately with it
            tp = tq = float("inf")
            for _ in range(args.repeat):
                t, p = best(lambda: spatial.partition(net, bounds=(-1, 1, -1, 1), device=dev), 1)
                tp = min(tp, t)
                t, q = best(lambda: spatial.partition(net, bounds=(-1, 1, -1, 1), device=dev, exact=False), 1)
                tq = min(tq, t)
            # the cost floor of any exact method: a float64 forward pass of the vertices (an upper
            # bound on it: every layer here sees the final vertices, the engine sees fewer early on)
            from splinescope.spatial._net import parse
            pnet = parse(net)
            tf, _ = best(lambda: pnet.forward(p.vertices), args.repeat)
            tracemalloc.start()  # numpy reports its buffers to tracemalloc: the peak of one call
            spatial.partition(net, bounds=(-1, 1, -1, 1))
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            exp = EXPECTED.get(w)
            goal = goals.get(w)
            print(f"{w if w > 0 else f'1x{-w}':>6} {len(p):>8,} {exp if exp else '-':>8} {tp:>11.3f} {tg:>7.3f} "
                  f"{tp / tg:>6.3f} {goal if goal else '-':>5} {peak:>8.0f} {tf:>8.3f} {tp / tf:>7.1f} {tq:>13.3f} "
                  f"{tp / tq:>6.2f}", flush=True)
            if exp is not None and len(p) != exp:
                print(f"  COUNT MISMATCH at w={w}: {len(p)} != {exp}")


if __name__ == "__main__":
    main()
