"""``splinescope animate``: checkpoints -> a GIF or MP4 of the linear regions, one frame each.

    splinescope animate runs/moons --out moons.gif
    splinescope animate ckpts/ --arch mypkg.models:make_net --bounds -2 2 -2 2 --out run.mp4
"""
from __future__ import annotations

from typing import Any, Dict

import argparse

from ._common import add_loading_args, add_quiet_arg, add_threads_arg, loading_kwargs, set_threads

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "animate", help="draw the linear regions of every checkpoint into a GIF or MP4",
        description="One frame per checkpoint: regions, decision boundary, data, and the region "
                    "statistics over training. A folder written by `splinescope train` needs no "
                    "--arch and brings its data.")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT",
                   help="a folder of checkpoints (sorted by step) or checkpoint files")
    add_loading_args(p)
    p.add_argument("--bounds", type=float, nargs=4, default=(-1.0, 1.0, -1.0, 1.0),
                   metavar=("XMIN", "XMAX", "YMIN", "YMAX"), help="the slice (default: -1 1 -1 1)")
    p.add_argument("--through", nargs=3, metavar=("A", "B", "C"),
                   help="for a network of more than 2 inputs: three inputs (.npy or .pt files) spanning "
                        "the slice, (0,0)->A, (1,0)->B, (0,1)->C")
    p.add_argument("--out", default="run.gif", help="output .gif or .mp4 (default: run.gif)")
    p.add_argument("--color", default="pattern",
                   choices=("pattern", "area", "slope", "boundary_distance", "data_distance"),
                   help="region colours (default: pattern, stable per region)")
    p.add_argument("--data", default=None, metavar="NPZ",
                   help="points to draw: an .npz with X (N, 2) and y, and optionally held-out X_test, "
                        "y_test (default: the run's data.npz)")
    p.add_argument("--no-data", action="store_true", help="draw no data points")
    p.add_argument("--no-stats", action="store_true", help="no statistics panel")
    p.add_argument("--fps", type=float, default=8, help="frames per second (default: 8)")
    p.add_argument("--dpi", type=int, default=80, help="resolution (default: 80)")
    add_threads_arg(p)
    add_quiet_arg(p)
    return p


def run(args) -> int:
    import numpy as np

    from .._animate import _check_out, animate

    set_threads(args)
    out = _check_out(args.out)  # a bad output fails before any work
    ck = args.checkpoints[0] if len(args.checkpoints) == 1 else list(args.checkpoints)
    data: Any = None if args.no_data else "auto"
    extra: Dict[str, Any] = {}
    if args.data is not None and not args.no_data:
        from splinescope.spatial.runs import read_points
        d = read_points(args.data)
        data = (d["X"], d["y"]) if "y" in d else d["X"]
        if "X_test" in d:
            extra["test"] = (d["X_test"], d["y_test"]) if "y_test" in d else d["X_test"]
    plane = None
    if args.through:
        from splinescope import spatial
        from .count import load_array
        plane = spatial.Plane.through(*(load_array(f) for f in args.through))
        if args.data is None:
            data = (np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), None)  # the three inputs
    a = animate(ck, tuple(args.bounds), out, **loading_kwargs(args), plane=plane, data=data, color=args.color,
                stats=not args.no_stats, fps=args.fps, dpi=args.dpi, progress=not args.quiet, **extra)
    print(f"wrote {a.path}: {len(a.steps)} frames, {int(a.n_regions.min())}..{int(a.n_regions.max())} regions")
    return 0
