"""``splinescope lc``: local complexity at train, test and random points for every checkpoint.

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
from typing import Dict, Optional, Tuple

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


def digits_split(n_train: int, seed: int = 0) -> Arrays:
    """sklearn digits split into ``n_train`` training points and the rest (test)."""
    from splinescope.spatial.data import digits
    X, y = digits()
    if not 1 <= n_train < len(X):
        raise ValueError(f"--train-size {n_train} must be between 1 and {len(X) - 1}")
    order = np.random.default_rng(seed).permutation(len(X))
    tr, te = order[:n_train], order[n_train:]
    return X[tr], y[tr], X[te], y[te]


def _load_data(args) -> Arrays:
    spec = args.data
    if spec is None:
        from splinescope.spatial.runs import DATA_FILE
        f = Path(args.checkpoints) / DATA_FILE
        if not f.is_file():
            raise ValueError(f"{args.checkpoints} has no {DATA_FILE}: pass --data")
        spec = str(f)
    if spec == "digits":
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


def _accuracy(model, x, y) -> float:
    import torch
    with torch.no_grad():
        out = model(x)
    pred = out.argmax(1) if out.shape[1] > 1 else (out[:, 0] > 0).long()
    return float((pred.cpu() == y).float().mean())


def run(args) -> int:
    import torch

    from splinescope.spatial.checkpoints import load_checkpoints
    from splinescope.spatial.local_complexity import LocalComplexity, random_frame

    from .lc import plot_lc

    set_threads(args)
    if args.points < 1:
        raise ValueError(f"--points {args.points} must be at least 1")
    Xtr, ytr, Xte, yte = _load_data(args)
    ckpts = load_checkpoints(args.checkpoints, **loading_kwargs(args))
    g = torch.Generator().manual_seed(args.seed)  # the points' own generator
    pick = lambda n: torch.randperm(n, generator=g)[: args.points]

    Xtr_t = torch.as_tensor(np.asarray(Xtr, np.float32))
    i = pick(len(Xtr_t))
    sets: Dict[str, Tuple[torch.Tensor, Optional[torch.Tensor]]] = {
        "train": (Xtr_t[i], torch.as_tensor(np.asarray(ytr))[i].long())}
    if Xte is not None:
        Xte_t = torch.as_tensor(np.asarray(Xte, np.float32))
        j = pick(len(Xte_t))
        sets["test"] = (Xte_t[j], None if yte is None else torch.as_tensor(np.asarray(yte))[j].long())
    lo, hi = Xtr_t.amin(0), Xtr_t.amax(0)  # (D,)
    sets["random"] = (lo + (hi - lo) * torch.rand(args.points, Xtr_t.shape[1], generator=g), None)
    frame = random_frame(args.dim, Xtr_t.shape[1], seed=args.seed)

    rows = []
    names = list(sets)
    print("step  " + "  ".join(f"LC {n:>6}" for n in names) + "  acc train  acc test")
    for step, model in ckpts:
        model.eval()
        row = {"step": step}
        for name, (x, y) in sets.items():
            est = LocalComplexity(model, args.radius, frame=frame, center=args.center)
            est.update(x)
            per_layer = est.compute()
            row[f"lc_{name}"] = float(per_layer.sum())
            for k, v in enumerate(per_layer.tolist()):
                row[f"lc_{name}_layer{k}"] = v
            if y is not None:
                row[f"acc_{name}"] = _accuracy(model, x.to(est.frame.device), y)
        rows.append(row)
        print(f"{step!s:>5} " + "  ".join(f"{row[f'lc_{n}']:9.3f}" for n in names)
              + f"  {row.get('acc_train', float('nan')):9.3f}  {row.get('acc_test', float('nan')):8.3f}")

    steps = [r["step"] if r["step"] is not None else k for k, r in enumerate(rows)]
    lc = {n: [r[f"lc_{n}"] for r in rows] for n in names}
    acc = {n: [r[f"acc_{n}"] for r in rows] for n in names if f"acc_{n}" in rows[0]}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    plot_lc(steps, lc, acc, axes=axes)
    fig.suptitle(args.title or f"local complexity, r={args.radius:g}, P={args.dim}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    plt.close(fig)
    print(f"wrote {args.out}")
    if args.csv:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {args.csv}")
    return 0
