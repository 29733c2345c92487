"""A small, seeded training runner for toy networks, saving checkpoints on a log-spaced schedule.

Region migration happens on two time scales: the partition reorganises fast in the first few
dozen steps and slowly, over thousands, in the late phase (regions leave the data for the decision
boundary). Checkpoints are therefore taken at log-spaced steps (:func:`log_schedule`), so both
phases get frames.

``train(model, X, y, steps=..., out_dir=...)`` writes one ``state_dict`` file per checkpoint,
``step_000123.pt`` (zero-padded so a folder listing sorts by step), and, when the model came from
:func:`toy_mlp`, a sidecar ``arch.json`` naming its factory and arguments, plus ``data.npz`` (the
training set ``X``, ``y``); the folder's format is :mod:`spatial.runs`. ``splinescope animate RUN_DIR`` reads both (``arch.json`` through
:func:`spatial.checkpoints.load_checkpoints`), so no ``--arch`` is needed;
``--arch spatial.train:toy_mlp`` alone gives the default toy network.

The loss follows the output width: one output is a logit (``BCEWithLogitsLoss``, decision
boundary where it is zero), ``C`` outputs are class scores (``CrossEntropyLoss``); ``loss="mse"`` is
the squared error to one-hot targets.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import runs
from ._validate import integer, option
from .runs import ARCH_FILE, DATA_FILE, load_run_data

__all__ = ["ARCH_FILE", "DATA_FILE", "ToyRun", "load_run_data", "log_schedule", "loss_value", "toy_mlp", "train",
           "train_toy"]

_ACTIVATIONS = ("relu", "leaky_relu")
_LOSSES = ("auto", "mse")


def toy_mlp(width: int = 32, depth: int = 3, activation: str = "relu", *, in_features: int = 2,
            out_features: int = 1, negative_slope: float = 0.1, init_scale: float = 1.0,
            seed: int = 0) -> torch.nn.Sequential:
    """A fully connected ``torch.nn.Sequential``: ``depth`` hidden layers of ``width`` neurons.

    With no arguments it is the default toy network (2 inputs, 3 x 32 ReLU, 1 logit), so
    ``--arch spatial.train:toy_mlp`` works as a zero-argument factory. ``seed`` fixes the
    initial weights (a private :class:`torch.Generator`, the global RNG is untouched).
    ``init_scale`` multiplies every weight and bias of torch's default initialisation (the
    large initialisation of Liu et al., "Omnigrok", under which grokking is reliable:
    :mod:`render.grok`); the draws do not depend on it.

    Examples
    --------
    >>> net = toy_mlp(4, 2, "leaky_relu")
    >>> net
    Sequential(
      (0): Linear(in_features=2, out_features=4, bias=True)
      (1): LeakyReLU(negative_slope=0.1)
      (2): Linear(in_features=4, out_features=4, bias=True)
      (3): LeakyReLU(negative_slope=0.1)
      (4): Linear(in_features=4, out_features=1, bias=True)
    )
    >>> bool(torch.equal(toy_mlp(4, 2)[0].weight, toy_mlp(4, 2)[0].weight))
    True
    >>> bool(torch.equal(toy_mlp(4, 2, init_scale=8.0)[2].bias, 8 * toy_mlp(4, 2)[2].bias))
    True
    >>> toy_mlp(activation="gelu")
    Traceback (most recent call last):
    ...
    ValueError: 'gelu' is not a valid activation, must be one of 'relu', 'leaky_relu'
    """
    option(activation, _ACTIVATIONS, "activation")
    if isinstance(init_scale, (bool, np.bool_)) or not isinstance(init_scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"init_scale must be a number, got {type(init_scale).__name__}")
    if not (np.isfinite(init_scale) and init_scale > 0):
        raise ValueError(f"init_scale must be a finite number > 0, got {init_scale!r}")
    width, depth, in_features, out_features = (
        integer(name, v, minimum=1) for name, v in (("width", width), ("depth", depth),
                                                   ("in_features", in_features), ("out_features", out_features)))
    gen = torch.Generator().manual_seed(int(seed))
    layers: List[torch.nn.Module] = []
    sizes = [in_features] + [width] * depth + [out_features]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.utils.skip_init(torch.nn.Linear, a, b)  # no draw from the global RNG
        bound = 1.0 / np.sqrt(a)  # torch's default init, drawn from our own generator
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=gen)
            lin.bias.uniform_(-bound, bound, generator=gen)
            if init_scale != 1:
                lin.weight.mul_(float(init_scale))
                lin.bias.mul_(float(init_scale))
        layers.append(lin)
        if i < depth:
            layers.append(torch.nn.ReLU() if activation == "relu" else torch.nn.LeakyReLU(negative_slope))
    return torch.nn.Sequential(*layers)


def log_schedule(steps: int, n: int = 40) -> List[int]:
    """About ``n`` distinct steps from 0 to ``steps``, log-spaced (dense early, sparse late).

    Examples
    --------
    >>> log_schedule(1000, 8)
    [0, 1, 3, 7, 19, 52, 139, 373, 1000]
    >>> log_schedule(5, 40)
    [0, 1, 2, 3, 4, 5]
    """
    steps, n = integer("steps", steps, minimum=0), integer("n", n, minimum=1)
    if steps == 0:
        return [0]
    s = np.unique(np.round(np.geomspace(1, steps, n)).astype(np.int64))
    return [0] + s.tolist()


def _as_tensor(name: str, a, dtype) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().to("cpu", dtype)
    try:
        return torch.as_tensor(np.asarray(a), dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array or tensor of numbers, got {type(a).__name__}") from None


def loss_value(logits: torch.Tensor, y: torch.Tensor, loss: str = "auto") -> torch.Tensor:
    """The training loss of :func:`train` on one batch: ``logits`` (B, K), ``y`` (B,) int64 labels.

    ``"auto"``: one logit, binary cross-entropy; ``K`` scores, cross-entropy. ``"mse"``: the mean
    squared error to one-hot targets (over the ``B x K`` entries; one logit: to ``y`` itself).

    Examples
    --------
    >>> float(loss_value(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]), "mse"))
    0.25
    """
    option(loss, _LOSSES, "loss")
    K = logits.shape[1]
    if loss == "mse":
        return torch.nn.functional.mse_loss(logits, torch.nn.functional.one_hot(y, max(K, 2))[:, -K:].to(logits.dtype))
    if K == 1:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.to(logits.dtype))
    return torch.nn.functional.cross_entropy(logits, y)


def train(model: torch.nn.Module, X, y, *, steps: int, lr: float = 3e-3, batch_size: Optional[int] = None,
          weight_decay: float = 0.0, checkpoints: Union[int, Sequence[int], None] = None,
          out_dir: Union[str, os.PathLike, None] = None, arch: Optional[Dict] = None, seed: int = 0,
          progress: bool = True, test=None, loss: str = "auto") -> List[Tuple[int, torch.nn.Module]]:
    """Train ``model`` with Adam on ``(X, y)`` and keep copies of it at checkpoint steps.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place; ``K = 1`` output: binary logit, ``K > 1``: class scores.
    X, y : (N, ...) inputs and (N,) integer labels (arrays or tensors): feature rows (N, D), or
        samples of any shape the model reads, such as images (N, C, H, W) for a CNN (saved in
        that shape in ``data.npz``, as :class:`render.Tracker` saves them).
    steps : int
        The number of optimiser steps.
    lr, weight_decay : Adam's learning rate and (decoupled, AdamW) weight decay.
    batch_size : int, optional
        Mini-batch size (batches drawn by a generator seeded with ``seed``); None: full batch.
    checkpoints : int or sequence of int, optional
        The schedule: at which steps to keep a copy (0 is the initial model); an int ``n`` means
        :func:`log_schedule(steps, n) <log_schedule>`; default ``log_schedule(steps, 40)``. Steps,
        not models: the copies are what ``train`` returns (``(step, model)`` pairs, named ``ckpts``
        in this package) and what :func:`spatial.checkpoints.load_checkpoints` reads back.
    out_dir : path, optional
        Folder to write ``step_{step:06d}.pt`` state_dicts (and ``data.npz``) into, atomically.
    arch : dict, optional
        ``{"factory": "pkg.module:name", "kwargs": {...}}`` written to ``out_dir/arch.json`` so the
        run can be reloaded without ``--arch``.
    seed : int
        Seeds the mini-batch order.
    progress : bool
        Show a tqdm progress bar.
    test : (X_test, y_test), optional
        Held-out points, not trained on: saved beside the training set in ``data.npz`` (as
        ``X_test``, ``y_test``) so that movies of the run draw them too.
    loss : {"auto", "mse"}
        ``"auto"``: by the output width (one logit: binary cross-entropy, ``K`` scores: cross-entropy);
        ``"mse"``: the squared error to one-hot targets (as in ``gallery/lc_digits.py``).

    Returns
    -------
    list of (step, module)
        Deep copies of the model in eval mode, one per checkpoint, by increasing step.

    Examples
    --------
    >>> X, y = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([0, 1])
    >>> ckpts = train(toy_mlp(4, 1), X, y, steps=20, checkpoints=[0, 10, 20], progress=False)
    >>> [s for s, _ in ckpts]
    [0, 10, 20]
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    steps = integer("steps", steps, minimum=0)
    option(loss, _LOSSES, "loss")
    Xt = _as_tensor("X", X, torch.float32)
    yt = _as_tensor("y", y, torch.int64)
    if Xt.ndim < 2:
        raise ValueError(f"X must hold one sample per row, (N, D) or (N, C, H, W) and so on, "
                         f"got shape {tuple(Xt.shape)}")
    if yt.shape != (Xt.shape[0],):
        raise ValueError(f"y must have shape ({Xt.shape[0]},) to match X, got {tuple(yt.shape)}")
    if checkpoints is None or isinstance(checkpoints, (int, np.integer)):
        sched = log_schedule(int(steps), 40 if checkpoints is None else int(checkpoints))
    else:
        sched = sorted({int(s) for s in checkpoints})
        if sched and (sched[0] < 0 or sched[-1] > steps):
            raise ValueError(f"checkpoint steps must lie in [0, {steps}], got {sched[0]} .. {sched[-1]}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        runs.clear_steps(out)  # a previous run's checkpoints
        arrays = {"X": Xt.numpy(), "y": yt.numpy()}
        if test is not None:
            arrays["X_test"] = _as_tensor("X_test", test[0], torch.float32).numpy()
            arrays["y_test"] = _as_tensor("y_test", test[1], torch.int64).numpy()
            if arrays["X_test"].shape[1:] != arrays["X"].shape[1:] or arrays["y_test"].shape != arrays["X_test"].shape[:1]:
                raise ValueError(f"test points of shape {arrays['X_test'].shape} with labels {arrays['y_test'].shape} "
                                 f"do not match the training inputs {arrays['X'].shape}")
        runs.write_data(out, **arrays)
        if arch is not None:
            runs.write_arch(out, arch)

    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    keep = set(sched)
    kept: List[Tuple[int, torch.nn.Module]] = []

    def snapshot(step: int) -> None:
        m = copy.deepcopy(model).eval()
        kept.append((step, m))
        if out is not None:
            runs.save_step(out, step, m.state_dict())

    from tqdm.auto import tqdm
    model.train()
    for step in tqdm(range(steps + 1), desc="train", disable=not progress, unit="step"):
        if step in keep:
            snapshot(step)
        if step == steps:
            break
        if batch_size is None or batch_size >= len(yt):
            xb, yb = Xt, yt
        else:
            sel = torch.randint(len(yt), (batch_size,), generator=gen)
            xb, yb = Xt[sel], yt[sel]
        value = loss_value(model(xb), yb, loss)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    model.eval()
    return kept



_NOISY = ("moons", "circles", "spirals")


@dataclasses.dataclass
class ToyRun:
    """The toy run of ``splinescope train``, :func:`render.demo` and ``scripts/demo.sh``.

    The defaults are long enough for the late phase: the density of regions near the data falls
    after about 4,000 steps while the boundary keeps its regions (about a minute on one core).

    Examples
    --------
    >>> ToyRun(steps=100)
    ToyRun(toy='moons', n=256, noise=None, test=0, width=32, depth=3, activation='relu', steps=100, lr=0.003, weight_decay=0.0, batch_size=None, checkpoints=40, seed=0)
    """

    toy: str = "moons"  # the 2-D dataset (spatial.data.TOYS)
    n: int = 256  # training points
    noise: Optional[float] = None  # noise of moons / circles / spirals; None: the toy's own default
    test: int = 0  # held-out points from the same toy (seed + 10,000), saved with the run
    width: int = 32  # neurons per hidden layer
    depth: int = 3  # hidden layers
    activation: str = "relu"  # "relu" or "leaky_relu"
    steps: int = 30000  # optimiser steps: the late phase (regions leave the data) needs thousands
    lr: float = 3e-3  # Adam learning rate
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    batch_size: Optional[int] = None  # mini-batch size; None: full batch
    checkpoints: int = 40  # about this many log-spaced checkpoints (log_schedule)
    seed: int = 0  # seeds the data, the initial weights and the batch order

    def arch(self, out_features: int) -> Dict:
        """The ``arch.json`` record of the network (:func:`toy_mlp` and its arguments)."""
        kwargs = dict(width=self.width, depth=self.depth, activation=self.activation,
                      out_features=out_features, seed=self.seed)
        return {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": kwargs}


def train_toy(cfg: ToyRun, out_dir: Union[str, os.PathLike, None] = None, *,
              progress: bool = True) -> List[Tuple[int, torch.nn.Module]]:
    """Make ``cfg``'s data and network and :func:`train` it, into the run folder ``out_dir``.

    Examples
    --------
    >>> [s for s, _ in train_toy(ToyRun(n=8, width=4, depth=1, steps=10, checkpoints=2), progress=False)]
    [0, 1, 10]
    """
    from .data import toy
    kw = {} if cfg.noise is None else {"noise": cfg.noise}
    if kw and cfg.toy not in _NOISY:
        raise ValueError(f"noise applies to moons, circles and spirals, not to {cfg.toy!r}")
    X, y = toy(cfg.toy, cfg.n, seed=cfg.seed, **kw)
    test = toy(cfg.toy, integer("test", cfg.test, minimum=0), seed=cfg.seed + 10_000, **kw) if cfg.test else None
    K = int(y.max()) + 1
    arch = cfg.arch(1 if K == 2 else K)
    return train(toy_mlp(**arch["kwargs"]), X, y, steps=cfg.steps, lr=cfg.lr, weight_decay=cfg.weight_decay,
                 batch_size=cfg.batch_size, checkpoints=cfg.checkpoints, out_dir=out_dir, seed=cfg.seed,
                 arch=arch if out_dir is not None else None, progress=progress, test=test)
