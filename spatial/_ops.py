"""Affine operations of a network, applied without a dense matrix: float64, bounds, and exact.

A convolution, a pooling, a batch norm or a reshape is an affine map of the flattened input, but
its dense matrix (outputs x inputs) can be far larger than the network: a 16-channel 3x3 conv on
a 3x32x32 input is a 16384 x 3072 matrix. The engine never needs the matrix, only the map applied
to the rows it holds (the hidden values at the vertices), so each operation here is applied the
way torch applies it, in three ways:

* ``run(args, c)``: float64 torch tensors ``(N, *shape)``; ``c`` (N,) multiplies the constant
  terms (1: the value of the map, 0: its linear part, for the directions of a plane);
* ``bound(args, c)``: the same with every weight and constant replaced by its absolute value,
  so that ``bound(|h|, 1)`` bounds the size of the terms behind each value (its rounding);
* ``exact(args, c)``: exact rational arrays (:class:`~._rational.Q`, integers over one
  denominator) ``(N, *shape)``; ``c`` an object array of ints.

The exact product of a weighted operation (Linear, Conv, ConvTranspose) is computed by torch
itself, in float64, on integers small enough that every product and partial sum is exact
(:func:`exact_bilinear`): inputs and weights are scaled to integers and cut into limbs of ``B``
bits, with ``fan_in * 2**(2B) < 2**53``; the limb products are summed back in Python integers.
Pooling windows are read from explicit index tables (:func:`windows`), checked against torch in
the tests.
"""
from __future__ import annotations

import functools
import math
import operator
from collections import OrderedDict
from fractions import Fraction
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ._rational import Q

__all__ = ["Op", "Weighted", "Pool", "ChannelAffine", "AddConst", "Add", "Sub", "Scale", "Cat", "Reshape",
           "Reduce", "Gather", "Resample", "ScaleConst", "exact_bilinear", "windows", "to_fractions"]

_fr = np.frompyfunc(lambda v: Fraction(float(v)), 1, 1)


def to_fractions(a) -> np.ndarray:
    """A float array (numpy or torch) as an object array of exact Fractions of its float64 values."""
    if isinstance(a, torch.Tensor):
        a = a.detach().to("cpu", torch.float64).numpy()
    a = np.asarray(a, dtype=np.float64)
    return np.asarray(_fr(a), dtype=object).reshape(a.shape)


def _bshape(c, ndim: int):
    """``c`` (N,) reshaped to broadcast over a batch of rank ``ndim``."""
    return c.reshape((-1,) + (1,) * (ndim - 1))


# ---- exact products through torch, on integers


def _weight_ints(w: np.ndarray) -> Tuple[np.ndarray, int]:
    """float64 weights as integers times ``2**E``: (W, E) (:meth:`Q.of`'s exact binary values)."""
    q = Q.of(np.asarray(w, np.float64))
    return q.num, -(q.den.bit_length() - 1)  # den is a power of two


_WEIGHT_LIMBS: "dict" = {}  # id of a weight array -> (the array, its limbs, E, bits)


def _weight_limbs(w: np.ndarray, bits: int) -> Tuple[List[np.ndarray], int]:
    """The limbs of ``w`` as integers times ``2**E`` with no common power of two (float32
    weights in float64 have 29 zero bits each): (limbs, E); the last few weights' are kept."""
    hit = _WEIGHT_LIMBS.get(id(w))
    if hit is not None and hit[0] is w and hit[3] == bits:
        return hit[1], hit[2]
    W, E = _weight_ints(w)
    nz = [v for v in W.reshape(-1).tolist() if v]
    if nz:
        tz = min((v & -v).bit_length() - 1 for v in nz)
        if tz:
            W, E = W // (1 << tz), E + tz
    out = (_limbs(W, bits), E)
    if len(_WEIGHT_LIMBS) > 64:
        _WEIGHT_LIMBS.clear()
    _WEIGHT_LIMBS[id(w)] = (w, out[0], out[1], bits)
    return out


