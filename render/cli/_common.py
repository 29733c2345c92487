"""Options shared by the subcommands: model and checkpoint loading (count, animate, view, lc,
dynamics), the slice and its points (animate, view), data sets (lc, dynamics), torch threads
(train, animate, view, lc, dynamics) and progress bars (train, animate, view)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple, cast

import numpy as np

__all__ = ["add_bounds_arg", "add_checkpoints_arg", "add_data_args", "add_loading_args", "add_memory_arg",
           "add_points_args", "add_quiet_arg", "add_slice_args", "add_threads_arg", "load_data", "loading_kwargs",
           "memory_budget", "set_threads", "slice_bounds", "slice_inputs"]

Arrays = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]


def add_loading_args(p, *, folder: bool = True) -> None:
    """--arch, --prefix, --trust and (for a folder of checkpoints) --glob."""
    p.add_argument("--arch", default=None, metavar="FACTORY",
                   help="architecture of state_dict files: 'pkg.module:factory', "
                        "'pkg.module:factory(width=64)' or 'path/to/file.py:factory' (a module in the "
                        "current directory is found too; default: the folder's arch.json)")
    if folder:
        p.add_argument("--glob", default=None, metavar="PATTERN",
                       help="read only the files of the folder that match PATTERN, e.g. 'model_*.pt' "
                            "(default: every .pt, .pth, .ckpt and .safetensors file)")
    p.add_argument("--prefix", default=None, metavar="PREFIX",
                   help="key prefix of the weights when a file holds several sets (e.g. 'ema' or 'model')")
    p.add_argument("--trust", action="store_true",
                   help="unpickle Python objects (whole modules saved with torch.save(model)); such a file "
                        "can run any code when it is loaded: only for files you trust")


def loading_kwargs(args) -> dict:
    """The keyword arguments of load_model / load_checkpoints given on the command line."""
    out = {"arch": args.arch, "prefix": args.prefix, "trust": args.trust}
    if hasattr(args, "glob"):
        out["glob"] = args.glob
    return out


def add_checkpoints_arg(p) -> None:
    """The positional CKPT...: a folder of checkpoints or checkpoint files (read by :func:`slice_inputs`)."""
    p.add_argument("checkpoints", nargs="+", metavar="CKPT",
                   help="a folder of checkpoints (sorted by step) or checkpoint files")


BOX_BOUNDS = (-1.0, 1.0, -1.0, 1.0)
"""The default box of a 2-input network's slice."""
PLANE_BOUNDS = (-0.2, 1.2, -0.2, 1.2)
"""The default box on a plane through three inputs (at (0, 0), (1, 0), (0, 1)): them and a margin."""
BOUNDS_HELP = ("the slice's box (default: -1 1 -1 1; on a plane, --through, -0.2 1.2 -0.2 1.2: the three inputs "
               "and a margin)")


def add_bounds_arg(p) -> None:
    """--bounds, defaulting by the slice (:func:`slice_bounds`)."""
    p.add_argument("--bounds", type=float, nargs=4, default=None, metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                   help=BOUNDS_HELP)


def slice_bounds(args) -> Tuple[float, float, float, float]:
    """--bounds, or the default box of the slice: :data:`PLANE_BOUNDS` with --through, else :data:`BOX_BOUNDS`."""
    if args.bounds is not None:
        return cast(Tuple[float, float, float, float], tuple(args.bounds))
    return PLANE_BOUNDS if getattr(args, "through", None) else BOX_BOUNDS


def add_slice_args(p) -> None:
    """--bounds and --through: the slice (read by :func:`slice_inputs` and :func:`slice_bounds`)."""
    add_bounds_arg(p)
    p.add_argument("--through", nargs=3, metavar=("A", "B", "C"),
                   help="for a network of more than 2 inputs: three inputs (.npy or .pt files) spanning "
                        "the slice, (0,0)->A, (1,0)->B, (0,1)->C")


def add_points_args(p) -> None:
    """--data and --no-data: the points drawn on the slice (read by :func:`slice_inputs`)."""
    p.add_argument("--data", default=None, metavar="NPZ",
                   help="points to draw: an .npz with X (N, 2) and y, and optionally held-out X_test, "
                        "y_test (default: the run's data.npz)")
    p.add_argument("--no-data", action="store_true", help="draw no data points")


