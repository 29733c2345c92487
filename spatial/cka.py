"""Linear centred kernel alignment (CKA) in feature space, exact over a stream of minibatches.

References: S. Kornblith, M. Norouzi, H. Lee, G. Hinton, "Similarity of Neural Network
Representations Revisited" (ICML 2019) for CKA and its debiased form; L. Song, A. Smola,
A. Gretton, J. Bedo, K. Borgwardt, "Feature Selection via Dependence Maximization" (JMLR 2012)
for the unbiased HSIC estimator.

For features ``X`` (n, p1) and ``Y`` (n, p2) of the same n examples, with linear kernels
``K = X X^T`` and ``L = Y Y^T``,

* linear CKA is ``||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with ``Xc``, ``Yc`` the
  column-centred features;
* debiased CKA is ``HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L))`` with Song et al.'s unbiased
  estimator, on ``K~``, ``L~`` (the Gram matrices with their diagonals zeroed)::

      HSIC_u = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))

No n x n matrix is formed, except by the functional :func:`cka` when the examples are fewer
than the features (a convolution's channels times positions): there it works in example space
(:func:`gram_terms`, :func:`gram_hsic`: ``||X^T Y||_F^2 = <X X^T, Y Y^T>_F``), O(n^2).
Otherwise, with ``k_i = ||x_i||^2``, ``l_i = ||y_i||^2``, ``sx = sum x_i``, ``sy = sum y_i``,
every term is a sum over rows: ``tr(K~ L~) = ||X^T Y||_F^2 - sum k_i l_i``, ``1^T K~ 1 =
||sx||^2 - sum k_i``, ``1^T K~ L~ 1 = sx^T (X^T Y) sy - sx . sum l_i x_i - sy . sum k_i y_i +
sum k_i l_i`` (and the same with Y = X, X = Y). So the state of a stream is
a handful of sums (below); a batch costs three p x p products, memory is O(p^2) whatever n, and
the streamed value is the full-data value, not an average of per-batch values.

Both forms are invariant to a shift of all rows by one constant, so the sums are taken about a
reference row (the mean of the first batch), which keeps cancellation small for features with
large means. States about different reference rows are moved to a common one (exact algebra on
the sums) before they are added, by :meth:`CKA.merge` and across processes by :meth:`CKA.sync`.

Public: the functional :func:`cka` and the accumulating :class:`CKA` (a ``torchmetrics.Metric``).
Both run the one private ``_cka_update`` (sums of a batch) and ``_cka_compute`` (the value from
sums). All arithmetic is float64. This module imports torchmetrics (and, through it, matplotlib
and scipy), so ``splinescope.spatial`` does not import it: ``from splinescope.spatial.cka import
CKA, cka``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, cast

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from ._html import table_html

__all__ = ["CKA", "cka", "gram_terms", "gram_hsic"]

State = Dict[str, torch.Tensor]

# the sums of a state; scalars, then vectors and matrices (shapes known from the first batch)
_LINEAR = ("n", "sx", "sy", "xy", "xx", "yy")  # n, sum x, sum y, X^T Y, X^T X, Y^T Y
_DEBIASED = ("sk", "sl", "skk", "sll", "skl",  # sum k, sum l, sum k^2, sum l^2, sum k l
             "skx", "sly", "slx", "sky")  # sum k x, sum l y, sum l x, sum k y
_SCALARS = ("n", "sk", "sl", "skk", "sll", "skl")


def _names(debiased: bool) -> Tuple[str, ...]:
    return _LINEAR + _DEBIASED if debiased else _LINEAR


# ----------------------------------------------------------------------------------------------
# input checks

def _as_features(a, name: str) -> torch.Tensor:
    if not isinstance(a, torch.Tensor):
        try:
            a = torch.as_tensor(np.asarray(a))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a tensor or array of numbers, got {type(a).__name__}") from None
    if a.is_complex():
        raise TypeError(f"{name} is complex; CKA takes real features")
    if a.ndim != 2:
        raise ValueError(f"{name} of shape {tuple(a.shape)} is not 2-D: (n examples, p features)")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {tuple(a.shape)})")
    if not a.is_floating_point():
        a = a.to(torch.float64)  # integers, booleans
    return a  # floats stay as they are: _cka_update converts a chunk of rows at a time


def _pair(X, Y) -> Tuple[torch.Tensor, torch.Tensor]:
    X, Y = _as_features(X, "X"), _as_features(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}: one row per example in both")
    if X.device != Y.device:
        raise ValueError(f"X is on {X.device} but Y on {Y.device}")
    return X, Y


def _check_n(n: int, debiased: bool) -> None:
    need = 4 if debiased else 2
    if n == 0:
        raise ValueError("no examples seen yet: call update(X, Y) before compute()")
    if n < need:
        raise ValueError(f"{'debiased' if debiased else 'linear'} CKA needs at least {need} examples, got {n}")


# ----------------------------------------------------------------------------------------------
# shared implementation of the functional and the class

_CHUNK = 2 ** 20  # elements per shifted row chunk (8 MB of float64): stays in cache, no n x p copy


def _cka_update(X: torch.Tensor, Y: torch.Tensor, ref_x: torch.Tensor, ref_y: torch.Tensor,
                debiased: bool) -> State:
    """The sums of one batch about the reference rows: ``X`` (n, p1), ``Y`` (n, p2), any real
    dtype, converted to float64 a chunk of rows at a time."""
    (n, p1), p2 = X.shape, Y.shape[1]
    z: Dict[str, Any] = dict(dtype=torch.float64, device=X.device)
    s = {"n": torch.tensor(float(n), **z), "sx": torch.zeros(p1, **z), "sy": torch.zeros(p2, **z),
         "xy": torch.zeros(p1, p2, **z), "xx": torch.zeros(p1, p1, **z), "yy": torch.zeros(p2, p2, **z)}
    if debiased:
        s.update({k: torch.zeros((), **z) for k in _DEBIASED[:5]})
        xkl, ykl = torch.zeros(2, p1, **z), torch.zeros(2, p2, **z)  # rows: sum k_i x_i, sum l_i x_i (and y)
    step = max(1, _CHUNK // max(p1, p2))
    for i in range(0, n, step):
        x = X[i:i + step].to(torch.float64) - ref_x  # (c, p1)
        y = Y[i:i + step].to(torch.float64) - ref_y  # (c, p2)
        s["sx"] = s["sx"] + x.sum(0)
        s["sy"] = s["sy"] + y.sum(0)
        s["xy"] = torch.addmm(s["xy"], x.T, y)
        s["xx"] = torch.addmm(s["xx"], x.T, x)
        s["yy"] = torch.addmm(s["yy"], y.T, y)
        if debiased:
            kl = torch.stack([(x * x).sum(1), (y * y).sum(1)])  # (2, c): k_i, l_i
            k, l = kl[0], kl[1]
            xkl, ykl = torch.addmm(xkl, kl, x), torch.addmm(ykl, kl, y)  # (2, p1), (2, p2)
            for name, v in (("sk", k.sum()), ("sl", l.sum()), ("skk", k @ k), ("sll", l @ l), ("skl", k @ l)):
                s[name] = s[name] + v
    if debiased:
        s.update(skx=xkl[0], slx=xkl[1], sky=ykl[0], sly=ykl[1])
    return s


def _hsic(s: State, debiased: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HSIC(K, L), HSIC(K, K), HSIC(L, L) from the sums: the biased ``tr(K H L H) / (n-1)^2`` of
    centred features, or Song et al.'s unbiased estimator when ``debiased``."""
    n, sx, sy, xy, xx, yy = (s[k] for k in _LINEAR)
    if not debiased:
        c = (n - 1) ** 2
        cxy = xy - torch.outer(sx, sy) / n  # Xc^T Yc
        cxx = xx - torch.outer(sx, sx) / n
        cyy = yy - torch.outer(sy, sy) / n
        return (cxy * cxy).sum() / c, (cxx * cxx).sum() / c, (cyy * cyy).sum() / c

    def u(trace, ones_k, ones_l, ones_kl):  # tr(K~L~), 1^T K~ 1, 1^T L~ 1, 1^T K~ L~ 1
        return (trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2 * ones_kl / (n - 2)) / (n * (n - 3))

    ones_k, ones_l = sx @ sx - s["sk"], sy @ sy - s["sl"]
    hxy = u((xy * xy).sum() - s["skl"], ones_k, ones_l, sx @ xy @ sy - sx @ s["slx"] - sy @ s["sky"] + s["skl"])
    hxx = u((xx * xx).sum() - s["skk"], ones_k, ones_k, sx @ xx @ sx - 2 * sx @ s["skx"] + s["skk"])
    hyy = u((yy * yy).sum() - s["sll"], ones_l, ones_l, sy @ yy @ sy - 2 * sy @ s["sly"] + s["sll"])
    return hxy, hxx, hyy


