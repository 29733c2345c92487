"""The run folder: the one place that knows its file names and keys, and reads and writes them.

A run folder (written by :func:`spatial.train.train`, ``splinescope train`` or
``gallery/lc_digits.py``) holds

- ``step_000123.pt``: one ``state_dict`` per checkpoint (:func:`step_name`; zero-padded so a
  folder listing sorts by step);
- ``arch.json`` (:data:`ARCH_FILE`): ``{"factory": "pkg.module:name", "kwargs": {...}}``, the
  architecture, so the run loads without ``--arch``;
- ``data.npz`` (:data:`DATA_FILE`): the training set, arrays ``X`` (N, D) or (N, C, H, W) and ``y`` (N,), and
  optionally held-out ``X_test``, ``y_test``;
- ``log.jsonl`` (:data:`LOG_FILE`): the step-keyed log of what was measured during training, one
  JSON object per line, each with an int ``"step"`` and numbers (or strings) under their names,
  e.g. ``{"step": 120, "lc_train": 3.2, "acc_test": 0.91}``. Several lines may share a step
  (measurements taken at different times); :func:`read_log` merges them.

Every file but the log is written atomically (:func:`spatial._io.atomic_write`): a reader never
sees a half-written one. The log is appended one whole line per ``write`` call, and a reader
skips a last line that is not complete yet.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ._io import atomic_write
from ._validate import option

__all__ = ["ARCH_FILE", "DATA_FILE", "DATA_KEYS", "LOG_FILE", "STEP_GLOB", "append_log", "clear_steps",
           "load_run_data", "read_arch", "read_log", "read_points", "save_step", "step_name", "write_arch",
           "write_data"]

PathLike = Union[str, os.PathLike]

ARCH_FILE = "arch.json"
"""The sidecar naming a run's architecture: ``{"factory": "pkg.module:name", "kwargs": {...}}``."""
DATA_FILE = "data.npz"
"""The training set of a run (arrays ``X`` and ``y``, optionally ``X_test`` and ``y_test``)."""
DATA_KEYS = ("X", "y", "X_test", "y_test")
"""The arrays a ``data.npz`` may hold."""
LOG_FILE = "log.jsonl"
"""The step-keyed log of a run: one JSON object per line, each with an int ``"step"``."""
STEP_GLOB = "step_[0-9][0-9][0-9][0-9][0-9][0-9]*.pt"
"""Matches the checkpoint files of a run (and no other file)."""

_ARCH_FORM = "must hold {\"factory\": \"pkg.module:factory\", \"kwargs\": {...}}"


def step_name(step: int) -> str:
    """The file name of the checkpoint at ``step``.

    Examples
    --------
    >>> step_name(123)
    'step_000123.pt'
    """
    return f"step_{int(step):06d}.pt"


def save_step(run_dir: PathLike, step: int, state_dict) -> Path:
    """Write ``state_dict`` (``torch.save``) to ``run_dir/step_{step:06d}.pt``, atomically."""
    import torch
    return atomic_write(Path(run_dir) / step_name(step), lambda tmp: torch.save(state_dict, tmp))


def clear_steps(run_dir: PathLike) -> None:
    """Remove the checkpoint files of a previous run from ``run_dir``."""
    for old in Path(run_dir).glob(STEP_GLOB):
        old.unlink()


def write_arch(run_dir: PathLike, arch: Dict) -> Path:
    """Write ``arch`` (``{"factory": ..., "kwargs": ...}``) to ``run_dir/arch.json``, atomically."""
    text = json.dumps(arch, indent=2) + "\n"
    return atomic_write(Path(run_dir) / ARCH_FILE, lambda tmp: Path(tmp).write_text(text))


def read_arch(run_dir: PathLike) -> Optional[Dict]:
    """The ``{"factory": str, "kwargs": dict}`` of ``run_dir/arch.json``, or None if there is none.

    Raises ValueError naming the file when it is not JSON or not of that form. The factory string
    is returned as written (:func:`spatial.checkpoints.resolve_arch` reads it).
    """
    f = Path(run_dir) / ARCH_FILE
    if not f.is_file():
        return None
    try:
        spec = json.loads(f.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{f}: is not valid JSON ({e}); it {_ARCH_FORM}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("factory", ""), str) \
            or not isinstance(spec.get("kwargs", {}), dict):
        raise ValueError(f"{f}: {_ARCH_FORM}")
    return {"factory": spec.get("factory", ""), "kwargs": dict(spec.get("kwargs", {}))}


