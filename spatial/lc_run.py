"""Local complexity over a training run: at training, test and random points, for every checkpoint.

The computation behind ``splinescope lc`` and ``gallery/lc_digits.py``: :func:`point_sets` draws
the points (a subsample of the training and test sets, and points uniform in the box of the
training inputs), :func:`lc_over_training` yields one row per checkpoint, the mean local
complexity of each set (summed over layers, and per layer) and the accuracy where there are
labels. Following Humayun, Balestriero and Baraniuk, "Deep Networks Always Grok and Here is Why"
(ICML 2024).
"""
from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Optional, Tuple, cast

import numpy as np
import torch

from ._boundary import top_class
from ._validate import integer
from .local_complexity import _lc_update, _plan, _prepare_x

__all__ = ["accuracy", "lc_over_training", "lc_row", "point_sets"]

PointSet = Tuple[torch.Tensor, Optional[torch.Tensor]]  # (N, ...) points, (N,) labels or None


def point_sets(X_train, y_train, X_test=None, y_test=None, *, points: int = 1000,
               seed: int = 0) -> Dict[str, PointSet]:
    """Up to ``points`` points of each set, ``"train"``, ``"test"`` (if given) and ``"random"``.

    The inputs are ``(N, D)`` or of any sample shape (images ``(N, C, H, W)``), kept. The
    subsamples and the random points (uniform in the box spanned by the training inputs, element
    by element) come from one generator seeded with ``seed``.

    Examples
    --------
    >>> sets = point_sets(np.zeros((5, 3)), np.zeros(5), points=2)
    >>> {k: tuple(x.shape) for k, (x, y) in sets.items()}
    {'train': (2, 3), 'random': (2, 3)}
    >>> tuple(point_sets(np.zeros((5, 1, 2, 2)), np.zeros(5), points=2)["random"][0].shape)
    (2, 1, 2, 2)
    """
    points = integer("points", points, minimum=1)
    g = torch.Generator().manual_seed(int(seed))  # the points' own generator
    pick = lambda n: torch.randperm(n, generator=g)[:points]
    Xtr = torch.as_tensor(np.asarray(X_train, np.float32))  # (N, ...)
    i = pick(len(Xtr))
    sets: Dict[str, PointSet] = {"train": (Xtr[i], torch.as_tensor(np.asarray(y_train))[i].long())}
    if X_test is not None:
        Xte = torch.as_tensor(np.asarray(X_test, np.float32))
        j = pick(len(Xte))
        sets["test"] = (Xte[j], None if y_test is None else torch.as_tensor(np.asarray(y_test))[j].long())
    lo, hi = Xtr.amin(0), Xtr.amax(0)  # one sample's shape
    sets["random"] = (lo + (hi - lo) * torch.rand((points,) + tuple(Xtr.shape[1:]), generator=g), None)
    return sets


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of ``x`` that ``model`` labels ``y`` (one output: a logit; more: class scores)."""
    with torch.no_grad():
        out = model(x)
    return int((top_class(out).cpu() == y).sum()) / len(y)  # (a count over n: 26 of 200 is 0.13, not float32's 0.1299...)


def lc_over_training(checkpoints: Iterable, sets: Dict[str, PointSet], radius: float, *, frame,
                     center: bool = False) -> Iterator[Dict[str, float]]:
    """One row per ``(step, model)`` of ``checkpoints``: ``step``, ``lc_{set}`` (summed over the
    layers), ``lc_{set}/{layer}`` per layer (named by its activation module, see
    :func:`lc_row`) and, for labelled sets, ``acc_{set}``."""
    for step, model in checkpoints:
        model.eval()
        yield {"step": step, **lc_row(model, sets, radius, frame=frame, center=center)}


def lc_row(model: torch.nn.Module, sets: Dict[str, PointSet], radius: float, *, frame,
           center: bool = False) -> Dict[str, float]:
    """The measurements of one model: ``lc_{set}`` (mean local complexity summed over the
    layers), ``lc_{set}/{layer}`` (per layer, named by the layer's activation module: ``"1"`` in
    a Sequential, ``"act#2"`` for the second call of a reused ``act``) and ``acc_{set}`` for
    labelled sets. ``frame``: the ``(P, D)`` directions shared by all sets.

    Examples
    --------
    >>> from splinescope.spatial.local_complexity import random_frame
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> sets = point_sets(np.random.default_rng(0).random((20, 3)), np.arange(20) % 2, points=10)
    >>> sorted(lc_row(net, sets, 0.1, frame=random_frame(2, 3, seed=0)))
    ['acc_train', 'lc_random', 'lc_random/1', 'lc_train', 'lc_train/1']
    """
    plan = _plan(model)
    row: Dict[str, float] = {}
    for name, (x, y) in sets.items():
        xt, shape = _prepare_x(plan, x)
        counts = _lc_update(plan, xt, shape, frame, radius, center, None).double()  # (n, L)
        per_layer = counts.mean(0)
        row[f"lc_{name}"] = float(counts.sum(1).mean())  # (the whole counts over n, one rounding)
        for layer, v in zip(cast(List[str], plan.names), per_layer.tolist()):
            row[f"lc_{name}/{layer}"] = v
        if y is not None:
            row[f"acc_{name}"] = accuracy(model, xt.reshape((len(xt),) + shape), y)
    return row
