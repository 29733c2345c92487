"""Run a function in two (or more) gloo processes on this machine, torchmetrics-test style."""
import socket

import torch


def _entry(target, rank, world, port, q):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        q.put((rank, target(rank, world)))
    finally:
        dist.destroy_process_group()


def run_gloo(target, world=2, start="spawn", timeout=120):
    """``{rank: target(rank, world)}``, each call in its own process of one gloo group.

    ``target`` must be a module-level function; ``start="fork"`` saves the children importing
    torch again (where the platform has fork).
    """
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context(start if start in mp.get_all_start_methods() else "spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_entry, args=(target, r, world, port, q)) for r in range(world)]
    for p in procs:
        p.start()
    results = dict(q.get(timeout=timeout) for _ in procs)
    for p in procs:
        p.join(30)
    return results
