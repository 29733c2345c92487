"""A 2-D slice of a high-dimensional input space: ``x = origin + s * u + t * v``."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

__all__ = ["Plane"]


def _as_f64(name: str, a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array or tensor of numbers, got {type(a).__name__}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite entries")
    return arr


class Plane:
    """The plane ``x = origin + s * u + t * v`` through an input space of any shape.

    ``origin``, ``u`` and ``v`` share one shape (e.g. ``(784,)`` or ``(1, 28, 28)``); they are
    flattened for the network. ``u`` and ``v`` must be linearly independent.

    Examples
    --------
    >>> p = Plane([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    >>> p.lift([[2.0, 3.0]]).tolist()
    [[2.0, 3.0, 1.0]]
    >>> Plane.through([0, 0], [1, 0], [0, 2]).lift([[0.5, 0.5]]).tolist()
    [[0.5, 1.0]]
    """

    def __init__(self, origin, u, v):
        o, u_, v_ = (_as_f64(n, a) for n, a in (("origin", origin), ("u", u), ("v", v)))
        if not (o.shape == u_.shape == v_.shape):
            raise ValueError(f"origin, u and v must have one shape, got {o.shape}, {u_.shape}, {v_.shape}")
        if o.size < 2:
            raise ValueError(f"a plane needs an input space of at least 2 dimensions, got {o.size}")
        self.shape: Tuple[int, ...] = o.shape
        self.origin = o.reshape(-1)
        self.basis = np.stack([u_.reshape(-1), v_.reshape(-1)])  # (2, D)
        s = np.linalg.svd(self.basis, compute_uv=False)
        if s[1] <= 1e-12 * max(s[0], 1e-300):
            raise ValueError("u and v are linearly dependent: they do not span a plane")

    @classmethod
    def through(cls, a, b, c) -> "Plane":
        """The plane through three inputs: ``(s, t) = (0, 0), (1, 0), (0, 1)`` give a, b, c."""
        a_, b_, c_ = (_as_f64(n, x) for n, x in (("a", a), ("b", b), ("c", c)))
        if not (a_.shape == b_.shape == c_.shape):
            raise ValueError(f"a, b and c must have one shape, got {a_.shape}, {b_.shape}, {c_.shape}")
        try:
            return cls(a_, b_ - a_, c_ - a_)
        except ValueError:
            raise ValueError("the three inputs are collinear: they do not span a plane") from None

    @property
    def dim(self) -> int:
        """The dimension of the input space."""
        return self.origin.size

    def lift(self, st) -> np.ndarray:
        """Input-space points (N, D) of slice coordinates (N, 2)."""
        st = np.asarray(st, dtype=np.float64)
        return self.origin + st @ self.basis

    def __repr__(self) -> str:
        return f"Plane(dim={self.dim}, shape={self.shape})"
