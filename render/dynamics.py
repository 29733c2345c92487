"""Plots of the two other lenses on a training run: CKA across checkpoints, probe agreement, imbalance.

The numbers come from :mod:`splinescope.spatial.dynamics` (layer-wise CKA matrices, probe
agreement; Sharon and Dar 2024) and :mod:`splinescope.spatial.imbalance` (layer imbalance of deep
linear networks; Ginsburg 2020); this module only draws.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = ["plot_cka_matrices", "plot_imbalance", "plot_probe_agreement"]


def plot_cka_matrices(matrices: Mapping[str, np.ndarray], steps: Sequence[int], *, axes=None, **kwargs):
    """One heat map per layer of CKA between checkpoints (``cka_matrices`` output).

    Returns the list of Axes. Every map shares one colour scale, [0, 1].

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> axes = plot_cka_matrices({"1": np.eye(3), "3": np.ones((3, 3))}, [0, 10, 100])
    >>> [ax.get_title() for ax in axes]
    ['layer 1', 'layer 3']
    """
    import matplotlib.pyplot as plt

    if not matrices:
        raise ValueError("matrices is empty: give at least one layer")
    T = len(steps)
    for name, M in matrices.items():
        if np.shape(M) != (T, T):
            raise ValueError(f"the matrix of layer {name!r} has shape {np.shape(M)}, expected ({T}, {T}): "
                             "one row and column per step")
    if axes is None:
        _, axes = plt.subplots(1, len(matrices), figsize=(3.2 * len(matrices) + 0.8, 3.4), squeeze=False)
        axes = list(axes[0])
    ticks = np.unique(np.linspace(0, T - 1, min(T, 5)).round().astype(int))
    for ax, (name, M) in zip(axes, matrices.items()):
        im = ax.imshow(M, vmin=0.0, vmax=1.0, cmap=kwargs.pop("cmap", "magma"), origin="lower", **kwargs)
        ax.set_title(f"layer {name}")
        ax.set_xticks(ticks, [str(steps[i]) for i in ticks], rotation=45)
        ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
        ax.set_xlabel("step")
    axes[0].set_ylabel("step")
    axes[0].figure.colorbar(im, ax=list(axes), shrink=0.8, label="linear CKA")
    return list(axes)


def plot_probe_agreement(steps: Sequence[int], agreement: Mapping[str, Mapping[str, np.ndarray]], *,
                         ax=None, **kwargs):
    """Probe agreement with the reference checkpoint over steps, per layer (exact solid, grid dashed).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> ax = plot_probe_agreement([0, 10], {"1": {"exact": np.array([0.5, 1.0]), "grid": np.array([0.49, 1.0])}})
    >>> len(ax.lines)
    2
    """
    import matplotlib.pyplot as plt

    x = np.asarray(steps, dtype=np.float64) + 1
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    for k, (name, r) in enumerate(agreement.items()):
        color = f"C{k}"
        ax.plot(x, r["exact"], color=color, label=f"layer {name} (exact)", **kwargs)
        if "grid" in r:
            ax.plot(x, r["grid"], color=color, ls="--", label=f"layer {name} (grid)", **kwargs)
    ax.set_xscale("log")
    ax.set_xlabel("step + 1")
    ax.set_ylabel("agreement with the last probe")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    return ax


def plot_imbalance(steps: Sequence[int], loss: Optional[Sequence[float]], imbalance: np.ndarray, *, axes=None,
                   **kwargs):
    """Loss and layer imbalance ||D_i|| over steps on one figure (log-log): the two phases.

    ``imbalance`` is (T,) or (T, depth - 1); ``loss`` may be None (imbalance only). Returns
    ``[loss_axes, imbalance_axes]`` (twin axes).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> a, b = plot_imbalance([0, 1, 2], [1.0, 0.5, 0.4], np.array([[2.0], [1.9], [1.0]]))
    >>> a.get_yscale(), b.get_yscale()
    ('log', 'log')
    """
    import matplotlib.pyplot as plt

    x = np.asarray(steps, dtype=np.float64) + 1
    D = np.asarray(imbalance, dtype=np.float64).reshape(len(x), -1)
    if axes is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
        axes = [ax, ax.twinx()]
    a, b = axes
    if loss is not None:
        a.plot(x, loss, color="black", label="loss", **kwargs)
    for i in range(D.shape[1]):
        b.plot(x, D[:, i], color=f"C{i}", ls="--", label=f"||D_{i + 1}||", **kwargs)
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_yscale("log")
    a.set_xlabel("step + 1")
    a.set_ylabel("loss")
    b.set_ylabel("layer imbalance")
    lines = a.get_lines() + b.get_lines()
    a.legend(lines, [l.get_label() for l in lines], fontsize=7, loc="upper right")
    return [a, b]
