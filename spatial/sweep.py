"""Sweeps: partition statistics (and local complexity) for every checkpoint of a run and every
slice, as one table, in this process or on a Dask cluster, resumable.

A sweep is a set of independent tasks: one per (checkpoint, slice), the exact partition's
:func:`spatial.migration.partition_statistics` (``regions``, ``boundary_length``,
``density_data``, ``density_boundary``); and, with ``lc=True``, one per checkpoint, the local
complexity and accuracy of :func:`spatial.lc_run.lc_row` at training, test and random points.
The table has one row per checkpoint and slice (``step``, ``slice``, ``file``, the statistics,
the checkpoint's LC columns).

Where the tasks run: here, one after the other (default); on a local Dask cluster of ``workers``
processes (``dask.distributed.LocalCluster``, one thread each); or on an existing cluster at
``scheduler`` (``tcp://host:8786``: ``dask scheduler`` and ``dask worker`` processes that can
read the run folder and import splinescope). The table is the same whatever runs it: each
task's numbers depend only on its inputs.

Resumable: every finished task is stored at once, atomically, as one small JSON file in a
folder beside the table (``TABLE.parts/``), named by a hash of everything its result depends
on: the checkpoint file's contents (SHA-256), the slice, the options, the data. A sweep that is
interrupted (Ctrl-C, a killed worker or driver, a lost machine) and run again computes only the
tasks without a file; a checkpoint whose file changed gets a new hash and is computed again
(its old file is ignored). Rows are assembled from the current tasks only, so none is
duplicated or lost. A task that fails (an unreadable checkpoint, an unsupported layer) is
reported naming its checkpoint, the others go on, and it is tried again by the next run.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, cast

import numpy as np

from ._io import atomic_write
from ._validate import data_box, integer, output_path, slices as _check_slices

__all__ = ["SweepResult", "sweep"]

FORMATS = (".csv", ".parquet")
"""Table formats of :func:`sweep`, by the output's extension (Parquet needs pyarrow)."""
_VERSION = 1  # of the stored task results: a change of what a task computes bumps it
_STATS = ("regions", "boundary_length", "density_data", "density_boundary")


@dataclass(frozen=True)
class _Task:
    """One unit of work, picklable: a checkpoint file and a slice (or its LC when ``slice`` is None)."""

    path: str
    step: Optional[int]
    prefix: Optional[str]
    slice: Optional[str]  # None: the LC task of the checkpoint
    key: str  # the hash naming its stored result


@dataclass
class SweepResult:
    """What :func:`sweep` computed: the rows written, the tasks that failed, and how many ran now."""

    path: Path  # the table written
    rows: List[Dict[str, Any]]  # one per checkpoint and slice, in step order
    failures: List[Tuple[str, Optional[str], str]]  # (checkpoint file, slice or None for LC, error)
    computed: int  # tasks computed in this call (the others were stored already)
    stored: int  # tasks whose stored result was used

    def __repr__(self) -> str:
        return (f"SweepResult({len(self.rows)} rows -> {self.path}, computed {self.computed}, "
                f"reused {self.stored}, failed {len(self.failures)})")


# ----------------------------------------------------------------------------------------------
# what a task computes (run in a worker: everything it needs is in its arguments)

@dataclass
class _Context:
    """What every task shares: how to load a checkpoint, the slices, the data, the LC options."""

    arch: Any  # "pkg.module:factory" / a callable / None (the folder's arch.json)
    trust: bool
    slices: Dict[str, Tuple[Tuple[float, float, float, float], Any]]
    slice_data: Dict[str, Optional[np.ndarray]]  # the points of each slice, in its coordinates
    radius: Optional[float]  # of the density neighbourhoods
    lc_sets: Optional[Dict[str, Any]] = None  # spatial.lc_run.point_sets, for the LC tasks
    lc_radius: float = 0.1
    lc_frame: Any = None
    threads: Optional[int] = None  # torch threads in a worker process


def _compute(task: _Task, ctx: _Context) -> Dict[str, Any]:
    """The numbers of one task: ``{"values": {...}, "seconds": s}`` or ``{"error": "..."}``."""
    import torch

    from .checkpoints import load_model
    if ctx.threads:
        torch.set_num_threads(ctx.threads)
    t = time.perf_counter()
    try:
        model = load_model(task.path, ctx.arch, prefix=task.prefix, trust=ctx.trust)
        with torch.no_grad():
            if task.slice is None:
                from .lc_run import lc_row
                values = lc_row(model, cast(Dict[str, Any], ctx.lc_sets), ctx.lc_radius, frame=ctx.lc_frame)
            else:
                from ._partition import partition
                from .migration import partition_statistics
                bounds, plane = ctx.slices[task.slice]
                p = partition(model, bounds, plane=plane)
                values = partition_statistics(p, ctx.slice_data[task.slice], radius=ctx.radius)
    except Exception as e:  # reported per task; the sweep goes on
        return {"error": f"{type(e).__name__}: {' '.join(str(e).split())}"}
    return {"values": values, "seconds": time.perf_counter() - t}


