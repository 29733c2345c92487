"""The ``splinescope`` command line: ``count``, ``train``, ``animate``, ``view``, ``lc``, ``dynamics``, ``sweep``, ``grok``.

Each subcommand lives in its own module (``render/cli/<name>.py``) with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``; options they share are in
``render/cli/_common.py``; this file only dispatches. Whatever goes
wrong with what the user gave (a missing, corrupt or untrusted file, a wrong architecture, a bad
option) is one line on stderr, ``splinescope CMD: error: FILE: problem``, and exit status 2;
notes of the library (the ``splinescope`` logger: where the steps came from, skipped aliases)
and warnings are one line each too.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import warnings
from typing import List, Optional

__all__ = ["main"]

_COMMANDS = ("count", "train", "animate", "view", "lc", "dynamics", "sweep", "grok")


def _modules():
    for name in _COMMANDS:
        try:
            yield name, importlib.import_module(f"splinescope.render.cli.{name}")
        except ModuleNotFoundError as e:  # a subcommand not written yet
            if e.name != f"splinescope.render.cli.{name}":
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
        with _one_line_reports(f"splinescope {args.command}"):
            return int(runners[args.command](args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"splinescope {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:  # open()'s own errors
        return f"{e.filename}: {e.strerror}"
    return " ".join(str(e).split()) or type(e).__name__


@contextlib.contextmanager
def _one_line_reports(who: str):
    """The library's notes (logger ``splinescope``, INFO) and warnings as ``who: note: ...`` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{who}: note: %(message)s"))
    logger = logging.getLogger("splinescope")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{who}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
