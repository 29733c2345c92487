"""The internal form of a piecewise-linear network: a chain of affine maps and activations.

``parse(model)`` reads a model into a :class:`Network`: a list of :class:`Layer`, each an affine
map ``z = W h + b`` (float64, from the weights' exact values) followed by a piecewise-linear
activation (ReLU / leaky ReLU / one-slope PReLU) or by nothing (the output).

Supported networks:

* a ``torch.nn.Sequential`` (nested too, TorchScript too) of Linear, ReLU, LeakyReLU, PReLU (one
  slope), Identity, Flatten, Dropout and BatchNorm1d (eval mode), or a single Linear;
* any other ``torch.nn.Module`` whose ``forward`` is a chain of those operations, read by tracing
  it with ``torch.fx`` (``spatial._trace``): module calls (one activation module may be reused at
  several places; submodules with their own forward are traced through), ``F.relu`` /
  ``torch.relu`` / ``x.relu()``, ``x.clamp(min=0)`` / ``torch.clamp(x, min=0)`` (a ReLU),
  ``F.leaky_relu(x, slope)``, ``F.linear(x, w, b)`` with ``w``, ``b`` attributes of the module,
  ``torch.flatten(x, 1)`` / ``x.flatten(1)``, ``x.view(x.size(0), -1)`` /
  ``x.reshape(len(x), -1)``, ``F.dropout(x, training=False)``, and constants: ``x * c``, ``c * x``,
  ``x / c``, ``x + c``, ``x - c``, ``c - x``, ``-x`` with ``c`` a number.

Identity, Flatten and Dropout vanish; BatchNorm1d in eval mode, runs of affine maps and constant
scalings and shifts are folded into one affine map, in float64: ``x * c`` makes ``W, b`` into
``c W, c b``, ``x / c`` into ``W / c, b / c`` and ``x + c`` makes ``b`` into ``b + c`` (before
the first map, the next map's ``W`` and ``b`` are changed instead: ``W c``, ``W / c``,
``W (c, ..., c) + b``). The network partitioned is that float64 map, as for Linear and BatchNorm
folding: exact arithmetic on its numbers, which may differ from the model's own float32 rounding.

Refused, with an :class:`UnsupportedLayerError` naming the layer (for a traced model: the node,
its operation and its line of ``forward``): what is not piecewise linear (tanh, GELU, sigmoid,
``x * x``), then graphs that are not a chain (residual ``x + f(x)``, concatenation: not supported
yet), then what is piecewise linear but not a one-slope leaky ReLU (``torch.abs``, Hardtanh,
ReLU6, ``clamp`` with a ``max``: not supported yet); a forward that cannot be traced
(data-dependent control flow) is refused naming the module's class.

The partition engine only needs, per layer, the pre-activations ``z`` of the vertices and the
activation that turns them into the next layer's input. Convolutions, pooling and residual
blocks slot in as further :class:`Layer` kinds with their own ``affine`` (a conv is still an
affine map of the flattened input) and their own switching functions.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy as np
import torch
from torch.nn.utils import parametrize

from ._errors import NonFiniteWeightsError, UnsupportedLayerError

__all__ = ["Layer", "MODULE_KINDS", "Network", "parse", "SUPPORTED", "check_finite"]

SUPPORTED = (
    "Linear, Conv1d/2d/3d (padding as numbers, 'same' or 'valid', of any padding_mode), ConvTranspose1d/2d/3d "
    "(zeros padding), AvgPool1d/2d/3d, AdaptiveAvgPool1d/2d/3d, MaxPool1d/2d/3d, AdaptiveMaxPool1d/2d/3d, "
    "BatchNorm1d/2d/3d (eval), InstanceNorm1d/2d/3d (eval, with running statistics), Flatten, Unflatten, Identity, "
    "Dropout, Dropout1d/2d/3d, AlphaDropout (eval), ReLU, LeakyReLU, PReLU, Hardtanh, ReLU6, Softshrink, "
    "Hardsigmoid, RReLU (eval), Threshold (continuous: value = threshold), registered activations "
    "(spatial.register_activation); in a traced forward() also F.relu / torch.relu / x.relu(), F.leaky_relu, "
    "F.prelu, F.hardtanh, F.relu6, torch.abs, clamp(min, max) (numbers or constant tensors), F.linear, "
    "F.conv1d/2d/3d, F.conv_transpose1d/2d/3d, F.max_pool1d/2d/3d, F.avg_pool1d/2d/3d, "
    "F.adaptive_avg_pool1d/2d/3d, F.adaptive_max_pool1d/2d/3d, x.amax(dim) / "
    "x.amin(dim), x.max(dim)[0] / x.min(dim)[0], x.cummax(dim)[0] / x.cummin(dim)[0], the values of x.sort(dim) and x.topk(k, dim) (GroupSort, "
    "MaxMin), torch.maximum / torch.minimum of two tensors (of one shape, or "
    "sizes 1 broadcast) or "
    "of a tensor and a constant, x.mean(dims), x.sum(dims), reshapes (view, reshape, flatten, unflatten, squeeze, "
    "unsqueeze, view_as, reshape_as), copies and casts to a floating dtype (x.clone(), x.detach(), x.float(), "
    "x.to(dtype or device), x.type_as(w)), selections (x[...] slicing and indexing, permute, transpose, flip, "
    "roll, narrow, select, repeat, expand, expand_as, F.pad, chunk, split, unbind, gather / take_along_dim / "
    "index_select by a constant index, triu, tril, diagonal, diag_embed; padding modules, "
    "PixelShuffle, ChannelShuffle, nearest Upsample / F.interpolate, Unfold, Tensor.unfold), linear, bilinear, "
    "bicubic and area interpolation, x + y, x - y (sizes "
    "1 broadcast: h - h.mean(1, keepdim=True); torch.add / sub / rsub with a number alpha), "
    "torch.cat, torch.stack, x @ W, torch.einsum and torch.tensordot of the input and one constant tensor, "
    "torch.addmm(c, x, W) (constants c, W), torch.cumsum and torch.diff along a dimension of a sample, "
    "torch.lerp(a, b, w) (a number or constant weight), and constants: x * c, "
    "x / c, x + c (numbers, or tensors that keep the shape); weights, constant tensors and bounds may be "
    "parameters or buffers or made from them in forward (W.t(), a standardized conv weight), or "
    "zeros_like / ones_like / full_like of a value (torch.maximum(h, torch.zeros_like(h))); torch.where(h > c, "
    "a, b) with a and b each alpha * h + beta, continuous at c (torch.where(h > 0, h, 0.1 * h)), h * (h > c) "
    "(the condition cast to any dtype; continuous: c = 0) and h.masked_fill(h > c, v) (continuous: v = c); "
    "torch.where(m, a, b) and h.masked_fill(m, v) with a fixed boolean mask m (a buffer); constants concatenated "
    "with values (torch.zeros(h.size(0), k), h.new_zeros(...))")
# the modules the graph reader knows (besides MODULE_KINDS)
DROPOUT_MODULES = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"})
"""Dropout modules: the value itself in eval mode."""
GRAPH_MODULES = frozenset({"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
                           "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
                           "AdaptiveAvgPool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AdaptiveMaxPool1d",
                           "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "BatchNorm2d", "BatchNorm3d", "Unflatten",
                           "Hardtanh", "ReLU6", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"}) | DROPOUT_MODULES
SELECTION_MODULES = frozenset({"ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d",
                               "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d",
                               "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d",
                               "CircularPad2d", "CircularPad3d", "PixelShuffle", "PixelUnshuffle", "ChannelShuffle",
                               "Upsample", "UpsamplingNearest2d", "Unfold"})
"""Modules that only select, move or repeat elements (``Upsample`` in mode 'nearest'): read by the
graph reader as one selection each."""
GRAPH_MODULES = GRAPH_MODULES | SELECTION_MODULES | {"Softshrink", "RReLU", "Threshold", "Hardsigmoid", "Hardshrink"}
# the layers read as modules (by their class name; TorchScript keeps it in ``original_name``)
MODULE_KINDS = frozenset({"Linear", "ReLU", "LeakyReLU", "PReLU", "Identity", "Flatten", "Dropout", "BatchNorm1d"})


@dataclass
class Layer:
    """An affine map followed by an optional piecewise-linear activation.

    ``z = h @ weight.T + bias`` (or ``op``, an affine map applied without a dense matrix: a
    stage of a traced graph, :mod:`._graph`); then ``a = where(z > 0, z, slope * z)`` on the
    first ``units`` columns when ``slope`` is not None (0.0 for ReLU; a number, or one per unit),
    while the last ``carry`` columns pass unchanged (values a later layer reads: a skip
    connection, a running max). The layer is the output when ``slope`` is None.
    """

    weight: Optional[np.ndarray]  # (out, in) float64; None when ``op`` is given
    bias: Optional[np.ndarray]  # (out,) float64
    slope: Any  # None (output), a float, or (units,) float64
    names: List[str] = field(default_factory=list)  # the modules folded into this layer
    op: Any = None  # a _graph.StageOp, or None: the dense weight and bias
    carry: int = 0  # the trailing columns that are carried, not split
    _inf: Optional[bool] = field(default=None, repr=False, compare=False)  # tol_inf(), once known
    _bq: Any = field(default=None, repr=False, compare=False)  # the exact bias (a Q), once made

    @property
    def dense(self) -> bool:
        return self.op is None

    @property
    def W(self) -> np.ndarray:
        """The dense weight (out, in) of a dense layer."""
        if self.weight is None:
            raise TypeError("an operation layer (a stage of a module graph) has no dense weight")
        return self.weight

    @property
    def b(self) -> np.ndarray:
        """The dense bias (out,) of a dense layer."""
        if self.bias is None:
            raise TypeError("an operation layer (a stage of a module graph) has no dense bias")
        return self.bias

    @property
    def width(self) -> int:
        """All output columns (units, then carried values)."""
        return self.op.out_features if self.op is not None else self.W.shape[0]

    @property
    def units(self) -> int:
        """The columns that split (the neurons)."""
        return self.width - self.carry

    @property
    def in_features(self) -> int:
        return self.op.in_features if self.op is not None else self.W.shape[1]

    def rows(self, H: np.ndarray, c: Optional[np.ndarray] = None) -> np.ndarray:
        """(V, width) the map at the rows of ``H`` (V, in); ``c`` (V,) multiplies the constant (default 1)."""
        if self.op is not None:
            return self.op.rows(H, c)
        out = H @ self.W.T
        out += self.b if c is None else np.asarray(c, np.float64)[:, None] * self.b
        return out

    def bound(self, S: np.ndarray, c: Optional[np.ndarray] = None) -> np.ndarray:
        """The map with absolute weights and constants, at the rows of ``S`` >= 0 (rounding bounds)."""
        if self.op is not None:
            return self.op.bound(S, c)
        cb = 1.0 if c is None else np.asarray(c, np.float64)[:, None]
        return S @ np.abs(self.W).T + cb * np.abs(self.b)

    def exact(self, M, c: np.ndarray):
        """The map at the rows of ``M`` (a :class:`~._rational.Q` (k, in)), exactly; ``c`` (k,) an
        object array of ints multiplying the constants (0/1, or a row's denominator)."""
        if self.op is not None:
            return self.op.exact(M, c)
        from . import _ops
        from ._rational import Q
        y = _ops.exact_bilinear(lambda a, w: torch.nn.functional.linear(a, w), M, self.W, self.in_features)
        if self._bq is None:
            self._bq = Q.of(self.b)
        return y + c.reshape(-1, 1) * self._bq[None, :]

    def absmax(self) -> np.ndarray:
        """(width,) a bound of each row's largest |weight|."""
        return self.op.absmax() if self.op is not None else np.abs(self.W).max(axis=1)

    def tol_inf(self) -> bool:
        """Whether the rounding bound of this map is taken as ``|h|_inf * sum_j |w_kj|`` rather
        than ``|h|_1 * max_j |w_kj|`` (both bound ``sum_j |w_kj| |h_j|``): for operations whose
        outputs each read few of many inputs (a convolution reads a patch), where the first is a
        fan-in-to-width ratio tighter."""
        if self.op is None:
            return False
        if self._inf is None:
            amax, rsum = self.op.absmax(), self.op.rowsum()
            fan = np.divide(rsum, amax, out=np.zeros_like(rsum), where=amax > 0)
            self._inf = bool(np.array_equal(amax, rsum) or 16 * fan.max(initial=0.0) <= self.in_features)
        return self._inf

    def tol_coef(self) -> np.ndarray:
        """(width,) each row's factor of the rounding bound: ``tol = rtol (scale(h) coef + const)``."""
        return self.op.rowsum() if self.tol_inf() else self.absmax()

    def scale(self, h):
        """(V,) the input's size the bound multiplies (``|h|_inf`` or ``|h|_1``, see ``tol_inf``):
        numpy or torch rows."""
        a = abs(h)
        if isinstance(a, np.ndarray):
            return a.max(1, initial=0.0) if self.tol_inf() else a.sum(1)
        return (a.amax(1) if a.shape[1] else a.sum(1)) if self.tol_inf() else a.sum(1)

    def const_abs(self) -> np.ndarray:
        """(width,) the size of each row's constant terms."""
        return self.op.const_abs() if self.op is not None else np.abs(self.b)

    def slopes(self) -> np.ndarray:
        """(units,) the negative-side slope of each unit."""
        return np.broadcast_to(np.asarray(self.slope, np.float64), (self.units,))

    def activate(self, z):
        """The activation applied to pre-activations (numpy or torch), carried columns unchanged."""
        if self.slope is None:
            return z
        m = self.units
        if isinstance(z, torch.Tensor):
            s = torch.as_tensor(self.slopes(), dtype=z.dtype, device=z.device)
            head = torch.where(z[..., :m] > 0, z[..., :m], s * z[..., :m])
            return torch.cat([head, z[..., m:]], -1) if self.carry else head
        head = np.where(z[..., :m] > 0, z[..., :m], self.slopes() * z[..., :m])
        return np.concatenate([head, z[..., m:]], -1) if self.carry else head


@dataclass
class Network:
    """A chain of :class:`Layer`; the last one has no activation.

    ``max_info``: for a network with max-pooling, where each tournament's units sit
    (:class:`~splinescope.spatial._graph.MaxInfo`), to merge the cells that share every argmax."""

    layers: List[Layer]
    max_info: List[Any] = field(default_factory=list)

    @property
    def in_features(self) -> int:
        return self.layers[0].in_features

    @property
    def out_features(self) -> int:
        return self.layers[-1].width

    @property
    def dense(self) -> bool:
        """Every layer a dense matrix, nothing carried, no pooling (the plain MLP form)."""
        return all(l.op is None and l.carry == 0 for l in self.layers) and not self.max_info

    @property
    def hidden(self) -> List[Layer]:
        """The layers with an activation (whose neurons split the input space)."""
        return [l for l in self.layers if l.slope is not None]

    def restrict(self, origin: np.ndarray, basis: np.ndarray) -> "Network":
        """The same network on the plane ``x = origin + basis.T @ (s, t)``: a 2-input network.

        The first map becomes a dense (width, 2) matrix in float64 (its values on the plane)."""
        first = self.layers[0]
        if first.op is None:
            w = first.weight @ basis.T  # (out, 2)
            b = first.bias + first.weight @ origin
        else:
            w = first.op.rows(np.asarray(basis, np.float64), np.zeros(2)).T.copy()
            b = first.op.rows(np.asarray(origin, np.float64)[None, :])[0]
        return Network([Layer(w, b, first.slope, first.names, carry=first.carry)] + self.layers[1:],
                       max_info=self.max_info)

    def forward(self, x: np.ndarray, upto: Optional[int] = None) -> List[np.ndarray]:
        """Pre-activations of every layer (float64; carried columns included) at the rows of ``x``."""
        out = []
        h = np.asarray(x, dtype=np.float64)
        for layer in self.layers[:upto]:
            z = layer.rows(h)
            out.append(z)
            h = layer.activate(z)
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[-1]


def _name(m: torch.nn.Module) -> str:
    # TorchScript modules keep the Python class name in ``original_name``; a parametrized module
    # (weight_norm, spectral_norm) is a subclass made for it ("ParametrizedLinear"): its base's name
    # (its ``weight`` is the parametrization's value).
    if parametrize.is_parametrized(m):
        return type(m).__bases__[0].__name__
    script = getattr(m, "original_name", None)
    if script:
        return script
    name = type(m).__name__
    base = getattr(torch.nn, name, None)
    if isinstance(base, type) and issubclass(base, torch.nn.Module) and type(m).forward is not base.forward:
        # not torch's own layer of that name (a quantization-aware torch.ao.nn.qat.Linear fake-quantizes its
        # weight in forward): named by its module, so that no reader takes it for torch's
        return f"{type(m).__module__}.{name}"
    return name


def _flatten(model: torch.nn.Module, prefix: str = ""):
    """Yield (position, module) through nested Sequentials (a module used twice is yielded twice:
    ``named_children`` would skip the second use of one ReLU, which forward applies)."""
    if _name(model) == "Sequential":
        for key, child in model._modules.items():
            if child is not None:
                yield from _flatten(child, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".") or "0", model


def check_finite(modules, where: str = "") -> None:
    """Raise :class:`NonFiniteWeightsError` naming the first module with a NaN or infinite weight.

    ``modules`` is an iterable of (position, module); only each module's own parameters and
    buffers are read (``recurse=False``). ``where`` is put before the message (e.g. a file name).

    >>> lin = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = lin.bias.fill_(float("nan"))
    >>> check_finite([("0", lin)])
    Traceback (most recent call last):
    ...
    splinescope.spatial._errors.NonFiniteWeightsError: layer 0 (Linear) has non-finite weights (NaN or inf)
    """
    for pos, m in modules:
        for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)):
            if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all()):
                raise NonFiniteWeightsError(f"{where}layer {pos or '0'} ({_name(m)}) has non-finite weights "
                                            "(NaN or inf)")


