"""Seeded toy datasets: 2-D classification toys in ``[-1, 1]^2`` and the 64-d sklearn digits.

Every toy takes its own ``seed`` and draws from its own :class:`numpy.random.Generator` (never the
global RNG), so one seed gives one dataset on every machine. Inputs are float32 ``(N, 2)``, centred
and scaled uniformly so that the largest ``|coordinate|`` is 0.9 (inside ``[-1, 1]^2`` with a margin
for the picture); labels are int64 ``(N,)`` class indices ``0 .. C-1``, balanced.

``toy(name, ...)`` picks a toy by name (the names in :data:`TOYS`), as the command line does.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

from ._validate import integer, option

__all__ = ["TOYS", "blobs", "checkerboard", "circles", "digits", "digits_split", "moons", "spirals", "toy", "xor"]

Dataset = Tuple[np.ndarray, np.ndarray]


def _check_n(n, classes: int = 2) -> int:
    n = integer("n", n)
    if n < classes:
        raise ValueError(f"n must be at least {classes} (one point per class), got {n}")
    return int(n)


def _check_noise(noise) -> float:
    noise = float(noise)
    if not (noise >= 0 and np.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    return noise


def _split(n: int, classes: int) -> np.ndarray:
    """Balanced class labels: counts differ by at most one."""
    return np.arange(n) % classes


def _finish(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Dataset:
    X = X - (X.max(0) + X.min(0)) / 2
    X = X * (0.9 / max(np.abs(X).max(), 1e-12))
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order].astype(np.int64)


def moons(n: int = 256, *, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two interleaved half circles.

    Examples
    --------
    >>> X, y = moons(8, seed=1)
    >>> X.shape, X.dtype, y.tolist().count(0), round(float(abs(X).max()), 4)
    ((8, 2), dtype('float32'), 4, 0.9)
    """
    n, noise = _check_n(n), _check_noise(noise)
    rng = np.random.default_rng(seed)
    y = _split(n, 2)
    a = rng.uniform(0, np.pi, n)
    X = np.where(y[:, None] == 0,
                 np.stack([np.cos(a), np.sin(a)], 1),
                 np.stack([1 - np.cos(a), 0.5 - np.sin(a)], 1))
    return _finish(X + rng.normal(0, noise, X.shape), y, rng)


def circles(n: int = 256, *, noise: float = 0.05, factor: float = 0.5, seed: int = 0) -> Dataset:
    """A disc of one class inside a ring of the other (``factor``: inner / outer radius).

    Examples
    --------
    >>> X, y = circles(6, noise=0.0)
    >>> [round(float(r), 2) for r in np.hypot(*X[y == 1].T)]
    [0.45, 0.45, 0.45]
    """
    n, noise = _check_n(n), _check_noise(noise)
    if not 0 < factor < 1:
        raise ValueError(f"factor must be in (0, 1), got {factor}")
    rng = np.random.default_rng(seed)
    y = _split(n, 2)
    a = rng.uniform(0, 2 * np.pi, n)
    r = np.where(y == 0, 1.0, factor)
    X = r[:, None] * np.stack([np.cos(a), np.sin(a)], 1)
    X = X + rng.normal(0, noise, X.shape)
    # centre on the origin (not on the bounding box) so the circles stay concentric; the outer
    # circle's largest radius becomes 0.9
    X = X * (0.9 / np.hypot(*X.T).max())
    order = rng.permutation(n)
    return X[order].astype(np.float32), y[order].astype(np.int64)


def spirals(n: int = 256, *, turns: float = 1.5, noise: float = 0.03, classes: int = 2,
            seed: int = 0) -> Dataset:
    """``classes`` interleaved Archimedean spirals of ``turns`` turns each.

    Examples
    --------
    >>> X, y = spirals(9, classes=3)
    >>> sorted(set(y.tolist()))
    [0, 1, 2]
    """
    classes = integer("classes", classes, minimum=2)
    n, noise = _check_n(n, classes), _check_noise(noise)
    rng = np.random.default_rng(seed)
    y = _split(n, classes)
    r = np.sqrt(rng.uniform(0.02, 1, n))  # uniform along the arm's area
    a = 2 * np.pi * (turns * r + y / classes)
    X = r[:, None] * np.stack([np.cos(a), np.sin(a)], 1)
    X = X + rng.normal(0, noise, X.shape)
    X = X * (0.9 / np.abs(X).max())
    order = rng.permutation(n)
    return X[order].astype(np.float32), y[order].astype(np.int64)