def _limbs(A: np.ndarray, bits: int) -> List[np.ndarray]:
    """Signed limbs of an integer object array, as float64: ``A = sum_i limb_i * 2**(bits*i)``,
    |limb| < 2**bits.

    Each integer is written once as two's-complement bytes (``int.to_bytes``, called by ``map``,
    not by a Python loop), read as 64-bit words, and cut into ``bits``-bit fields by shifts in
    numpy; the sign's weight ``-2**(bits*L)`` is folded into the top limb (digits in
    ``[0, 2**bits)``, so the top one stays within ``(-2**bits, 2**bits)``)."""
    flat = A.reshape(-1).tolist()
    n = len(flat)
    top = max(map(int.bit_length, flat), default=0) + 1  # with the sign bit
    L = -(-top // bits)
    nw = -(-(L * bits) // 64) + 1  # whole words, one more than the fields reach (sign extension)
    buf = b"".join(map(operator.methodcaller("to_bytes", 8 * nw, "little", signed=True), flat))
    W = np.frombuffer(buf, np.uint64).reshape(n, nw)
    mask = np.uint64((1 << bits) - 1)
    limbs = np.empty((L, n), np.int64)
    for i in range(L):
        k, s = divmod(i * bits, 64)
        f = W[:, k] >> np.uint64(s)
        if s + bits > 64:
            f = f | (W[:, k + 1] << np.uint64(64 - s))
        limbs[i] = (f & mask).view(np.int64)
    limbs[L - 1] -= (W[:, nw - 1] >> np.uint64(63)).view(np.int64) << bits  # the sign: -2**(bits*L)
    while L > 1 and not limbs[L - 1].any():
        L -= 1
    return [limbs[i].astype(np.float64).reshape(A.shape) for i in range(L)]


def _combine(S: List[np.ndarray], bits: int) -> np.ndarray:
    """``sum_s S[s] * 2**(bits*s)`` as Python integers (an object array), for int64 arrays ``S``
    (|entries| < 2**62): carries in numpy, the digits and then the last carry (two's complement,
    from bit ``bits * len(S)`` up) packed into 64-bit words by shifts, and one signed
    ``int.from_bytes`` per entry (called by ``map``)."""
    shape = S[0].shape
    n = S[0].size
    top = bits * len(S)
    nw = top // 64 + 2  # the digits' words, and two from the carry's first: |carry| * 2**63 < 2**127
    carry = np.zeros(n, np.int64)
    W = np.zeros((n, nw), np.uint64)
    for i, s in enumerate(S):
        t = s.reshape(-1) + carry
        d = t & ((1 << bits) - 1)  # in [0, 2**bits): floor modulo for negatives too
        carry = (t - d) >> bits
        du = d.view(np.uint64)
        k, sh = divmod(i * bits, 64)
        W[:, k] |= du << np.uint64(sh)
        if sh + bits > 64:
            W[:, k + 1] |= du >> np.uint64(64 - sh)
    k, sh = divmod(top, 64)
    W[:, k] |= carry.view(np.uint64) << np.uint64(sh)  # the carry's low bits (the digits end below them)
    W[:, k + 1] = (carry >> (64 - sh) if sh else carry >> 63).view(np.uint64)  # its high bits, sign-extended
    rows = np.frombuffer(W.tobytes(), f"V{8 * nw}").tolist()  # (void items keep their zero bytes)
    out = np.empty(n, dtype=object)
    out[:] = list(map(functools.partial(int.from_bytes, byteorder="little", signed=True), rows))
    return out.reshape(shape)


def exact_bilinear(f, x, w: np.ndarray, fan_in: int):
    """``f(x, w)`` exactly, for ``f`` linear in ``x`` and in ``w`` (a torch float64 function).

    ``x``: a :class:`~._rational.Q` ``(N, *in_shape)`` (or an object array of Fractions, then
    the result is one too); ``w``: float64 numpy weights; ``fan_in``: the most products summed
    into one output.

    >>> import torch.nn.functional as F
    >>> x = np.array([[Fraction(1, 3), Fraction(2)]], dtype=object)
    >>> exact_bilinear(lambda a, b: F.linear(a, b), x, np.array([[0.1, 1.0]]), 2)[0, 0] == Fraction(0.1) / 3 + 2
    True
    """
    if not isinstance(x, Q):
        return exact_bilinear(f, Q.of(x), w, fan_in).fractions()
    x = x.reduced()
    X, D = x.num, x.den
    bits = max(1, (52 - math.ceil(math.log2(fan_in + 1))) // 2)
    wl, E = _weight_limbs(w, bits)
    xl = _limbs(X, bits)
    N = x.shape[0]
    xs = torch.from_numpy(np.concatenate(xl, axis=0))
    S: List[Optional[np.ndarray]] = [None] * (len(xl) + len(wl) - 1)  # S[i + j]: limb products, int64
    for j, wj in enumerate(wl):
        out = np.rint(f(xs, torch.from_numpy(np.ascontiguousarray(wj))).numpy()).astype(np.int64)
        for i in range(len(xl)):
            part = out[i * N: (i + 1) * N]
            S[i + j] = part if S[i + j] is None else S[i + j] + part  # at most 3 terms < 2**53: no overflow
    R = _combine([v for v in S if v is not None], bits)
    if E > 0:
        R = R * (1 << E)
    return Q(R, D << -E if E < 0 else D)


# ---- the operations


class Op:
    """An affine operation on one or more tensors (batch first)."""

    arity = 1

    def run(self, args: Sequence[torch.Tensor], c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def bound(self, args: Sequence[torch.Tensor], c: torch.Tensor) -> torch.Tensor:
        return self.run(args, c)  # the operations without signed weights

    def exact(self, args: Sequence[np.ndarray], c: np.ndarray) -> np.ndarray:
        raise NotImplementedError


MATRIX_FAN = 3
"""A convolution is applied as its dense (in, out) matrix when its input has at most this many
times the entries one output reads (``fan_in``), and ... """
MATRIX_ENTRIES = 1 << 20
"""... its matrix has at most this many entries (8 MB). A float64 matrix product runs about three
times faster per multiply than torch's float64 convolution on a CPU (digits CNN, the 16x4x4 ->
32x4x4 conv on 43,600 rows: 0.48 s as a convolution, 0.2 s as a 256 x 512 matrix); the input
dimension of a whole image (3x32x32) is never near this."""
MATRIX_SKIP = 0.8
"""When fewer than this fraction of a batch's inputs are nonzero in any row, the product reads
only those (after a ReLU and a max-pooling about a third of the inputs of a chunk of vertices are 0 in
every row of it: digits CNN, 16x4x4 -> 32x4x4, 64% used, 45% of the values nonzero)."""
MATRIX_ROWS = 64
"""Fewer rows than this are applied by the operation itself (the matrix is not worth making)."""


class Weighted(Op):
    """``f(x, w) + bias`` for a torch function linear in ``x`` and ``w`` (Linear, Conv*, ConvTranspose*).

    ``bias_shape`` is how the (out_channels,) bias broadcasts over one output (e.g. (C, 1, 1))."""

    def __init__(self, f, weight: torch.Tensor, bias: Optional[torch.Tensor], fan_in: int, bias_shape,
                 matrix: bool = False):
        self.f = f
        self.w = weight.detach().to("cpu", torch.float64).clone()
        self.b = None if bias is None else bias.detach().to("cpu", torch.float64).reshape(bias_shape).clone()
        self.fan_in = int(fan_in)
        self.matrix = matrix
        self._cache: dict = {}

    def _on(self, x: torch.Tensor, name: str, t: torch.Tensor) -> torch.Tensor:
        key = (name, x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = t.to(x.device, x.dtype)
        return self._cache[key]

    def _matrix(self, x: torch.Tensor, absolute: bool) -> Optional[torch.Tensor]:
        """The map's (in, out) matrix when it is applied as one (``matrix`` and a small layer,
        :data:`MATRIX_ENTRIES`, :data:`MATRIX_FAN`), else None. Made by applying the map to the
        unit vectors: every entry is one weight (or a sum of one weight and zeros), exactly."""
        key = ("matrix", absolute, tuple(x.shape[1:]), x.device, x.dtype)
        if key not in self._cache:
            n_in = math.prod(x.shape[1:])
            M = None
            if self.matrix and n_in <= MATRIX_FAN * self.fan_in:
                shape = tuple(x.shape[1:])
                n_out = self.f(torch.zeros((1,) + shape, dtype=torch.float64), self.w).numel()
                if n_in * n_out <= MATRIX_ENTRIES:  # (checked before the matrix is made)
                    eye = torch.eye(n_in, dtype=torch.float64).reshape((n_in,) + shape)
                    y = self.f(eye, self.w.abs() if absolute else self.w)
                    M = y.reshape(n_in, -1).to(x.device, x.dtype)
                    self._cache[("shape", shape)] = tuple(y.shape[1:])
            self._cache[key] = M
        return self._cache[key]

    def _apply(self, x: torch.Tensor, absolute: bool) -> torch.Tensor:
        M = self._matrix(x, absolute) if len(x) >= MATRIX_ROWS else None
        if M is None:
            return self.f(x, self._on(x, "|w|", self.w.abs()) if absolute else self._on(x, "w", self.w))
        x2 = x.reshape(len(x), -1)
        used = (x2 != 0).any(0)  # inputs 0 in every row add nothing: their rows of M are skipped
        k = int(used.sum())
        if k < MATRIX_SKIP * len(used):
            i = used.nonzero().flatten()
            y = x2[:, i] @ M[i]
        else:
            y = x2 @ M
        return y.reshape((len(x),) + self._cache[("shape", tuple(x.shape[1:]))])

    def run(self, args, c):
        (x,) = args
        y = self._apply(x, False)
        if self.b is not None:
            y = y + _bshape(c, y.ndim) * self._on(x, "b", self.b)
        return y

    def bound(self, args, c):
        (x,) = args
        y = self._apply(x, True)
        if self.b is not None:
            y = y + _bshape(c, y.ndim) * self._on(x, "|b|", self.b.abs())
        return y

    def exact(self, args, c):
        (x,) = args
        if not hasattr(self, "_wnp"):
            self._wnp = self.w.numpy()  # one array, so its limbs are made once
        y = exact_bilinear(self.f, x, self._wnp, self.fan_in)
        if self.b is not None:
            if not hasattr(self, "_bfr"):
                self._bfr = Q.of(to_fractions(self.b))
            y = y + _bshape(c, y.ndim) * self._bfr
        return y


def windows(size: int, kernel: int, stride: int, padding: int, dilation: int = 1,
            ceil_mode: bool = False) -> List[List[int]]:
    """The input positions (-1: padding) of each output position of a 1-D pooling window, as torch.

    >>> windows(4, 2, 2, 0)
    [[0, 1], [2, 3]]
    >>> windows(5, 2, 2, 0, ceil_mode=True)
    [[0, 1], [2, 3], [4, -1]]
    """
    eff = dilation * (kernel - 1) + 1
    num = size + 2 * padding - eff
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    rows = []
    for i in range(out):
        start = i * stride - padding
        rows.append([p if 0 <= p < size else -1 for p in (start + k * dilation for k in range(kernel))])
    return rows


def adaptive_windows(size: int, out: int) -> List[List[int]]:
    """The input positions of each output of an adaptive pooling (torch's start/end rule)."""
    return [list(range((i * size) // out, -(-((i + 1) * size) // out))) for i in range(out)]


def _with_zero(x):
    """Each sample of ``x`` (a torch tensor or a :class:`Q`) flattened, then a 0: the value an index
    -1 of a window table or a selection reads (padding)."""
    flat = x.reshape(len(x), -1)
    if isinstance(flat, Q):
        return Q.cat([flat, Q.zeros((len(flat), 1))], axis=1)
    return torch.cat([flat, flat.new_zeros((len(flat), 1))], 1)


class Pool(Op):
    """Average pooling: ``run`` is torch's own function; ``exact`` sums the window table and divides.

    ``table``: (out_elems, k) input indices into one flattened sample, -1 for padding or nothing;
    ``divisor``: (out_elems,) the divisor of each output."""

    def __init__(self, fn, table: np.ndarray, divisor: np.ndarray):
        self.fn = fn
        self.table = table
        self.divisor = np.asarray([int(d) for d in divisor], dtype=object)

    def run(self, args, c):
        return self.fn(args[0])

    def exact(self, args, c):
        s = _with_zero(args[0])[:, self.table].sum(axis=2)
        return s / self.divisor


class Resample(Op):
    """A fixed linear map of one sample given by a function (``F.interpolate`` in a linear mode):
    ``run`` is torch's own function; ``bound`` and ``exact`` read its sparse matrix, made once by
    applying the function to the unit vectors (each entry one float64 weight, exactly).

    ``table``: (out_elems, k) input indices (-1: nothing); ``weights``: (out_elems, k) float64."""

    UNITS = 1 << 22
    """Entries of the unit vectors' images made at a time while the matrix is read."""
    KEEP = 16
    """Resamplings kept by :meth:`of` (the frames of an animation parse one model again and again)."""
    _made: "OrderedDict[str, Resample]" = OrderedDict()

    @classmethod
    def of(cls, key: str, fn, in_shape, out_shape) -> "Resample":
        """The resampling ``fn`` (named by ``key``: every argument that decides it) of ``in_shape``,
        made once and kept for the next :data:`KEEP` others (its matrix is read from unit vectors)."""
        k = repr((key, tuple(in_shape), tuple(out_shape)))
        hit = cls._made.get(k)
        if hit is None:
            hit = cls._made[k] = cls(fn, in_shape, out_shape)
            while len(cls._made) > cls.KEEP:
                cls._made.popitem(last=False)
        else:
            cls._made.move_to_end(k)
        return hit

    def __init__(self, fn, in_shape, out_shape):
        self.fn = fn
        self.shape = tuple(out_shape)
        C, sp = int(in_shape[0]), tuple(in_shape[1:])  # the channels are resampled alike: one channel's matrix
        n, n_out = int(np.prod(sp, dtype=np.int64)), int(np.prod(out_shape[1:], dtype=np.int64))
        rows, cols, vals = [], [], []
        step = max(1, self.UNITS // max(n_out, 1))
        with torch.no_grad():
            for s in range(0, n, step):
                k = min(step, n - s)
                e = torch.zeros((k, n), dtype=torch.float64)
                e[torch.arange(k), s + torch.arange(k)] = 1.0
                img = fn(e.reshape((k, 1) + sp)).reshape(k, n_out).numpy()
                i, o = np.nonzero(img)
                rows.append(o), cols.append(s + i), vals.append(img[i, o])
        o, i, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        order = np.lexsort((i, o))
        o, i, v = o[order], i[order], v[order]
        cnt = np.bincount(o, minlength=n_out)
        k = max(1, int(cnt.max(initial=0)))
        pos = np.arange(len(o)) - np.repeat(np.cumsum(cnt) - cnt, cnt)  # rank of each entry in its output
        tab, w = np.full((n_out, k), -1, np.int64), np.zeros((n_out, k))
        tab[o, pos], w[o, pos] = i, v
        c = np.arange(C, dtype=np.int64)[:, None, None] * n  # every channel: the same map on its own inputs
        self.table = np.where(tab[None] >= 0, tab[None] + c, -1).reshape(C * n_out, k)
        self.weights = np.broadcast_to(w[None], (C, n_out, k)).reshape(C * n_out, k).copy()
        self._t, self._w = torch.from_numpy(self.table), torch.from_numpy(self.weights)  # (-1: the zero after x)
        self._one, self._channels = w, C  # one channel's weights: their Fractions made once, when first asked
        self._q: Optional[Q] = None

    @property
    def _wq(self) -> Q:
        """The weights as exact rationals (made on the first exact evaluation; one channel's, tiled)."""
        if self._q is None:
            one = Q.of(to_fractions(self._one))
            self._q = Q(np.tile(one.num, (self._channels, 1)), one.den)
        return self._q

    def run(self, args, c):
        return self.fn(args[0])

    def bound(self, args, c):
        x = _with_zero(args[0])
        y = (x[:, self._t.to(x.device)] * self._w.abs().to(x.device)).sum(2)
        return y.reshape((len(x),) + self.shape)

    def exact(self, args, c):
        x = _with_zero(args[0])
        return (x[:, self.table] * self._wq[None]).sum(axis=2).reshape((len(x),) + self.shape)


class Gather(Op):
    """Selected elements of the flattened input (a max over one candidate; a slice, permutation,
    flip or padding); index -1 is a 0 (zero padding).

    >>> Gather(np.array([2, -1, 0]), (3,)).run([torch.tensor([[1.0, 2.0, 3.0]])], None)
    tensor([[3., 0., 1.]])
    """

    def __init__(self, index: np.ndarray, shape):
        self.index = np.asarray(index, np.int64)
        self.shape = tuple(shape)
        self.pad = bool((self.index < 0).any())
        self._t = torch.from_numpy(self.index)

    def run(self, args, c):
        x = _with_zero(args[0]) if self.pad else args[0].reshape(len(args[0]), -1)
        return x[:, self._t.to(x.device)].reshape((len(x),) + self.shape)

    def exact(self, args, c):
        x = _with_zero(args[0]) if self.pad else args[0].reshape(len(args[0]), -1)
        return x[:, self.index].reshape((len(x),) + self.shape)


class ChannelAffine(Op):
    """``x * scale + shift`` with ``scale``, ``shift`` broadcast over one sample (BatchNorm in eval)."""

    def __init__(self, scale: np.ndarray, shift: np.ndarray):
        self.scale = torch.from_numpy(np.asarray(scale, np.float64))
        self.shift = torch.from_numpy(np.asarray(shift, np.float64))
        self._s, self._t = Q.of(to_fractions(self.scale)), Q.of(to_fractions(self.shift))

    def run(self, args, c):
        x = args[0]
        return x * self.scale.to(x.device) + _bshape(c, x.ndim) * self.shift.to(x.device)

    def bound(self, args, c):
        x = args[0]
        return x * self.scale.abs().to(x.device) + _bshape(c, x.ndim) * self.shift.abs().to(x.device)

    def exact(self, args, c):
        return args[0] * self._s + _bshape(c, args[0].ndim) * self._t


class Scale(Op):
    """``x * k`` or ``x / k`` for a number ``k`` (exact: ``x / Fraction(k)``, not ``x * (1/k)``)."""

    def __init__(self, k: float, divide: bool = False):
        self.k, self.divide = float(k), divide
        self._k = Fraction(self.k)

    def run(self, args, c):
        return args[0] / self.k if self.divide else args[0] * self.k

    def bound(self, args, c):
        return args[0] / abs(self.k) if self.divide else args[0] * abs(self.k)

    def exact(self, args, c):
        return args[0] / self._k if self.divide else args[0] * self._k


class ScaleConst(Op):
    """``x * t`` or ``x / t`` for a constant tensor ``t`` broadcast over one sample (a LayerScale, a
    fixed mask; exact: ``x / Fraction(t)``, not ``x * (1/t)``)."""

    def __init__(self, t, divide: bool = False):
        self.t, self.divide = torch.as_tensor(np.asarray(t, np.float64)), divide
        self._t = Q.of(to_fractions(self.t))

    def run(self, args, c):
        t = self.t.to(args[0].device)
        return args[0] / t if self.divide else args[0] * t

    def bound(self, args, c):
        t = self.t.abs().to(args[0].device)
        return args[0] / t if self.divide else args[0] * t

    def exact(self, args, c):
        return args[0] / self._t if self.divide else args[0] * self._t


class AddConst(Op):
    """``x + t`` for a constant ``t`` (a number or a tensor broadcast over one sample)."""

    def __init__(self, t):
        self.t = torch.as_tensor(np.asarray(t, np.float64))
        self._t = Q.of(to_fractions(self.t))

    def run(self, args, c):
        x = args[0]
        return x + _bshape(c, x.ndim) * self.t.to(x.device)

    def bound(self, args, c):
        x = args[0]
        return x + _bshape(c, x.ndim) * self.t.abs().to(x.device)

    def exact(self, args, c):
        return args[0] + _bshape(c, args[0].ndim) * self._t


class Add(Op):
    arity = 2

    def run(self, args, c):
        return args[0] + args[1]

    def exact(self, args, c):
        return args[0] + args[1]


class Sub(Op):
    arity = 2

    def run(self, args, c):
        return args[0] - args[1]

    def bound(self, args, c):
        return args[0] + args[1]

    def exact(self, args, c):
        return args[0] - args[1]


class Cat(Op):
    """Concatenation along a dimension of the batch tensor (1: the first feature dimension)."""

    def __init__(self, dim: int, arity: int):
        self.dim, self.arity = dim, arity

    def run(self, args, c):
        return torch.cat(list(args), dim=self.dim)

    def exact(self, args, c):
        return Q.cat(list(args), axis=self.dim)


class Reshape(Op):
    """Any reshape that keeps the batch first and each sample's elements in order."""

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)

    def run(self, args, c):
        x = args[0]
        return x.reshape((len(x),) + self.shape)

    def exact(self, args, c):
        x = args[0]
        return x.reshape((len(x),) + self.shape)


class Reduce(Op):
    """``x.mean(dims)`` or ``x.sum(dims)`` over feature dimensions (batch not reduced)."""

    def __init__(self, dims: Tuple[int, ...], keepdim: bool, mean: bool, count: int):
        self.dims, self.keepdim, self.mean, self.count = dims, keepdim, mean, count

    def run(self, args, c):
        x = args[0]
        return x.mean(self.dims, keepdim=self.keepdim) if self.mean else x.sum(self.dims, keepdim=self.keepdim)

    def exact(self, args, c):
        s = args[0].sum(axis=self.dims, keepdims=self.keepdim)
        return s / Fraction(self.count) if self.mean else s
