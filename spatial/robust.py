"""Robust accuracy: the fraction of points that a PGD attack of radius ``eps`` leaves correct.

Reference: A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards Deep Learning Models
Resistant to Adversarial Attacks" (ICLR 2018) for projected gradient descent (PGD); N. Carlini,
D. Wagner, "Towards Evaluating the Robustness of Neural Networks" (S&P 2017) for the margin loss;
S. Gowal et al., "An Alternative Surrogate Loss for PGD-based Adversarial Testing" (2019) for
attacking one rival class at a time.

The attack, per point ``x`` of label ``y`` and per radius ``eps``. With logits ``z``, the margin
against a rival class ``c`` is ``d_c(x') = z_y(x') - z_c(x')`` (one output, a logit of class 1:
``d = z`` for ``y = 1`` and ``-z`` for ``y = 0``); the point is wrong at ``x'`` when the class
predicted there is not ``y`` (argmax, first index on ties; one logit: class 1 iff ``z > 0``).

* Rival: with more than two classes, one rival ``c*`` per run, the one whose margin falls furthest
  over the ball to first order: ``argmin_c d_c(x0) + min_{x' in ball} grad d_c(x0) . (x' - x0)``
  at the run's start ``x0`` (``- eps ||grad d_c||_1`` for l-inf, ``_2`` for l2, up to the
  offset of ``x0``; the clipped box exactly for l-inf). This costs one input gradient per class at
  the start. The rival with the largest logit at ``x`` is not enough: on a linear model a
  far rival whose margin falls fast can break a point that the nearest rival cannot.
* Steps: ``steps`` descents of ``d_{c*}``, a sign-gradient step (l-inf) or a normalised-gradient
  step (l2) of ``step_size`` (default ``2.5 eps / steps``), each followed by the projection onto the
  ball around ``x`` and, with ``clip=(lo, hi)``, onto the valid box (for l-inf the projection onto
  their intersection; for l2 the ball then the box, which stays in the ball as ``x`` is in the box).
* A point is broken as soon as any iterate (start and end included) is wrong, and broken at every
  larger radius too (the same adversarial point lies in the larger ball); a point wrong at ``x``
  is never robust. Run ``0`` starts at ``x``; each further restart starts at a uniform random point
  of the ball (from its own ``torch.Generator``, seeded by ``seed`` and the restart's number, the
  same unit draw for every radius, never the global RNG), so adding restarts never raises the
  result.

On an affine model (an affine map of ``x`` into the logits) every margin is affine, the rival is
the exact worst one, and run 0 reaches the exact worst vertex (l-inf) or point of the sphere (l2)
once ``steps * step_size >= eps`` (the default travels ``2.5 eps``): the result is the exact
robust accuracy. On a piecewise-linear network it is an upper bound on the true robust accuracy.

Public: :func:`robust_accuracy`. The per-point masks are ``_robust_points`` (what it averages).
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ._boundary import n_classes, top_class
from ._validate import integer, option
from .local_complexity import _model_place

__all__ = ["robust_accuracy"]

_NORMS = ("linf", "l2")
JACOBIAN_BYTES = 1 << 28
"""The default batch keeps the first step's ``(batch, K, D)`` input Jacobian (with ``K > 2``
classes) within this many bytes: 256 MB, about 200 CIFAR-100 images at once (all 10,000 of its
test images at once, the default before, hold 12 GB)."""
CLEAN_BATCH = 1024
"""Points per batch of the clean pass (no gradients) when ``batch_size`` is not given."""
Radii = Union[float, Sequence[float], np.ndarray, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# argument checks

def _radii(eps) -> Tuple[np.ndarray, bool]:
    """``eps`` as (R,) float64 radii, and whether it was one number."""
    if isinstance(eps, (bool, np.bool_, str, bytes)):
        raise TypeError(f"eps must be a number or a sequence of numbers, got {type(eps).__name__}")
    try:
        if isinstance(eps, torch.Tensor):
            a = eps.detach().cpu().to(torch.float64).numpy()
        else:
            a = np.asarray(eps, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"eps must be a number or a sequence of numbers, got {type(eps).__name__}") from None
    if a.ndim > 1:
        raise ValueError(f"eps must be a number or a 1-D sequence of radii, got shape {a.shape}")
    if a.size == 0:
        raise ValueError("eps has no radii")
    bad = a[~(np.isfinite(a) & (a >= 0))]
    if bad.size:
        raise ValueError(f"eps must be finite and >= 0, got {float(bad[0])!r}")
    return a.reshape(-1), a.ndim == 0


def _step_size(value) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"step_size must be a number or None, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"step_size must be a finite number > 0, got {value!r}")
    return value


def _clip(clip) -> Optional[Tuple[float, float]]:
    if clip is None:
        return None
    try:
        lo, hi = clip
        if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) for v in (lo, hi)):
            raise TypeError
    except (TypeError, ValueError):
        raise TypeError(f"clip must be None or a pair (lo, hi) of numbers, got {clip!r}") from None
    lo, hi = float(lo), float(hi)
    if not lo < hi:
        raise ValueError(f"clip must be (lo, hi) with lo < hi, got ({lo!r}, {hi!r})")
    return lo, hi


def _inputs(X, device: torch.device, dtype: torch.dtype, box: Optional[Tuple[float, float]]) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        try:
            X = torch.as_tensor(np.asarray(X, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(f"X must be a tensor or array of numbers, got {type(X).__name__}") from None
    if X.ndim < 2:
        raise ValueError(f"X of shape {tuple(X.shape)} is not a batch: (N, ...) inputs")
    if X.shape[0] == 0:
        raise ValueError("X has no points")
    X = X.detach().to(device=device, dtype=dtype)
    if not torch.isfinite(X).all():
        raise ValueError("X has non-finite entries")
    if box is not None and ((X < box[0]) | (X > box[1])).any():
        raise ValueError(f"X has values outside clip=({box[0]!r}, {box[1]!r}); the clean points must be valid inputs")
    return X


def _labels(y, N: int, device: torch.device) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        try:
            y = torch.as_tensor(np.asarray(y))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"y must be integer class labels, got {type(y).__name__}") from None
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"y must be integer class labels, got {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"y must be (N,) labels, got shape {tuple(y.shape)}")
    if len(y) != N:
        raise ValueError(f"X has {N} points but y has {len(y)} labels")
    return y.detach().to(device=device, dtype=torch.int64)


# ----------------------------------------------------------------------------------------------
# one PGD run on a batch

def _correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n, K) logits -> (n,) bool: classified ``y`` (one output: class 1 iff > 0; else argmax)."""
    return top_class(out) == y


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _worst_rival(out: torch.Tensor, xa: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps: float,
                 norm: str, low: Optional[torch.Tensor], high: Optional[torch.Tensor]
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The rival whose margin falls furthest over the feasible set, to first order at ``xa``, and
    the gradient of that margin: ((n,) int64, (n, ...) like ``xa``)."""
    n, K = out.shape
    G = torch.stack([_flat(torch.autograd.grad(out[:, c].sum(), xa, retain_graph=True)[0])
                     for c in range(K)], 1)  # (n, K, D): input gradients of the logits
    Gy = G[torch.arange(n, device=G.device), y]  # (n, D)
    G = G.neg_().add_(Gy[:, None, :])  # (n, K, D): gradients of d_c = z_y - z_c
    d = out.detach().gather(1, y[:, None]) - out.detach()  # (n, K): margins d_c at xa
    if norm == "linf":  # exact minimum of the linearisation over the box [low, high]:
        assert low is not None and high is not None  # min(g a, g b) = g (a + b) / 2 - |g| (b - a) / 2
        dl, dh = _flat(low - xa.detach()), _flat(high - xa.detach())  # (n, D) each
        mid, half = ((dl + dh) / 2)[:, :, None], ((dh - dl) / 2)[:, :, None]
        worst = d + torch.bmm(G, mid)[:, :, 0] - torch.bmm(G.abs(), half)[:, :, 0]
    else:  # the ball around x (clipping ignored)
        off = _flat(xa.detach() - x)[:, :, None]
        worst = d - torch.bmm(G, off)[:, :, 0] - eps * torch.linalg.vector_norm(G, dim=2)
    worst.scatter_(1, y[:, None], math.inf)
    rival = worst.argmin(1)
    return rival, G[torch.arange(n, device=G.device), rival].reshape(xa.shape)


def _pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
         norm: str, box: Optional[Tuple[float, float]], start: Optional[torch.Tensor]) -> torch.Tensor:
    """One PGD run from ``x + eps start`` (``start`` None: from ``x``): (n,) bool, broken points.

    ``x`` (n, ...) are correctly classified points; points drop out of the batch once broken.
    """
    n = x.shape[0]
    broken = torch.zeros(n, dtype=torch.bool, device=x.device)
    live = torch.arange(n, device=x.device)  # positions in the batch of the points still attacked
    low = high = None
    if norm == "linf":
        low, high = x - eps, x + eps
        if box is not None:
            low, high = low.clamp(min=box[0]), high.clamp(max=box[1])

    def project(v: torch.Tensor) -> torch.Tensor:
        if norm == "linf":
            assert low is not None and high is not None
            return torch.maximum(torch.minimum(v, high), low)
        off = _flat(v - x)
        scale = (eps / torch.linalg.vector_norm(off, dim=1).clamp_min(tiny)).clamp(max=1.0)
        v = x + (off * scale[:, None]).reshape(x.shape)
        return v if box is None else v.clamp(box[0], box[1])

    tiny = torch.finfo(x.dtype).tiny
    xa = x if start is None else project(x + start)
    rival: Optional[torch.Tensor] = None
    for t in range(steps + 1):
        xa = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            out = model(xa)  # (n, K)
            wrong = ~_correct(out.detach(), y)
            broken[live[wrong]] = True
            if t == steps or bool(wrong.all()):
                break
            K = out.shape[1]
            g: Optional[torch.Tensor] = None
            if K == 1:
                d = (2 * y - 1).to(out.dtype) * out[:, 0]
            else:
                if rival is None:
                    if K == 2:
                        rival = 1 - y
                    else:
                        rival, g = _worst_rival(out, xa, x, y, eps, norm, low, high)
                d = out.gather(1, y[:, None])[:, 0] - out.gather(1, rival[:, None])[:, 0]
            if g is None:
                g = torch.autograd.grad(d.sum(), xa)[0]
        with torch.no_grad():
            if norm == "linf":
                xa = project(xa - alpha * g.sign())
            else:
                gn = torch.linalg.vector_norm(_flat(g), dim=1).clamp_min(tiny)
                xa = project(xa - alpha * (_flat(g) / gn[:, None]).reshape(g.shape))
        if wrong.any():  # drop the broken points
            keep = ~wrong
            live, x, y, xa = live[keep], x[keep], y[keep], xa[keep]
            if rival is not None:
                rival = rival[keep]
            if low is not None and high is not None:
                low, high = low[keep], high[keep]
    return broken


def _restart_generator(seed: int, restart: int) -> torch.Generator:
    """The private generator of one restart (``restart >= 1``): its own stream for each number."""
    state = np.random.SeedSequence([seed, restart]).generate_state(1, np.uint64)[0]
    return torch.Generator(device="cpu").manual_seed(int(state) >> 1)


def _unit_start(g: torch.Generator, shape: Tuple[int, ...], norm: str) -> torch.Tensor:
    """Uniform random points of the unit ball (l-inf: the cube), float64 on the CPU: ``shape``."""
    n, D = shape[0], math.prod(shape[1:])
    if norm == "linf":
        u = torch.rand(n, D, generator=g, dtype=torch.float64) * 2 - 1
    else:
        z = torch.randn(n, D, generator=g, dtype=torch.float64)
        r = torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1.0 / D)
        u = z / torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min(1e-300) * r
    return u.reshape(shape)


# ----------------------------------------------------------------------------------------------
# public

def _chunks(N: int, B: int):
    """``(start, stop)`` of consecutive batches of ``B`` of ``N`` points."""
    return [(a, min(a + B, N)) for a in range(0, N, B)]


def _robust_points(model: torch.nn.Module, X, y, eps: Radii, *, norm: str = "linf", steps: int = 10,
                   step_size: Optional[float] = None, restarts: int = 1,
                   clip: Optional[Tuple[float, float]] = None, seed: int = 0,
                   batch_size: Optional[int] = None) -> torch.Tensor:
    """(R, N) bool: point ``n`` survives the attack of radius ``eps[r]`` (see :func:`robust_accuracy`)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    radii, _ = _radii(eps)
    norm = option(norm, _NORMS, "norm")
    steps = integer("steps", steps, minimum=0)
    if steps < 1 and radii.max() > 0:
        raise ValueError(f"steps must be a positive int when eps > 0, got {steps}")
    alpha = _step_size(step_size)
    restarts = integer("restarts", restarts, minimum=1)
    seed = integer("seed", seed, minimum=0)
    if batch_size is not None:
        batch_size = integer("batch_size", batch_size, minimum=1)
    box = _clip(clip)
    device, dtype = _model_place(model)
    X = _inputs(X, device, dtype, box)
    N = X.shape[0]
    y = _labels(y, N, device)
    D = math.prod(X.shape[1:])

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        alive = torch.empty(N, dtype=torch.bool, device=device)  # correct so far
        with torch.no_grad():
            K = 0
            for a, b in _chunks(N, batch_size or CLEAN_BATCH):
                out = model(X[a:b])
                if out.ndim != 2 or out.shape[0] != b - a:
                    raise ValueError(f"the model's output has shape {tuple(out.shape)} for {b - a} inputs; "
                                     f"expected ({b - a}, K): one logit or K class scores")
                K = out.shape[1]
                alive[a:b] = _correct(out, y[a:b])
        chunks = _chunks(N, batch_size or (N if K <= 2 else
                                           max(1, JACOBIAN_BYTES // (K * D * X.element_size()))))
        C = n_classes(K)
        if int(y.min()) < 0 or int(y.max()) >= C:
            raise ValueError(f"y has labels outside 0..{C - 1} (the model has {K} output"
                             f"{'s' if K > 1 else ''}: {C} classes), got {int(y.min())}..{int(y.max())}")
        robust = torch.empty(len(radii), N, dtype=torch.bool, device=device)
        for i in np.argsort(radii, kind="stable"):
            r_eps = float(radii[i])
            if r_eps > 0:
                a_step = alpha if alpha is not None else 2.5 * r_eps / steps
                for r in range(restarts):
                    start = None
                    if r > 0:  # drawn for every point, alive or not: one stream per restart, whatever the batches
                        start = _unit_start(_restart_generator(seed, r), tuple(X.shape), norm).to(device, dtype)
                        start *= r_eps
                    for a, b in chunks:
                        idx = a + torch.nonzero(alive[a:b])[:, 0]
                        if len(idx) == 0:
                            continue
                        broken = _pgd(model, X[idx], y[idx], r_eps, a_step, steps, norm, box,
                                      None if start is None else start[idx])
                        alive[idx[broken]] = False
            robust[i] = alive
        return robust
    finally:
        for m, was in modes:
            m.training = was


def robust_accuracy(model: torch.nn.Module, X, y, eps: Radii, *, norm: str = "linf", steps: int = 10,
                    step_size: Optional[float] = None, restarts: int = 1,
                    clip: Optional[Tuple[float, float]] = None, seed: int = 0,
                    batch_size: Optional[int] = None) -> torch.Tensor:
    """The fraction of ``(X, y)`` that ``model`` still classifies correctly under a PGD attack of
    radius ``eps``, at one radius or several.

    The attack (see the module docstring): a margin loss against the rival class whose margin
    falls furthest to first order, ``steps`` projected sign-gradient (l-inf) or normalised-gradient
    (l2) steps, ``restarts - 1`` more runs from random points of the ball. A point counts as robust
    only if it is correct at ``x`` and at every iterate of every run, and at every smaller radius.
    Exact on affine models (with l2, where ``clip`` does not bind); on a piecewise-linear network
    an upper bound on the true value.
    The model runs in eval mode on its own device and dtype (inputs are moved there); its modes are
    restored afterwards, and gradients are taken with respect to the inputs only (the parameters'
    ``.grad`` and ``requires_grad`` are left alone).

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch ``(n, ...)`` to ``(n, K)``: one logit (class 1 iff ``> 0``) or ``K >= 2`` class
        scores (argmax).
    X : tensor or array
        ``(N, ...)`` inputs (any shape the model takes), finite.
    y : tensor or array of int
        ``(N,)`` labels in ``0 .. K - 1`` (one logit: 0 or 1).
    eps : float or sequence of float
        The radius, or several radii (each ``>= 0``, finite). ``eps = 0`` gives the clean accuracy.
    norm : {"linf", "l2"}
        The ball: ``max |x' - x| <= eps`` or ``||x' - x||_2 <= eps`` (over the flattened input).
    steps : int
        PGD steps per run (``>= 1`` when some ``eps > 0``).
    step_size : float, optional
        The length of one step (an l-inf or l2 distance), the same for every radius; default
        ``2.5 eps / steps`` at each radius.
    restarts : int
        Runs per point: the first from ``x``, the others from uniform random points of the ball.
    clip : (float, float), optional
        ``(lo, hi)``: adversarial inputs are clamped into this box (e.g. pixels in ``[0, 1]``);
        ``X`` must lie in it.
    seed : int
        Seeds the random starts (private generators; the global RNG is not touched).
    batch_size : int, optional
        Points per batch. Default: all at once, or with ``K > 2`` classes as many as keep the first
        step's ``(batch, K, D)`` input Jacobian within :data:`JACOBIAN_BYTES` (256 MB). The result
        does not depend on it: the random starts are drawn for all the points at once.

    Returns
    -------
    torch.Tensor
        float64 on the model's device: 0-d for one radius (``float(...)`` for a number), ``(R,)``
        for ``R`` radii, in their order.

    Examples
    --------
    A linear logit ``x0 - x1``: margins 0.5, 0.1, 0.3, 0.25 fall by ``eps ||w||_1 = 2 eps`` (l-inf)
    and ``eps ||w||_2 = 1.41 eps`` (l2).

    >>> net = torch.nn.Linear(2, 1).double()
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, -1.0]])); _ = net.bias.zero_()
    >>> X = torch.tensor([[0.5, 0.0], [0.1, 0.0], [-0.3, 0.0], [0.0, 0.25]], dtype=torch.float64)
    >>> y = torch.tensor([1, 1, 0, 0])
    >>> robust_accuracy(net, X, y, [0.0, 0.1, 0.2])
    tensor([1.0000, 0.7500, 0.2500], dtype=torch.float64)
    >>> robust_accuracy(net, X, y, 0.2, norm="l2")
    tensor(0.5000, dtype=torch.float64)
    """
    scalar = _radii(eps)[1]
    acc = _robust_points(model, X, y, eps, norm=norm, steps=steps, step_size=step_size, restarts=restarts,
                         clip=clip, seed=seed, batch_size=batch_size).to(torch.float64).mean(1)
    return acc[0] if scalar else acc