def _f64(t) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().copy()


class _Fold:
    """The layers read so far and the pending affine map ``h -> w h + b`` (``w`` None: none yet)."""

    def __init__(self, width: Optional[int]):
        self.layers: List[Layer] = []
        self.w: Optional[np.ndarray] = None
        self.b: Optional[np.ndarray] = None
        self.names: List[str] = []
        self.width = width  # the current width, None while unknown (before the first map)
        self.pre: List[tuple] = []  # constant ops on the input before any map: ("scale"|"divide"|"shift", c)

    def compose(self, w2, b2, name):
        if self.w is None:
            for op, c in reversed(self.pre):  # w2 (op(h)) + b2, folded into w2 and b2
                w2, b2 = (w2 * c, b2) if op == "scale" else (w2 / c, b2) if op == "divide" \
                    else (w2, w2 @ np.full(w2.shape[1], c) + b2)
            self.pre = []
            self.w, self.b = w2, b2
        else:
            if w2.shape[1] != self.w.shape[0]:
                raise ValueError(f"layer {name} expects {w2.shape[1]} inputs but receives {self.w.shape[0]}")
            self.w, self.b = w2 @ self.w, w2 @ self.b + b2
        self.width = self.w.shape[0]
        self.names.append(name)

    def constant(self, op, c, name):
        """``x * c`` (op "scale"), ``x / c`` ("divide") or ``x + c`` ("shift") on the current value."""
        if self.w is None:
            self.pre.append((op, c))
        elif op == "scale":
            self.w, self.b = self.w * c, self.b * c
        elif op == "divide":
            self.w, self.b = self.w / c, self.b / c
        else:
            self.b = self.b + c
        self.names.append(name)

    def _pending(self, name):
        if self.w is None:
            if self.width is None:
                raise ValueError(f"layer {name} is an activation before any Linear layer; "
                                 "pass in_features= so its width is known")
            pre, self.pre = self.pre, []
            self.w, self.b = np.eye(self.width), np.zeros(self.width)
            for op, c in pre:
                self.constant(op, c, None)
                self.names.pop()

    def emit(self, slope, name):
        self._pending(name)
        self.layers.append(Layer(self.w, self.b, slope, self.names + [name]))
        self.w, self.b, self.names = None, None, []

    def finish(self) -> Network:
        if self.w is None and not self.layers:
            raise ValueError("the model has no Linear layer")
        if self.w is None:
            # ends with an activation: its output is the network's output, through an identity map
            self._pending("output")
        assert self.w is not None and self.b is not None  # _pending made the identity map
        self.layers.append(Layer(self.w, self.b, None, self.names))
        return Network(self.layers)


