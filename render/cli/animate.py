"""``splinescope animate``: checkpoints -> a GIF or MP4 of the linear regions, one frame each.

    splinescope animate runs/moons --out moons.gif
    splinescope animate ckpts/ --arch mypkg.models:make_net --bounds -2 2 -2 2 --out run.mp4
"""
from __future__ import annotations

from typing import Any, Dict

import argparse

from ._common import (add_checkpoints_arg, add_loading_args, add_points_args, add_quiet_arg, add_slice_args,
                      add_threads_arg, loading_kwargs, set_threads, slice_bounds, slice_inputs)

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "animate", help="draw the linear regions of every checkpoint into a GIF or MP4",
        description="One frame per checkpoint: regions, decision boundary, data, and the region "
                    "statistics over training. A folder written by `splinescope train` needs no "
                    "--arch and brings its data.")
    add_checkpoints_arg(p)
    add_loading_args(p)
    add_slice_args(p)
    p.add_argument("--out", default="run.gif", help="output .gif or .mp4 (default: run.gif)")
    p.add_argument("--color", default="pattern",
                   choices=("pattern", "area", "slope", "boundary_distance", "data_distance"),
                   help="region colours (default: pattern, stable per region)")
    add_points_args(p)
    p.add_argument("--no-stats", action="store_true", help="no statistics panel")
    p.add_argument("--fps", type=float, default=8, help="frames per second (default: 8)")
    p.add_argument("--dpi", type=int, default=80, help="resolution (default: 80)")
    add_threads_arg(p)
    add_quiet_arg(p)
    return p


def run(args) -> int:
    from .._animate import _check_out, animate

    set_threads(args)
    out = _check_out(args.out)  # a bad output fails before any work
    ck, plane, data, test = slice_inputs(args)
    extra: Dict[str, Any] = {} if test is None else {"test": test}
    a = animate(ck, slice_bounds(args), out, **loading_kwargs(args), plane=plane, data=data, color=args.color,
                stats=not args.no_stats, fps=args.fps, dpi=args.dpi, progress=not args.quiet, **extra)
    print(f"wrote {a.path}: {len(a.steps)} frames, {int(a.n_regions.min())}..{int(a.n_regions.max())} regions")
    return 0