def _cka_compute(s: State, debiased: bool) -> torch.Tensor:
    """CKA from the sums of a state, a 0-d float64 tensor (nan when a self-similarity is not positive)."""
    _check_n(int(s["n"].item()), debiased)
    hxy, hxx, hyy = _hsic(s, debiased)
    return hxy / torch.sqrt(hxx * hyy)


def _move(s: State, dx: torch.Tensor, dy: torch.Tensor, debiased: bool) -> State:
    """The same state about reference rows moved by ``-dx``, ``-dy``: the sums of ``x + dx``, ``y + dy``.

    ``dx = old_ref_x - new_ref_x`` (p1,), ``dy`` likewise; every new sum is a combination of the
    old ones (``a_i = dx . x_i``, ``b_i = dy . y_i`` below), so nothing needs the rows again.
    """
    n, sx, sy, xy, xx, yy = (s[k] for k in _LINEAR)
    out = dict(s)
    out["sx"], out["sy"] = sx + n * dx, sy + n * dy
    out["xy"] = xy + torch.outer(sx, dy) + torch.outer(dx, sy) + n * torch.outer(dx, dy)
    out["xx"] = xx + torch.outer(sx, dx) + torch.outer(dx, sx) + n * torch.outer(dx, dx)
    out["yy"] = yy + torch.outer(sy, dy) + torch.outer(dy, sy) + n * torch.outer(dy, dy)
    if not debiased:
        return out
    sk, sl, skk, sll, skl, skx, sly, slx, sky = (s[k] for k in _DEBIASED)
    d2, e2 = dx @ dx, dy @ dy
    sa, sb = dx @ sx, dy @ sy  # sum a_i, sum b_i
    xxd, yye, xye, yxd = xx @ dx, yy @ dy, xy @ dy, xy.T @ dx  # sum a_i x_i, sum b_i y_i, sum b_i x_i, sum a_i y_i
    # new k_i = k_i + 2 a_i + d2, new l_i = l_i + 2 b_i + e2
    out["sk"], out["sl"] = sk + 2 * sa + n * d2, sl + 2 * sb + n * e2
    out["skk"] = skk + 4 * dx @ skx + 4 * dx @ xxd + 2 * d2 * sk + 4 * d2 * sa + n * d2 ** 2
    out["sll"] = sll + 4 * dy @ sly + 4 * dy @ yye + 2 * e2 * sl + 4 * e2 * sb + n * e2 ** 2
    out["skl"] = (skl + 2 * dy @ sky + e2 * sk + 2 * dx @ slx + 4 * dx @ xye + 2 * e2 * sa
                  + d2 * sl + 2 * d2 * sb + n * d2 * e2)
    out["skx"] = skx + dx * sk + 2 * xxd + 2 * sa * dx + d2 * sx + n * d2 * dx
    out["sly"] = sly + dy * sl + 2 * yye + 2 * sb * dy + e2 * sy + n * e2 * dy
    out["slx"] = slx + dx * sl + 2 * xye + 2 * sb * dx + e2 * sx + n * e2 * dx
    out["sky"] = sky + dy * sk + 2 * yxd + 2 * sa * dy + d2 * sy + n * d2 * dy
    return out


