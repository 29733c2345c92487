"""``splinescope lc``: local complexity at train, test and random points for every checkpoint.

The command line of :mod:`spatial.lc_run` (the numbers) and :func:`render.lc.save_lc_plot`.

    splinescope lc runs/digits --data digits --train-size 1000 --out lc.png
    splinescope lc ckpts/ --arch mypkg.models:mlp --data ~/data/fashion-mnist --radius 0.005

``--data`` is ``digits`` (sklearn digits in ``[0, 1]``, split into ``--train-size`` training
points and the rest, by a permutation seeded with ``--split-seed``: the split of
``gallery/lc_digits.py``), a folder of MNIST-format IDX files (MNIST, Fashion-MNIST; pixels
scaled to ``[0, 1]``, flattened), or an ``.npz`` with ``X``, ``y`` and optionally ``X_test``,
``y_test``; by default the run folder's ``data.npz``. Random points are uniform in the box
spanned by the training inputs. Writes a plot (``--out``) and the numbers (``--csv``).
"""
from __future__ import annotations

import argparse
import csv
import math

from ._common import add_data_args, add_loading_args, add_threads_arg, load_data, loading_kwargs, set_threads

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "lc", help="local complexity over training, at train, test and random points",
        description="Mean local complexity (Humayun et al.) of every checkpoint at training, test "
                    "and uniformly random points, plotted over steps beside accuracy.")
    p.add_argument("checkpoints", metavar="CKPT_DIR", help="a folder of checkpoints (sorted by step)")
    add_loading_args(p)
    add_data_args(p)
    p.add_argument("--points", type=int, default=1000, help="points per set (default 1000)")
    p.add_argument("--radius", type=float, default=0.1, help="cross-polytope radius (default 0.1)")
    p.add_argument("--directions", type=int, default=None, metavar="P",
                   help="random directions P (default 25)")
    p.add_argument("--dim", type=int, default=None, metavar="P", help="deprecated: --directions")
    p.add_argument("--seed", type=int, default=0, help="seed of the frame and the random points")
    p.add_argument("--center", action="store_true", help="add the centre as a vertex")
    p.add_argument("--out", default="lc.png", help="the plot (default lc.png)")
    p.add_argument("--csv", default=None, help="also write the numbers to this CSV file")
    p.add_argument("--title", default=None, help="title of the plot")
    add_threads_arg(p)
    return p


def _directions(args) -> int:
    """--directions, or its deprecated old name --dim (a warning); default 25."""
    if args.dim is None:
        return 25 if args.directions is None else args.directions
    if args.directions is not None:
        raise ValueError("give --directions or its deprecated old name --dim, not both")
    import warnings
    warnings.warn("--dim is deprecated, use --directions", FutureWarning)
    return args.dim


def run(args) -> int:
    from splinescope.spatial.checkpoints import load_checkpoints
    from splinescope.spatial.lc_run import lc_over_training, point_sets
    from splinescope.spatial.local_complexity import random_frame

    from ..lc import save_lc_plot

    set_threads(args)
    directions = _directions(args)
    if args.points < 1:
        raise ValueError(f"--points {args.points} must be at least 1")
    Xtr, ytr, Xte, yte = load_data(args)
    ckpts = load_checkpoints(args.checkpoints, **loading_kwargs(args))
    sets = point_sets(Xtr, ytr, Xte, yte, points=args.points, seed=args.seed)
    frame = random_frame(directions, math.prod(sets["train"][0].shape[1:]), seed=args.seed)  # (images: flattened)

    rows = []
    names = list(sets)
    print("step  " + "  ".join(f"LC {n:>6}" for n in names) + "  acc train  acc test")
    for row in lc_over_training(ckpts, sets, args.radius, frame=frame, center=args.center):
        rows.append(row)
        print(f"{row['step']!s:>5} " + "  ".join(f"{row[f'lc_{n}']:9.3f}" for n in names)
              + f"  {row.get('acc_train', float('nan')):9.3f}  {row.get('acc_test', float('nan')):8.3f}")

    save_lc_plot(rows, args.out, title=args.title or f"local complexity, r={args.radius:g}, P={directions}")
    print(f"wrote {args.out}")
    if args.csv:
        from splinescope.spatial._io import atomic_write
        keys = list(dict.fromkeys(k for r in rows for k in r))

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                w.writerows(rows)
        atomic_write(args.csv, write, suffix=".csv")
        print(f"wrote {args.csv}")
    return 0