def _read_module(fold: _Fold, m: Any, label: str, kind: str) -> None:
    """Fold one supported layer (a kind of :data:`MODULE_KINDS`) into ``fold``.

    ``m`` is a ``torch.nn.Module`` whose attributes (weight, eps, ...) depend on ``kind``."""
    width = fold.width
    if kind == "Linear":
        wt = _f64(m.weight)
        if width is not None and wt.shape[1] != width:
            raise ValueError(f"layer {label} expects {wt.shape[1]} inputs but receives {width}")
        bias = _f64(m.bias) if m.bias is not None else np.zeros(wt.shape[0])
        fold.compose(wt, bias, label)
    elif kind in ("ReLU", "LeakyReLU", "PReLU"):
        if kind == "ReLU":
            slope = 0.0
        elif kind == "LeakyReLU":
            slope = float(m.negative_slope)
        else:
            if m.weight.numel() != 1:
                raise UnsupportedLayerError(
                    f"layer {label} has {m.weight.numel()} slopes; only a PReLU with one "
                    f"shared slope is supported (num_parameters=1)")
            slope = float(m.weight.detach().reshape(()))
        fold.emit(slope, label)
    elif kind == "BatchNorm1d":
        if m.training:
            raise UnsupportedLayerError(
                f"layer {label} is in training mode (batch statistics are not a fixed map); "
                "call model.eval() first")
        if m.running_mean is None:
            raise UnsupportedLayerError(f"layer {label} keeps no running statistics "
                                        "(track_running_stats=False); it is not a fixed map")
        scale = 1.0 / np.sqrt(_f64(m.running_var) + float(m.eps))
        if m.affine:
            scale = scale * _f64(m.weight)
            shift = _f64(m.bias)
        else:
            shift = np.zeros_like(scale)
        bn_w = np.diag(scale)
        bn_b = shift - scale * _f64(m.running_mean)
        if width is not None and width != scale.shape[0]:
            raise ValueError(f"layer {label} has {scale.shape[0]} features but receives {width}")
        fold.compose(bn_w, bn_b, label)
    # Identity, Flatten, Dropout: nothing


