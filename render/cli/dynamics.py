"""``splinescope dynamics``: the other two lenses on a run, CKA across checkpoints, probe agreement, imbalance.

    splinescope dynamics runs/moons --out runs/moons/dynamics
    splinescope dynamics runs/digits --data digits --through 0 1 2 --grid 300 --out dyn/

Per layer (the activation modules; for a deep linear net, its Linear layers but the last), the
linear CKA between the layer's representation at every pair of checkpoints on ``--points`` inputs
(``cka.png``, ``cka.csv``). For a Sequential model, a linear probe per layer per checkpoint and the
exact agreement of its decision regions with the last checkpoint's probe on the slice: a 2-input
model's box (``--bounds``, default the data's box with a margin), or a plane through three training
inputs (``--through I J K``, indices into the training set; default the first points of three
classes), with the ``--grid`` estimate beside it (``probes.png``, ``probes.csv``; ``--workers N`` or
``--scheduler ADDRESS``: the agreements as tasks on a Dask cluster). For a deep linear
network (Linear layers only), the layer imbalance over steps (``imbalance.png``, ``imbalance.csv``).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Dict, cast

import numpy as np

from ._common import (PLANE_BOUNDS, add_data_args, add_loading_args, add_memory_arg, add_threads_arg, load_data,
                      loading_kwargs, memory_budget, set_threads)

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "dynamics", help="CKA across checkpoints, probe agreement and layer imbalance of a run",
        description="Layer-wise CKA between checkpoints, exact agreement of linear probes' decision "
                    "regions, and (deep linear nets) layer imbalance, with their CSV files.")
    p.add_argument("checkpoints", metavar="RUN_DIR", help="a folder of checkpoints")
    add_loading_args(p)
    add_data_args(p)
    p.add_argument("--out", required=True, help="folder for the figures and CSV files")
    p.add_argument("--points", type=int, default=500, help="inputs of the representations (default 500)")
    p.add_argument("--through", type=int, nargs=3, default=None, metavar=("I", "J", "K"),
                   help="the plane through training points I, J, K (inputs of more than 2 features)")
    p.add_argument("--bounds", type=float, nargs=4, default=None, metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                   help="the slice's box (default: the data's box, or -0.2 1.2 -0.2 1.2 on a plane)")
    p.add_argument("--grid", type=int, default=200, help="points per side of the sampled agreement (0: none)")
    p.add_argument("--no-probes", action="store_true", help="skip the probes")
    add_memory_arg(p, 1024, "each exact agreement's budget: the joint partition in tiles of at most this many MB "
                            "of working arrays (the whole slice at once can take 15 GB for two trained digits CNNs)")
    p.add_argument("--workers", type=int, default=None,
                   help="compute the probes' agreements on a local Dask cluster of N processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="... or on the Dask cluster at this address (e.g. tcp://10.0.0.5:8786)")
    add_threads_arg(p)
    return p


def _write_csv(path: Path, header, rows) -> None:
    from splinescope.spatial._io import atomic_write

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    atomic_write(path, write)


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from splinescope.spatial._io import atomic_write
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def _layers(model):
    import torch

    from splinescope.spatial.dynamics import activation_layers
    names = activation_layers(model)
    if names:
        return names, False
    lin = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    return lin[:-1], True


def run(args) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import torch

    from splinescope import spatial
    from splinescope.spatial.checkpoints import load_checkpoints
    from splinescope.spatial.dynamics import cka_matrices, probe_agreement
    from splinescope.spatial.imbalance import layer_imbalance

    from ..dynamics import plot_cka_matrices, plot_imbalance, plot_probe_agreement

    set_threads(args)
    if args.workers is not None and args.scheduler is not None:
        raise ValueError("give --workers or --scheduler, not both")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers} must be at least 1")
    if args.points < 4:
        raise ValueError(f"--points {args.points} must be at least 4")
    budget = memory_budget(args)
    Xtr, ytr, Xte, yte = load_data(args)
    seq = load_checkpoints(args.checkpoints, **loading_kwargs(args))
    steps = list(seq.steps) if hasattr(seq, "steps") else list(range(len(seq)))
    models = [m.double() for _, m in seq]
    if len(models) < 2:
        raise ValueError(f"{args.checkpoints} holds {len(models)} checkpoint; dynamics compares at least 2")
    steps = [s if s is not None else i for i, s in enumerate(steps)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X = torch.as_tensor(np.asarray(Xte if Xte is not None else Xtr, np.float64)[: args.points])
    layers, linear = _layers(models[0])
    if not layers:
        raise ValueError("the model has no hidden layer to compare")
    mats = cka_matrices(models, X, layers)
    _save_figure(plot_cka_matrices(mats, steps)[0].figure, out / "cka.png")
    _write_csv(out / "cka.csv", ["layer", "step_i", "step_j", "cka"],
               [[name, si, sj, f"{M[i, j]:.6g}"] for name, M in mats.items()
                for i, si in enumerate(steps) for j, sj in enumerate(steps)])
    written = ["cka.png", "cka.csv"]
    if linear:
        D = np.stack([cast(torch.Tensor, layer_imbalance(m)).numpy() for m in models])
        _save_figure(plot_imbalance(steps, None, D)[0].figure, out / "imbalance.png")
        _write_csv(out / "imbalance.csv", ["step"] + [f"imbalance_{i + 1}" for i in range(D.shape[1])],
                   [[s] + [f"{v:.6g}" for v in row] for s, row in zip(steps, D)])
        written += ["imbalance.png", "imbalance.csv"]
    elif not args.no_probes:
        if not isinstance(models[0], torch.nn.Sequential):
            raise ValueError("probes need a torch.nn.Sequential model; pass --no-probes")
        Xt = torch.as_tensor(np.asarray(Xtr, np.float64))
        y = torch.as_tensor(np.asarray(ytr)).long()
        plane = None
        if Xt.shape[1] != 2:
            idx = args.through
            if idx is None:
                first: Dict[int, int] = {}
                for i, c in enumerate(y.tolist()):
                    first.setdefault(c, i)
                idx = list(first.values())[:3]
            if len(idx) < 3 or max(idx) >= len(Xt):
                raise ValueError(f"--through {idx}: need three indices below {len(Xt)}")
            plane = spatial.Plane.through(*(Xt[i] for i in idx))
            bounds = tuple(args.bounds) if args.bounds else PLANE_BOUNDS
        else:
            lo, hi = Xt.min(0).values.numpy(), Xt.max(0).values.numpy()
            pad = 0.1 * (hi - lo)
            bounds = tuple(args.bounds) if args.bounds else (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1],
                                                             hi[1] + pad[1])
        if args.workers is None and args.scheduler is None:
            agree = probe_agreement(models, Xt[: args.points], y[: args.points], bounds, plane=plane,
                                    layers=layers, grid=args.grid, max_memory=budget)
        else:
            from splinescope.spatial.sweep import dask_client

            with dask_client(args.workers, args.scheduler) as client:
                agree = probe_agreement(models, Xt[: args.points], y[: args.points], bounds, plane=plane,
                                        layers=layers, grid=args.grid, client=client, max_memory=budget)
        _save_figure(plot_probe_agreement(steps, agree).figure, out / "probes.png")
        _write_csv(out / "probes.csv", ["step"] + [f"{k}_{n}" for n in agree for k in agree[n]],
                   [[s] + [f"{agree[n][k][i]:.6g}" for n in agree for k in agree[n]] for i, s in enumerate(steps)])
        written += ["probes.png", "probes.csv"]
    for name in written:
        print(f"wrote {out / name}")
    return 0
