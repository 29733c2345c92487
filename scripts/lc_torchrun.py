"""Local complexity and CKA over a dataset split across processes, with torchrun.

Run (2 processes on this machine, CPU and gloo; on GPUs use ``--nproc_per_node=<GPUs>``, which
puts each process on its own GPU and uses nccl):

    torchrun --nproc_per_node=2 scripts/lc_torchrun.py --out lc.json

Each process reads only its shard of the points (every ``world``-th point, from ``rank``),
updates :class:`splinescope.spatial.LocalComplexity` and :class:`splinescope.spatial.cka.CKA` with
it, and ``compute()`` sums the metrics' states across the processes (torchmetrics' sync), so
every process gets the value of the whole dataset. Rank 0 writes it to ``--out`` as JSON. The
model and data here are a fixed seeded MLP and random points (``--points``, ``--dim``), so a
one-process run (plain ``python scripts/lc_torchrun.py``) gives the numbers to compare with.
"""
from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist


def model_and_data(points: int, dim: int):
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net, torch.rand(points, dim, generator=g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--points", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cpu")
    if world > 1:
        gpu = torch.cuda.is_available()
        dist.init_process_group("nccl" if gpu else "gloo")
        if gpu:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    from splinescope.spatial import LocalComplexity
    from splinescope.spatial.cka import CKA
    from splinescope.spatial.dynamics import representations

    net, X = model_and_data(a.points, a.dim)
    net = net.to(device)
    lc = LocalComplexity(net, radius=0.05, directions=5, seed=0).to(device)  # one frame: same seed everywhere
    cka = CKA().to(device)
    shard = X[rank::world]
    for batch in shard.split(a.batch):
        batch = batch.to(device)
        lc.update(batch)
        reps = representations(net, batch)  # {activation module: (n, 64)}
        first, last = list(reps.values())[0], list(reps.values())[-1]
        cka.update(first, last)
    result = {"lc": lc.compute().tolist(), "cka": float(cka.compute()), "points_here": int(lc.count.item()),
              "world": world}
    if rank == 0:
        with open(a.out, "w") as f:
            json.dump(result, f)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
