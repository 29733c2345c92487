"""Measure a network from inside its training loop, into a run folder the rest of the tool reads.

On a schedule of steps, :meth:`Tracker.step` records the local complexity at training, test and
random points (:func:`spatial.lc_run.lc_row`), the robust accuracy under a PGD attack at chosen
radii (:func:`spatial.robust_accuracy`, with ``robust=``), the statistics of the exact partition on chosen
slices (:func:`spatial.migration.partition_statistics`: regions, boundary length, region
densities near the data and near the boundary), and whatever scalars the loop passes (the loss),
as one line of the run's step-keyed log (``log.jsonl``, :mod:`spatial.runs`); it saves the
model's ``state_dict`` as ``step_000123.pt`` beside the run's ``data.npz`` (and ``arch.json`` when
given), so ``splinescope animate``, ``lc``, ``view`` and ``dynamics`` read the run afterwards.
The same scalars can go to TensorBoard (a ``SummaryWriter``) and to Weights & Biases (a run from
``wandb.init``), and, with ``frames=True``, a picture of each slice's partition too;
:meth:`Tracker.movie` animates the checkpoints saved so far (and sends the movie to W&B).

Plain loop::

    tracker = Tracker("runs/exp", data=(X, y), test=(X_test, y_test), steps=10_000,
                      slices={"box": (-2, 2, -2, 2)})
    for step in range(10_001):
        ...                                   # one optimiser step
        tracker.step(model, step, loss=loss.item())
    tracker.close()

Lightning: ``trainer = Trainer(callbacks=[SplinescopeCallback("runs/exp", data=(X, y))])``
(:mod:`render._lightning`, loaded when asked for).

This module lives in ``render`` because it draws (frames) and writes files; every number it
records comes from :mod:`spatial`.
"""
from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, cast

import numpy as np
import torch

from splinescope.spatial._validate import data_box, integer, slices as _slices

__all__ = ["Tracker"]

_ROBUST_KEYS = ("eps", "set", "points", "norm", "steps", "step_size", "restarts", "clip", "seed", "batch_size")


def _robust(robust, X, y, X_test, y_test, seed: int):
    """``robust=`` checked: (the set's name, (X, y) tensors attacked, radii, robust_accuracy's kwargs)."""
    from splinescope.spatial._validate import option
    from splinescope.spatial.robust import _NORMS, _clip, _radii, _step_size

    if not isinstance(robust, Mapping):
        raise TypeError(f"robust must be a dict such as {{'eps': (0.02, 0.05), 'clip': (0, 1)}}, "
                        f"got {type(robust).__name__}")
    unknown = [k for k in robust if k not in _ROBUST_KEYS]
    if unknown:
        raise ValueError(f"robust has no option {unknown[0]!r}; valid: {', '.join(_ROBUST_KEYS)}")
    if "eps" not in robust:
        raise ValueError("robust needs 'eps': the radius or radii of the attack, e.g. {'eps': (0.02, 0.05)}")
    radii = [float(e) for e in _radii(robust["eps"])[0]]
    names = [f"{e:g}" for e in radii]
    if len(set(names)) != len(names):
        raise ValueError(f"robust eps {robust['eps']!r} repeats a radius")
    which = option(robust.get("set", "test"), ("test", "train"), "robust set")
    if which == "test":
        if X_test is None or y_test is None:
            raise ValueError("robust set 'test' needs labelled test points: pass test=(X_test, y_test), or "
                             "robust={..., 'set': 'train'}")
        X, y = X_test, y_test
    points = integer("robust points", robust.get("points", 1000), minimum=1)
    norm = option(robust.get("norm", "linf"), _NORMS, "robust norm")
    kwargs = {"norm": norm, "steps": integer("robust steps", robust.get("steps", 10), minimum=1),
              "step_size": _step_size(robust.get("step_size")),
              "restarts": integer("robust restarts", robust.get("restarts", 1), minimum=1),
              "clip": _clip(robust.get("clip")), "seed": integer("robust seed", robust.get("seed", seed), minimum=0)}
    if robust.get("batch_size") is not None:
        kwargs["batch_size"] = integer("robust batch_size", robust["batch_size"], minimum=1)
    if len(X) > points:  # a subsample, drawn once from its own generator
        pick = torch.randperm(len(X), generator=torch.Generator().manual_seed(int(seed)))[:points].sort().values
        X, y = X[pick.numpy()], y[pick.numpy()]
    box = kwargs["clip"]
    if box is not None and (X.min() < box[0] or X.max() > box[1]):
        raise ValueError(f"robust clip={box!r}: the {which} points have values in [{X.min():g}, {X.max():g}], "
                         "outside it; the clean points must be valid inputs")
    data = (torch.as_tensor(np.ascontiguousarray(X)), torch.as_tensor(np.asarray(y)).long())
    return which, data, dict(zip(names, radii)), kwargs


