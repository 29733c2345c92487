"""Local complexity: how many neurons switch inside a small cross-polytope around each input.

Reference: A. I. Humayun, R. Balestriero, R. Baraniuk, "Deep Networks Always Grok and Here is
Why" (ICML 2024) and "Training Dynamics of Deep Network Linear Regions". Around each input ``x``
take ``P`` orthonormal directions ``v_1 .. v_P`` (one frame shared by all points) and the ``2P``
vertices ``x +- r v_p`` of a cross-polytope of radius ``r``. The local complexity of a
piecewise-linear layer at ``x`` is the number of its neurons whose pre-activation is strictly
positive at one vertex and strictly negative at another. It is exact for the first layer (an
affine function changes sign inside a convex polytope iff it does so between its vertices) and an
estimate deeper, where a neuron's boundary may bend in and out between vertices.

Two ways through a model:

* a ``torch.nn.Sequential`` of supported layers (see ``spatial._net``) is run layer by layer in the
  model's dtype on its device. The affine block before the first activation is evaluated once per
  point and once per direction: its pre-activations at ``x +- r v`` are ``(W x + b) +- r (W v)``,
  from ``N + P`` rows instead of ``2 N P``, and its count needs no vertex at all:
  ``|W x + b| < r max_p |W v_p|`` neuron by neuron;
* any other model (a ResNet, ...) is run forward on the vertices while forward pre-hooks read the
  inputs of its ``ReLU`` / ``LeakyReLU`` / ``PReLU`` modules, and a torch function mode
  (:class:`_Functional`) the inputs of the same activations called as functions outside them
  (``F.relu(h)``, ``torch.relu(h)``, ``h.relu()``, ``F.leaky_relu``, ``F.prelu``), one layer per
  call in call order; a smooth activation called as a function (``F.gelu``) is refused.

The output layer (no activation) is never counted. Public: the functional
:func:`local_complexity` (per-point values), the accumulating :class:`LocalComplexity` (a
``torchmetrics.Metric``: means over a stream of batches, synced across processes; it lives in
``spatial._lc_metric`` and is loaded on first use, since torchmetrics imports matplotlib) and
:func:`random_frame`. Both estimators run the one private ``_lc_update`` (per-point counts); the
class only sums them, and ``_lc_compute`` turns sums and counts into means. The counted layers
are named by their activation modules (:func:`_layer_names`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ._errors import UnsupportedLayerError
from ._net import Network, parse
from ._validate import integer

__all__ = ["LocalComplexity", "local_complexity", "random_frame"]

_DEFAULT_MEMORY = 16 * 2**20  # bytes of vertex activations per chunk (small chunks stay in cache)
_PL_MODULES = ("ReLU", "LeakyReLU", "PReLU")
_STOCHASTIC = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Dropout", "Dropout1d", "Dropout2d",
               "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")


# ----------------------------------------------------------------------------------------------
# frames

def _directions(directions, dim, stacklevel: int = 3):
    """``directions=``, or its deprecated old name ``dim=`` (with a FutureWarning)."""
    if dim is None:
        return directions
    if directions is not None:
        raise TypeError("give directions= or its deprecated old name dim=, not both")
    warnings.warn("dim= is deprecated and will be removed; use directions= (the number P of random "
                  "directions)", FutureWarning, stacklevel=stacklevel)
    return dim


def random_frame(directions: Optional[int] = None, in_features: Optional[int] = None,
                 seed: Optional[int] = None, *, dtype: torch.dtype = torch.float32, device=None,
                 dim: Optional[int] = None) -> torch.Tensor:
    """``directions`` random orthonormal directions of ``R^in_features``, as rows.

    Drawn in float64 on the CPU from a private ``torch.Generator`` (the global RNG is left alone),
    so one seed gives one frame on every device.

    Parameters
    ----------
    directions : int
        Number of directions ``P`` (``1 <= P <= in_features``).
    in_features : int
        Dimension ``D`` of the (flattened) input space.
    seed : int, optional
        Seed of the generator; None draws a fresh, non-reproducible frame.
    dtype, device
        Of the returned tensor.
    dim : int, optional
        Deprecated old name of ``directions`` (a FutureWarning).

    Returns
    -------
    torch.Tensor
        ``(P, D)``, orthonormal rows.

    Examples
    --------
    >>> F = random_frame(3, 5, seed=0, dtype=torch.float64)
    >>> F.shape, torch.allclose(F @ F.T, torch.eye(3, dtype=torch.float64))
    (torch.Size([3, 5]), True)
    """
    directions = _directions(directions, dim)
    if directions is None or in_features is None:
        raise TypeError("random_frame() needs directions (P) and in_features (D)")
    P, in_features = int(directions), int(in_features)
    if not 1 <= P <= in_features:
        raise ValueError(f"directions={P} must be between 1 and the input dimension {in_features}")
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()  # fresh entropy for this generator only
    else:
        g.manual_seed(int(seed))
    a = torch.randn(in_features, P, generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)  # q: (D, P)
    q = q * torch.sign(torch.diagonal(r))  # a unique QR: Haar-distributed frame
    return q.T.contiguous().to(device=device, dtype=dtype)


def _check_frame(frame, D: int, dtype, device) -> torch.Tensor:
    if not isinstance(frame, torch.Tensor):
        try:
            frame = torch.as_tensor(frame, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"frame must be a tensor or array, got {type(frame).__name__}") from None
    if frame.ndim != 2 or frame.shape[1] != D:
        raise ValueError(f"frame of shape {tuple(frame.shape)} is not (P, {D}): one row per "
                         f"direction of the flattened input space")
    f = frame.detach().to(torch.float64)
    P = f.shape[0]
    if P == 0:
        raise ValueError("frame has no rows")
    if not torch.isfinite(f).all():
        raise ValueError("frame has non-finite entries")
    err = (f @ f.T - torch.eye(P, dtype=torch.float64, device=f.device)).abs().max().item()
    if err > 1e-4:
        raise ValueError(f"frame rows are not orthonormal (|F F^T - I| = {err:.2g}); "
                         "use random_frame() or orthonormalise them (torch.linalg.qr)")
    return frame.detach().to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# the two paths through a model

@dataclass
class _Plan:
    """How one model is run: parsed layers in torch (Sequential) or hooks (anything else)."""

    model: torch.nn.Module
    device: torch.device
    dtype: torch.dtype
    layers: Optional[List[Tuple[torch.Tensor, torch.Tensor, Optional[float]]]]  # (W^T, b, slope)
    widths: Optional[List[int]]  # of the counted (hidden) layers; None until the hooks ran
    names: Optional[List[str]] = None  # their activation modules' names (see _layer_names)

    @property
    def sequential(self) -> bool:
        return self.layers is not None


def _model_place(model: torch.nn.Module) -> Tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    for b in model.buffers():
        if b.is_floating_point():
            return b.device, b.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _check_hookable(model: torch.nn.Module) -> None:
    for name, m in model.named_modules():
        kind = type(m).__name__
        if kind in _PL_MODULES:
            continue
        if type(m).__module__ == "torch.nn.modules.activation":
            raise UnsupportedLayerError(
                f"layer {name or '<model>'} ({kind}) is not piecewise linear; local complexity "
                f"counts the neurons of {', '.join(_PL_MODULES)} modules")
        if kind in _STOCHASTIC and m.training:
            raise UnsupportedLayerError(
                f"layer {name} ({kind}) is in training mode (not a fixed map); call model.eval() first")


_F = torch.nn.functional
_FUNCTIONAL_PL = {f: f.__name__.rstrip("_") for f in (
    torch.relu, torch.relu_, _F.relu, _F.relu_, torch.Tensor.relu, torch.Tensor.relu_, _F.leaky_relu,
    _F.leaky_relu_, _F.prelu, torch.prelu)}
"""Activations called as functions in ``forward`` (``F.relu(h)``, ``torch.relu(h)``, ``h.relu()``,
``F.leaky_relu``, ``F.prelu``): counted as the modules are, each call a layer named ``relu()``."""
_FUNCTIONAL_NOT_PL = frozenset({
    _F.gelu, _F.silu, _F.elu, _F.selu, _F.celu, _F.softplus, _F.mish, _F.hardswish, _F.logsigmoid, _F.softsign,
    _F.tanhshrink, _F.glu, torch.tanh, torch.sigmoid, _F.sigmoid, _F.tanh, torch.Tensor.tanh, torch.Tensor.sigmoid,
    torch.selu, torch.celu})
"""Smooth activations called as functions: refused as their modules are."""


class _Functional(torch.overrides.TorchFunctionMode):
    """During the hooked forward pass: each activation called as a function (:data:`_FUNCTIONAL_PL`)
    outside an activation module is passed to ``record(name, pre_activation)`` (a module's own
    ``F.relu`` is read by its hook: ``inside[0]`` counts the modules running); a smooth one
    (:data:`_FUNCTIONAL_NOT_PL`) is refused."""

    def __init__(self, record, inside):
        super().__init__()
        self.record, self.inside = record, inside

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not self.inside[0] and args and isinstance(args[0], torch.Tensor):
            name = _FUNCTIONAL_PL.get(func)
            if name is not None:
                self.record(f"{name}()", args[0])
            elif func in _FUNCTIONAL_NOT_PL:
                raise UnsupportedLayerError(
                    f"forward() calls {getattr(func, '__name__', func)}, which is not piecewise linear; local "
                    f"complexity counts the neurons of {', '.join(_PL_MODULES)} modules and of F.relu / "
                    "torch.relu / x.relu() / F.leaky_relu / F.prelu calls")
        return func(*args, **(kwargs or {}))


def _plan(model: torch.nn.Module, hooks: bool = False) -> _Plan:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    device, dtype = _model_place(model)
    net: Optional[Network] = None
    if not hooks:
        try:
            net = parse(model)
        except (UnsupportedLayerError, ValueError):
            net = None  # not a plain chain: read the activations through hooks
        if net is not None and not net.dense:
            net = None  # convolutions, pooling, skip connections: the hooks read them
    if net is None:
        _check_hookable(model)
        return _Plan(model, device, dtype, None, None)
    return _Plan(model, device, dtype, _read_layers(net, device, dtype), [l.width for l in net.hidden],
                 _layer_names([l.names[-1].split(" (")[0] for l in net.hidden]))


def _layer_names(calls: Sequence[str]) -> List[str]:
    """The counted layers' names: each activation module's name (``"1"`` in a Sequential,
    ``"act"`` in a subclass), ``"act#2"``, ``"act#3"`` for the second and third call of a reused
    module.

    >>> _layer_names(["1", "3"]), _layer_names(["act", "act", "out"])
    (['1', '3'], ['act', 'act#2', 'out'])
    """
    seen: Dict[str, int] = {}
    out = []
    for c in calls:
        seen[c] = seen.get(c, 0) + 1
        out.append(c if seen[c] == 1 else f"{c}#{seen[c]}")
    return out


def _read_layers(net: Network, device: torch.device, dtype: torch.dtype):
    """The parsed layers as torch (W^T, b, slope) in the plan's dtype on its device."""
    return [(torch.as_tensor(l.W.T, dtype=dtype, device=device).contiguous(),
             torch.as_tensor(l.b, dtype=dtype, device=device), l.slope) for l in net.layers]


