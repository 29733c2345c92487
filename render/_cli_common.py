"""Options shared by the subcommands: model and checkpoint loading (count, animate, lc), torch
threads (train, animate, lc) and progress bars (train, animate)."""
from __future__ import annotations

__all__ = ["add_loading_args", "add_quiet_arg", "add_threads_arg", "loading_kwargs", "set_threads"]


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


def add_threads_arg(p, default=None, why: str = "") -> None:
    """--threads: torch CPU threads (None: torch's own choice); applied by :func:`set_threads`."""
    shown = "torch's" if default is None else f"{default}{why}"
    p.add_argument("--threads", type=int, default=default, help=f"torch CPU threads (default: {shown})")


def set_threads(args) -> None:
    """Apply --threads (when given) to torch."""
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)


def add_quiet_arg(p, what: str = "no progress bars") -> None:
    """--quiet: no progress bars."""
    p.add_argument("--quiet", action="store_true", help=what)
