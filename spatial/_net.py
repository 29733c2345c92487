"""The internal form of a piecewise-linear network: a chain of affine maps and activations.

``parse(model)`` reads a ``torch.nn.Sequential`` (nested too, TorchScript too) into a
:class:`Network`: a list of :class:`Layer`, each an affine map ``z = W h + b`` (float64, from the
weights' exact values) followed by a piecewise-linear activation (ReLU / leaky ReLU / one-slope
PReLU) or by nothing (the output). Identity, Flatten and Dropout vanish; BatchNorm1d in eval
mode and runs of affine maps are folded into one affine map.

The partition engine only needs, per layer, the pre-activations ``z`` of the vertices and the
activation that turns them into the next layer's input. Convolutions, pooling and residual
blocks slot in as further :class:`Layer` kinds with their own ``affine`` (a conv is still an
affine map of the flattened input) and their own switching functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch

from ._errors import NonFiniteWeightsError, UnsupportedLayerError

__all__ = ["Layer", "Network", "parse", "SUPPORTED", "check_finite"]

SUPPORTED = ("Linear, ReLU, LeakyReLU, PReLU (one slope), Identity, Flatten, Dropout, "
             "BatchNorm1d (eval mode), nested Sequential")


@dataclass
class Layer:
    """An affine map followed by an optional piecewise-linear activation.

    ``z = h @ weight.T + bias``; then ``a = where(z > 0, z, slope * z)`` when ``slope`` is not
    None (0.0 for ReLU), and the layer is the output when it is None.
    """

    weight: np.ndarray  # (out, in) float64
    bias: np.ndarray  # (out,) float64
    slope: Optional[float]  # negative-side slope of the activation; None: no activation
    names: List[str] = field(default_factory=list)  # the modules folded into this layer

    @property
    def width(self) -> int:
        return self.weight.shape[0]

    def activate(self, z):
        """The activation applied to pre-activations (numpy or torch)."""
        if self.slope is None:
            return z
        if isinstance(z, torch.Tensor):
            return torch.where(z > 0, z, self.slope * z)
        return np.where(z > 0, z, self.slope * z)


@dataclass
class Network:
    """A chain of :class:`Layer`; the last one has no activation."""

    layers: List[Layer]

    @property
    def in_features(self) -> int:
        return self.layers[0].weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.layers[-1].weight.shape[0]

    @property
    def hidden(self) -> List[Layer]:
        """The layers with an activation (whose neurons split the input space)."""
        return [l for l in self.layers if l.slope is not None]

    def restrict(self, origin: np.ndarray, basis: np.ndarray) -> "Network":
        """The same network on the plane ``x = origin + basis.T @ (s, t)``: a 2-input network."""
        first = self.layers[0]
        w = first.weight @ basis.T  # (out, 2)
        b = first.bias + first.weight @ origin
        return Network([Layer(w, b, first.slope, first.names)] + self.layers[1:])

    def forward(self, x: np.ndarray, upto: Optional[int] = None) -> List[np.ndarray]:
        """Pre-activations of every layer (float64) at the rows of ``x``."""
        out = []
        h = np.asarray(x, dtype=np.float64)
        for layer in self.layers[:upto]:
            z = h @ layer.weight.T + layer.bias
            out.append(z)
            h = layer.activate(z)
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[-1]


def _name(m: torch.nn.Module) -> str:
    # TorchScript modules keep the Python class name in ``original_name``.
    return getattr(m, "original_name", None) or type(m).__name__


def _flatten(model: torch.nn.Module, prefix: str = ""):
    """Yield (position, module) through nested Sequentials."""
    if _name(model) == "Sequential":
        for key, child in model.named_children():
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


def parse(model: torch.nn.Module, in_features: Optional[int] = None) -> Network:
    """Read a network into its internal form, refusing what is not piecewise linear.

    Parameters
    ----------
    model : torch.nn.Module
        A ``torch.nn.Sequential`` (possibly nested, possibly TorchScript) of supported layers, or
        a single ``torch.nn.Linear``.
    in_features : int, optional
        The input width, needed only when the network starts with an activation.

    Examples
    --------
    >>> import torch
    >>> net = parse(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)))
    >>> [(l.width, l.slope) for l in net.layers]
    [(3, 0.0), (1, None)]
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_finite(_flatten(model))
    layers: List[Layer] = []
    w: Optional[np.ndarray] = None  # pending affine map, None = identity
    b: Optional[np.ndarray] = None
    names: List[str] = []
    width = in_features

    def compose(w2, b2, name):
        nonlocal w, b, width
        if w is None:
            w, b = w2, b2
        else:
            if w2.shape[1] != w.shape[0]:
                raise ValueError(f"layer {name} expects {w2.shape[1]} inputs but receives {w.shape[0]}")
            w, b = w2 @ w, w2 @ b + b2
        width = w.shape[0]
        names.append(name)

    def emit(slope, name):
        nonlocal w, b, names
        if w is None:
            if width is None:
                raise ValueError(f"layer {name} is an activation before any Linear layer; "
                                 "pass in_features= so its width is known")
            w, b = np.eye(width), np.zeros(width)
        layers.append(Layer(w, b, slope, names + [name]))
        w, b, names = None, None, []

    for pos, m in _flatten(model):
        kind = _name(m)
        label = f"{pos} ({kind})"
        if kind == "Linear":
            wt = _f64(m.weight)
            if width is not None and wt.shape[1] != width:
                raise ValueError(f"layer {label} expects {wt.shape[1]} inputs but receives {width}")
            bias = _f64(m.bias) if m.bias is not None else np.zeros(wt.shape[0])
            compose(wt, bias, label)
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
            emit(slope, label)
        elif kind in ("Identity", "Flatten", "Dropout"):
            continue
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
            compose(bn_w, bn_b, label)
        else:
            raise UnsupportedLayerError(
                f"layer {label} is not supported (not a known piecewise-linear layer); "
                f"supported: {SUPPORTED}")
    if w is None and not layers:
        raise ValueError("the model has no Linear layer")
    if w is None:
        # ends with an activation: its output is the network's output, through an identity map
        w, b = np.eye(width), np.zeros(width)
    layers.append(Layer(w, b, None, names))
    return Network(layers)