def _refresh_(plan: _Plan) -> None:
    """Follow the model as it is now: its device and dtype (``model.to(...)`` since the plan was
    made), and, for a Sequential plan, its current weights (the hooks read them live).

    One parse of the model (about 1 ms for a 784-200-200-200-10 MLP).
    """
    plan.device, plan.dtype = _model_place(plan.model)
    if not plan.sequential:
        return
    net = parse(plan.model)
    widths = [l.width for l in net.hidden]
    if widths != plan.widths:
        raise RuntimeError(f"the model's layers changed since the estimator was built "
                           f"(widths {plan.widths} then {widths})")
    plan.layers = _read_layers(net, plan.device, plan.dtype)


def _straddle(z: torch.Tensor) -> torch.Tensor:
    """Per point, the number of neurons with both strict signs over the vertices.

    ``z``: (n, V, H) pre-activations -> (n,) int64.
    """
    lo, hi = z.amin(1), z.amax(1)  # (n, H) each; much faster than torch.aminmax(dim=1) on CPU
    return ((lo < 0) & (hi > 0)).sum(-1)


def _activate_(z: torch.Tensor, slope: float) -> torch.Tensor:
    if slope == 0.0:
        return z.clamp_min_(0)
    return torch.nn.functional.leaky_relu_(z, slope)


