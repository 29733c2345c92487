"""The run folder: the one place that knows its file names and keys, and reads and writes them.

A run folder (written by :func:`spatial.train.train`, ``splinescope train`` or
``gallery/lc_digits.py``) holds

- ``step_000123.pt``: one ``state_dict`` per checkpoint (:func:`step_name`; zero-padded so a
  folder listing sorts by step);
- ``arch.json`` (:data:`ARCH_FILE`): ``{"factory": "pkg.module:name", "kwargs": {...}}``, the
  architecture, so the run loads without ``--arch``;
- ``data.npz`` (:data:`DATA_FILE`): the training set, arrays ``X`` (N, D) and ``y`` (N,), and
  optionally held-out ``X_test``, ``y_test``.

Every file is written atomically (:func:`spatial._io.atomic_write`): a reader never sees a
half-written one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ._io import atomic_write
from ._validate import option

__all__ = ["ARCH_FILE", "DATA_FILE", "DATA_KEYS", "STEP_GLOB", "clear_steps", "load_run_data", "read_arch",
           "read_points", "save_step", "step_name", "write_arch", "write_data"]

PathLike = Union[str, os.PathLike]

ARCH_FILE = "arch.json"
"""The sidecar naming a run's architecture: ``{"factory": "pkg.module:name", "kwargs": {...}}``."""
DATA_FILE = "data.npz"
"""The training set of a run (arrays ``X`` and ``y``, optionally ``X_test`` and ``y_test``)."""
DATA_KEYS = ("X", "y", "X_test", "y_test")
"""The arrays a ``data.npz`` may hold."""
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