def _is_chain_of_modules(model: torch.nn.Module) -> bool:
    """A Sequential (TorchScript too), a TorchScript module, or one torch.nn layer: read as modules;
    anything else (a subclass with its own forward) is traced."""
    def library(m):  # a torch.nn layer, or TorchScript: read as a module, never traced
        return isinstance(m, torch.jit.ScriptModule) or type(m).__module__.startswith("torch.nn.")

    if _name(model) == "Sequential":  # traced when it holds a block of the user's (with its own forward)
        return all(library(m) or _name(m) == "Sequential" for _, m in _flatten(model))
    return library(model)


def _parse_traced(model: torch.nn.Module, fold: _Fold) -> Network:
    from . import _trace

    steps = _trace.chain(model)  # every operation checked before any is folded
    check_finite((s.label.split(" (")[0], s.module) for s in steps if s.kind == "module")
    for s in steps:
        for t in (s.weight, s.bias):
            if t is not None and not bool(torch.isfinite(t.detach()).all()):
                raise NonFiniteWeightsError(f"layer {s.label} has non-finite weights (NaN or inf)")
    for s in steps:
        if s.kind == "module" and s.module is not None:
            _read_module(fold, s.module, s.label, _name(s.module))
        elif s.kind == "linear":
            wt = _f64(s.weight)
            if wt.ndim != 2 or (s.bias is not None and tuple(s.bias.shape) != wt.shape[:1]):
                raise ValueError(f"layer {s.label}: the weight must be (out, in) and the bias (out,), got "
                                 f"{tuple(wt.shape)} and {None if s.bias is None else tuple(s.bias.shape)}")
            if fold.width is not None and wt.shape[1] != fold.width:
                raise ValueError(f"layer {s.label} expects {wt.shape[1]} inputs but receives {fold.width}")
            fold.compose(wt, _f64(s.bias) if s.bias is not None else np.zeros(wt.shape[0]), s.label)
        elif s.kind == "activation":
            fold.emit(s.value, s.label)
        elif s.kind == "width":
            if fold.width is not None and fold.width != s.value:
                raise ValueError(f"layer {s.label} reshapes to {s.value} features but receives {fold.width}")
            fold.width = None if s.value is None else int(s.value)
        else:
            fold.constant(s.kind, s.value, s.label)
    return fold.finish()


