"""``splinescope view``: checkpoints -> one self-contained HTML page to explore them in a browser.

    splinescope view runs/moons --out moons.html
    splinescope view ckpts/ --arch mypkg.models:make_net --bounds -2 2 -2 2 --out run.html
"""
from __future__ import annotations

import argparse

from ._common import (add_checkpoints_arg, add_loading_args, add_points_args, add_quiet_arg, add_slice_args,
                      add_threads_arg, loading_kwargs, set_threads, slice_bounds, slice_inputs)

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "view", help="write one self-contained HTML page to explore every checkpoint in a browser",
        description="One offline HTML page: the linear regions of every checkpoint (slider, play "
                    "button), the decision boundary and the data, the numbers of the region under "
                    "the pointer (area, activation pattern, affine map, distances), and the region "
                    "statistics and LC curves (the run's log.jsonl) over training. A folder written by "
                    "`splinescope train` needs no --arch and brings its data and log.")
    add_checkpoints_arg(p)
    add_loading_args(p)
    add_slice_args(p)
    p.add_argument("--out", default="run.html", help="output .html (default: run.html)")
    add_points_args(p)
    p.add_argument("--title", default=None, help="the page's title (default: the folder's name)")
    add_threads_arg(p)
    add_quiet_arg(p)
    return p


def run(args) -> int:
    from .._animate import _check_out
    from .._viewer import FORMATS, viewer

    set_threads(args)
    out = _check_out(args.out, FORMATS)  # a bad output fails before any work
    ck, plane, data, test = slice_inputs(args)
    page = viewer(ck, slice_bounds(args), out, **loading_kwargs(args), plane=plane, data=data, test=test,
                  title=args.title, progress=not args.quiet)
    print(f"wrote {page.path} ({page.size / 1e6:.2f} MB): {len(page.steps)} frames, "
          f"{int(page.n_regions.min())}..{int(page.n_regions.max())} regions")
    return 0