# ----------------------------------------------------------------------------------------------
# keys and the store of finished tasks

def _hash(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if hasattr(part, "detach"):  # a tensor
            part = part.detach().cpu().numpy()
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def _task_digest(ctx: _Context, name: Optional[str]) -> str:
    """A hash of everything a task of slice ``name`` (None: the LC task) depends on, but its file."""
    arch = ctx.arch if ctx.arch is None or isinstance(ctx.arch, str) else getattr(ctx.arch, "__qualname__", repr(ctx.arch))
    parts: List[Any] = [_VERSION, arch, ctx.trust]
    if name is None:
        parts += ["lc", ctx.lc_radius, ctx.lc_frame]
        for k in sorted(ctx.lc_sets or {}):
            x, y = cast(Dict[str, Any], ctx.lc_sets)[k]
            parts += [k, x, "none" if y is None else y]
    else:
        bounds, pl = ctx.slices[name]
        pts = ctx.slice_data[name]
        parts += ["slice", name, bounds, ctx.radius, "none" if pts is None else pts]
        parts += ["box"] if pl is None else [pl.shape, pl.origin, pl.basis]
    return _hash(*parts)


class _Store:
    """The folder of finished tasks: ``<key>.json`` each, written atomically."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        f = self.folder / f"{key}.json"
        if not f.is_file():
            return None
        try:
            got = json.loads(f.read_text())
        except (OSError, ValueError):
            return None  # unreadable: computed again, and overwritten
        return got.get("values") if isinstance(got, dict) and got.get("key") == key else None

    def put(self, key: str, task: _Task, values: Dict[str, Any]) -> None:
        text = json.dumps({"key": key, "version": _VERSION, "file": task.path, "step": task.step,
                           "slice": task.slice, "values": values}, allow_nan=False)
        atomic_write(self.folder / f"{key}.json", lambda tmp: Path(tmp).write_text(text))


# ----------------------------------------------------------------------------------------------
# running the tasks

def _in_process(tasks: Sequence[_Task], ctx: _Context) -> Iterator[Tuple[_Task, Dict[str, Any]]]:
    for task in tasks:
        yield task, _compute(task, ctx)


@contextlib.contextmanager
def dask_client(workers: Optional[int] = None, scheduler: Optional[str] = None):
    """A ``dask.distributed.Client``: of a local cluster of ``workers`` processes (one thread each)
    started here, or of the cluster at ``scheduler`` (an address); closed (and the local cluster
    stopped) on leaving. What :func:`sweep`'s ``workers=`` / ``scheduler=`` and ``splinescope
    dynamics --workers`` run on."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        from ._errors import MissingDependencyError
        raise MissingDependencyError("workers= / scheduler= need Dask: pip install 'dask[distributed]'") from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout="30s")
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _on_dask(tasks: Sequence[_Task], ctx: _Context, workers: Optional[int],
             scheduler: Optional[str]) -> Iterator[Tuple[_Task, Dict[str, Any]]]:
    with dask_client(workers, scheduler) as client:
        from dask.distributed import as_completed

        from ._tiles import _send
        shared = _send(client, ctx)  # recomputed elsewhere if the worker holding it dies
        futures = {client.submit(_compute, t, shared, key=f"splinescope-{t.key}", pure=False, retries=2): t
                   for t in tasks}
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                yield task, fut.result()
            except Exception as e:  # a worker died too often, a lost connection
                yield task, {"error": f"{type(e).__name__}: {' '.join(str(e).split())}"}


# ----------------------------------------------------------------------------------------------
# public

