"""``splinescope count MODEL --bounds XMIN XMAX YMIN YMAX``: print the number of linear regions."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ._common import add_bounds_arg, add_loading_args, add_memory_arg, loading_kwargs, memory_budget, slice_bounds


def add_parser(sub) -> None:
    p = sub.add_parser("count", help="count the linear regions of a model on a 2-D slice",
                       description="Count the exact linear regions of a model on a box of its 2 inputs, "
                                   "or on the plane through three inputs (--through).")
    p.add_argument("model", help="a state_dict file (with --arch, or an arch.json beside it), a TorchScript "
                                 "file, or a whole module saved with torch.save (with --trust)")
    add_loading_args(p, folder=False)
    add_bounds_arg(p)
    p.add_argument("--through", nargs=3, metavar=("A", "B", "C"),
                   help="three inputs (.npy or .pt files) spanning the plane: (0,0)->A, (1,0)->B, (0,1)->C")
    p.add_argument("--verify", action="store_true", help="also check the partition against the network")
    p.add_argument("--device", default=None, help="torch device for the forward passes (e.g. cuda); default numpy")
    add_memory_arg(p, 0, "partition in tiles of at most this many MB of working arrays, stitched into the same "
                         "regions")
    p.add_argument("--json", action="store_true", help="print a JSON record instead of the bare count")
    p.add_argument("--geojson", metavar="FILE", help="also write the regions and the decision boundary as GeoJSON")


def load_array(path: str):
    """An input array from a .npy or .pt file (for --through)."""
    import torch

    if not path.endswith((".npy", ".pt", ".pth")):
        raise ValueError(f"{path}: an input must be a .npy or .pt file")
    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such input file") from None
    except Exception as e:  # a corrupt file, a pickle of Python objects
        raise ValueError(f"{path}: cannot be read as an array ({type(e).__name__})") from None


def run(args) -> int:
    from splinescope import spatial
    from splinescope.spatial.checkpoints import load_model

    budget = memory_budget(args)
    model = load_model(args.model, **loading_kwargs(args))
    plane = spatial.Plane.through(*(load_array(f) for f in args.through)) if args.through else None
    t = time.perf_counter()
    p = spatial.partition(model, bounds=slice_bounds(args), plane=plane, device=args.device, max_memory=budget)
    dt = time.perf_counter() - t
    ok = p.verify(raise_on_error=False).ok if args.verify else None
    if args.geojson:
        from splinescope.spatial._io import atomic_write

        doc = json.dumps(p.to_geojson())
        atomic_write(args.geojson, lambda tmp: Path(tmp).write_text(doc))
    if args.json:
        print(json.dumps({"regions": len(p), "vertices": int(len(p.vertices)),
                          "boundary_segments": int(len(p.boundary)), "seconds": round(dt, 4),
                          "bounds": list(p.bounds), "verified": ok}))
    else:
        print(len(p))
        if ok is False:
            print("verification FAILED")
    return 0 if ok is not False else 1
