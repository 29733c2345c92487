"""Exact rational arrays over one common denominator, for the exact side of the operations.

An element-wise ``Fraction`` operation costs a gcd and an object; a network of 16384 units pays
that millions of times per exact map. ``Q`` holds an array of rationals as Python integers
(``num``, an object array) over one positive integer ``den``: sums align the denominators once
per array, products multiply them, and nothing is reduced until :meth:`Q.fractions`. Every value
is exact; only the representation differs from an array of Fractions.

>>> from fractions import Fraction
>>> a = Q.of(np.array([Fraction(1, 3), Fraction(1, 2)], dtype=object))
>>> b = Q.of(np.array([0.25, 2.0]))
>>> ((a + b) * b).fractions().tolist()
[Fraction(7, 48), Fraction(5, 1)]
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import numpy as np

__all__ = ["Q"]


def _as_int_array(a) -> np.ndarray:
    return np.asarray(a, dtype=object)


class Q:
    """``num / den``: ``num`` an object array of Python ints, ``den`` a positive int."""

    __slots__ = ("num", "den")
    __array_ufunc__ = None  # ``ndarray op Q`` is Q's reflected operator, not an element-wise loop

    def __init__(self, num: np.ndarray, den: int = 1):
        if not isinstance(num, np.ndarray):  # numpy gives 0-d results as scalars
            e = np.empty((), dtype=object)
            e[()] = num
            num = e
        self.num = num
        self.den = int(den)

    # ---- conversion
    @staticmethod
    def of(a) -> "Q":
        """Fractions, ints or floats (exact binary values) as a Q (a Q is returned as it is)."""
        if isinstance(a, Q):
            return a
        if isinstance(a, (Fraction, int, float)):
            a = np.array([a], dtype=object).reshape(())
        arr = np.asarray(a)
        if arr.dtype != object:
            return Q._of_floats(np.asarray(arr, np.float64))
        flat = [v if isinstance(v, (Fraction, int)) else Fraction(float(v)) for v in arr.reshape(-1)]
        D = 1
        for v in flat:
            d = v.denominator if isinstance(v, Fraction) else 1
            if D % d:
                D = D * d // math.gcd(D, d)
        num = np.empty(len(flat), dtype=object)
        for i, v in enumerate(flat):
            num[i] = v.numerator * (D // v.denominator) if isinstance(v, Fraction) else int(v) * D
        return Q(num.reshape(arr.shape), D)

    @staticmethod
    def _of_floats(a: np.ndarray) -> "Q":
        """Finite float64 values exactly, over a power of two: ``a = m 2**e`` with 53-bit ``m``."""
        if not np.isfinite(a).all():
            raise ValueError("only finite values have an exact rational value")
        m, e = np.frexp(a)
        mi = (m * float(1 << 53)).astype(np.int64)  # exact
        ex = e.astype(np.int64) - 53
        nz = mi != 0
        E = min(int(ex[nz].min()) if nz.any() else 0, 0)
        ex[~nz] = E  # zeros: any exponent
        num = mi.astype(object) * np.power(2, (ex - E).astype(object))
        return Q(np.asarray(num, dtype=object).reshape(a.shape), 1 << -E)

    def fractions(self) -> np.ndarray:
        """The values as an object array of (reduced) Fractions."""
        d = self.den
        make = np.frompyfunc(lambda n: Fraction(n, d), 1, 1)
        return np.asarray(make(self.num), dtype=object).reshape(self.num.shape)

    def floats(self):
        """The values rounded to the nearest float64 (``int / int`` in Python rounds correctly):
        a float for a 0-d Q, else a float64 array."""
        d = self.den
        if not self.num.shape:
            return self.num[()] / d
        return np.array([n / d for n in self.num.reshape(-1)], dtype=np.float64).reshape(self.num.shape)

    def reduced(self) -> "Q":
        """The same values over the smallest common denominator (all numerators and ``den``
        divided by their gcd): fewer bits for the products that follow."""
        g = math.gcd(*self.num.reshape(-1).tolist(), self.den)
        return self if g == 1 else Q(self.num // g, self.den // g)

    # ---- shape
    @property
    def shape(self):
        return self.num.shape

    @property
    def ndim(self) -> int:
        return self.num.ndim

    def __len__(self) -> int:
        return len(self.num)

    def reshape(self, *shape) -> "Q":
        return Q(self.num.reshape(*shape), self.den)

    @property
    def T(self) -> "Q":
        return Q(self.num.T, self.den)

    def __getitem__(self, key) -> "Q":
        return Q(self.num[key], self.den)

    def sum(self, axis=None, keepdims: bool = False) -> "Q":
        return Q(self.num.sum(axis=axis, keepdims=keepdims), self.den)

    @staticmethod
    def cat(parts: Sequence["Q"], axis: int = 0) -> "Q":
        """``np.concatenate`` of Qs, over their common denominator."""
        qs = [Q.of(p) for p in parts]
        D = 1
        for q in qs:
            D = D * q.den // math.gcd(D, q.den)
        return Q(np.concatenate([q.num * (D // q.den) if q.den != D else q.num for q in qs], axis=axis), D)

    @staticmethod
    def zeros(shape) -> "Q":
        return Q(np.zeros(shape, dtype=object), 1)

    # ---- arithmetic
    def _align(self, other: "Q"):
        if self.den == other.den:
            return self.num, other.num, self.den
        D = self.den * other.den // math.gcd(self.den, other.den)
        return self.num * (D // self.den), other.num * (D // other.den), D

    def __add__(self, other) -> "Q":
        a, b, D = self._align(Q.of(other))
        return Q(a + b, D)

    __radd__ = __add__

    def __sub__(self, other) -> "Q":
        a, b, D = self._align(Q.of(other))
        return Q(a - b, D)

    def __rsub__(self, other) -> "Q":
        return Q.of(other) - self

    def __neg__(self) -> "Q":
        return Q(-self.num, self.den)

    def __mul__(self, other) -> "Q":
        if isinstance(other, np.ndarray) and other.dtype == object and all(type(v) is int for v in other.flat):
            return Q(self.num * other, self.den)  # integers (e.g. the 0/1 constant multipliers)
        o = Q.of(other)
        return Q(self.num * o.num, self.den * o.den)

    __rmul__ = __mul__

    def __truediv__(self, other) -> "Q":
        """Division by a nonzero number or by an array of nonzero numbers (broadcast)."""
        o = Q.of(other)
        n = np.asarray(o.num, dtype=object)
        if not n.shape:
            k = int(n[()])
            s = -1 if k < 0 else 1
            return Q(self.num * (o.den * s), self.den * abs(k))
        # x / (p_i / d) = x d / p_i: one common multiple of the |p_i| for the denominator
        L = 1
        for p in n.flat:
            L = L * abs(p) // math.gcd(L, abs(p))
        f = np.frompyfunc(lambda p: (L // abs(p)) * (1 if p > 0 else -1), 1, 1)(n)
        return Q(self.num * (f * o.den), self.den * L)

    # ---- signs
    def __gt__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self.num > 0
        a, b, _ = self._align(Q.of(other))
        return a > b

    def __lt__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self.num < 0
        a, b, _ = self._align(Q.of(other))
        return a < b

    def __repr__(self) -> str:
        return f"Q(shape={self.shape}, den bits={self.den.bit_length()})"
