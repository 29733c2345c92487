"""``splinescope sweep``: partition statistics (and LC) of every checkpoint on each slice, one table.

    splinescope sweep runs/moons --out moons.csv
    splinescope sweep runs/digits --through a.npy b.npy c.npy --bounds -0.2 1.2 -0.2 1.2 --lc --out t.parquet
    splinescope sweep runs/big --out t.csv --workers 2              # a local Dask cluster
    splinescope sweep runs/big --out t.csv --scheduler tcp://10.0.0.5:8786

The numbers are :func:`spatial.sweep.sweep`'s. Finished tasks are kept in ``TABLE.parts/``: run
the same command again after an interruption and only what is missing is computed. A task that
fails is reported (naming its checkpoint) and the others go on; the exit status is then 1.
"""
from __future__ import annotations

import argparse

from ._common import add_loading_args, add_quiet_arg, add_threads_arg, loading_kwargs, set_threads, slice_bounds

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep", help="partition statistics (and LC) of every checkpoint and slice into one table",
        description="One row per checkpoint and slice: regions, boundary length, region densities near "
                    "the data and near the decision boundary, and with --lc the local complexity at train, "
                    "test and random points. In this process, on a local Dask cluster (--workers) or an "
                    "existing one (--scheduler); resumable.")
    p.add_argument("checkpoints", metavar="CKPT_DIR", help="a folder of checkpoints (sorted by step)")
    add_loading_args(p)
    p.add_argument("--out", required=True, help="the table: .csv or .parquet")
    p.add_argument("--bounds", type=float, nargs=4, default=None, metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                   help="the slice (default for 2-D inputs: the data's box, widened by a tenth; on a plane, "
                        "--through, -0.2 1.2 -0.2 1.2: the three inputs and a margin)")
    p.add_argument("--through", nargs=3, metavar=("A", "B", "C"),
                   help="for a network of more than 2 inputs: three inputs (.npy or .pt files) spanning the "
                        "slice, (0,0)->A, (1,0)->B, (0,1)->C")
    p.add_argument("--radius", type=float, default=None, help="'near' for the densities (default: 1/20 of the slice)")
    p.add_argument("--lc", action="store_true", help="also local complexity and accuracy per checkpoint")
    p.add_argument("--points", type=int, default=1000, help="with --lc: points per set (default 1000)")
    p.add_argument("--lc-radius", type=float, default=0.1, help="with --lc: cross-polytope radius (default 0.1)")
    p.add_argument("--directions", type=int, default=None, help="with --lc: random directions (default 25)")
    p.add_argument("--seed", type=int, default=0, help="with --lc: seed of the points and directions")
    p.add_argument("--workers", type=int, default=None, help="run on a local Dask cluster of N processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster (e.g. tcp://127.0.0.1:8786)")
    p.add_argument("--parts", default=None, metavar="DIR",
                   help="the folder of finished tasks (default: the table's name + .parts)")
    add_threads_arg(p)
    add_quiet_arg(p)
    return p


def run(args) -> int:
    from splinescope.spatial.sweep import _check_out, sweep

    set_threads(args)
    _check_out(args.out)  # a bad output fails before any work
    slices = None
    if args.through:
        from splinescope import spatial

        from .count import load_array
        slices = {"plane": (slice_bounds(args), spatial.Plane.through(*(load_array(f) for f in args.through)))}
    elif args.bounds is not None:
        slices = {"box": tuple(args.bounds)}
    r = sweep(args.checkpoints, args.out, slices=slices, **loading_kwargs(args), radius=args.radius, lc=args.lc,
              lc_points=args.points, lc_radius=args.lc_radius, directions=args.directions, seed=args.seed,
              workers=args.workers, scheduler=args.scheduler, parts=args.parts, progress=not args.quiet)
    print(f"wrote {r.path}: {len(r.rows)} rows ({r.computed} tasks computed, {r.stored} stored already"
          f"{f', {len(r.failures)} failed' if r.failures else ''})")
    return 1 if r.failures else 0
