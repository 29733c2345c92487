"""Plot of local complexity over training steps, beside accuracy (log step axis).

The numbers come from ``spatial.local_complexity`` (see ``splinescope lc``); this module only
draws. Reference for the three phases it shows: Humayun, Balestriero, Baraniuk, "Deep Networks
Always Grok and Here is Why" (ICML 2024).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = ["plot_lc", "save_lc_plot"]

_COLORS = {"train": "tab:blue", "test": "tab:orange", "random": "tab:green"}


def _series(name: str, values, n: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (n,):
        raise ValueError(f"{name} has shape {v.shape}, expected ({n},): one value per step")
    return v


def plot_lc(steps: Sequence[int], lc: Mapping[str, Sequence[float]],
            accuracy: Optional[Mapping[str, Sequence[float]]] = None, *, axes=None, **kwargs):
    """Mean local complexity per point set over steps, and accuracy beside it.

    Parameters
    ----------
    steps : sequence of int
        Training steps of the checkpoints; the log x-axis shows ``step + 1`` so step 0 fits.
    lc : mapping name -> sequence of float
        Mean LC per checkpoint, e.g. ``{"train": ..., "test": ..., "random": ...}``.
    accuracy : mapping name -> sequence of float, optional
        Accuracy per checkpoint (in ``[0, 1]``), drawn in a second axes.
    axes : matplotlib Axes or a pair of them, optional
        Where to draw (one axes for LC, or two: LC and accuracy); default a new figure.
    **kwargs
        Passed to every ``Axes.plot`` call.

    Returns
    -------
    list of matplotlib Axes
        ``[lc_axes]`` or ``[lc_axes, accuracy_axes]``.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> axes = plot_lc([0, 10, 100], {"train": [3.0, 1.0, 2.0]}, {"train": [0.1, 0.9, 1.0]})
    >>> [ax.get_xscale() for ax in axes]
    ['log', 'log']
    """
    import matplotlib.pyplot as plt

    x = np.asarray(steps, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("steps is not a non-empty 1-D sequence")
    if not lc:
        raise ValueError("lc is empty: give at least one series")
    n = len(x)
    want = 1 if accuracy is None else 2
    if axes is None:
        _, axes = plt.subplots(1, want, figsize=(5 * want, 3.8))
    axes = list(np.atleast_1d(axes))
    if len(axes) < want:
        raise ValueError(f"need {want} axes (LC and accuracy), got {len(axes)}")
    _panel(axes[0], lc, x, n, "lc", "mean local complexity", **kwargs)
    if accuracy is None:
        return axes[:1]
    _panel(axes[1], accuracy, x, n, "accuracy", "accuracy", **kwargs)
    axes[1].set_ylim(0, 1.02)
    return axes[:2]


def _panel(ax, series, x, n, what, ylabel, **kwargs) -> None:
    """One panel: each named series against step + 1, on a log axis."""
    for name, values in series.items():
        ax.plot(x + 1, _series(f"{what}[{name!r}]", values, n), label=name, color=_COLORS.get(name), **kwargs)
    ax.set_xscale("log")
    ax.set_xlabel("step + 1")
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False)


def save_lc_plot(rows: Sequence[Mapping], out, *, title: str) -> None:
    """Write the plot of the rows of :func:`spatial.lc_run.lc_over_training` to ``out`` (Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k[3:] for k in rows[0] if k.startswith("lc_") and "/" not in k]  # totals, not per layer
    steps = [r["step"] if r["step"] is not None else k for k, r in enumerate(rows)]
    lc = {n: [r[f"lc_{n}"] for r in rows] for n in names}
    acc = {n: [r[f"acc_{n}"] for r in rows] for n in names if f"acc_{n}" in rows[0]}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    plot_lc(steps, lc, acc, axes=axes)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
