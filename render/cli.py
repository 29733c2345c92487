"""The ``splinescope`` command line: ``count``, ``train``, ``animate``, ``lc``.

Each subcommand lives in its own module (``render/_cli_<name>.py``) with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``; this file only dispatches.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

__all__ = ["main"]

_COMMANDS = ("count", "train", "animate", "lc")


def _modules():
    for name in _COMMANDS:
        try:
            yield name, importlib.import_module(f"splinescope.render._cli_{name}")
        except ModuleNotFoundError as e:  # a subcommand not written yet
            if e.name != f"splinescope.render._cli_{name}":
                raise


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="splinescope",
        description="Exact linear regions of piecewise-linear networks, rendered across training.")
    from splinescope import __version__
    parser.add_argument("--version", action="version", version=f"splinescope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    runners = {}
    for name, mod in _modules():
        mod.add_parser(sub)
        runners[name] = mod.run
    args = parser.parse_args(argv)
    try:
        return int(runners[args.command](args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"splinescope {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