def _sequential_counts(plan: _Plan, x: torch.Tensor, F: torch.Tensor, radius: float,
                       center: bool, upto: int) -> torch.Tensor:
    """Counts of the hidden layers ``0 .. upto-1`` for a chunk: (n, upto) int64."""
    n = x.shape[0]
    assert plan.layers is not None  # a Sequential plan
    (w0, b0, slope0) = plan.layers[0]
    z0 = torch.addmm(b0, x, w0)  # (n, H1): pre-activations at the centres
    d = (radius * F) @ w0  # (P, H1): the same for the directions, without the bias
    reach = d.abs().amax(0)  # (H1,): how far each neuron moves over the 2P vertices
    out = [(z0.abs() < reach).sum(-1)]  # exact: an affine map straddles 0 iff |z| < reach
    if upto == 1:
        return torch.stack(out, 1)
    steps = [d, -d] + ([torch.zeros_like(d[:1])] if center else [])
    dd = torch.cat(steps)  # (V, H1)
    V = dd.shape[0]
    h = _activate_(z0[:, None, :] + dd, float(slope0 or 0.0))  # (n, V, H1): first activations at the vertices
    h = h.reshape(n * V, -1)
    for k in range(1, upto):
        w, b, slope = plan.layers[k]
        z = torch.addmm(b, h, w)  # (n V, H)
        out.append(_straddle(z.view(n, V, -1)))
        if k + 1 < upto:
            h = _activate_(z, float(slope or 0.0))
    return torch.stack(out, 1)


