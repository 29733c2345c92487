"""Benchmark: robust accuracy (PGD) vs training steps of the same network, on one CPU thread.

Run::

    python benchmarks/bench_robust.py               # 784-200-200-200-10 ReLU MLP, 1,000 points, 3 radii, 10 steps
    python benchmarks/bench_robust.py --repeat 5    # best of 5 rounds (default 3)
    python benchmarks/bench_robust.py --device cuda # both sides (attack and training) on a GPU

Speed: ``spatial.robust.robust_accuracy`` at 3 l-inf radii, 10 steps, one restart, on 1,000 random
784-D inputs in ``[0, 1]`` (clip ``(0, 1)``), against 100 AdamW steps of batch 200 (cross-entropy)
on the same network, best of ``--repeat`` rounds run round-robin in this process (so machine load
hits all alike). The labels are the network's own clean predictions, so every point is attacked.
Two sets of radii: ``some break`` (radii at which the attack breaks 2% to 35% of the points: the
broken ones drop out of the batch, and a point broken at a small radius is not attacked again)
and ``all survive`` (radii so small that no point breaks: every point takes every step at every
radius, the most a call can cost).

Issue 12's budget: measurements at 40 checkpoints of a run of 10^5 training steps must cost at most
0.5x its training, i.e. ``40 t_robust <= 0.5 * 1000 t_100`` (``t_100``: 100 training steps), or
``t_robust / t_100 <= 12.5``.

``--device cuda``: the network, the points and the training batches on that device, each timed
call synchronised; the same ratios (training on the GPU is the baseline there).

``--many-classes``: a last row for a 100-class head (a small CNN, Conv 8 -> ReLU -> MaxPool 4 ->
Linear 100, on 2,000 random 3x32x32 images, 5 steps, one radius): ``robust_accuracy`` with its
default batch (the ``(batch, 100, 3072)`` input Jacobian of the rival choice kept within
``robust.JACOBIAN_BYTES``) against ``batch_size=N`` (all points at once, the default before), with
the process's peak resident memory after each (the default first: the peak only grows).
"""
from __future__ import annotations

import argparse

import torch
from bench_lc import race, synced  # best time of each, round-robin (this script runs from benchmarks/)

from splinescope.spatial.robust import robust_accuracy


def mlp(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)  # the benchmark's own network; the library never touches this RNG
    L = torch.nn
    return L.Sequential(L.Linear(784, 200), L.ReLU(), L.Linear(200, 200), L.ReLU(), L.Linear(200, 200), L.ReLU(),
                        L.Linear(200, 10))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="points attacked")
    ap.add_argument("--steps", type=int, default=10, help="PGD steps")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device of the network, points and training (cuda)")
    ap.add_argument("--many-classes", action="store_true", help="a row for a 100-class CNN head (see the docstring)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device

    g = torch.Generator().manual_seed(1)
    net = mlp().to(dev)
    X = torch.rand(args.n, 784, generator=g).to(dev)
    with torch.no_grad():
        y = net(X).argmax(1)  # every point correct: every point is attacked
    Xtr = torch.rand(100, 200, 784, generator=g).to(dev)  # 100 batches of 200
    ytr = torch.randint(0, 10, (100, 200), generator=g).to(dev)
    train_net = mlp().to(dev)
    opt = torch.optim.AdamW(train_net.parameters(), lr=1e-3)

    def train100():
        for xb, yb in zip(Xtr, ytr):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(train_net(xb), yb).backward()
            opt.step()

    some, tiny = [0.01, 0.02, 0.03], [1e-6, 2e-6, 5e-6]
    (t_train, _), (t_some, acc_some), (t_tiny, acc_tiny) = race([
        synced(train100, dev),
        synced(lambda: robust_accuracy(net, X, y, some, steps=args.steps, clip=(0, 1)), dev),
        synced(lambda: robust_accuracy(net, X, y, tiny, steps=args.steps, clip=(0, 1)), dev)], args.repeat)
    where = f"{torch.get_num_threads()} thread(s)" if dev == "cpu" else dev
    print(f"784-200-200-200-10 ReLU MLP (float32), {args.n:,} random points in [0, 1], l-inf, {args.steps} steps, "
          f"1 restart, torch {torch.__version__}, {where}, best of {args.repeat}")
    print(f"  100 AdamW steps, batch 200                {t_train * 1e3:8.1f} ms   1.00x")
    for name, radii, t, acc in (("some break", some, t_some, acc_some), ("all survive", tiny, t_tiny, acc_tiny)):
        print(f"  robust_accuracy, 3 radii ({name:11s})    {t * 1e3:8.1f} ms   {t / t_train:.2f}x   "
              f"radii {radii}: accuracy {[round(a, 3) for a in acc.tolist()]}")
    worst = max(t_some, t_tiny)
    print(f"Issue 12: 40 checkpoints x robust_accuracy vs 10^5 training steps = {40 * worst / (1000 * t_train):.3f}x "
          "(target <= 0.5x; the slower of the two rows)")
    if args.many_classes:
        many_classes(dev)


def many_classes(dev: str) -> None:
    import resource
    import time

    L = torch.nn
    torch.manual_seed(0)
    net = L.Sequential(L.Conv2d(3, 8, 3, padding=1), L.ReLU(), L.MaxPool2d(4), L.Flatten(),
                       L.Linear(8 * 64, 100)).eval().to(dev)
    X = torch.rand(2000, 3, 32, 32, generator=torch.Generator().manual_seed(2)).to(dev)
    with torch.no_grad():
        y = net(X).argmax(1)
    print("100-class CNN head, 2,000 random 3x32x32 images, l-inf 0.002, 5 steps")
    times = []
    for name, bs in (("default batch", None), ("all at once", len(X))):
        t = time.perf_counter()
        acc = robust_accuracy(net, X, y, 0.002, steps=5, clip=(0, 1), batch_size=bs)
        times.append(time.perf_counter() - t)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  {name:14s} {times[-1]:7.2f} s  {times[-1] / times[0]:5.2f}x  peak RSS {peak:6.0f} MB  "
              f"accuracy {acc.item():.4f}")


if __name__ == "__main__":
    main()
