"""Grokking in the large-initialisation setting, measured at every checkpoint into run folders.

References: Z. Liu, E. J. Michaud, M. Tegmark, "Omnigrok: Grokking Beyond Algorithmic Data"
(ICLR 2023): an MLP whose initial weights are multiplied by a factor ``alpha`` fits 1,000 training
images early and reaches its test accuracy much later (grokking), reliably; A. I. Humayun,
R. Balestriero, R. Baraniuk, "Deep Networks Always Grok and Here is Why" (ICML 2024): the
robust accuracy comes later still (delayed robustness) and the local complexity at the training
points falls late, as the linear regions leave the data for the decision boundary.

The setting (:class:`GrokRun`): 1,000 Fashion-MNIST training images (Debian's
``dataset-fashion-mnist``; the sklearn digits as the small fallback), pixels in ``[0, 1]``, a ReLU
MLP of width 200 and depth 4 (four ``Linear`` layers: 784-200-200-200-10), every weight and bias
multiplied by ``init_scale = 8`` at initialisation, AdamW (lr 1e-3, weight decay 0.01), batches of
200, the squared error to one-hot targets, 10^5 steps, 40 log-spaced checkpoints. At each
checkpoint a :class:`render.Tracker` records, into the run folder (``spatial.runs``: checkpoints,
``arch.json``, ``data.npz``, ``log.jsonl``):

- ``train_acc``, ``test_acc``: accuracy on the whole training and test sets, and ``train_loss``
  (the training loss on the whole training set);
- ``robust_test``: the robust accuracy under PGD (l-inf, 10 steps, pixels clipped to ``[0, 1]``;
  :func:`spatial.robust_accuracy`) on up to 1,000 test images at the first radius of ``eps``,
  and ``robust_test/<eps>`` at each;
- ``lc_train``, ``lc_test``, ``lc_random``: the local complexity at training, test and uniformly
  random points (:func:`spatial.lc_run.lc_row`);
- ``regions/abc``, ``density_data/abc``, ``density_boundary/abc``, ``boundary_length/abc``: the
  exact partition of the plane through three training images of different classes
  (:func:`spatial.migration.partition_statistics`; "near the data" is near those three images).

:func:`grok` trains this run into ``out_dir/large`` and the control (``init_scale = 1``, all else
equal: same data, same draws of the initial weights, same batches) into ``out_dir/control``, and
writes each run's ``table.csv`` (:data:`TABLE_COLUMNS`, one row per checkpoint, rewritten
atomically after each), ``grok.json`` (the configuration, the indices of the plane's three
training images, the :func:`milestones`, the seconds spent) and the three images
(:data:`PLANE_FILES`). ``splinescope animate``, ``lc`` and the rest read the run folders as any
other::

    splinescope animate runs/grok/large --through runs/grok/large/plane_{a,b,c}.npy \\
        --bounds -0.2 1.2 -0.2 1.2 --out grok.gif

Command line: ``splinescope grok --out runs/grok`` (:mod:`render.cli.grok`).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from splinescope.spatial._validate import integer, option

__all__ = ["GROK_FILE", "GrokResult", "GrokRun", "PLANE_FILES", "TABLE_COLUMNS", "TABLE_FILE", "grok", "grok_data",
           "grok_plane", "milestones", "plot_grok", "read_table", "save_grok_plot", "summary", "train_grok"]

PathLike = Union[str, os.PathLike]

TABLE_FILE = "table.csv"
"""The table of a grokking run: one row per checkpoint."""
GROK_FILE = "grok.json"
"""The configuration of a grokking run, its plane's three images and its milestones."""
TABLE_COLUMNS = ("step", "train_acc", "test_acc", "robust_acc", "lc_train", "lc_test", "lc_random", "train_loss",
                 "regions", "density_data", "density_boundary", "boundary_length", "seconds_train",
                 "seconds_measure")
"""The columns of ``table.csv`` (``robust_acc/<eps>`` for each radius follow ``robust_acc``).
``robust_acc`` is at the first radius of :attr:`GrokRun.eps`; ``regions`` ... ``boundary_length``
are on the plane through three training images; ``seconds_train`` and ``seconds_measure`` are the
wall time spent so far on optimiser steps and on measurements (accuracies, LC, robust accuracy,
partitions, the checkpoint)."""