def _vertices(x: torch.Tensor, F: torch.Tensor, radius: float, center: bool) -> torch.Tensor:
    """(n, D) centres, (P, D) frame -> (n, V, D) cross-polytope vertices (+ the centre)."""
    rF = radius * F
    parts = [x[:, None, :] + rF, x[:, None, :] - rF]
    if center:
        parts.append(x[:, None, :])
    return torch.cat(parts, 1)


def _hooked_counts(plan: _Plan, x: torch.Tensor, shape: Tuple[int, ...], F: torch.Tensor,
                   radius: float, center: bool) -> torch.Tensor:
    """Counts of every activation call of a forward pass over the chunk's vertices: (n, L)."""
    n = x.shape[0]
    verts = _vertices(x, F, radius, center)  # (n, V, D)
    V = verts.shape[1]
    counts: List[torch.Tensor] = []
    widths: List[int] = []
    calls: List[str] = []

    inside = [0]  # activation modules running (their own F.relu is read by their hook)

    def record(name: str, pre: torch.Tensor) -> None:
        z = pre.detach().reshape(n, V, -1)  # (n, V, H): H = all of the layer's units (channels x pixels)
        counts.append(_straddle(z))
        widths.append(z.shape[-1])
        calls.append(name)

    def hook_for(name: str):
        def pre_hook(module, inputs):
            record(name, inputs[0])
            inside[0] += 1
        return pre_hook

    def leave(module, inputs, output):
        inside[0] -= 1

    acts = [(name or "<model>", m) for name, m in plan.model.named_modules() if type(m).__name__ in _PL_MODULES]
    handles = [m.register_forward_pre_hook(hook_for(name)) for name, m in acts] + \
        [m.register_forward_hook(leave) for _, m in acts]
    try:
        with _Functional(record, inside):
            plan.model(verts.reshape((n * V,) + shape))
    finally:
        for h in handles:
            h.remove()
    if not calls:
        raise UnsupportedLayerError(
            "the model calls no ReLU, LeakyReLU or PReLU module and no F.relu / torch.relu / x.relu() / "
            "F.leaky_relu / F.prelu (an activation written another way, such as clamp or torch.where, is not "
            "seen); nothing to count")
    if plan.widths is None:
        plan.widths, plan.names = widths, _layer_names(calls)
    elif widths != plan.widths:
        raise RuntimeError("the model's activation calls changed between two batches "
                           f"(widths {plan.widths} then {widths})")
    if not counts:
        return torch.zeros(n, 0, dtype=torch.int64, device=x.device)
    return torch.stack(counts, 1)