def sweep(checkpoints, out, *, slices=None, arch=None, glob: Optional[str] = None, prefix: Optional[str] = None,
          trust: bool = False, data="auto", radius: Optional[float] = None, lc: bool = False,
          lc_points: int = 1000, lc_radius: float = 0.1, directions: Optional[int] = None, seed: int = 0,
          workers: Optional[int] = None, scheduler: Optional[str] = None, parts=None,
          progress: bool = True) -> SweepResult:
    """Partition statistics (and LC) of every checkpoint on every slice, into one table.

    Parameters
    ----------
    checkpoints : folder, file or list of files
        Read by :func:`spatial.checkpoints.list_checkpoints` (sorted by step; a run folder
        brings its ``arch.json`` and ``data.npz``).
    out : path ending in ``.csv`` or ``.parquet``
        The table, written atomically when the sweep ends (Parquet needs pyarrow).
    slices : dict, optional
        ``{name: (xmin, xmax, ymin, ymax)}`` or ``{name: (bounds, spatial.Plane)}``; default for
        a run of 2-D inputs: ``{"box": the data's box, widened by a tenth}``.
    arch, glob, prefix, trust
        As in :func:`spatial.load_checkpoints` (``arch``: a string, so that workers can resolve
        it, or a callable that pickles).
    data : "auto", None, or (X, y)
        The training set: ``"auto"`` is the run folder's ``data.npz``. Its 2-D points are the
        "near data" of a box slice; a plane's are its three defining points (0, 0), (1, 0), (0, 1).
        The LC tasks use it (and the held-out points of ``data.npz``).
    radius : float, optional
        "Near" for the densities (default: 1/20 of each slice's shorter side).
    lc : bool
        Also the local complexity and accuracy at training, test and random points, per
        checkpoint (:func:`spatial.lc_run.lc_row`; ``lc_points`` points per set, radius
        ``lc_radius``, ``directions`` random directions (default 25, at most the input
        dimension), all drawn from ``seed``).
    workers : int, optional
        Run on a local Dask cluster of this many processes (one thread each).
    scheduler : str, optional
        Run on the Dask cluster of this scheduler address (``"tcp://127.0.0.1:8786"``).
    parts : path, optional
        The folder of finished tasks (default: ``out`` + ``.parts``, beside the table).
    progress : bool
        A tqdm progress bar.

    Returns
    -------
    SweepResult
        The rows, the failures ``(file, slice, error)``, and how many tasks ran now and how many
        were stored already.

    Examples
    --------
    >>> import tempfile, torch
    >>> from splinescope.spatial import runs
    >>> from splinescope.spatial.train import toy_mlp
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = runs.write_arch(d, {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": {"width": 4, "depth": 1}})
    ...     _ = runs.write_data(d, np.random.default_rng(0).uniform(-1, 1, (20, 2)), np.arange(20) % 2)
    ...     for s in (0, 10):
    ...         _ = runs.save_step(d, s, toy_mlp(4, 1, seed=s).state_dict())
    ...     r = sweep(d, d + "/table.csv", progress=False)
    ...     again = sweep(d, d + "/table.csv", progress=False)
    >>> [(row["step"], row["slice"], row["regions"] > 1) for row in r.rows], again.computed
    ([(0, 'box', True), (10, 'box', True)], 0)
    """
    from .checkpoints import _sha256, list_checkpoints
    from .runs import load_run_data

    out = _check_out(out)
    if workers is not None and scheduler is not None:
        raise ValueError("give workers= (a local cluster) or scheduler= (an existing one), not both")
    if workers is not None:
        workers = integer("workers", workers, minimum=1)
    if scheduler is not None and not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be an address string like 'tcp://127.0.0.1:8786', got {type(scheduler).__name__}")
    unreadable: List[Tuple[Path, str]] = []
    records = list_checkpoints(checkpoints, glob=glob, arch=arch, prefix=prefix, trust=trust, unreadable=unreadable)
    if not records and not unreadable:
        raise ValueError(f"no checkpoints found in {str(checkpoints)!r}")
    folder = Path(checkpoints) if isinstance(checkpoints, (str, os.PathLike)) and Path(checkpoints).is_dir() else None
    train: Optional[Tuple[np.ndarray, Optional[np.ndarray]]] = None
    test: Optional[Tuple[np.ndarray, Optional[np.ndarray]]] = None
    if isinstance(data, str):
        if data != "auto":
            raise ValueError(f"data={data!r} is not valid, must be 'auto', None or an (X, y) pair")
        if folder is not None:
            train, test = load_run_data(folder), load_run_data(folder, "test")
    elif data is not None:
        train = (np.asarray(data[0]), None if data[1] is None else np.asarray(data[1]))
    flat = None if train is None else train[0].reshape(len(train[0]), -1)
    in_features = None if flat is None else flat.shape[1]
    if slices is None:
        slices = {"box": data_box(flat)} if in_features == 2 else {}
    checked = _check_slices(slices, in_features)
    anchors = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    slice_data = {k: (anchors if pl is not None else (flat if in_features == 2 else None))
                  for k, (_, pl) in checked.items()}
    ctx = _Context(arch=arch, trust=bool(trust), slices=checked, slice_data=slice_data, radius=radius,
                   threads=1 if (workers or scheduler) else None)
    if lc:
        if train is None or train[1] is None:
            raise ValueError("lc=True needs labelled training data: a run folder's data.npz or data=(X, y)")
        import torch

        from .lc_run import point_sets
        from .local_complexity import random_frame
        tflat = None if test is None else test[0].reshape(len(test[0]), -1)
        ctx.lc_sets = point_sets(flat, train[1], tflat, None if test is None else test[1],
                                 points=integer("lc_points", lc_points, minimum=1), seed=seed)
        shape = tuple(train[0].shape[1:])
        ctx.lc_sets = {k: (x.reshape((len(x),) + shape), y) for k, (x, y) in ctx.lc_sets.items()}
        D = cast(int, in_features)
        P = min(25, D) if directions is None else integer("directions", directions, minimum=1)
        ctx.lc_radius = float(lc_radius)
        ctx.lc_frame = random_frame(P, D, seed=seed, dtype=torch.float64)
    if not checked and not lc:
        raise ValueError("nothing to compute: no slices (give slices= for a run of more than 2-D inputs) and lc=False")

    digests = {name: _task_digest(ctx, name) for name in list(checked) + ([None] if lc else [])}
    tasks: List[_Task] = []
    for r in records:
        if r.path is None:
            raise ValueError("a sweep reads checkpoint files, not modules in memory")
        content = _sha256(r.path)
        for name in list(checked) + ([None] if lc else []):
            key = _hash(digests[name], content, r.prefix)[:32]
            tasks.append(_Task(str(r.path), r.step, r.prefix, name, key))
    store = _Store(Path(parts) if parts is not None else out.with_name(out.name + ".parts"))
    results: Dict[str, Dict[str, Any]] = {}
    todo = []
    for t in tasks:
        got = store.get(t.key)
        if got is None:
            todo.append(t)
        else:
            results[t.key] = got
    stored = len(tasks) - len(todo)
    failures: List[Tuple[str, Optional[str], str]] = [(str(f), None, e) for f, e in unreadable]
    from tqdm.auto import tqdm
    bar = tqdm(total=len(tasks), initial=stored, desc="sweep", unit="task", disable=not progress)
    for f, e in unreadable:
        bar.write(f"sweep: {e}")
    runner = _in_process(todo, ctx) if workers is None and scheduler is None else _on_dask(todo, ctx, workers, scheduler)
    try:
        for task, res in runner:
            if "error" in res:
                failures.append((task.path, task.slice, res["error"]))
                bar.write(f"sweep: {task.path}{'' if task.slice is None else f' (slice {task.slice})'}: "
                          f"{res['error']}")
            else:
                values = _clean(res["values"])  # as stored: a fresh row and a stored one are equal
                store.put(task.key, task, values)
                results[task.key] = values
            bar.update(1)
    finally:
        bar.close()
    rows = _rows(tasks, results, list(checked))
    _write(out, rows)
    return SweepResult(path=out, rows=rows, failures=failures, computed=len(todo) - len(failures) + len(unreadable),
                       stored=stored)


