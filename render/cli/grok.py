"""``splinescope grok``: the large-initialisation grokking run and its control, measured throughout.

    splinescope grok --out runs/grok                    # Fashion-MNIST, 10^5 steps, ~10 min per run
    splinescope grok --out runs/grok-digits --data digits --steps 20000
    splinescope animate runs/grok/large --through runs/grok/large/plane_{a,b,c}.npy \\
        --bounds -0.2 1.2 -0.2 1.2 --out grok.gif       # the run folders read as any other
    splinescope lc runs/grok/large --radius 0.1

The library function is :func:`render.grok.grok` (the setting: :class:`render.grok.GrokRun`).
``OUT/grok.png`` is :func:`render.grok.plot_grok` of the two. Each run folder (``OUT/large``,
``OUT/control``) holds the checkpoints, ``arch.json``,
``data.npz``, ``log.jsonl``, ``table.csv``, ``grok.json`` and the plane's three images
(``plane_a.npy`` ...); the last line per run says where the
training set is fitted and where test and robust accuracy reach their plateau.
"""
from __future__ import annotations

import argparse

from ._common import add_quiet_arg, add_threads_arg, set_threads

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    from splinescope.render.grok import GrokRun

    d = GrokRun()
    p = subparsers.add_parser(
        "grok", help="grokking with a large initialisation (and a control), measured at every checkpoint",
        description="Train a ReLU MLP whose initial weights are scaled up (Omnigrok) on 1,000 training images, "
                    "and a control with the standard initialisation, recording at log-spaced checkpoints train, "
                    "test and robust (PGD) accuracy, local complexity at train, test and random points, and the "
                    "exact partition of a plane through three training images, into run folders.")
    p.add_argument("--out", required=True, help="folder of the two run folders, OUT/large and OUT/control (created)")
    p.add_argument("--data", default=d.data, choices=("fashion-mnist", "digits"),
                   help="Fashion-MNIST (Debian's dataset-fashion-mnist) or the sklearn digits, the small fallback "
                        f"(default: {d.data})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default: {d.steps})")
    p.add_argument("--scale", type=float, default=d.init_scale,
                   help=f"factor on the initial weights of the large run (default: {d.init_scale:g})")
    p.add_argument("--train-size", type=int, default=d.train_size, help=f"training images (default: {d.train_size})")
    p.add_argument("--width", type=int, default=d.width, help=f"neurons per hidden layer (default: {d.width})")
    p.add_argument("--depth", type=int, default=d.depth,
                   help=f"Linear layers, i.e. depth - 1 hidden layers (default: {d.depth})")
    p.add_argument("--checkpoints", type=int, default=d.checkpoints,
                   help=f"about how many log-spaced checkpoints (default: {d.checkpoints})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of data, weights, batches (default: {d.seed})")
    p.add_argument("--no-control", action="store_true", help="skip the control run (standard initialisation)")
    add_threads_arg(p, 1, ", the fastest for this network")
    add_quiet_arg(p, "no progress bars")
    return p


def run(args) -> int:
    from pathlib import Path

    from splinescope.render.grok import GrokRun, grok, save_grok_plot, summary
    from splinescope.spatial import idx

    set_threads(args)
    if args.data == "fashion-mnist" and not idx.FASHION_MNIST.is_dir():
        raise ValueError(f"Fashion-MNIST is not installed ({idx.FASHION_MNIST} is missing): "
                         "apt-get install dataset-fashion-mnist, or pass --data digits (the small fallback)")
    cfg = GrokRun(data=args.data, steps=args.steps, init_scale=args.scale, train_size=args.train_size,
                  width=args.width, depth=args.depth, checkpoints=args.checkpoints, seed=args.seed)
    results = grok(args.out, cfg, control=not args.no_control, progress=not args.quiet)
    eps = float(cfg.eps[0])
    for name, res in results.items():
        print(f"wrote {len(res.rows)} checkpoints and {res.run_dir / 'table.csv'}")
    control = results["control"].rows if "control" in results else None
    title = (f"{cfg.data}, {cfg.train_size} training images, width {cfg.width}, depth {cfg.depth}, "
             f"init x{cfg.init_scale:g} (control dashed: x1); robust: PGD, l-inf eps {eps:g}")
    print(f"wrote {save_grok_plot(results['large'].rows, control, Path(args.out) / 'grok.png', title=title)}")
    for name, res in results.items():
        print(summary(name, res, eps))
    return 0
