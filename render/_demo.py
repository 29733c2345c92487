"""The main job in one call: train a toy network long enough for the late phase, then animate it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

__all__ = ["demo"]


def demo(out: Union[str, os.PathLike] = "splinescope-demo.gif", *, run_dir=None,
         progress: bool = True, **overrides):
    """Train the default toy run (:class:`spatial.train.ToyRun`, the run of ``splinescope train``;
    ``overrides`` replace its fields) and write its movie.

    Parameters
    ----------
    out : path ending in .gif or .mp4
    run_dir : path, optional
        Keep the checkpoints there (default: a temporary folder, removed afterwards).
    progress : bool
        tqdm progress bars.

    Returns
    -------
    render.Animation

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:  # a tiny run: 3 checkpoints
    ...     a = demo(d + "/demo.gif", steps=20, checkpoints=2, width=8, depth=1, n=16, progress=False)
    ...     a.steps, a.path.name
    ([0, 1, 20], 'demo.gif')
    """
    import dataclasses

    from splinescope.spatial.train import ToyRun, train_toy

    from ._animate import _check_out, animate

    valid = sorted(f.name for f in dataclasses.fields(ToyRun))
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TypeError(f"demo() got unknown settings {unknown}; valid: {valid}")
    cfg = ToyRun(**overrides)
    out = _check_out(out)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(run_dir) if run_dir is not None else Path(tmp)
        train_toy(cfg, d, progress=progress)
        return animate(d, (-1, 1, -1, 1), out, progress=progress)