PLANE_FILES = ("plane_a.npy", "plane_b.npy", "plane_c.npy")
"""The three training images the plane goes through, at ``(s, t) = (0, 0), (1, 0), (0, 1)``."""

_DATA = ("fashion-mnist", "digits")
_SLICE = "abc"  # the name of the plane through three training images in the log


@dataclasses.dataclass
class GrokRun:
    """The grokking setting of :func:`grok` (defaults: Omnigrok's MNIST setting on Fashion-MNIST).

    Examples
    --------
    >>> GrokRun(data="digits", steps=1000).arch(64, 10)["kwargs"]
    {'width': 200, 'depth': 3, 'in_features': 64, 'out_features': 10, 'init_scale': 8.0, 'seed': 0}
    """

    data: str = "fashion-mnist"  # "fashion-mnist" (Debian's dataset-fashion-mnist) or "digits" (sklearn)
    train_size: int = 1000  # training images, a seeded subsample of the training split
    test_size: Optional[int] = None  # test images (a seeded subsample); None: the whole test split (digits: the rest)
    width: int = 200  # neurons per hidden layer
    depth: int = 4  # Linear layers: depth - 1 hidden ReLU layers (784-200-200-200-10)
    init_scale: float = 8.0  # every initial weight and bias multiplied by this (Omnigrok's alpha)
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 0.01  # AdamW's decoupled weight decay
    batch_size: int = 200  # mini-batch size (batches drawn with replacement, seeded)
    loss: str = "mse"  # "mse": squared error to one-hot targets (Omnigrok); "auto": cross-entropy
    steps: int = 100_000  # optimiser steps
    checkpoints: int = 40  # about this many log-spaced checkpoints (spatial.train.log_schedule)
    eps: Tuple[float, ...] = (0.05, 0.02, 0.1)  # l-inf radii on [0, 1] pixels; the first is robust_acc
    pgd_steps: int = 10  # PGD steps per attack (one run from the clean point)
    robust_points: int = 1000  # test images attacked (a seeded subsample)
    lc_points: int = 1000  # points per LC set (train, test, random)
    lc_radius: float = 0.1  # the LC cross-polytope's radius (l2, in pixel units)
    directions: int = 25  # the LC cross-polytope's random directions P
    plane_classes: Tuple[int, int, int] = (0, 1, 2)  # the plane goes through the first training image of each
    bounds: Tuple[float, float, float, float] = (-0.2, 1.2, -0.2, 1.2)  # the plane's window; images at (0,0) (1,0) (0,1)
    seed: int = 0  # seeds the subsamples, the initial weights, the batches and the measurements' points

    def check(self) -> "GrokRun":
        """``self`` if every field is valid, else a TypeError / ValueError naming the field."""
        option(self.data, _DATA, "data")
        option(self.loss, ("mse", "auto"), "loss")
        for name in ("train_size", "width", "depth", "batch_size", "checkpoints", "pgd_steps", "robust_points",
                     "lc_points", "directions"):
            integer(name, getattr(self, name), minimum=1)
        integer("steps", self.steps, minimum=0)
        integer("seed", self.seed, minimum=0)
        if self.depth < 2:
            raise ValueError(f"depth must be at least 2 (Linear layers, one hidden layer), got {self.depth}")
        if self.test_size is not None:
            integer("test_size", self.test_size, minimum=1)
        for name in ("init_scale", "lr", "lc_radius"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float)) \
                or not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        try:
            eps = np.asarray(self.eps, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise TypeError(f"eps must be a radius or a sequence of radii, got {self.eps!r}") from None
        if eps.size == 0 or not np.all(np.isfinite(eps) & (eps > 0)):
            raise ValueError(f"eps must be one or more finite radii > 0, got {self.eps!r}")
        classes = tuple(np.atleast_1d(self.plane_classes).tolist())
        if len(classes) != 3 or len(set(classes)) != 3 or not all(isinstance(c, int) for c in classes):
            raise ValueError(f"plane_classes must be three different classes (ints), got {self.plane_classes!r}")
        try:
            b = tuple(float(v) for v in self.bounds)
        except (TypeError, ValueError):
            raise TypeError(f"bounds must be (xmin, xmax, ymin, ymax), got {self.bounds!r}") from None
        if len(b) != 4 or not (b[0] < b[1] and b[2] < b[3]):
            raise ValueError(f"bounds {self.bounds!r} must be (xmin, xmax, ymin, ymax) with xmin < xmax, ymin < ymax")
        return self

    def arch(self, in_features: int, out_features: int) -> Dict[str, Any]:
        """The ``arch.json`` record: :func:`spatial.train.toy_mlp` with ``depth - 1`` hidden layers."""
        kwargs = dict(width=self.width, depth=self.depth - 1, in_features=int(in_features),
                      out_features=int(out_features), init_scale=float(self.init_scale), seed=self.seed)
        return {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": kwargs}


@dataclasses.dataclass
class GrokResult:
    """One grokking run: its folder, its table (one dict per checkpoint), where the time went
    (seconds: ``train``, ``accuracy``, ``lc``, ``robust``, ``slices``, ``save``), its milestones."""

    run_dir: Path
    rows: List[Dict[str, float]]
    seconds: Dict[str, float]
    milestones: Dict[str, Any]

    @property
    def measure_ratio(self) -> float:
        """The time of the measurements as a ratio to the time of the optimiser steps."""
        measured = sum(v for k, v in self.seconds.items() if k != "train")
        return measured / max(self.seconds["train"], 1e-12)

    def __repr__(self) -> str:
        return (f"GrokResult({str(self.run_dir)!r}, {len(self.rows)} checkpoints, "
                f"measurements {self.measure_ratio:.2f}x training, milestones={self.milestones})")


# ----------------------------------------------------------------------------------------------
# data, plane

def grok_data(cfg: GrokRun) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_test, y_test)`` of ``cfg``: flattened float32 pixels in ``[0, 1]``.

    Fashion-MNIST is read from Debian's ``dataset-fashion-mnist`` (:data:`spatial.idx.FASHION_MNIST`);
    a FileNotFoundError names the package when it is missing. The training images are a subsample
    (``train_size``, seeded) of the training split; the test images are the test split (or a
    subsample of ``test_size``). Digits: :func:`spatial.data.digits_split` (the rest is the test set).
    """
    cfg.check()
    if cfg.data == "digits":
        from splinescope.spatial.data import digits_split
        Xtr, ytr, Xte, yte = digits_split(cfg.train_size, cfg.seed)
    else:
        from splinescope.spatial import idx
        if not idx.FASHION_MNIST.is_dir():
            raise FileNotFoundError(
                f"Fashion-MNIST is not installed ({idx.FASHION_MNIST} is missing): apt-get install "
                "dataset-fashion-mnist, or use the small fallback, the sklearn digits (data='digits')")
        images, labels = idx.load_mnist(idx.FASHION_MNIST, "train")
        if cfg.train_size > len(images):
            raise ValueError(f"train_size must be at most {len(images)}, got {cfg.train_size}")
        pick = np.random.default_rng(cfg.seed).permutation(len(images))[:cfg.train_size]
        Xtr, ytr = images[pick], labels[pick]
        Xte, yte = idx.load_mnist(idx.FASHION_MNIST, "test")
        flat = lambda a: a.reshape(len(a), -1).astype(np.float32) / np.float32(255)
        Xtr, Xte = flat(Xtr), flat(Xte)
    if cfg.test_size is not None and cfg.test_size < len(Xte):
        pick = np.sort(np.random.default_rng(cfg.seed + 1).permutation(len(Xte))[:cfg.test_size])
        Xte, yte = Xte[pick], yte[pick]
    return Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64)


def grok_plane(X: np.ndarray, y: np.ndarray, classes: Sequence[int] = (0, 1, 2)):
    """The plane through the first training image of each of three classes, and their indices.

    ``(s, t) = (0, 0), (1, 0), (0, 1)`` are the images of ``classes[0]``, ``[1]``, ``[2]``.

    Examples
    --------
    >>> X = np.eye(4, dtype=np.float32); y = np.array([2, 0, 1, 0])
    >>> plane, idx = grok_plane(X, y)
    >>> idx, plane.lift([[1.0, 0.0]]).tolist()
    ([1, 2, 0], [[0.0, 0.0, 1.0, 0.0]])
    """
    from splinescope.spatial import Plane

    idx = []
    for c in classes:
        hits = np.nonzero(np.asarray(y) == c)[0]
        if not len(hits):
            raise ValueError(f"plane_classes: no training image of class {c}")
        idx.append(int(hits[0]))
    X = np.asarray(X)
    return Plane.through(*(X[i].reshape(-1).astype(np.float64) for i in idx)), idx


# ----------------------------------------------------------------------------------------------
# the runs

def train_grok(run_dir: PathLike, cfg: GrokRun, *, progress: bool = True, desc: str = "grok",
               data: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = None) -> GrokResult:
    """Train one run of ``cfg`` into the run folder ``run_dir``, measuring at every checkpoint.

    A previous run's checkpoints and log in ``run_dir`` are removed first. ``data``: the arrays
    of :func:`grok_data` when already loaded.

    Returns
    -------
    GrokResult
    """
    from splinescope.spatial import runs
    from splinescope.spatial.lc_run import accuracy
    from splinescope.spatial.train import loss_value, toy_mlp
    from tqdm.auto import tqdm

    from .track import Tracker

    cfg.check()
    Xtr, ytr, Xte, yte = grok_data(cfg) if data is None else data
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.clear_steps(run_dir)
    for stale in (runs.LOG_FILE, TABLE_FILE, GROK_FILE):
        (run_dir / stale).unlink(missing_ok=True)
    K = int(max(ytr.max(), yte.max())) + 1
    arch = cfg.arch(Xtr.shape[1], K)
    model = toy_mlp(**arch["kwargs"])
    plane, anchors = grok_plane(Xtr, ytr, cfg.plane_classes)
    eps = tuple(float(e) for e in np.asarray(cfg.eps, dtype=np.float64).reshape(-1))
    tracker = Tracker(run_dir, (Xtr, ytr), (Xte, yte), steps=cfg.steps, checkpoints=cfg.checkpoints,
                      slices={_SLICE: (tuple(cfg.bounds), plane)}, lc_points=cfg.lc_points, radius=cfg.lc_radius,
                      directions=cfg.directions, seed=cfg.seed, arch=arch,
                      robust={"eps": eps, "steps": cfg.pgd_steps, "clip": (0.0, 1.0), "points": cfg.robust_points})
    for name, i in zip(PLANE_FILES, anchors):  # for `splinescope animate RUN --through a b c`
        _save_npy(run_dir / name, Xtr[i].astype(np.float64))
    x_train, y_train = torch.as_tensor(Xtr), torch.as_tensor(ytr)
    x_test, y_test = torch.as_tensor(Xte), torch.as_tensor(yte)
    gen = torch.Generator().manual_seed(cfg.seed)  # the batches' own generator
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    seconds = {"train": 0.0, "accuracy": 0.0}
    table: List[Dict[str, float]] = []
    meta = {"config": dataclasses.asdict(cfg), "plane_images": anchors, "eps": list(eps)}
    clock = time.perf_counter
    bar = tqdm(total=cfg.steps, desc=desc, disable=not progress, unit="step", smoothing=0.05)
    model.train()
    for step in range(cfg.steps + 1):
        if tracker.due(step):
            t = clock()
            model.eval()
            with torch.no_grad():
                numbers = {"train_acc": accuracy(model, x_train, y_train), "test_acc": accuracy(model, x_test, y_test),
                           "train_loss": float(loss_value(model(x_train), y_train, cfg.loss))}
            seconds["accuracy"] += clock() - t
            row = tracker.step(model, step, **numbers)
            model.train()
            assert row is not None
            table.append(_table_row(row, eps, seconds, tracker.seconds))
            _write_table(run_dir / TABLE_FILE, table, eps)
            bar.set_postfix(train=f"{row['train_acc']:.3f}", test=f"{row['test_acc']:.3f}",
                            robust=f"{row['robust_test']:.3f}", lc=f"{row['lc_train']:.2f}", refresh=False)
        if step == cfg.steps:
            break
        t = clock()
        sel = torch.randint(len(y_train), (cfg.batch_size,), generator=gen)
        value = loss_value(model(x_train[sel]), y_train[sel], cfg.loss)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        seconds["train"] += clock() - t
        bar.update(1)
    bar.close()
    tracker.close()
    model.eval()
    seconds.update(tracker.seconds)
    meta["milestones"] = ms = milestones(table)
    meta["seconds"] = seconds
    text = json.dumps(meta, indent=2) + "\n"
    from splinescope.spatial._io import atomic_write
    atomic_write(run_dir / GROK_FILE, lambda tmp: Path(tmp).write_text(text))
    return GrokResult(run_dir, table, seconds, ms)


def grok(out_dir: PathLike, config: Optional[GrokRun] = None, *, control: bool = True,
         progress: bool = True) -> Dict[str, GrokResult]:
    """Train the large-initialisation run into ``out_dir/large`` and its control (``init_scale =
    1``, all else equal) into ``out_dir/control``, measuring both at every checkpoint.

    Parameters
    ----------
    out_dir : path
        Created; each run folder holds ``step_*.pt``, ``arch.json``, ``data.npz``, ``log.jsonl``,
        ``table.csv`` and ``grok.json``.
    config : GrokRun, optional
        The setting (default ``GrokRun()``: Fashion-MNIST, 10^5 steps, about 10 minutes per run on
        one thread).
    control : bool
        Also train the control.
    progress : bool
        tqdm progress bars.

    Returns
    -------
    dict
        ``{"large": GrokResult, "control": GrokResult}`` (without ``"control"`` when
        ``control=False``).

    Examples
    --------
    >>> import tempfile
    >>> cfg = GrokRun(data="digits", width=8, steps=20, checkpoints=3, lc_points=20, directions=2,
    ...               robust_points=20, bounds=(0.0, 1.0, 0.0, 1.0))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     res = grok(d, cfg, progress=False)
    ...     [r["step"] for r in res["large"].rows], sorted(p.name for p in Path(d).iterdir())
    ([0, 1, 4, 20], ['control', 'large'])
    """
    cfg = GrokRun() if config is None else config
    if not isinstance(cfg, GrokRun):
        raise TypeError(f"config must be a GrokRun, got {type(cfg).__name__}")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path, got {type(out_dir).__name__}")
    cfg.check()
    data = grok_data(cfg)
    out = Path(out_dir)
    results = {"large": train_grok(out / "large", cfg, progress=progress, desc=f"x{cfg.init_scale:g} init",
                                   data=data)}
    if control:
        ctl = dataclasses.replace(cfg, init_scale=1.0)
        results["control"] = train_grok(out / "control", ctl, progress=progress, desc="x1 init (control)", data=data)
    return results


def _save_npy(path: Path, a: np.ndarray) -> Path:
    from splinescope.spatial._io import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to the name
            np.save(f, a)
    return atomic_write(path, write)


# ----------------------------------------------------------------------------------------------
# the table

def _table_row(row: Dict[str, Any], eps: Sequence[float], seconds: Dict[str, float],
               tracked: Dict[str, float]) -> Dict[str, float]:
    out = {"step": row["step"], "train_acc": row["train_acc"], "test_acc": row["test_acc"],
           "robust_acc": row["robust_test"]}
    out.update({f"robust_acc/{e:g}": row[f"robust_test/{e:g}"] for e in eps})
    out.update({k: row[k] for k in ("lc_train", "lc_test", "lc_random", "train_loss")})
    out.update({k: row[f"{k}/{_SLICE}"] for k in ("regions", "density_data", "density_boundary", "boundary_length")})
    out["seconds_train"] = seconds["train"]
    out["seconds_measure"] = seconds["accuracy"] + sum(tracked.values())
    return out


def _columns(eps: Sequence[float]) -> List[str]:
    cols = list(TABLE_COLUMNS)
    at = cols.index("robust_acc") + 1
    return cols[:at] + [f"robust_acc/{e:g}" for e in eps] + cols[at:]


def _write_table(path: Path, rows: List[Dict[str, float]], eps: Sequence[float]) -> Path:
    from splinescope.spatial._io import atomic_write

    cols = _columns(eps)

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for r in rows:
                w.writerow(["" if r[c] is None or (isinstance(r[c], float) and not math.isfinite(r[c]))
                            else repr(r[c]) if isinstance(r[c], float) else r[c] for c in cols])
    return atomic_write(path, write)


def read_table(run_dir: PathLike) -> List[Dict[str, float]]:
    """The rows of ``run_dir/table.csv``: ``step`` an int, the rest floats (nan where empty)."""
    path = Path(run_dir) / TABLE_FILE
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k == "step" else float(v) if v != "" else math.nan) for k, v in r.items()} for r in rows]


# ----------------------------------------------------------------------------------------------
# milestones

def _held_from(steps: np.ndarray, ok: np.ndarray) -> Optional[int]:
    """The first step from which ``ok`` holds at every later row (None if not at the last)."""
    if not len(ok) or not ok[-1]:
        return None
    bad = np.nonzero(~ok)[0]
    return int(steps[0 if not len(bad) else bad[-1] + 1])


def milestones(rows: Sequence[Dict[str, float]], *, fit: float = 0.99, plateau: float = 0.95) -> Dict[str, Any]:
    """Where a run's curves turn: the steps of the delays that grokking is about.

    ``fit_step``: the first step with training accuracy ``>= fit``; ``test_step`` and
    ``robust_step``: the first step from which the test (robust) accuracy stays ``>= plateau``
    times its final value (None for a final robust accuracy of 0); ``test_delay``,
    ``robust_delay``: those steps over ``fit_step``; ``lc_train_peak_step``: where LC at the
    training points is largest; and the final values.

    Examples
    --------
    >>> rows = [dict(step=s, train_acc=a, test_acc=b, robust_acc=c, lc_train=d) for s, a, b, c, d in
    ...         [(0, 0.1, 0.1, 0.0, 5), (10, 1.0, 0.2, 0.0, 9), (100, 1.0, 0.8, 0.1, 7), (1000, 1.0, 0.8, 0.3, 4)]]
    >>> m = milestones(rows)
    >>> m["fit_step"], m["test_step"], m["test_delay"], m["robust_step"], m["lc_train_peak_step"]
    (10, 100, 10.0, 1000, 10)
    """
    steps = np.array([int(r["step"]) for r in rows])
    col = lambda k: np.array([np.nan if r.get(k) is None else float(r[k]) for r in rows])
    train, test, robust, lc = col("train_acc"), col("test_acc"), col("robust_acc"), col("lc_train")
    hit = np.nonzero(train >= fit)[0]
    fit_step = int(steps[hit[0]]) if len(hit) else None
    test_step = _held_from(steps, test >= plateau * test[-1]) if len(rows) else None
    robust_step = _held_from(steps, robust >= plateau * robust[-1]) if len(rows) and robust[-1] > 0 else None
    delay = lambda s: None if s is None or not fit_step else round(s / fit_step, 2)
    return {"fit_step": fit_step, "test_step": test_step, "robust_step": robust_step,
            "test_delay": delay(test_step), "robust_delay": delay(robust_step),
            "lc_train_peak_step": int(steps[int(np.nanargmax(lc))]) if len(rows) and np.isfinite(lc).any() else None,
            "final_train_acc": float(train[-1]) if len(rows) else None,
            "final_test_acc": float(test[-1]) if len(rows) else None,
            "final_robust_acc": float(robust[-1]) if len(rows) else None,
            "final_lc_train": float(lc[-1]) if len(rows) else None}


def summary(name: str, result: GrokResult, eps: Optional[float] = None) -> str:
    """One line: where the training set is fitted, test and robust accuracy plateau, LC peaks.

    A plateau "from" the last checkpoint is marked: the curve may still be rising there."""
    m = result.milestones
    last = result.rows[-1]["step"] if result.rows else None
    fmt = lambda s: "never" if s is None else f"step {s:,}"
    flat = lambda s: fmt(s) + (" (the last checkpoint: still rising?)" if s is not None and s == last else "")
    later = lambda d: "" if d is None else f" ({d:g}x later)"
    at = "" if eps is None else f" at eps {eps:g}"
    peak = max((r["lc_train"] for r in result.rows), default=math.nan)
    return (f"{name}: train acc >= 0.99 at {fmt(m['fit_step'])}; test acc {m['final_test_acc']:.3f}, "
            f"within 95% of it from {flat(m['test_step'])}{later(m['test_delay'])}; robust acc{at} "
            f"{m['final_robust_acc']:.3f}, within 95% from {flat(m['robust_step'])}{later(m['robust_delay'])}; "
            f"LC at train points peaks at {fmt(m['lc_train_peak_step'])} ({peak:.2f}), ends {m['final_lc_train']:.2f}; "
            f"measurements {result.measure_ratio:.2f}x training")


# ----------------------------------------------------------------------------------------------
# the picture

_PANELS = (("accuracy", (("train_acc", "train", "tab:blue"), ("test_acc", "test", "tab:orange"),
                         ("robust_acc", "robust (test, PGD)", "tab:red"))),
           ("mean local complexity", (("lc_train", "train", "tab:blue"), ("lc_test", "test", "tab:orange"),
                                      ("lc_random", "random", "tab:green"))),
           ("regions per unit area\n(plane through 3 images)", (("density_data", "near the 3 images", "tab:purple"),
                                                              ("density_boundary", "near the boundary", "tab:brown"))))


def plot_grok(rows: Sequence[Dict[str, float]], control: Optional[Sequence[Dict[str, float]]] = None, *,
              axes=None, label: str = "large init", control_label: str = "control", marks: bool = True, **kwargs):
    """Accuracy (train, test, robust), local complexity (train, test, random) and the plane's
    region densities (near the data, near the boundary) over steps, on one log step axis.

    Parameters
    ----------
    rows : sequence of dict
        A run's table (:func:`read_table`, :attr:`GrokResult.rows`): solid lines.
    control : sequence of dict, optional
        The control's table: dashed lines.
    axes : three matplotlib Axes, optional
        Default: a new figure, the three panels stacked, sharing the step axis (``step + 1``, log).
    label, control_label : str
        The legend's names of the two runs.
    marks : bool
        Dotted vertical lines at the run's :func:`milestones` (fitted, test and robust plateau).
    **kwargs
        Passed to every ``Axes.plot`` call.

    Returns
    -------
    list of matplotlib Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> rows = [dict(step=s, train_acc=a, test_acc=a / 2, robust_acc=0.0, lc_train=3.0, lc_test=3.0, lc_random=2.0,
    ...              density_data=9.0, density_boundary=5.0) for s, a in [(0, 0.1), (10, 1.0), (100, 1.0)]]
    >>> axes = plot_grok(rows, rows)
    >>> [len(ax.lines) for ax in axes]
    [8, 6, 4]
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("rows is empty: a table of at least one checkpoint")
    if axes is None:
        _, axes = plt.subplots(3, 1, figsize=(7.5, 9.0), sharex=True)
    axes = list(np.atleast_1d(axes))
    if len(axes) != 3:
        raise ValueError(f"need 3 axes (accuracy, LC, plane), got {len(axes)}")
    runs_ = [(rows, "-", label)] + ([(control, "--", control_label)] if control else [])
    for ax, (ylabel, series) in zip(axes, _PANELS):
        for table, style, name in runs_:
            x = np.array([r["step"] for r in table], dtype=np.float64) + 1
            for key, what, color in series:
                y = np.array([np.nan if r.get(key) is None else r[key] for r in table], dtype=np.float64)
                ax.plot(x, y, style, color=color, label=f"{what} ({name})", lw=1.8 if style == "-" else 1.2,
                        **kwargs)
        ax.set_xscale("log")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, ncol=2, framealpha=0.85, edgecolor="none")
    axes[0].set_ylim(0, 1.02)
    axes[2].set_yscale("log")
    axes[-1].set_xlabel("step + 1")
    if marks:
        m = milestones(rows)
        for key, what in (("fit_step", "train fitted"), ("test_step", "test plateau"),
                          ("robust_step", "robust plateau")):
            if m[key] is not None:
                axes[0].axvline(m[key] + 1, color="0.5", ls=":", lw=1)
                axes[0].annotate(what, (m[key] + 1, 1.0), rotation=90, fontsize=7, color="0.4", ha="right", va="top")
    return axes


def save_grok_plot(rows, control, out: PathLike, *, title: str = "", dpi: int = 110) -> Path:
    """Write :func:`plot_grok` of ``rows`` (and ``control``) to ``out`` (a PNG), atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from splinescope.spatial._io import atomic_write

    axes = plot_grok(rows, control)
    fig = axes[0].figure
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    try:
        return atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
