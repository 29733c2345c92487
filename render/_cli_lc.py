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
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ._cli_common import add_loading_args, add_threads_arg, loading_kwargs, set_threads

__all__ = ["add_parser", "run"]

Arrays = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "lc", help="local complexity over training, at train, test and random points",
        description="Mean local complexity (Humayun et al.) of every checkpoint at training, test "
                    "and uniformly random points, plotted over steps beside accuracy.")
    p.add_argument("checkpoints", metavar="CKPT_DIR", help="a folder of checkpoints (sorted by step)")
    add_loading_args(p)
    p.add_argument("--data", default=None, metavar="DATA",
                   help="'digits', 'fashion-mnist' (Debian's dataset-fashion-mnist package), a folder of "
                        "MNIST-format IDX files, or an .npz with X, y "
                        "[, X_test, y_test] (default: the folder's data.npz)")
    p.add_argument("--train-size", type=int, default=1000,
                   help="with --data digits: training points, the rest is the test set (default 1000)")
    p.add_argument("--split-seed", type=int, default=0, help="with --data digits: seed of the split")
    p.add_argument("--points", type=int, default=1000, help="points per set (default 1000)")
    p.add_argument("--radius", type=float, default=0.1, help="cross-polytope radius (default 0.1)")
    p.add_argument("--dim", type=int, default=25, help="random directions P (default 25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the frame and the random points")
    p.add_argument("--center", action="store_true", help="add the centre as a vertex")
    p.add_argument("--out", default="lc.png", help="the plot (default lc.png)")
    p.add_argument("--csv", default=None, help="also write the numbers to this CSV file")
    p.add_argument("--title", default=None, help="title of the plot")
    add_threads_arg(p)
    return p


def _load_data(args) -> Arrays:
    spec = args.data
    if spec is None:
        from splinescope.spatial.runs import DATA_FILE
        f = Path(args.checkpoints) / DATA_FILE
        if not f.is_file():
            raise ValueError(f"{args.checkpoints} has no {DATA_FILE}: pass --data")
        spec = str(f)
    if spec == "digits":
        from splinescope.spatial.data import digits_split
        return digits_split(args.train_size, args.split_seed)
    if spec == "fashion-mnist":
        from splinescope.spatial import idx
        if not idx.FASHION_MNIST.is_dir():
            raise ValueError(f"--data fashion-mnist reads {idx.FASHION_MNIST}, which is missing: install "
                             "Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) "
                             "or pass the folder of the IDX files")
        spec = str(idx.FASHION_MNIST)
    p = Path(spec).expanduser()
    if p.is_dir():
        from splinescope.spatial.idx import load_mnist
        Xtr, ytr = load_mnist(p, "train")
        try:
            Xte, yte = load_mnist(p, "test")
        except FileNotFoundError:
            Xte = yte = None
        flat = lambda a: None if a is None else a.reshape(len(a), -1).astype(np.float32) / 255.0
        return flat(Xtr), ytr, flat(Xte), yte
    if p.suffix == ".npz" and p.is_file():
        from splinescope.spatial.runs import read_points
        d = read_points(p)
        if "y" not in d:
            raise ValueError(f"{p} must hold arrays X and y (keys: {', '.join(d)})")
        return d["X"], d["y"], d.get("X_test"), d.get("y_test")
    raise ValueError(f"--data {spec!r} is not 'digits', 'fashion-mnist', a folder of IDX files or an .npz file")


def run(args) -> int:
    from splinescope.spatial.checkpoints import load_checkpoints
    from splinescope.spatial.lc_run import lc_over_training, point_sets
    from splinescope.spatial.local_complexity import random_frame

    from .lc import save_lc_plot

    set_threads(args)
    if args.points < 1:
        raise ValueError(f"--points {args.points} must be at least 1")
    Xtr, ytr, Xte, yte = _load_data(args)
    ckpts = load_checkpoints(args.checkpoints, **loading_kwargs(args))
    sets = point_sets(Xtr, ytr, Xte, yte, points=args.points, seed=args.seed)
    frame = random_frame(args.dim, sets["train"][0].shape[1], seed=args.seed)

    rows = []
    names = list(sets)
    print("step  " + "  ".join(f"LC {n:>6}" for n in names) + "  acc train  acc test")
    for row in lc_over_training(ckpts, sets, args.radius, frame=frame, center=args.center):
        rows.append(row)
        print(f"{row['step']!s:>5} " + "  ".join(f"{row[f'lc_{n}']:9.3f}" for n in names)
              + f"  {row.get('acc_train', float('nan')):9.3f}  {row.get('acc_test', float('nan')):8.3f}")

    save_lc_plot(rows, args.out, title=args.title or f"local complexity, r={args.radius:g}, P={args.dim}")
    print(f"wrote {args.out}")
    if args.csv:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {args.csv}")
    return 0