# ----------------------------------------------------------------------------------------------
# shared implementation of the functional and the class

def _prepare_x(plan: _Plan, x) -> Tuple[torch.Tensor, Tuple[int, ...]]:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"x must be a tensor or array, got {type(x).__name__}") from None
    if x.ndim < 2:
        raise ValueError(f"x of shape {tuple(x.shape)} is not a batch: (N, D) or (N, C, H, W)")
    shape = tuple(x.shape[1:])
    x = x.detach().to(device=plan.device, dtype=plan.dtype).reshape(x.shape[0], math.prod(shape))
    if plan.sequential and plan.layers is not None and x.shape[1] != plan.layers[0][0].shape[0]:
        raise ValueError(f"x has {x.shape[1]} features per point but the model takes "
                         f"{plan.layers[0][0].shape[0]}")
    return x, shape


def _chunk(plan: _Plan, n_vertices: int, max_memory: int, batch_size: Optional[int]) -> int:
    if batch_size is not None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        return int(batch_size)
    if int(max_memory) < 1:
        raise ValueError(f"max_memory={max_memory} must be a positive number of bytes")
    itemsize = torch.empty((), dtype=plan.dtype).element_size()
    if plan.sequential and plan.layers is not None:
        width = max(w.shape[1] for w, _, _ in plan.layers)
        per_point = 2 * n_vertices * width * itemsize  # a layer's input and output
    else:
        per_point = 8 * n_vertices * 1024 * itemsize  # unknown widths: a conservative guess
    return max(1, int(max_memory) // per_point)


def _lc_update(plan: _Plan, x: torch.Tensor, shape: Tuple[int, ...], F: torch.Tensor,
               radius: float, center: bool, layers: Optional[Sequence[int]],
               max_memory: int = _DEFAULT_MEMORY, batch_size: Optional[int] = None) -> torch.Tensor:
    """Per-point counts (N, L) int64 of the selected layers (all when ``layers`` is None).

    ``x``: (N, D) from ``_prepare_x``, ``shape``: one input's shape for the model.
    """
    N, D = x.shape
    F = F.to(device=plan.device, dtype=plan.dtype)
    V = 2 * F.shape[0] + int(center)
    step = _chunk(plan, V, max_memory, batch_size)
    with torch.no_grad():
        if plan.sequential:
            assert plan.widths is not None
            L = len(plan.widths)
            sel = _select(layers, L)
            upto = max(sel) + 1 if sel else 0
            if upto == 0:
                return torch.zeros(N, 0, dtype=torch.int64, device=plan.device)
            parts = [_sequential_counts(plan, x[i:i + step], F, radius, center, upto)
                     for i in range(0, N, step)]
        else:
            parts = [_hooked_counts(plan, x[i:i + step], shape, F, radius, center)
                     for i in range(0, N, step)]
            assert plan.widths is not None  # known once the hooks ran
            sel = _select(layers, len(plan.widths))
    if not parts:  # N == 0
        return torch.zeros(0, len(sel), dtype=torch.int64, device=plan.device)
    return torch.cat(parts)[:, sel]


def _select(layers: Optional[Sequence[int]], L: int) -> List[int]:
    if layers is None:
        return list(range(L))
    if isinstance(layers, int):
        layers = [layers]
    out = []
    for i in layers:
        if not isinstance(i, int) or isinstance(i, bool):
            raise TypeError(f"layers must be ints, got {type(i).__name__}")
        if not -L <= i < L:
            raise ValueError(f"layer {i} is out of range: the model has {L} piecewise-linear layers")
        out.append(i % L)
    return out


def _lc_compute(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Means per layer from the accumulated sums ``total`` (L,) over ``count`` points."""
    if count.item() == 0:
        raise ValueError("no points seen yet: call update(x) before compute()")
    return total / count


def _resolve_frame(frame, directions, seed, D: int, plan: _Plan) -> torch.Tensor:
    if frame is not None:
        if directions is not None or seed is not None:
            raise ValueError("give either frame= or directions= (with seed=), not both")
        return _check_frame(frame, D, plan.dtype, plan.device)
    if directions is None:
        raise ValueError("no directions: pass frame= ((P, D) orthonormal rows) or directions= (P)")
    return random_frame(integer("directions", directions), D, seed, dtype=plan.dtype, device=plan.device)


def _check_radius(radius) -> float:
    try:
        r = float(radius)
    except (TypeError, ValueError):
        raise TypeError(f"radius must be a number, got {type(radius).__name__}") from None
    if not (r > 0 and r < float("inf")):
        raise ValueError(f"radius={radius} must be positive and finite")
    return r


def _normalise(counts: torch.Tensor, plan: _Plan, layers) -> torch.Tensor:
    """Counts (N, L) -> fractions of each selected layer's width, in the model's dtype."""
    if plan.widths is None:  # hooks never ran: no point
        return counts.to(plan.dtype)
    widths = torch.tensor([plan.widths[i] for i in _select(layers, len(plan.widths))],
                          dtype=plan.dtype, device=counts.device)
    return counts.to(widths.dtype) / widths


# ----------------------------------------------------------------------------------------------
# public API

def local_complexity(model: torch.nn.Module, x, radius: float = 0.1, frame=None,
                     directions: Optional[int] = None, seed: Optional[int] = None, *,
                     center: bool = False, normalize: bool = False,
                     layers: Optional[Sequence[int]] = None, batch_size: Optional[int] = None,
                     max_memory: int = _DEFAULT_MEMORY, dim: Optional[int] = None) -> torch.Tensor:
    """Per-layer local complexity of a piecewise-linear network around each input.

    Counts, per piecewise-linear layer, the neurons whose pre-activation takes both strict
    signs over the ``2P`` vertices ``x +- radius * v_p`` (and ``x`` itself if ``center``).

    Parameters
    ----------
    model : torch.nn.Module
        A Sequential of supported layers (fast path), or any module whose nonlinearities are
        ``ReLU`` / ``LeakyReLU`` / ``PReLU`` modules (read through forward hooks).
    x : tensor or array
        ``(N, D)`` inputs, or ``(N, C, H, W)``: the frame lives in the flattened space.
    radius : float
        Radius ``r`` of the cross-polytope.
    frame : tensor or array, optional
        ``(P, D)`` orthonormal directions shared by all points.
    directions : int, optional
        Instead of ``frame``: the number ``P`` of random directions, drawn by
        :func:`random_frame` from their own generator.
    seed : int, optional
        Seed of that generator (None: not reproducible).
    center : bool
        Add the centre ``x`` as a vertex (changes only the deeper, estimated layers).
    normalize : bool
        Return the fraction of each layer's neurons instead of the count.
    layers : sequence of int, optional
        Which piecewise-linear layers (0-based, negative from the end) in which order;
        default all. The output layer is never counted.
    batch_size : int, optional
        Points per forward chunk; default: as many as fit in ``max_memory``.
    max_memory : int
        Bytes of vertex activations per chunk when ``batch_size`` is None.
    dim : int, optional
        Deprecated old name of ``directions`` (a FutureWarning).

    Returns
    -------
    torch.Tensor
        ``(N, L)`` on the model's device: int64 counts, or the model's float dtype when
        ``normalize``.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.eye(2)); _ = net[0].bias.zero_()
    >>> local_complexity(net, [[0.05, 0.5], [1.0, 1.0]], radius=0.1, frame=torch.eye(2))
    tensor([[1],
            [0]])
    """
    directions = _directions(directions, dim)
    r = _check_radius(radius)
    plan = _plan(model)
    xt, shape = _prepare_x(plan, x)
    F = _resolve_frame(frame, directions, seed, xt.shape[1], plan)
    counts = _lc_update(plan, xt, shape, F, r, bool(center), layers, max_memory, batch_size)
    return _normalise(counts, plan, layers) if normalize else counts


def __getattr__(name):  # the class imports torchmetrics (and matplotlib): loaded when asked for
    if name == "LocalComplexity":
        from ._lc_metric import LocalComplexity
        return LocalComplexity
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