def _unwrap(model):
    """The module a wrapper runs: ``torch.compile(model)`` (the same weights, the same map) and
    ``DataParallel`` / ``DistributedDataParallel`` (``.module``), however nested."""
    while True:
        inner = getattr(model, "_orig_mod", None) if type(model).__name__ == "OptimizedModule" else \
            getattr(model, "module", None) if isinstance(model, (torch.nn.DataParallel,
                                                                  torch.nn.parallel.DistributedDataParallel)) else None
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _weight_hook(hook) -> bool:
    """Whether a forward pre-hook only recomputes a weight from the module's own tensors (the
    older ``torch.nn.utils.weight_norm`` and ``spectral_norm``, and ``torch.nn.utils.prune``)."""
    from torch.nn.utils import prune
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    return isinstance(hook, (WeightNorm, SpectralNorm, prune.BasePruningMethod))


def _run_weight_hooks(model: torch.nn.Module) -> None:
    """Refuse a model whose forward runs hooks that reading it would not (the trace and the layers
    read their weights without calling forward): any forward hook, and any forward pre-hook but
    those that recompute a weight (:func:`_weight_hook`), which are run here once, as forward runs
    them before each call (the weight they left may be a step old: ``weight_norm``'s ``weight`` is
    recomputed from ``weight_g`` and ``weight_v`` at the start of each forward)."""
    import torch.nn.modules.module as nn_module

    for kind in ("_global_forward_hooks", "_global_forward_pre_hooks"):
        if getattr(nn_module, kind, None):
            raise UnsupportedLayerError(f"a global module {kind[8:].replace('_', ' ')[:-1]} is registered "
                                        "(torch.nn.modules.module.register_module_forward_"
                                        f"{'pre_' if 'pre' in kind else ''}hook), which reading the model does not "
                                        "run; remove it (its handle's .remove()) first")
    for where, m in model.named_modules():
        name = f"layer {where} ({_name(m)})" if where else f"the model ({_name(m)})"
        hooks = {k: h for k, h in (getattr(m, "_forward_hooks", None) or {}).items() if not _export_hook(h)}
        if hooks:
            hook = _hook_name(next(iter(hooks.values())))
            quant = " (a quantization observer: partition the float model, before prepare_qat)" \
                if "observer" in hook else ""
            raise UnsupportedLayerError(
                f"{name} has a forward hook ({hook}){quant}, which reading the model does not run (the weights are "
                "read, forward is not called); remove it (its handle's .remove()) or write what it does into forward()")
        pre = {k: h for k, h in (getattr(m, "_forward_pre_hooks", None) or {}).items() if not _export_hook(h)}
        for hook in pre.values():
            if not _weight_hook(hook):
                raise UnsupportedLayerError(
                    f"{name} has a forward pre-hook ({_hook_name(hook)}), which reading the model does not run "
                    "(the weights are read, forward is not called); remove it (its handle's .remove()) or write "
                    "what it does into forward()")
            if m.training and type(hook).__name__ == "SpectralNorm":
                raise UnsupportedLayerError(
                    f"{name} uses spectral_norm in training mode, where computing its weight runs a power iteration "
                    "that updates the module's state; call model.eval() first")
        with torch.no_grad():
            for hook in pre.values():
                hook(m, None)


