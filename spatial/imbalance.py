"""Layer imbalance ``D_i = W_{i+1}^T W_{i+1} - W_i W_i^T`` of consecutive linear layers, and a
deep-linear-network runner to watch it.

Reference: S. Arora, N. Cohen, E. Hazan, "On the Optimization of Deep Networks: Implicit
Acceleration by Overparameterization" (ICML 2018), and S. Du, W. Hu, J. Lee, "Algorithmic
Regularization in Learning Deep Homogeneous Models: Layers are Automatically Balanced"
(NeurIPS 2018). With ``W_i`` of shape (out, in), under gradient flow of any loss of the product
``W_L ... W_1`` every ``D_i`` is conserved; with L2 weight decay ``mu`` (``dW/dt = -grad - mu W``)
``D_i(t) = D_i(0) exp(-2 mu t)``. Gradient descent with step ``eta`` moves ``D_i`` by
``eta^2 (G_{i+1}^T G_{i+1} - G_i G_i^T)`` per step (``G_i`` the gradients), which does not vanish
while the gradients do not: small batches and input noise keep them alive and shrink ``D_i``;
full-batch descent to a minimum leaves it nearly where it started.

Public: :func:`layer_imbalance` (any module), :func:`train_deep_linear` and its result
:class:`DeepLinearRun` (plain gradient descent on a bias-free deep linear network, in float64).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union, cast

import numpy as np
import torch

__all__ = ["DeepLinearRun", "layer_imbalance", "train_deep_linear"]

_OPTIMIZERS = ("gd", "sgd")


def _linears(model: torch.nn.Module) -> List[Tuple[str, torch.nn.Linear]]:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers = [(name or "<model>", m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if len(layers) < 2:
        raise ValueError(f"the model has {len(layers)} Linear layer{'s' * (len(layers) != 1)}; "
                         "the imbalance needs at least 2")
    for (n0, a), (n1, b) in zip(layers, layers[1:]):
        if b.in_features != a.out_features:
            raise ValueError(f"Linear layers do not chain: {n1} takes {b.in_features} inputs but "
                             f"{n0} gives {a.out_features}")
    return layers


def layer_imbalance(model: torch.nn.Module, *, matrices: bool = False
                    ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
    """Frobenius norms of ``D_i = W_{i+1}^T W_{i+1} - W_i W_i^T`` over consecutive Linear layers.

    The ``torch.nn.Linear`` modules of ``model`` are taken in module order (``named_modules``),
    whatever lies between them; their biases are ignored. (With biases and no activation in
    between, the matrix gradient flow conserves is ``D_i - b_i b_i^T``; with a ReLU between
    them, only the diagonal of ``D_i - b_i b_i^T`` is conserved.)

    Parameters
    ----------
    model : torch.nn.Module
        Any module with at least two Linear layers whose widths chain.
    matrices : bool
        Also return the matrices ``D_i``.

    Returns
    -------
    torch.Tensor or (torch.Tensor, list of torch.Tensor)
        ``(L - 1,)`` float64 norms for ``L`` Linear layers, detached, on the weights' device; with
        ``matrices``, also the ``D_i``, each ``(out_i, out_i)`` float64.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.eye(2)); _ = net[1].weight.copy_(torch.tensor([[1., 0.]]))
    >>> norms, (D,) = layer_imbalance(net, matrices=True)
    >>> norms, D
    (tensor([1.], dtype=torch.float64), tensor([[ 0.,  0.],
            [ 0., -1.]], dtype=torch.float64))
    """
    layers = _linears(model)
    Ds = []
    with torch.no_grad():
        for (_, a), (_, b) in zip(layers, layers[1:]):
            Wa, Wb = a.weight.to(torch.float64), b.weight.to(torch.float64)  # (h, in), (out, h)
            Ds.append(Wb.T @ Wb - Wa @ Wa.T)  # (h, h)
        norms = torch.stack([torch.linalg.matrix_norm(D) for D in Ds])
    return (norms, Ds) if matrices else norms


# ----------------------------------------------------------------------------------------------
# deep linear networks

@dataclass
class DeepLinearRun:
    """The record of :func:`train_deep_linear`: one row per step, plus the final state."""

    loss: np.ndarray  # (steps + 1,) float64: full-data loss 0.5 mean ||f(x) - y||^2 before each step, and at the end
    imbalance: np.ndarray  # (steps + 1, depth - 1) float64: ||D_i||_F at the same times
    model: torch.nn.Sequential  # the trained network (bias-free Linear layers, float64)
    lr: float  # step size eta
    weight_decay: float  # L2 coefficient mu, in the gradient: W <- W - eta (grad + mu W)

    def __repr__(self) -> str:
        steps = len(self.loss) - 1
        first, last = (np.array2string(self.imbalance[i], precision=4) for i in (0, -1))
        return (f"DeepLinearRun(depth={self.imbalance.shape[1] + 1}, steps={steps}, lr={self.lr}, "
                f"weight_decay={self.weight_decay}, loss {self.loss[0]:.4g} -> {self.loss[-1]:.4g}, "
                f"imbalance {first} -> {last})")


def _teacher(width: int, n: int, g: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` Gaussian inputs of ``R^width`` and their images by a random linear teacher."""
    X = torch.randn(n, width, generator=g, dtype=torch.float64)
    T = torch.randn(width, width, generator=g, dtype=torch.float64) / width ** 0.5
    return X, X @ T.T