# ----------------------------------------------------------------------------------------------
# public API

def cka(X, Y, *, debiased: bool = False) -> torch.Tensor:
    """Linear CKA between two sets of features of the same examples, in feature space (in example
    space, n x n, when there are fewer examples than features).

    Parameters
    ----------
    X : tensor or array
        ``(n, p1)`` features, one row per example.
    Y : tensor or array
        ``(n, p2)`` features of the same examples, in the same order.
    debiased : bool
        Use the unbiased HSIC estimator (Song et al. 2012; needs ``n >= 4``) instead of the
        biased one (``n >= 2``).

    Returns
    -------
    torch.Tensor
        A 0-d float64 tensor on the inputs' device (``float(...)`` for a number). It is
        differentiable in ``X`` and ``Y`` when they require grad. nan when ``X`` or ``Y`` has no
        variance (or, debiased, a self-similarity estimate that is not positive).

    Examples
    --------
    >>> X = torch.tensor([[0., 1.], [1., 0.], [2., 2.], [3., 1.]])
    >>> round(float(cka(X, X)), 12), round(float(cka(X, 3 * X + 1)), 12)
    (1.0, 1.0)
    >>> round(float(cka(X, X[:, :1])), 4), round(float(cka(X, X[:, :1], debiased=True)), 4)
    (0.9339, 0.9862)
    """
    X, Y = _pair(X, Y)
    debiased = bool(debiased)
    n = X.shape[0]
    _check_n(n, debiased)
    if n < max(X.shape[1], Y.shape[1]):  # more features than examples: in example space, n x n
        gx, gy = gram_terms(X, debiased), gram_terms(Y, debiased)
        return gram_hsic(gx, gy, n, debiased) / torch.sqrt(gram_hsic(gx, gx, n, debiased) * gram_hsic(gy, gy, n, debiased))
    ref_x, ref_y = X.mean(0, dtype=torch.float64), Y.mean(0, dtype=torch.float64)
    return _cka_compute(_cka_update(X, Y, ref_x, ref_y, debiased), debiased)


