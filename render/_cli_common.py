"""Options shared by the subcommands that read models and checkpoints (count, animate, lc)."""
from __future__ import annotations

__all__ = ["add_loading_args", "loading_kwargs"]


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