def _export_hook(hook) -> bool:
    """torch.export's own hooks on a program's module (input checks, bookkeeping): they change no value."""
    return getattr(hook, "__module__", "") == "torch.export._unlift"


def _hook_name(hook) -> str:
    return getattr(hook, "__name__", None) or type(hook).__name__


def parse(model: torch.nn.Module, in_features: Optional[int] = None, in_shape=None) -> Network:
    """Read a network into its internal form, refusing what is not piecewise linear.

    Parameters
    ----------
    model : torch.nn.Module
        A ``torch.nn.Sequential`` (possibly nested, possibly TorchScript) of supported layers, a
        single ``torch.nn.Linear``, or any module whose ``forward`` is a chain of supported
        operations (read by tracing it with ``torch.fx``; see the module docstring).
    in_features : int, optional
        The input width, needed only when the network starts with an activation.
    in_shape : tuple of int, optional
        One input's shape (e.g. ``(1, 8, 8)``), needed for a network that starts with a
        convolution (``partition`` passes the plane's).

    Examples
    --------
    >>> import torch
    >>> net = parse(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)))
    >>> [(l.width, l.slope) for l in net.layers]
    [(3, 0.0), (1, None)]
    """
    exported = False
    if isinstance(model, torch.export.ExportedProgram):  # torch.export: its program as a graph of ATen calls
        model, exported = model.module(check_guards=False), True
    model = _unwrap(model)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or a torch.export.ExportedProgram, got "
                        f"{type(model).__name__}")
    _run_weight_hooks(model)  # (an ExportedProgram's module has torch.export's own hooks, which are harmless)
    for where, m in model.named_modules():
        if parametrize.is_parametrized(m) and m.training:
            raise UnsupportedLayerError(
                f"layer {where or type(model).__name__} ({_name(m)}, parametrized: "
                f"{', '.join(type(q).__name__ for ps in m.parametrizations.values() for q in ps)}) is in training "
                "mode, where reading its weight may update the parametrization's state (spectral_norm's power "
                "iteration); call model.eval() first")
    try:
        return _parse_module(model, in_features, in_shape)
    except UnsupportedLayerError as e:
        if exported or "could not be traced with torch.fx" not in str(e):  # (once: a program is not exported again)
            raise
        return parse(_export(model, in_features, in_shape, e), in_features, in_shape)


