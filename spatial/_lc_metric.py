"""``LocalComplexity``: the local complexity estimator as a ``torchmetrics.Metric``.

The counting is :mod:`spatial.local_complexity`'s (``_lc_update``); this class only accumulates
per-layer sums and a point count, states that torchmetrics moves with ``.to(device)``, resets,
merges (``merge_state``) and syncs across processes (``dist_reduce_fx="sum"``). It measures a
model without owning it: the model is not a submodule of the metric (its weights are not in the
metric's ``state_dict`` and ``metric.to(...)`` does not move them), and every :meth:`update`
reads the model's weights, device and dtype as they are at that moment, so one metric can live
across training steps. Kept out of ``spatial``'s import: torchmetrics imports matplotlib.
"""
from __future__ import annotations

import functools
from typing import Any, List, Optional, Sequence, cast

import torch
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from ._html import table_html
from .local_complexity import (_DEFAULT_MEMORY, _check_radius, _directions, _lc_compute, _lc_update, _normalise,
                               _plan, _prepare_x, _refresh_, _resolve_frame, _select)

__all__ = ["LocalComplexity"]


class LocalComplexity(Metric):
    """Mean local complexity per layer, accumulated over batches (a ``torchmetrics.Metric``).

    Each :meth:`update` counts the model with its weights at that moment (so the metric can live
    across training steps: ``reset()`` it, or let Lightning do so, each epoch), in the frame fixed
    at the first update. States: ``total``, the per-layer sums (float64), and ``count``, the
    points seen; both reduce by summation across processes (``sync()``, ``compute()`` under
    ``torch.distributed``) and across metrics (``merge_state``). One frame must serve every
    batch and process: pass ``frame=``, or ``directions=`` with a ``seed=`` shared by the
    processes.

    Parameters
    ----------
    model, radius, frame, directions, seed, center, normalize, layers, batch_size, max_memory, dim
        As in :func:`spatial.local_complexity` (``dim=``: deprecated old name of ``directions=``).
    per_layer : bool
        ``compute()`` gives the mean per counted layer, ``(L,)`` (default); False gives their sum, a
        0-d tensor (the network's local complexity; what ``self.log("lc", metric)`` in Lightning
        needs).
    **kwargs
        Passed to ``torchmetrics.Metric`` (``sync_on_compute``, ``process_group``, ...).

    Attributes
    ----------
    layer_names : list of str or None
        The counted layers, by their activation modules' names (``"act#2"``: the second call of
        a reused ``act``); None until the first update of a model read through hooks.
    frame : torch.Tensor or None
        The ``(P, D)`` directions, fixed at the first update.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.eye(2)); _ = net[0].bias.zero_()
    >>> lc = LocalComplexity(net, radius=0.1, frame=torch.eye(2))
    >>> lc.update([[0.05, 0.5]]); lc.update([[1.0, 1.0]])
    >>> lc.compute(), lc.layer_names
    (tensor([0.5000], dtype=torch.float64), ['1'])
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False  # a batch's sums add to the others'
    total: torch.Tensor
    count: torch.Tensor

    def __init__(self, model: torch.nn.Module, radius: float = 0.1, frame=None,
                 directions: Optional[int] = None, seed: Optional[int] = None, *,
                 center: bool = False, normalize: bool = False,
                 layers: Optional[Sequence[int]] = None, per_layer: bool = True,
                 batch_size: Optional[int] = None, max_memory: int = _DEFAULT_MEMORY,
                 dim: Optional[int] = None, **kwargs: Any) -> None:
        directions = _directions(directions, dim)
        super().__init__(**kwargs)
        self.radius = _check_radius(radius)
        self._plan = _plan(model)  # a plain attribute (not a submodule): the model is measured, not owned
        if frame is None and directions is None:
            raise ValueError("no directions: pass frame= ((P, D) orthonormal rows) or directions= (P)")
        if seed is None and frame is None:
            seed = int(torch.Generator().seed())  # fixed now, so every batch sees one frame
        self._frame_args = (frame, directions, seed)
        self.frame: Optional[torch.Tensor] = None  # (P, D), resolved at the first update
        self.center, self.normalize, self.per_layer = bool(center), bool(normalize), bool(per_layer)
        self.layers = layers
        self.batch_size, self.max_memory = batch_size, max_memory
        L = self._n_layers()
        # () until the number of layers is known (a model read through hooks): it broadcasts
        # against the first (L,) sums, in update() and in torchmetrics' own merging of states
        self.add_state("total", default=torch.zeros(() if L is None else (L,), dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def _n_layers(self) -> Optional[int]:
        widths = self._plan.widths
        return None if widths is None else len(_select(self.layers, len(widths)))

    @property
    def layer_names(self) -> Optional[List[str]]:
        names = self._plan.names
        return None if names is None else [names[i] for i in _select(self.layers, len(names))]

    def update(self, x) -> None:
        """Add the local complexity of the points ``x`` (N, ...) to the state.

        The model is read as it is now (its weights may have changed since the last update, by
        training; its device too); the frame is the one fixed at the first update.
        """
        plan = self._plan
        _refresh_(plan)
        xt, shape = _prepare_x(plan, x)
        if self.frame is None:
            self.frame = _resolve_frame(*self._frame_args, xt.shape[1], plan)
        v = _lc_update(plan, xt, shape, self.frame, self.radius, self.center, self.layers,
                       self.max_memory, self.batch_size)
        if self.normalize:
            v = _normalise(v, plan, self.layers)
        self.total = self.total + v.to(torch.float64).sum(0).to(self.total.device)
        self.count = self.count + v.shape[0]

    def compute(self) -> torch.Tensor:
        """Mean local complexity per layer, (L,) float64 (summed over the layers, 0-d, when
        ``per_layer=False``)."""
        mean = _lc_compute(self.total, self.count)
        return mean if self.per_layer else mean.sum()

    def _wrap_compute(self, compute):
        """torchmetrics' wrapper (sync, cache), keeping ``(L,)`` for one layer: it squeezes
        one-element results to 0-d."""
        wrapped = super()._wrap_compute(compute)

        @functools.wraps(wrapped)
        def per_layer_shape(*args: Any, **kwargs: Any):
            out = wrapped(*args, **kwargs)
            return out.reshape(-1) if self.per_layer else out

        return per_layer_shape

    def merge(self, *others: "LocalComplexity") -> "LocalComplexity":
        """Add the states of other estimators (same layers and frame) into this one; returns self."""
        for o in others:
            if not isinstance(o, LocalComplexity):
                raise TypeError(f"can only merge LocalComplexity, got {type(o).__name__}")
            if o.total.ndim and self.total.ndim and o.total.shape != self.total.shape:
                raise ValueError(f"cannot merge states of {o.total.shape[0]} layers into {self.total.shape[0]}")
            self.merge_state(o)
        return self

    def sync(self, dist_sync_fn=None, process_group=None, should_sync: bool = True,
             distributed_available=None) -> None:
        """torchmetrics' sync, after giving a process that has seen no batch (its ``total`` still
        0-d) zero sums of the others' number of layers."""
        available = distributed_available or self.distributed_available_fn
        if should_sync and not self._is_synced and callable(available) and available():
            gather = dist_sync_fn or gather_all_tensors
            group = process_group or self.process_group
            n = torch.tensor(self.total.numel() if self.total.ndim else 0, device=self.total.device)
            seen = {int(k) for k in gather(n, group=group)} - {0}
            if len(seen) > 1:
                raise ValueError(f"the processes counted different numbers of layers: {sorted(seen)}")
            if seen and self.total.ndim == 0:
                self.total = torch.zeros(seen.pop(), dtype=torch.float64, device=self.total.device)
        super().sync(dist_sync_fn, process_group, should_sync, distributed_available)

    def _repr_html_(self) -> str:
        """In Jupyter: the mean per layer (named by module) and their sum so far."""
        head = f"LocalComplexity(radius={self.radius:g}, points={int(self.count.item())})"
        if self.total.ndim == 0 or self.count.item() == 0:
            return f"<p><code>{head}</code>: no points yet</p>"
        mean = (self.total / self.count).tolist()
        names = self.layer_names or [str(i) for i in range(len(mean))]
        return table_html(head, {**{f"layer {n}": v for n, v in zip(names, mean)}, "sum": float(sum(mean))})

    def extra_repr(self) -> str:
        P = None if self.frame is None else self.frame.shape[0]
        count = cast(torch.Tensor, self.count)
        return (f"radius={self.radius}, P={P}, center={self.center}, normalize={self.normalize}, "
                f"per_layer={self.per_layer}, points={int(count.item())}")
