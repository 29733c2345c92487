"""The main job in one call: train a toy network long enough for the late phase, then animate it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional, Union

__all__ = ["DEMO", "demo"]

DEMO = dict(toy="moons", n=256, noise=0.1, width=32, depth=3, activation="relu",
            steps=30000, lr=3e-3, checkpoints=48, seed=0)
"""The demo's defaults: 3 x 32 ReLU on 256 moons, 30,000 full-batch Adam steps (about a minute
on one core); the density of regions near the data falls after ~4,000 steps while the boundary
keeps its regions."""


def demo(out: Union[str, os.PathLike] = "splinescope-demo.gif", *, run_dir=None,
         progress: bool = True, **overrides):
    """Train the default toy (:data:`DEMO`, ``overrides`` replace its entries) and write its movie.

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
    from splinescope.spatial.data import toy
    from splinescope.spatial.train import toy_mlp, train

    from ._animate import _check_out, animate

    cfg = dict(DEMO)
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise TypeError(f"demo() got unknown settings {unknown}; valid: {sorted(cfg)}")
    cfg.update(overrides)
    out = _check_out(out)
    kw = {"noise": cfg["noise"]} if cfg["toy"] in ("moons", "circles", "spirals") else {}
    X, y = toy(cfg["toy"], cfg["n"], seed=cfg["seed"], **kw)
    K = int(y.max()) + 1
    arch_kwargs = dict(width=cfg["width"], depth=cfg["depth"], activation=cfg["activation"],
                       out_features=1 if K == 2 else K, seed=cfg["seed"])
    arch = {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": arch_kwargs}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(run_dir) if run_dir is not None else Path(tmp)
        train(toy_mlp(**arch_kwargs), X, y, steps=cfg["steps"], lr=cfg["lr"],
              checkpoints=cfg["checkpoints"], out_dir=d, arch=arch, seed=cfg["seed"], progress=progress)
        return animate(d, (-1, 1, -1, 1), out, progress=progress)