def _check_number(value, name: str, *, positive: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name}={value} must be {'positive' if positive else 'non-negative'} and finite")
    return v


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}={value} must be at least {low}")
    return int(value)


def train_deep_linear(depth: int, width: int, *, data=None, steps: int, lr: float,
                      weight_decay: float = 0.0, input_noise: float = 0.0,
                      batch_size: Optional[int] = None, optimizer: str = "gd",
                      seed: int = 0) -> DeepLinearRun:
    """Train a bias-free deep linear network by plain (stochastic) gradient descent, in float64.

    The network is ``depth`` Linear layers ``in -> width -> ... -> width -> out`` without biases,
    initialised ``N(0, 1/fan_in)``. Each step ``W <- W - lr (grad + weight_decay W)`` on the loss
    ``0.5 mean ||f(x) - y||^2`` of the batch, whose inputs get fresh Gaussian noise of standard
    deviation ``input_noise``. The loss is recorded on the full clean data.

    Parameters
    ----------
    depth : int
        Number of Linear layers (at least 2).
    width : int
        Width of the hidden layers (and, with the default data, of the input and output).
    data : (X, Y), optional
        ``(n, in)`` inputs and ``(n, out)`` targets (tensors or arrays). Default: 256 inputs
        ``x ~ N(0, I_width)`` and ``y = T x`` with a random teacher ``T`` (entries
        ``N(0, 1/width)``), drawn from ``seed``.
    steps : int
        Number of steps.
    lr : float
        Step size.
    weight_decay : float
        L2 coefficient ``mu`` (in the gradient, as gradient flow with decay has it).
    input_noise : float
        Standard deviation of the Gaussian noise added to the inputs at each step.
    batch_size : int, optional
        Minibatch size for ``optimizer="sgd"`` (a random batch each step, without replacement
        within the batch); None for ``"gd"`` (full batch).
    optimizer : {"gd", "sgd"}
        Full-batch gradient descent or minibatch stochastic gradient descent.
    seed : int
        Seeds the data, the initial weights, the batches and the noise (a private generator).

    Returns
    -------
    DeepLinearRun

    Examples
    --------
    >>> run = train_deep_linear(3, 4, steps=200, lr=0.05)
    >>> run.loss.shape, run.imbalance.shape, bool(run.loss[-1] < run.loss[0])
    ((201,), (201, 2), True)
    """
    depth = _check_int(depth, "depth", 2)
    width = _check_int(width, "width", 1)
    steps = _check_int(steps, "steps", 0)
    lr = _check_number(lr, "lr", positive=True)
    weight_decay = _check_number(weight_decay, "weight_decay")
    input_noise = _check_number(input_noise, "input_noise")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"{optimizer!r} is not a valid option, must be one of "
                         + ", ".join(repr(o) for o in _OPTIMIZERS))
    g = torch.Generator().manual_seed(int(seed))
    if data is None:
        X, Y = _teacher(width, 256, g)
    else:
        X, Y = (torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in data)
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise ValueError(f"data of shapes {tuple(X.shape)} and {tuple(Y.shape)} is not (n, in) "
                             "inputs and (n, out) targets")
    n = X.shape[0]
    if optimizer == "gd" and batch_size is not None:
        raise ValueError("optimizer='gd' is full-batch; pass optimizer='sgd' with batch_size")
    if optimizer == "sgd":
        if batch_size is None:
            raise ValueError("optimizer='sgd' needs batch_size")
        batch_size = _check_int(batch_size, "batch_size", 1)
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} is larger than the {n} examples")
    sizes = [X.shape[1]] + [width] * (depth - 1) + [Y.shape[1]]
    model = torch.nn.Sequential(*[torch.nn.Linear(a, b, bias=False, dtype=torch.float64)
                                  for a, b in zip(sizes[:-1], sizes[1:])])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) / m.in_features ** 0.5)
    params = list(model.parameters())

    def full_loss() -> float:
        with torch.no_grad():
            return float(0.5 * ((model(X) - Y) ** 2).sum(1).mean())

    loss = np.empty(steps + 1)
    imbalance = np.empty((steps + 1, depth - 1))
    for t in range(steps + 1):
        loss[t], imbalance[t] = full_loss(), cast(torch.Tensor, layer_imbalance(model)).numpy()
        if t == steps:
            break
        if batch_size is None:
            xb, yb = X, Y
        else:
            idx = torch.randperm(n, generator=g)[:batch_size]
            xb, yb = X[idx], Y[idx]
        if input_noise:
            xb = xb + input_noise * torch.randn(xb.shape, generator=g, dtype=torch.float64)
        batch_loss = 0.5 * ((model(xb) - yb) ** 2).sum(1).mean()
        grads = torch.autograd.grad(batch_loss, params)
        with torch.no_grad():
            for p, gr in zip(params, grads):
                p.sub_(lr * (gr + weight_decay * p))
    return DeepLinearRun(loss, imbalance, model, lr, weight_decay)