def _export(model: torch.nn.Module, in_features, in_shape, fx_error: UnsupportedLayerError):
    """A forward that torch.fx cannot trace (a loop over ``x.size()``, as the classic tutorial
    LeNet's ``num_flat_features``) captured by ``torch.export`` instead, on an example batch of two
    inputs: static shapes, and data-dependent control flow refused by export itself. The model is
    left as it was (:func:`untouched`)."""
    from ._graph import _guess_shape

    shape = tuple(in_shape) if in_shape is not None else (in_features,) if in_features is not None \
        else _guess_shape(model)
    if shape is None:
        raise fx_error
    dtype = next((q.dtype for q in model.parameters() if q.is_floating_point()), torch.float32)
    importlib.import_module("torch._dynamo")  # (its import sets torch's log levels: first, then ours)

    loggers = [logging.getLogger(n) for n in ("torch.fx.experimental.symbolic_shapes", "torch._dynamo", "torch.export",
                                              "torch._export")]
    levels = [g.level for g in loggers]
    try:
        for g in loggers:  # (its warnings about the failure it reports)
            g.setLevel(logging.ERROR)
        with untouched(model), contextlib.redirect_stderr(io.StringIO()):  # (export prints its failed graph)
            return torch.export.export(model, (torch.zeros((2,) + tuple(shape), dtype=dtype),), strict=False)
    except Exception as e:  # noqa: BLE001 -- any failure is the same answer, with its reason
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}".rstrip(": ")
        raise UnsupportedLayerError(f"{fx_error} (torch.export could not capture it either: {reason[:300]})") from None
    finally:
        for g, level in zip(loggers, levels):
            g.setLevel(level)


