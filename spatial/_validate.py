"""Argument checks shared by ``spatial`` and ``render``: one rule and one message for each kind.

- :func:`option`: a string from a fixed set, ``"'x' is not a valid toy, must be one of 'a', 'b'"``.
- :func:`integer`: an int (not a bool, not a float), optionally ``>= minimum``; a wrong type is a
  ``TypeError``, a wrong value a ``ValueError``.
- :func:`points`: the ``data=`` convention, written once in the ``spatial`` package docstring:
  ``data`` is ``(N, 2)`` points in slice coordinates, or a pair ``(X, y)`` of ``(N, 2)`` points
  and ``(N,)`` labels. A 2-tuple is read as a pair only when its first element is 2-D, so
  ``((0.1, 0.2), (0.3, 0.4))`` is two points. Arrays and tensors are accepted alike.
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["integer", "option", "points"]


class _IntTypeError(TypeError, ValueError):
    """A wrong type where an int was wanted: a TypeError, and still a ValueError, which is what
    these checks raised before (as numpy's ``AxisError`` is both a ValueError and an IndexError)."""


def option(value, valid: Iterable, what: str = "option", *, others: Sequence[str] = ()):
    """``value`` if it is one of ``valid``, else ValueError naming the choices.

    ``others`` are the choices that are not strings (described in words, e.g. ``"an (R,) array"``).

    Examples
    --------
    >>> option("moons", ("moons", "xor"), "toy")
    'moons'
    >>> option("swiss", ("moons", "xor"), "toy")
    Traceback (most recent call last):
    ...
    ValueError: 'swiss' is not a valid toy, must be one of 'moons', 'xor'
    >>> option("x", ("auto",), "data option", others=("None", "(N, 2) points"))
    Traceback (most recent call last):
    ...
    ValueError: 'x' is not a valid data option, must be 'auto', None or (N, 2) points
    """
    valid = tuple(valid)
    if isinstance(value, str) and value in valid:
        return value
    choices = [repr(v) for v in valid] + list(others)
    listed = ", ".join(choices) if not others else ", ".join(choices[:-1]) + " or " + choices[-1]
    raise ValueError(f"{value!r} is not a valid {what}, must be {'one of ' if len(valid) > 1 else ''}{listed}")


def integer(name: str, value, *, minimum: Optional[int] = None) -> int:
    """``value`` as an ``int``: a Python or numpy integer (not a bool), ``>= minimum`` if given.

    The message shows what is wrong: the value when it is out of range or not whole (``got 1.5``),
    else its type (``got float`` for ``10.0``, ``got str``).

    Examples
    --------
    >>> integer("width", 3, minimum=1)
    3
    >>> integer("width", 0, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: width must be a positive int, got 0
    >>> integer("steps", "10", minimum=0)
    Traceback (most recent call last):
    ...
    splinescope.spatial._validate._IntTypeError: steps must be an int >= 0, got str
    """
    rule = "an int" if minimum is None else "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        whole = isinstance(value, numbers.Real) and float(value).is_integer()
        got = repr(value) if isinstance(value, numbers.Real) and not whole else type(value).__name__
        raise _IntTypeError(f"{name} must be {rule}, got {got}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    return int(value)


def _numpy(a, dtype=None) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def _ndim(a) -> int:
    return a.ndim if hasattr(a, "ndim") else np.ndim(a)


def points(data, name: str = "data") -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """``(X, y)`` of ``data`` under the ``data=`` convention: ``X`` (N, 2) float64, ``y`` (N,) or None.

    ``data=None`` gives ``(None, None)``.

    Examples
    --------
    >>> points(((0.1, 0.2), (0.3, 0.4)))[0].shape  # two points, not a pair
    (2, 2)
    >>> X, y = points(([[0.0, 0.0], [1.0, 1.0]], [0, 1]))
    >>> y.tolist()
    [0, 1]
    >>> points([1.0, 2.0])
    Traceback (most recent call last):
    ...
    ValueError: data must be (N, 2) points in slice coordinates or an (X, y) pair, got X of shape (2,)
    """
    if data is None:
        return None, None
    if isinstance(data, tuple) and len(data) == 2 and _ndim(data[0]) == 2:
        X, y = data
    else:
        X, y = data, None
    try:
        X = _numpy(X, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be (N, 2) points or an (X, y) pair of numbers, got {type(X).__name__}") from None
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) points in slice coordinates or an (X, y) pair, "
                         f"got X of shape {X.shape}")
    if y is not None:
        y = _numpy(y).reshape(-1)
        if len(y) != len(X):
            raise ValueError(f"{name}: X has {len(X)} points but y has {len(y)} labels")
    return X, y


Bounds = Tuple[float, float, float, float]


def data_box(X, pad: float = 0.1) -> Bounds:
    """The box of 2-D points, widened by ``pad`` of its sides on each side: a default slice.

    >>> data_box([[0.0, 0.0], [1.0, 2.0]])
    (-0.1, 1.1, -0.2, 2.2)
    """
    X = np.asarray(X, dtype=np.float64)
    lo, hi = X.min(0), X.max(0)
    d = pad * np.maximum(hi - lo, 1e-12)
    return (float(lo[0] - d[0]), float(hi[0] + d[0]), float(lo[1] - d[1]), float(hi[1] + d[1]))


def slices(slices, in_features: Optional[int]) -> Dict[str, Tuple[Bounds, Any]]:
    """``{name: (bounds, plane or None)}`` from ``{name: bounds}`` / ``{name: (bounds, Plane)}``, the
    ``slices=`` of the tracker and the sweep; ``in_features``: the data's, to refuse a plain box
    of a network of more than two inputs (None: not known).

    >>> slices({"box": (-1, 1, -1, 1)}, 2)
    {'box': ((-1.0, 1.0, -1.0, 1.0), None)}
    """
    from ._plane import Plane

    if slices is None:
        return {}
    if not isinstance(slices, Mapping):
        raise TypeError(f"slices must be a dict {{name: bounds or (bounds, Plane)}}, got {type(slices).__name__}")
    out = {}
    for name, spec in slices.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"slice name {name!r} must be a non-empty string without '/'")
        plane = None
        if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], Plane):
            spec, plane = spec
        try:
            bounds = tuple(float(b) for b in spec)
        except (TypeError, ValueError):
            raise TypeError(f"slice {name!r} must be (xmin, xmax, ymin, ymax) or ((xmin, xmax, ymin, ymax), "
                            f"Plane), got {spec!r}") from None
        if len(bounds) != 4 or not (bounds[0] < bounds[1] and bounds[2] < bounds[3]):
            raise ValueError(f"slice {name!r}: bounds {spec!r} must be (xmin, xmax, ymin, ymax) with xmin < xmax "
                             "and ymin < ymax")
        if plane is None and in_features is not None and in_features != 2:
            raise ValueError(f"slice {name!r} has no Plane but the data have {in_features} features: give "
                             "(bounds, spatial.Plane.through(a, b, c))")
        out[name] = (bounds, plane)
    return out


def output_path(out, formats: Sequence[str], what: str = "output format"):
    """``out`` as a Path, if it names one of ``formats`` (by extension) in an existing folder.

    >>> output_path("a.gif", (".gif", ".mp4")).name
    'a.gif'
    >>> output_path("a.png", (".gif", ".mp4"))
    Traceback (most recent call last):
    ...
    ValueError: '.png' is not a supported output format, must be one of '.gif', '.mp4'
    """
    import os
    from pathlib import Path

    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path, got {type(out).__name__}")
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in formats:
        raise ValueError(f"{ext or out.name!r} is not a supported {what}, must be "
                         + ("one of " if len(formats) > 1 else "") + ", ".join(repr(f) for f in formats))
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the folder of {str(out)!r} does not exist")
    return out
