"""Tiled partition (``max_memory=``) against the one-piece partition: regions, time, peak memory.

Run: ``python benchmarks/bench_tiles.py [--widths 256 512] [--max-memory BYTES] [--repeat 2] [--workers 2]``

For each width w the network is the one of ``bench_partition.py``: ``torch.manual_seed(0)``,
default init, 2 -> [w, w, w] -> 1 with LeakyReLU(0.01), on the box [-1, 1]^2, on one CPU thread.
Each variant runs in a fresh subprocess (``--repeat`` times, alternating; the best time and the
largest peak are kept), so its peak RSS (``VmHWM``: numpy and torch buffers included) is its own.
The budget is ``--max-memory`` bytes, by default 2**28 for w <= 256 and 2**30 above (issue 13:
w=512, 358,034 regions, must stay the same count within 1.5 GB peak RSS and 1.5x the one-piece
time). ``base MB`` is a process's RSS before the partition (Python, torch, the model), counted in
the peaks but not in the budget. With ``--workers N`` the tiled partition is also timed with its
tiles on a local Dask cluster of N processes (``partition(..., client=)``; the cluster's start-up
not counted; ``dask MB``: the peak of the process that stitches).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _status(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(width: int, max_memory: int, workers: int = 0) -> None:
    """One partition in this process: prints a JSON line (regions, seconds, peak and base RSS)."""
    import torch

    from splinescope import spatial

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_partition import net_for

    torch.set_num_threads(1)
    net = net_for(width)
    client = None
    if workers:
        from dask.distributed import Client, LocalCluster
        client = Client(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=None, silence_logs=40))
    base = _status("VmRSS")
    t = time.perf_counter()
    p = spatial.partition(net, bounds=(-1, 1, -1, 1), max_memory=max_memory or None, client=client)
    dt = time.perf_counter() - t
    grid = getattr(p, "_grid", None)
    tiles = (len(grid[0]) - 1) * (len(grid[1]) - 1) if grid is not None else 1
    print(json.dumps({"regions": len(p), "seconds": dt, "peak": _status("VmHWM"), "base": base, "tiles": tiles}))


def run(width: int, max_memory: int, workers: int = 0) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(width), str(max_memory), str(workers)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--max-memory", type=int, default=None, help="bytes (default 2**28 for w <= 256, else 2**30)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="also time the tiles on a local Dask cluster")
    ap.add_argument("--child", type=int, nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    print(f"{'width':>5} {'max_memory':>13} {'tiles':>5} {'regions':>8} {'tiled':>8} {'one-piece s':>11} "
          f"{'tiled s':>8} {'ratio':>6} {'one-piece MB':>12} {'tiled MB':>9} {'base MB':>8}"
          + (f" {'dask s':>7} {'dask MB':>8}" if args.workers else ""))
    for w in args.widths:
        mem = args.max_memory or (2 ** 28 if w <= 256 else 2 ** 30)
        one, tiled, dask = [], [], []
        for _ in range(args.repeat):
            one.append(run(w, 0))
            tiled.append(run(w, mem))
            if args.workers:
                dask.append(run(w, mem, args.workers))
        a = min(one, key=lambda r: r["seconds"])
        b = min(tiled, key=lambda r: r["seconds"])
        pa, pb = max(r["peak"] for r in one), max(r["peak"] for r in tiled)
        print(f"{w:>5} {mem:>13,} {b['tiles']:>5} {a['regions']:>8,} {b['regions']:>8,} {a['seconds']:>11.2f} "
              f"{b['seconds']:>8.2f} {b['seconds'] / a['seconds']:>6.2f} {pa:>12.0f} {pb:>9.0f} {a['base']:>8.0f}"
              + (f" {min(r['seconds'] for r in dask):>7.2f} {max(r['peak'] for r in dask):>8.0f}" if dask else ""),
              flush=True)
        for r in [b] + dask:
            if a["regions"] != r["regions"]:
                print(f"  COUNT MISMATCH at w={w}: {a['regions']} != {r['regions']}")


if __name__ == "__main__":
    main()