@contextlib.contextmanager
def untouched(model: torch.nn.Module):
    """Run something on ``model`` and leave the model as it was: its buffers (a BatchNorm in
    training mode updates its running statistics; an observer resizes or replaces its buffers) and
    the random stream (dropout in training)."""
    saved = [(m, k, b, b.detach().clone()) for m in model.modules() for k, b in m._buffers.items() if b is not None]
    devices = sorted({q.device.index or 0 for q in model.parameters() if q.is_cuda})
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            for m, k, b, v in saved:
                m._buffers[k] = b
                if b.shape == v.shape:
                    b.copy_(v)
                else:
                    b.set_(v.untyped_storage(), v.storage_offset(), v.shape, v.stride())


def _parse_module(model: torch.nn.Module, in_features, in_shape) -> Network:
    """:func:`parse` of a module, after its checks."""
    if _plain(model):
        fold = _Fold(in_features)
        if not _is_chain_of_modules(model):
            return _parse_traced(model, fold)
        check_finite(_flatten(model))
        from . import _trace
        from ._graph import registered

        layers = list(_flatten(model))
        # the layer neither reader knows (a chain with a convolution and a softmax: the softmax)
        unknown = [(p, _name(m)) for p, m in layers if _name(m) not in MODULE_KINDS | GRAPH_MODULES and
                   registered(type(m)) is None] or [(p, _name(m)) for p, m in layers if _name(m) not in MODULE_KINDS]
        if unknown:
            pos, kind = unknown[0]
            if _trace.nonlinear_module(kind):
                raise UnsupportedLayerError(_trace.not_pl(f"layer {pos} ({kind})", kind, SUPPORTED))
            if isinstance(model, torch.jit.ScriptModule):
                raise UnsupportedLayerError(
                    f"layer {pos} ({kind}) is a TorchScript module with a forward() of its own, which is not read: "
                    "TorchScript is read as a chain of supported layers; pass the Python module (or a torch.export "
                    f"program) instead; supported: {SUPPORTED}")
            raise UnsupportedLayerError(f"layer {pos} ({kind}) is not supported (not a known piecewise-linear layer); "
                                        f"supported: {SUPPORTED}")
        for pos, m in layers:
            kind = _name(m)
            _read_module(fold, m, f"{pos} ({kind})", kind)
        return fold.finish()
    if isinstance(model, torch.jit.ScriptModule) or (_name(model) == "Sequential" and any(
            isinstance(m, torch.jit.ScriptModule) for _, m in _flatten(model))):
        bad = next(((p, _name(m)) for p, m in _flatten(model) if _name(m) not in MODULE_KINDS), ("?", "?"))
        raise UnsupportedLayerError(
            f"layer {bad[0]} ({bad[1]}) is not supported in a TorchScript model (TorchScript is read as a "
            f"Sequential of {SUPPORTED}); load the state_dict into the model's class instead")
    from . import _graph

    shape = tuple(in_shape) if in_shape is not None else ((in_features,) if in_features is not None else None)
    return _graph.compile(model, shape)


def _plain(model: torch.nn.Module) -> bool:
    """Whether the chain reader (dense matrices, folded in float64) reads the model: a Sequential of
    :data:`MODULE_KINDS` (one-slope PReLU), or a traced forward that is such a chain. Anything else
    (convolutions, pooling, skip connections, other activations) is read as a graph (``_graph``)."""
    if isinstance(model, torch.jit.ScriptModule):
        return True
    if _is_chain_of_modules(model):
        from ._graph import registered

        kinds = [(_name(m), m) for _, m in _flatten(model)]
        if any(k not in MODULE_KINDS and k not in GRAPH_MODULES and registered(type(m)) is None for k, m in kinds):
            return True  # refused by the chain reader, naming the layer
        return all(k in MODULE_KINDS and not (k == "PReLU" and m.weight.numel() != 1) for k, m in kinds)
    from . import _trace
    from ._graph import registered

    if any(registered(type(m)) is not None for m in model.modules()):
        return False
    try:
        _trace.chain(model)
    except UnsupportedLayerError as e:
        msg = str(e)
        if any(k in msg for k in ("could not be traced", "is not piecewise linear", "must return one tensor",
                                  "inputs (")):
            raise
        return False
    return True
