"""Counting the regions of wide networks in tiles, in this process and on a local Dask cluster.

Run: ``python benchmarks/bench_count.py [--widths 1024 2048] [--workers 2] [--max-memory BYTES] [--here 1024]``

For each width w the network is the one of ``bench_partition.py`` (``torch.manual_seed(0)``,
default init, 2 -> [w, w, w] -> 1 with LeakyReLU(0.01)) on [-1, 1]^2. ``spatial.count_regions``
splits the box into tiles of at most ``--max-memory`` bytes of working arrays each (default
2**30), sends each tile to a worker of a local cluster of ``--workers`` processes (one thread
each), and matches the pieces along tile edges by their patterns: the exact count without a
``Partition`` in memory. For the widths in ``--here`` it also counts in this process, and for
``--partition`` widths with ``len(partition(..., max_memory=))``, to show the counts equal.
Prints the count, seconds (cluster start-up not counted) and this process's peak RSS (issue 13).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-memory", type=int, default=2 ** 30)
    ap.add_argument("--here", type=int, nargs="*", default=[1024], help="widths also counted in this process")
    ap.add_argument("--partition", type=int, nargs="*", default=[], help="widths also partitioned (max_memory=)")
    a = ap.parse_args()
    import torch
    from dask.distributed import Client, LocalCluster

    from splinescope import spatial
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_partition import net_for

    torch.set_num_threads(1)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        print(f"{'width':>6} {'where':>18} {'regions':>12} {'seconds':>8} {'peak MB here':>13}", flush=True)
        for w in a.widths:
            net = net_for(w)
            runs = [(f"{a.workers} workers", dict(client=client))]
            if w in a.here:
                runs.append(("this process", {}))
            counts = []
            for where, kw in runs:
                t = time.perf_counter()
                n = spatial.count_regions(net, (-1, 1, -1, 1), max_memory=a.max_memory, **kw)
                counts.append(n)
                print(f"{w:>6} {where:>18} {n:>12,} {time.perf_counter() - t:>8.1f} {peak():>13.0f}", flush=True)
            if w in a.partition:
                t = time.perf_counter()
                n = len(spatial.partition(net, (-1, 1, -1, 1), max_memory=4 * a.max_memory))
                counts.append(n)
                print(f"{w:>6} {'partition (tiled)':>18} {n:>12,} {time.perf_counter() - t:>8.1f} {peak():>13.0f}",
                      flush=True)
            if len(set(counts)) > 1:
                print(f"  COUNT MISMATCH at w={w}: {counts}")


if __name__ == "__main__":
    main()
