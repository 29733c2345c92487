"""``splinescope train``: train a toy network on a seeded 2-D dataset, checkpoints log-spaced.

    splinescope train --toy moons --out runs/moons
    splinescope animate runs/moons --out moons.gif
"""
from __future__ import annotations

import argparse

from ._cli_common import add_quiet_arg, add_threads_arg, set_threads

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    from splinescope.spatial.data import TOYS

    p = subparsers.add_parser(
        "train", help="train a toy network, saving checkpoints on a log-spaced schedule",
        description="Train a small MLP on a seeded 2-D toy and save state_dict checkpoints "
                    "(step_000123.pt) on a log-spaced schedule, with arch.json and data.npz, "
                    "so that `splinescope animate OUT` needs no other argument.")
    p.add_argument("--toy", default="moons", choices=sorted(TOYS), help="dataset (default: moons)")
    p.add_argument("--out", required=True, help="folder for the checkpoints (created)")
    p.add_argument("--n", type=int, default=256, help="number of points (default: 256)")
    p.add_argument("--noise", type=float, default=None, help="noise of moons / circles / spirals")
    p.add_argument("--width", type=int, default=32, help="neurons per hidden layer (default: 32)")
    p.add_argument("--depth", type=int, default=3, help="hidden layers (default: 3)")
    p.add_argument("--activation", default="relu", choices=("relu", "leaky_relu"))
    p.add_argument("--steps", type=int, default=30000, help="optimiser steps (default: 30000)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default: 0)")
    p.add_argument("--batch-size", type=int, default=None, help="mini-batch size (default: full batch)")
    p.add_argument("--checkpoints", type=int, default=40,
                   help="about how many log-spaced checkpoints (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, weights and batches (default: 0)")
    add_threads_arg(p, 1, ", the fastest for small networks")
    p.add_argument("--test", type=int, default=0,
                   help="held-out points drawn from the same toy (another seed), saved with the run "
                        "and drawn by animate (default: 0)")
    add_quiet_arg(p, "no progress bar")
    return p


def run(args) -> int:
    from splinescope.spatial.data import toy
    from splinescope.spatial.train import toy_mlp, train

    set_threads(args)
    kw = {} if args.noise is None else {"noise": args.noise}
    if kw and args.toy not in ("moons", "circles", "spirals"):
        raise ValueError(f"--noise applies to moons, circles and spirals, not to {args.toy!r}")
    X, y = toy(args.toy, args.n, seed=args.seed, **kw)
    if args.test < 0:
        raise ValueError(f"--test must be >= 0, got {args.test}")
    test = toy(args.toy, args.test, seed=args.seed + 10_000, **kw) if args.test else None
    K = int(y.max()) + 1
    arch_kwargs = dict(width=args.width, depth=args.depth, activation=args.activation,
                       out_features=1 if K == 2 else K, seed=args.seed)
    ckpts = train(toy_mlp(**arch_kwargs), X, y, steps=args.steps, lr=args.lr,
                  weight_decay=args.weight_decay, batch_size=args.batch_size,
                  checkpoints=args.checkpoints, out_dir=args.out, seed=args.seed,
                  arch={"factory": "splinescope.spatial.train:toy_mlp", "kwargs": arch_kwargs},
                  progress=not args.quiet, test=test)
    print(f"wrote {len(ckpts)} checkpoints (steps {ckpts[0][0]}..{ckpts[-1][0]}) to {args.out}")
    return 0