def gram_terms(X: torch.Tensor, debiased: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What CKA in example space needs of the features ``X`` (n, p): the Gram matrix of the
    column-centred features in float64 (its diagonal zeroed for the debiased form: Song et al.'s
    ``K~``; the centring changes no term, as both forms are invariant to a shift of the rows), its
    column sums and its total. O(n^2) memory, for ``n < p``."""
    c = X.to(torch.float64)
    c = c - c.mean(0, keepdim=True)
    K = c @ c.T
    if debiased:
        K = K - torch.diag_embed(torch.diagonal(K))
    return K, K.sum(0), K.sum()


def gram_hsic(a, b, n: int, debiased: bool) -> torch.Tensor:
    """HSIC of two :func:`gram_terms` of the same n examples: ``<Kc, Lc>_F = ||Xc^T Yc||_F^2``
    (linear), or the unbiased estimator ``[<K~, L~> + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2))
    - 2/(n-2) (K~ 1) . (L~ 1)] / (n(n-3))`` (debiased); a 0-d float64 tensor."""
    (K, ks, kt), (L, ls, lt) = a, b
    h = (K * L).sum()
    if debiased:
        h = (h + kt * lt / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ks @ ls)) / (n * (n - 3))
    return h


def _first(stacked: torch.Tensor) -> torch.Tensor:
    """Reduction of the reference rows across processes: they are equal after ``sync`` moved them."""
    return stacked[0]


class CKA(Metric):
    """Linear (or debiased) CKA accumulated over minibatches, equal to :func:`cka` on all of them.

    The state is sums over examples (``n``, ``sum x``, ``sum y``, ``X^T Y``, ``X^T X``,
    ``Y^T Y``, and when ``debiased`` also ``sum k``, ``sum l``, ``sum k^2``, ``sum l^2``,
    ``sum k l``, ``sum k x``, ``sum l y``, ``sum l x``, ``sum k y`` with ``k_i = ||x_i||^2``,
    ``l_i = ||y_i||^2``), reduced across processes by addition, taken about a reference row per
    input (``ref_x``, ``ref_y``: the first batch's means). :meth:`merge` and :meth:`sync` move
    states to a common reference row before adding them. Memory is O(p1^2 + p2^2 + p1 p2),
    whatever the number of examples. Each process must have seen features of the same widths.

    Parameters
    ----------
    debiased : bool
        As in :func:`cka`.
    **kwargs
        Passed to ``torchmetrics.Metric`` (``sync_on_compute``, ``process_group``, ...).

    Examples
    --------
    >>> X = torch.tensor([[0., 1.], [1., 0.], [2., 2.], [3., 1.]])
    >>> m = CKA()
    >>> m.update(X[:3], X[:3, :1]); m.update(X[3:], X[3:, :1])
    >>> round(float(m.compute()), 4)
    0.9339
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = True  # forward() must update the global state itself: a batch's sums are about its own reference

    def __init__(self, debiased: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.debiased = bool(debiased)
        for name in _names(self.debiased):
            shape = () if name in _SCALARS else (0,)  # widths are known at the first update
            self.add_state(name, default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("ref_x", "ref_y"):
            self.add_state(name, default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx=_first)

    # -- the state as a dict -------------------------------------------------------------------
    def _state(self) -> State:
        return {k: getattr(self, k) for k in _names(self.debiased)}

    def _set_state(self, s: State) -> None:
        for k, v in s.items():
            setattr(self, k, v)

    def _widths(self) -> Tuple[int, int]:
        return self.ref_x.shape[0], self.ref_y.shape[0]  # (0, 0) before the first update

    def _check_widths(self, p1: int, p2: int, what: str) -> None:
        if self._widths() != (p1, p2):
            raise ValueError(f"{what} has {p1} and {p2} features but this CKA has seen "
                             f"{self._widths()[0]} and {self._widths()[1]}")

    def _start(self, ref_x: torch.Tensor, ref_y: torch.Tensor) -> None:
        """Zero sums of the right shapes about the given reference rows."""
        p1, p2 = ref_x.shape[0], ref_y.shape[0]
        shapes = {"sx": (p1,), "sy": (p2,), "xy": (p1, p2), "xx": (p1, p1), "yy": (p2, p2),
                  "skx": (p1,), "slx": (p1,), "sly": (p2,), "sky": (p2,)}
        dev = ref_x.device
        self._set_state({k: torch.zeros(shapes.get(k, ()), dtype=torch.float64, device=dev)
                         for k in _names(self.debiased)})
        self.ref_x, self.ref_y = ref_x.clone(), ref_y.clone()

    # -- torchmetrics API ----------------------------------------------------------------------
    def update(self, X, Y) -> None:
        """Add the examples ``X`` (n, p1), ``Y`` (n, p2) (tensors or arrays) to the state."""
        X, Y = _pair(X, Y)
        X, Y = X.detach().to(self.device), Y.detach().to(self.device)
        if X.shape[0] == 0:
            return
        if self.ref_x.numel() == 0:  # the first batch fixes the reference rows
            self._start(X.mean(0, dtype=torch.float64), Y.mean(0, dtype=torch.float64))
        self._check_widths(X.shape[1], Y.shape[1], "this batch")
        s = _cka_update(X, Y, self.ref_x, self.ref_y, self.debiased)
        self._set_state({k: v + s[k] for k, v in self._state().items()})

    def compute(self) -> torch.Tensor:
        """CKA of all the examples seen, a 0-d float64 tensor."""
        return _cka_compute(self._state(), self.debiased)

    def merge(self, *others: "CKA") -> "CKA":
        """Add the states of other :class:`CKA` (of the same form) into this one; returns self."""
        for o in others:
            if not isinstance(o, CKA):
                raise TypeError(f"can only merge CKA, got {type(o).__name__}")
            if o.debiased != self.debiased:
                raise ValueError(f"cannot merge a debiased={o.debiased} CKA into a debiased={self.debiased} one")
            self._absorb(cast(Dict[str, torch.Tensor], o.metric_state))
        return self

    def merge_state(self, incoming_state) -> None:
        """torchmetrics' name for :meth:`merge`: a :class:`CKA` or a dict of its states."""
        if isinstance(incoming_state, CKA):
            self.merge(incoming_state)
        elif isinstance(incoming_state, dict):
            self._absorb(incoming_state)
        else:
            raise TypeError(f"expected a CKA or a dict of its states, got {type(incoming_state).__name__}")

    def _absorb(self, state: Dict[str, torch.Tensor]) -> None:
        missing = [k for k in _names(self.debiased) + ("ref_x", "ref_y") if k not in state]
        if missing:
            raise ValueError(f"the incoming state lacks {', '.join(missing)}")
        if state["ref_x"].numel() == 0:  # it has seen nothing
            return
        ref_x, ref_y = (state[k].to(self.device) for k in ("ref_x", "ref_y"))
        if self.ref_x.numel() == 0:
            self._start(ref_x, ref_y)
        self._check_widths(ref_x.shape[0], ref_y.shape[0], "the incoming state")
        s = {k: state[k].to(self.device) for k in _names(self.debiased)}
        s = _move(s, ref_x - self.ref_x, ref_y - self.ref_y, self.debiased)
        self._set_state({k: v + s[k] for k, v in self._state().items()})
        self._computed = None  # torchmetrics' cached value of compute() is stale
        self._update_count += 1  # so compute() does not warn that nothing was seen

    def sync(self, dist_sync_fn=None, process_group=None, should_sync: bool = True,
             distributed_available=None) -> None:
        """torchmetrics' sync, after moving every process's sums to one reference row.

        The reference is that of the first process that has seen examples; a process that has
        seen none joins with zero sums.
        """
        available = distributed_available or self.distributed_available_fn
        if should_sync and not self._is_synced and callable(available) and available():
            self._share_reference(dist_sync_fn or gather_all_tensors, process_group or self.process_group)
        super().sync(dist_sync_fn, process_group, should_sync, distributed_available)

    def _share_reference(self, gather, group) -> None:
        p1, p2 = self._widths()
        widths = gather(torch.tensor([p1, p2], dtype=torch.int64, device=self.device), group=group)
        refs: List[torch.Tensor] = gather(torch.cat([self.ref_x, self.ref_y]), group=group)
        seen = [(int(w[0]), int(w[1]), r) for w, r in zip(widths, refs) if int(w[0]) > 0]
        if not seen:
            return  # nobody has data: compute() says so
        if len({(a, b) for a, b, _ in seen}) > 1:
            raise ValueError(f"the processes saw features of different widths: {sorted({(a, b) for a, b, _ in seen})}")
        q1, q2, ref = seen[0]
        ref_x, ref_y = ref[:q1].to(self.device), ref[q1:q1 + q2].to(self.device)
        if p1 == 0:
            self._start(ref_x, ref_y)
            return
        self._set_state(_move(self._state(), self.ref_x - ref_x, self.ref_y - ref_y, self.debiased))
        self.ref_x, self.ref_y = ref_x.clone(), ref_y.clone()

    def _repr_html_(self) -> str:
        """In Jupyter: the value so far, with the examples and widths seen."""
        n = int(cast(torch.Tensor, self.n).item())
        try:
            value: object = float(_cka_compute(self._state(), self.debiased))
        except ValueError as e:  # too few examples
            value = str(e)
        return table_html("CKA", {"debiased": self.debiased, "examples": n, "widths": self._widths(), "CKA": value})

    def extra_repr(self) -> str:
        p1, p2 = self._widths()
        n = cast(torch.Tensor, self.n)
        return f"debiased={self.debiased}, n={int(n.item())}, widths=({p1}, {p2})"