def _schedule(every, at, steps, checkpoints) -> Tuple[Callable[[int], bool], Optional[List[int]]]:
    given = [k for k, v in (("every", every), ("at", at), ("steps", steps)) if v is not None]
    if len(given) != 1:
        raise ValueError("give one schedule: steps= (the last step; checkpoints log-spaced up to it), "
                         f"every= (a step interval) or at= (a list of steps); got {', '.join(given) or 'none'}")
    if every is not None:
        k = integer("every", every, minimum=1)
        return (lambda s: s % k == 0), None
    if at is not None:
        chosen = sorted({integer("a step of at", s, minimum=0) for s in at})
    else:
        from splinescope.spatial.train import log_schedule
        chosen = log_schedule(integer("steps", steps, minimum=0), integer("checkpoints", checkpoints, minimum=1))
    table = set(chosen)
    return table.__contains__, chosen


class Tracker:
    """Local complexity, partition statistics, checkpoints and a step-keyed log, on a schedule.

    Parameters
    ----------
    run_dir : path
        The run folder (created; its ``data.npz`` written now, checkpoints and ``log.jsonl`` as
        training goes).
    data : (X, y) pair
        The training set: ``X`` (N, ...) inputs, ``y`` (N,) integer labels.
    test : (X, y) pair, optional
        Held-out points (``y`` may be None).
    steps, every, at : give one
        ``steps``: the last training step; measurements at ``checkpoints`` log-spaced steps from
        0 to it (:func:`spatial.train.log_schedule`). ``every``: at every multiple of it.
        ``at``: at these steps.
    checkpoints : int
        How many log-spaced steps with ``steps=`` (default 40).
    slices : dict, optional
        ``{name: (xmin, xmax, ymin, ymax)}`` for a 2-input network, or ``{name: (bounds,
        spatial.Plane)}``; default for 2-input data: ``{"box": the data's box, padded by a tenth}``.
        Points of 2-D data are the slice's data; on a plane, its three defining points are.
    lc : bool
        Record local complexity (``lc_train``, ``lc_test``, ``lc_random``, per layer
        ``lc_train/<module>``) and accuracy (``acc_train``, ``acc_test``).
    lc_points, radius, directions, seed
        Points per set (subsampled once, with the random points, from ``seed``), the
        cross-polytope's radius, its number of random directions (one frame from ``seed``;
        default 25, or the input dimension when smaller).
    robust : dict, optional
        Record the robust accuracy under a PGD attack (:func:`spatial.robust_accuracy`):
        ``{"eps": radius or radii, ...}`` with the optional keys ``"set"`` (``"test"``, the
        default: the held-out points, where delayed robustness is measured; or ``"train"``),
        ``"points"`` (at most this many of the set, default 1,000, a subsample drawn once from
        ``seed``; the points attacked are ``robust_data``), and ``"norm"``, ``"steps"`` (default
        10), ``"step_size"``, ``"restarts"``, ``"clip"`` (e.g. ``(0, 1)`` for pixels), ``"seed"``,
        ``"batch_size"`` as in :func:`spatial.robust_accuracy`. Logs ``robust_<set>`` at the first
        radius given (the headline number) and ``robust_<set>/<eps>`` at each radius
        (``robust_test/0.05``).
    save : bool
        Save the model's ``state_dict`` at each measured step (``step_000123.pt``).
    arch : dict, optional
        ``{"factory": "pkg.module:name", "kwargs": {...}}`` for ``arch.json``, so the run's
        checkpoints load without ``--arch``.
    tensorboard : SummaryWriter or path, optional
        Send the scalars there (a path: a ``torch.utils.tensorboard.SummaryWriter`` made on it).
    wandb : wandb run, optional
        Send the scalars with ``run.log(row, step=step)``.
    frames : bool
        Also send a picture of each slice's partition (TensorBoard ``add_image``, W&B
        ``wandb.Image``).

    Attributes
    ----------
    rows : list of dict
        The rows logged so far.
    schedule : list of int or None
        The steps to measure (None with ``every=``); ``due(step)`` says whether a step is one.
    robust_set, robust_data
        ``"test"`` or ``"train"`` and the ``(X, y)`` tensors attacked (None without ``robust=``).
    seconds : dict
        Wall time spent so far on ``"lc"``, ``"robust"``, ``"slices"`` (partitions and their
        statistics, frames) and ``"save"`` (the checkpoint), in seconds.

    Examples
    --------
    >>> import tempfile
    >>> from splinescope.spatial.train import toy_mlp
    >>> from splinescope.spatial.runs import read_log
    >>> X, y = np.random.default_rng(0).uniform(-1, 1, (50, 2)), np.arange(50) % 2
    >>> with tempfile.TemporaryDirectory() as d:
    ...     t = Tracker(d, data=(X, y), every=10, lc_points=20, directions=2)
    ...     for step in range(21):
    ...         _ = t.step(toy_mlp(8, 2), step, loss=1.0 / (step + 1))
    ...     [(r["step"], r["regions/box"] > 0, "lc_train" in r) for r in read_log(d)]
    [(0, True, True), (10, True, True), (20, True, True)]
    """

    def __init__(self, run_dir, data, test=None, *, steps: Optional[int] = None, every: Optional[int] = None,
                 at: Optional[Sequence[int]] = None, checkpoints: int = 40, slices=None, lc: bool = True,
                 lc_points: int = 500, radius: float = 0.1, directions: Optional[int] = None, seed: int = 0,
                 robust: Optional[Mapping[str, Any]] = None, save: bool = True, arch: Optional[Dict] = None,
                 tensorboard=None, wandb=None, frames: bool = False) -> None:
        from splinescope.spatial import runs
        from splinescope.spatial._validate import points as _points_arg

        if not isinstance(run_dir, (str, os.PathLike)):
            raise TypeError(f"run_dir must be a path, got {type(run_dir).__name__}")
        self.run_dir = Path(run_dir)
        self.due, self.schedule = _schedule(every, at, steps, checkpoints)
        X, y = _pair("data", data)
        if y is None:
            raise ValueError("data needs labels: an (X, y) pair with y (N,) class labels")
        X_test, y_test = (None, None) if test is None else _pair("test", test)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        runs.write_data(self.run_dir, X, y, X_test, y_test)
        if arch is not None:
            runs.write_arch(self.run_dir, arch)
        flat = X.reshape(len(X), -1)
        in_features = flat.shape[1]
        if slices is None and in_features == 2:
            slices = {"box": data_box(flat)}
        self.slices = _slices(slices, in_features)
        anchors = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        self._slice_data = {name: (anchors if plane is not None else _points_arg((flat, y))[0])
                            for name, (_, plane) in self.slices.items()}
        self.lc = bool(lc)
        self.radius = float(radius)
        if self.lc:
            from splinescope.spatial.lc_run import point_sets
            from splinescope.spatial.local_complexity import random_frame
            self._sets = point_sets(flat, y, None if X_test is None else X_test.reshape(len(X_test), -1), y_test,
                                    points=lc_points, seed=seed)
            self._shape = X.shape[1:]
            P = min(25, in_features) if directions is None else integer("directions", directions, minimum=1)
            self._frame = random_frame(P, in_features, seed=seed, dtype=torch.float64)
        self.robust_set: Optional[str] = None
        self.robust_data: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        if robust is not None:
            self.robust_set, self.robust_data, self._radii, self._robust_kw = _robust(
                robust, X, y, X_test, y_test, integer("seed", seed, minimum=0))
        self.seconds = {"lc": 0.0, "robust": 0.0, "slices": 0.0, "save": 0.0}
        self.save = bool(save)
        self._own_writer = isinstance(tensorboard, (str, os.PathLike))
        if self._own_writer:
            from torch.utils.tensorboard import SummaryWriter
            tensorboard = SummaryWriter(str(tensorboard))
        self.tensorboard, self.wandb, self.frames = tensorboard, wandb, bool(frames)
        self.rows: List[Dict[str, Any]] = []
        self._template: Optional[torch.nn.Module] = None

    def step(self, model: torch.nn.Module, step: int, **scalars) -> Optional[Dict[str, Any]]:
        """Measure ``model`` if ``step`` is on the schedule; returns the row logged (else None).

        ``scalars`` (e.g. ``loss=...``) are logged with the row. The model is measured in eval
        mode, without gradients, and left in the mode it was in.
        """
        from splinescope.spatial import partition, runs
        from splinescope.spatial.lc_run import lc_row
        from splinescope.spatial.migration import partition_statistics

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        step = integer("step", step, minimum=0)
        if not self.due(step) or (self.rows and self.rows[-1]["step"] == step):
            return None  # off the schedule, or measured already (Lightning repeats a step when it accumulates)
        row: Dict[str, Any] = {"step": step, **scalars}
        was_training = model.training
        model.eval()
        images = {}
        clock = time.perf_counter
        try:
            with torch.no_grad():
                t = clock()
                if self.lc:
                    sets = {k: (x.reshape((len(x),) + tuple(self._shape)), y) for k, (x, y) in self._sets.items()}
                    row.update(lc_row(model, sets, self.radius, frame=self._frame))
                t, self.seconds["lc"] = clock(), self.seconds["lc"] + clock() - t
                if self.robust_data is not None:
                    from splinescope.spatial.robust import robust_accuracy
                    acc = robust_accuracy(model, *self.robust_data, list(self._radii.values()), **self._robust_kw)
                    row[f"robust_{self.robust_set}"] = float(acc[0])
                    row.update({f"robust_{self.robust_set}/{name}": float(a) for name, a in zip(self._radii, acc)})
                t, self.seconds["robust"] = clock(), self.seconds["robust"] + clock() - t
                for name, (bounds, plane) in self.slices.items():
                    p = partition(model, bounds, plane=plane)
                    stats = partition_statistics(p, self._slice_data[name])
                    row.update({f"{k}/{name}": v for k, v in stats.items()})
                    if self.frames and (self.tensorboard is not None or self.wandb is not None):
                        images[name] = self._draw(p, name, step)
                t, self.seconds["slices"] = clock(), self.seconds["slices"] + clock() - t
        finally:
            model.train(was_training)
        if self.save:
            runs.save_step(self.run_dir, step, {k: v.detach().cpu() for k, v in model.state_dict().items()})
            if self._template is None:  # for movie() when there is no arch.json
                self._template = copy.deepcopy(model).cpu()
        self.seconds["save"] += clock() - t
        runs.append_log(self.run_dir, row)
        self.rows.append(row)
        self._send(row, images)
        return row

    def _draw(self, p, name: str, step: int) -> np.ndarray:
        from ._animate import draw_frames
        data = self._slice_data[name]
        return draw_frames([p], stats=False, steps=[step], data=data, label=name, progress=False)[0]

    def _send(self, row: Dict[str, Any], images: Dict[str, np.ndarray]) -> None:
        step = row["step"]
        numbers = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v)}
        if self.tensorboard is not None:
            for k, v in numbers.items():
                self.tensorboard.add_scalar(k, v, step)
            for name, img in images.items():
                self.tensorboard.add_image(f"partition/{name}", img, step, dataformats="HWC")
        if self.wandb is not None:
            logged: Dict[str, Any] = dict(numbers)
            if images:
                import wandb  # only when frames are asked for
                logged.update({f"partition/{name}": wandb.Image(img) for name, img in images.items()})
            self.wandb.log(logged, step=step)

    def movie(self, out, slice: Optional[str] = None, **kwargs) -> Path:
        """Animate the checkpoints saved so far on one of the slices (default: the first) into
        ``out`` (``.gif`` / ``.mp4``, :func:`render.animate`), and send it to the W&B run if
        there is one (``wandb.Video``). ``kwargs`` go to :func:`render.animate`."""
        from ._animate import animate
        if not self.slices:
            raise ValueError("the tracker has no slices to animate")
        name = next(iter(self.slices)) if slice is None else slice
        if name not in self.slices:
            raise ValueError(f"{name!r} is not a slice of this tracker, must be one of "
                             + ", ".join(repr(k) for k in self.slices))
        if not self.save:
            raise ValueError("the tracker saved no checkpoints (save=False): nothing to animate")
        bounds, plane = self.slices[name]
        data = (self._slice_data[name], None) if plane is not None else "auto"
        kwargs.setdefault("progress", False)
        checkpoints: Any = self.run_dir
        if not (self.run_dir / "arch.json").is_file() and self._template is not None:
            checkpoints = [(r["step"], self._weights(r["step"])) for r in self.rows]  # no arch.json: the model's own class
        a = animate(checkpoints, bounds, out, plane=plane, data=data, label=name, **kwargs)
        if self.wandb is not None:
            import wandb
            self.wandb.log({f"movie/{name}": wandb.Video(str(a.path))})
        return cast(Path, a.path)

    def _weights(self, step: int) -> torch.nn.Module:
        """A copy of the tracked model with the weights saved at ``step``."""
        from splinescope.spatial import runs
        m = copy.deepcopy(cast(torch.nn.Module, self._template))
        m.load_state_dict(torch.load(self.run_dir / runs.step_name(step), map_location="cpu", weights_only=True))
        return m

    def close(self) -> None:
        """Flush (and close, if the tracker made it) the TensorBoard writer."""
        if self.tensorboard is not None:
            self.tensorboard.flush()
            if self._own_writer:
                self.tensorboard.close()

    def __repr__(self) -> str:
        last = self.rows[-1]["step"] if self.rows else None
        robust = "" if self.robust_set is None else f", robust_{self.robust_set} at eps {list(self._radii)}"
        return (f"Tracker({str(self.run_dir)!r}, slices={list(self.slices)}, lc={self.lc}{robust}, "
                f"rows={len(self.rows)}, last step={last})")


def _pair(name: str, value) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(X, y) as arrays: X (N, ...) float, y (N,) or None."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{name} must be an (X, y) pair (y may be None), got {type(value).__name__}")
    X, y = value
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if X.ndim < 2 or len(X) == 0:
        raise ValueError(f"{name}: X of shape {X.shape} is not a batch of inputs (N, ...)")
    if y is not None:
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if y.shape != (len(X),):
            raise ValueError(f"{name}: y of shape {y.shape} is not ({len(X)},): one label per input")
    return X.astype(np.float32) if X.dtype.kind != "f" else X, y