def _clean(values: Dict[str, Any]) -> Dict[str, Any]:
    """nan and inf (undefined densities) as None: JSON has neither; an empty cell in the table."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()}


def _rows(tasks: Sequence[_Task], results: Dict[str, Dict[str, Any]],
          names: Sequence[Optional[str]]) -> List[Dict[str, Any]]:
    """One row per checkpoint and slice that was computed (LC columns of the checkpoint in each);
    one row per checkpoint when there are no slices."""
    by_file: Dict[str, Dict[Optional[str], _Task]] = {}
    for t in tasks:
        by_file.setdefault(t.path, {})[t.slice] = t
    rows = []
    for path, per in by_file.items():  # in the records' step order
        lc_task = per.get(None)
        lc_values = results.get(lc_task.key) if lc_task is not None else None
        for name in (list(names) if names else [None]):
            task = per.get(name) if name is not None else lc_task
            if task is None or task.key not in results or (lc_task is not None and lc_values is None):
                continue  # failed: in the failures, not in the table
            row: Dict[str, Any] = {"step": task.step, "slice": name or "", "file": os.path.basename(path)}
            if name is not None:
                row.update(results[task.key])
            if lc_values is not None:
                row.update(lc_values)
            rows.append(row)
    return rows


def _check_out(out) -> Path:
    out = output_path(out, FORMATS, "table format")
    if out.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            from ._errors import MissingDependencyError
            raise MissingDependencyError("writing .parquet needs pyarrow: pip install pyarrow") from None
    return out


def _columns(rows: Iterable[Dict[str, Any]]) -> List[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def _write(out: Path, rows: List[Dict[str, Any]]) -> None:
    cols = _columns(rows) or ["step", "slice", "file", *_STATS]
    if out.suffix.lower() == ".csv":
        def write_csv(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=cols)
                w.writeheader()
                w.writerows(rows)
        atomic_write(out, write_csv, suffix=".csv")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pa.table({c: [r.get(c) for r in rows] for c in cols})
        atomic_write(out, lambda tmp: pq.write_table(table, tmp), suffix=".parquet")
