"""``splinescope train``: train a toy network on a seeded 2-D dataset, checkpoints log-spaced.

    splinescope train --toy moons --out runs/moons
    splinescope animate runs/moons --out moons.gif
"""
from __future__ import annotations

import argparse

from ._common import add_quiet_arg, add_threads_arg, set_threads

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    from splinescope.spatial.data import TOYS
    from splinescope.spatial.train import ToyRun

    d = ToyRun()  # the defaults, one place for this command, render.demo and scripts/demo.sh
    p = subparsers.add_parser(
        "train", help="train a toy network, saving checkpoints on a log-spaced schedule",
        description="Train a small MLP on a seeded 2-D toy and save state_dict checkpoints "
                    "(step_000123.pt) on a log-spaced schedule, with arch.json and data.npz, "
                    "so that `splinescope animate OUT` needs no other argument.")
    p.add_argument("--toy", default=d.toy, choices=sorted(TOYS), help=f"dataset (default: {d.toy})")
    p.add_argument("--out", required=True, help="folder for the checkpoints (created)")
    p.add_argument("--n", type=int, default=d.n, help=f"number of points (default: {d.n})")
    p.add_argument("--noise", type=float, default=d.noise, help="noise of moons / circles / spirals")
    p.add_argument("--width", type=int, default=d.width, help=f"neurons per hidden layer (default: {d.width})")
    p.add_argument("--depth", type=int, default=d.depth, help=f"hidden layers (default: {d.depth})")
    p.add_argument("--activation", default=d.activation, choices=("relu", "leaky_relu"))
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default: {d.steps})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default: {d.lr:g})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help=f"AdamW weight decay (default: {d.weight_decay:g})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="mini-batch size (default: full batch)")
    p.add_argument("--checkpoints", type=int, default=d.checkpoints,
                   help=f"about how many log-spaced checkpoints (default: {d.checkpoints})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of data, weights and batches (default: {d.seed})")
    add_threads_arg(p, 1, ", the fastest for small networks")
    p.add_argument("--test", type=int, default=d.test,
                   help="held-out points drawn from the same toy (another seed), saved with the run "
                        f"and drawn by animate (default: {d.test})")
    add_quiet_arg(p, "no progress bar")
    return p


def run(args) -> int:
    import dataclasses

    from splinescope.spatial.train import ToyRun, train_toy

    set_threads(args)
    if args.noise is not None and args.toy not in ("moons", "circles", "spirals"):
        raise ValueError(f"--noise applies to moons, circles and spirals, not to {args.toy!r}")
    if args.test < 0:
        raise ValueError(f"--test must be >= 0, got {args.test}")
    cfg = ToyRun(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ToyRun)})
    ckpts = train_toy(cfg, args.out, progress=not args.quiet)
    print(f"wrote {len(ckpts)} checkpoints (steps {ckpts[0][0]}..{ckpts[-1][0]}) to {args.out}")
    return 0