def checkerboard(n: int = 256, *, cells: int = 4, seed: int = 0) -> Dataset:
    """Uniform points on a ``cells x cells`` checkerboard, labelled by the colour of their cell.

    Examples
    --------
    >>> X, y = checkerboard(200, cells=2, seed=0)
    >>> bool(np.all(y == ((X[:, 0] > 0) ^ (X[:, 1] > 0))))
    True
    """
    n = _check_n(n)
    cells = integer("cells", cells, minimum=2)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-0.9, 0.9, (n, 2))
    ij = np.floor((X + 0.9) / 1.8 * cells).clip(0, cells - 1).astype(np.int64)
    y = (ij[:, 0] + ij[:, 1]) % 2
    return X.astype(np.float32), y.astype(np.int64)


def xor(n: int = 256, *, seed: int = 0) -> Dataset:
    """The XOR problem: the 2 x 2 :func:`checkerboard` (class 1 where ``x * y < 0``).

    Examples
    --------
    >>> X, y = xor(50)
    >>> bool(np.all(y == (X[:, 0] * X[:, 1] < 0)))
    True
    """
    return checkerboard(n, cells=2, seed=seed)


def blobs(n: int = 256, *, centers: int = 3, std: float = 0.15, seed: int = 0) -> Dataset:
    """``centers`` Gaussian blobs, one class each, centred on a circle.

    Examples
    --------
    >>> X, y = blobs(30, centers=3, std=0.0)
    >>> len(np.unique(X.round(5), axis=0))
    3
    """
    centers = integer("centers", centers, minimum=2)
    n, std = _check_n(n, centers), _check_noise(std)
    rng = np.random.default_rng(seed)
    y = _split(n, centers)
    a = 2 * np.pi * np.arange(centers) / centers + np.pi / 2
    c = np.stack([np.cos(a), np.sin(a)], 1)
    X = c[y] + rng.normal(0, std, (n, 2))
    X = X * (0.9 / np.abs(X).max())
    order = rng.permutation(n)
    return X[order].astype(np.float32), y[order].astype(np.int64)


TOYS: Dict[str, Callable[..., Dataset]] = {
    "blobs": blobs, "checkerboard": checkerboard, "circles": circles,
    "moons": moons, "spirals": spirals, "xor": xor,
}
"""The 2-D toys by name."""


def toy(name: str, n: int = 256, *, seed: int = 0, **kwargs) -> Dataset:
    """The 2-D toy called ``name`` (one of :data:`TOYS`), with ``n`` points.

    Examples
    --------
    >>> X, y = toy("xor", 4, seed=3)
    >>> X.shape
    (4, 2)
    >>> toy("swiss")
    Traceback (most recent call last):
    ...
    ValueError: 'swiss' is not a valid toy, must be one of 'blobs', 'checkerboard', 'circles', 'moons', 'spirals', 'xor'
    """
    option(name, TOYS, "toy")
    return TOYS[name](n, seed=seed, **kwargs)


def digits() -> Dataset:
    """The sklearn digits: 1,797 images of 8 x 8 pixels as float32 ``(1797, 64)`` in ``[0, 1]``.

    Needs scikit-learn (``pip install splinescope[data]``). Labels are the digits ``0 .. 9``.

    Examples
    --------
    >>> X, y = digits()  # doctest: +SKIP
    >>> X.shape, float(X.max()), int(y.max())  # doctest: +SKIP
    ((1797, 64), 1.0, 9)
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        from ._errors import MissingDependencyError
        raise MissingDependencyError("digits() needs scikit-learn: pip install 'splinescope[data]'") from None
    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def digits_split(n_train: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`digits` split into ``n_train`` training points and the rest (the test set), by a
    permutation seeded with ``seed``: ``(X_train, y_train, X_test, y_test)``."""
    X, y = digits()
    n_train = integer("n_train", n_train)
    if not 1 <= n_train < len(X):
        raise ValueError(f"n_train must be between 1 and {len(X) - 1}, got {n_train}")
    order = np.random.default_rng(seed).permutation(len(X))
    tr, te = order[:n_train], order[n_train:]
    return X[tr], y[tr], X[te], y[te]