def slice_inputs(args) -> Tuple[Any, Any, Any, Any]:
    """``(checkpoints, plane, data, test)`` from the positional checkpoints, :func:`add_slice_args`
    and :func:`add_points_args`: ``data`` is ``"auto"`` (the run's ``data.npz``), None or an
    ``(X, y)`` pair; with --through and no --data, the three inputs are the points."""
    ck = args.checkpoints[0] if len(args.checkpoints) == 1 else list(args.checkpoints)
    data: Any = None if args.no_data else "auto"
    test: Any = None
    if args.data is not None and not args.no_data:
        from splinescope.spatial.runs import read_points
        d = read_points(args.data)
        data = (d["X"], d["y"]) if "y" in d else d["X"]
        if "X_test" in d:
            test = (d["X_test"], d["y_test"]) if "y_test" in d else d["X_test"]
    plane = None
    if args.through:
        from splinescope import spatial
        from .count import load_array
        plane = spatial.Plane.through(*(load_array(f) for f in args.through))
        if args.data is None:
            data = (np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), None)  # the three inputs
    return ck, plane, data, test


def add_threads_arg(p, default=None, why: str = "") -> None:
    """--threads: torch CPU threads (None: torch's own choice); applied by :func:`set_threads`."""
    shown = "torch's" if default is None else f"{default}{why}"
    p.add_argument("--threads", type=int, default=default, help=f"torch CPU threads (default: {shown})")


def set_threads(args) -> None:
    """Apply --threads (when given) to torch."""
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)


def add_memory_arg(p, default: float, what: str) -> None:
    """--max-memory MB: a budget of working arrays, turned into bytes by :func:`memory_budget`."""
    p.add_argument("--max-memory", type=float, default=default, metavar="MB",
                   help=f"{what} (default {default:g}; 0: the whole slice at once)")


def memory_budget(args) -> Optional[int]:
    """--max-memory in bytes, None for 0 (the whole slice at once); a negative budget refused."""
    if not args.max_memory >= 0:
        raise ValueError(f"--max-memory must be >= 0 MB (0: the whole slice at once), got {args.max_memory:g}")
    return max(1, int(args.max_memory * 2 ** 20)) if args.max_memory else None


def add_quiet_arg(p, what: str = "no progress bars") -> None:
    """--quiet: no progress bars."""
    p.add_argument("--quiet", action="store_true", help=what)


def add_data_args(p) -> None:
    """--data, --train-size, --split-seed (read by :func:`load_data`)."""
    p.add_argument("--data", default=None, metavar="DATA",
                   help="'digits', 'fashion-mnist' (Debian's dataset-fashion-mnist package), a folder of "
                        "MNIST-format IDX files, or an .npz with X, y "
                        "[, X_test, y_test] (default: the folder's data.npz)")
    p.add_argument("--train-size", type=int, default=1000,
                   help="with --data digits: training points, the rest is the test set (default 1000)")
    p.add_argument("--split-seed", type=int, default=0, help="with --data digits: seed of the split")


def load_data(args) -> Arrays:
    """(X_train, y_train, X_test, y_test) named by --data (see :func:`add_data_args`)."""
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
        Xte: Optional[np.ndarray]
        yte: Optional[np.ndarray]
        try:
            Xte, yte = load_mnist(p, "test")
        except FileNotFoundError:
            Xte = yte = None
        flat = lambda a: a.reshape(len(a), -1).astype(np.float32) / 255.0
        return flat(Xtr), ytr, None if Xte is None else flat(Xte), yte
    if p.suffix == ".npz" and p.is_file():
        from splinescope.spatial.runs import read_points
        d = read_points(p)
        if "y" not in d:
            raise ValueError(f"{p} must hold arrays X and y (keys: {', '.join(d)})")
        return d["X"], d["y"], d.get("X_test"), d.get("y_test")
    raise ValueError(f"--data {spec!r} is not 'digits', 'fashion-mnist', a folder of IDX files or an .npz file")