def _save_npz(arrays, path) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, **arrays)


def write_data(run_dir: PathLike, X, y, X_test=None, y_test=None) -> Path:
    """Write the training set (and held-out points, if given) to ``run_dir/data.npz``, atomically."""
    arrays = {"X": np.asarray(X), "y": np.asarray(y)}
    if X_test is not None:
        arrays["X_test"] = np.asarray(X_test)
    if y_test is not None:
        arrays["y_test"] = np.asarray(y_test)
    return atomic_write(Path(run_dir) / DATA_FILE, lambda tmp: _save_npz(arrays, tmp))


def read_points(path: PathLike) -> Dict[str, np.ndarray]:
    """The arrays ``X`` and, where present, ``y``, ``X_test``, ``y_test`` of an ``.npz`` file.

    Raises ValueError when the file holds no ``X``.
    """
    with np.load(path, allow_pickle=False) as d:
        if "X" not in d:
            raise ValueError(f"{path} holds no array 'X' (keys: {', '.join(d.files)})")
        return {k: d[k] for k in DATA_KEYS if k in d}


def load_run_data(run_dir: PathLike, split: str = "train") -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The training set ``(X, y)`` saved in ``run_dir/data.npz`` (``split="test"``: the held-out
    points), or None if there is none."""
    option(split, ("train", "test"), "split")
    f = Path(run_dir) / DATA_FILE
    if not f.is_file():
        return None
    kx, ky = ("X", "y") if split == "train" else ("X_test", "y_test")
    with np.load(f) as d:
        return (d[kx], d[ky]) if kx in d and ky in d else None


def _log_value(key: str, v):
    """A JSON-ready scalar: Python and numpy numbers, 0-d tensors, bools and strings."""
    if isinstance(v, (str, bool)) or v is None:
        return v
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:  # numpy scalars, 0-d arrays and tensors
        v = v.item()
    if isinstance(v, (int, float)):
        return v if v == v and abs(v) != float("inf") else None  # JSON has no nan or inf
    raise TypeError(f"log value {key!r} is a {type(v).__name__}; the log takes numbers, "
                    "bools, strings and 0-d tensors or arrays")


def append_log(run_dir: PathLike, row: Dict) -> Path:
    """Append one row (a dict with an int ``"step"``) to ``run_dir/log.jsonl``.

    nan and inf are written as ``null`` (JSON has neither). The line is written with one
    ``write`` call, so a concurrent reader sees it whole or not at all.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = append_log(d, {"step": 0, "loss": 0.5}); _ = append_log(d, {"step": 10, "loss": 0.25})
    ...     read_log(d)
    [{'step': 0, 'loss': 0.5}, {'step': 10, 'loss': 0.25}]
    """
    if not isinstance(row, dict):
        raise TypeError(f"a log row must be a dict, got {type(row).__name__}")
    step = row.get("step")
    if isinstance(step, bool) or not isinstance(getattr(step, "item", lambda: step)(), int):
        raise ValueError(f"a log row needs an int 'step', got {step!r}")
    clean = {str(k): _log_value(str(k), v) for k, v in row.items()}
    line = json.dumps(clean, allow_nan=False) + "\n"
    path = Path(run_dir) / LOG_FILE
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
    return path


def read_log(run_dir: PathLike) -> list:
    """The rows of ``run_dir/log.jsonl`` in step order, rows of one step merged (later values
    win); ``[]`` when there is no log. A last line that is not complete (being written) is
    skipped; any other line that is not a JSON object with an int ``"step"`` is a ValueError
    naming the file and the line."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    merged: Dict[int, Dict] = {}
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if i == len(lines):  # the last line, without its newline yet: being written
                break
            raise ValueError(f"{path}, line {i}: is not JSON") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or isinstance(row.get("step"), bool):
            raise ValueError(f"{path}, line {i}: a log row must be a JSON object with an int 'step'")
        merged.setdefault(row["step"], {}).update(row)
    return [merged[s] for s in sorted(merged)]
