"""Frames of training: one partition per checkpoint, drawn on fixed axes beside the statistics.

``draw_frames()`` draws ready-made partitions and their statistics (no geometry of its own),
``frames()`` chains load -> partition -> statistics -> ``draw_frames()``, ``save()`` writes
images to a GIF or MP4 atomically, ``animate()`` is ``frames()`` then ``save()``. Checkpoints are
resolved and *every* partition is computed before the first frame is drawn, so an unsupported
layer fails fast (naming the layer) and the statistics panel can show the whole run with a
marker moving along it; each partition's region distances are computed once and serve both the
statistics and the distance colours. Checkpoint files are loaded one at a time
(:func:`spatial.checkpoints.load_checkpoints` is lazy): a model is dropped
once its partition is computed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union, cast

import numpy as np

from splinescope.spatial._io import atomic_write
from splinescope.spatial._validate import option, output_path

__all__ = ["Animation", "animate", "draw_frames", "frames", "save"]

FORMATS = (".gif", ".mp4")
"""Output formats of :func:`save`, by file extension (MP4 needs imageio-ffmpeg)."""


def _check_out(out, formats: Sequence[str] = FORMATS) -> Path:
    """``out`` as a Path, if it names one of ``formats`` (by extension) in an existing folder (and
    imageio-ffmpeg is there for an MP4)."""
    out = output_path(out, formats)
    if out.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            from splinescope.spatial import MissingDependencyError
            raise MissingDependencyError("writing .mp4 needs imageio-ffmpeg: pip install 'splinescope[mp4]'") from None
    return out


def _resolve(checkpoints, arch, **load) -> Sequence[Tuple[Optional[int], Any]]:
    """(step, module) pairs from a folder, a file, a list of files, modules or (step, module) pairs.

    Files give a lazy sequence (each model loaded when it is reached); ``load`` holds the options
    of :func:`spatial.checkpoints.load_checkpoints` (glob, prefix, trust).
    """
    import torch

    from splinescope.spatial.checkpoints import CheckpointSequence, load_checkpoints

    pairs: Sequence[Tuple[Optional[int], Any]]
    if isinstance(checkpoints, CheckpointSequence):
        pairs = checkpoints
    elif isinstance(checkpoints, (str, os.PathLike)):
        pairs = load_checkpoints(Path(checkpoints), arch=arch, **load)  # reads a folder's arch.json itself
    elif isinstance(checkpoints, torch.nn.Module):
        pairs = [(None, checkpoints)]
    elif isinstance(checkpoints, (list, tuple)):
        items = list(checkpoints)
        if not items:
            raise ValueError("checkpoints is empty: need at least one model or checkpoint file")
        if all(isinstance(c, torch.nn.Module) for c in items):
            pairs = [(i, c) for i, c in enumerate(items)]
        elif all(isinstance(c, tuple) and len(c) == 2 and isinstance(c[1], torch.nn.Module) for c in items):
            pairs = [(None if s is None else int(s), m) for s, m in items]
        elif all(isinstance(c, (str, os.PathLike)) for c in items):
            pairs = load_checkpoints(items, arch=arch, **load)
        else:
            kinds = sorted({type(c).__name__ for c in items})
            raise TypeError("checkpoints must be all modules, all (step, module) pairs or all paths, "
                            f"got a list of {', '.join(kinds)}")
    else:
        raise TypeError("checkpoints must be a folder or file path, a list of paths, a list of "
                        f"modules or a list of (step, module) pairs, got {type(checkpoints).__name__}")
    if not len(pairs):
        raise ValueError(f"no checkpoints found in {str(checkpoints)!r}")
    return pairs


def _run_points(checkpoints, plane, data, test=None):
    """``(data, test)`` of a movie or page: ``data="auto"`` reads a run folder's ``data.npz``.

    The training points, and the held-out ones unless ``test`` is given, of a folder written by
    ``splinescope train`` when its inputs are 2-D and no plane is given; else none.
    """
    if not isinstance(data, str):
        return data, test
    option(data, ("auto",), "data option", others=("None", "an (X, y) pair", "(N, 2) points"))
    if not (isinstance(checkpoints, (str, os.PathLike)) and Path(checkpoints).is_dir() and plane is None):
        return None, test
    from splinescope.spatial.runs import load_run_data
    found = load_run_data(checkpoints)
    if found is None or found[0].ndim != 2 or found[0].shape[1] != 2:
        return None, test  # inputs of more than 2 dimensions: not points of a slice
    return found, load_run_data(checkpoints, "test") if test is None else test


@dataclass
class Animation:
    """What :func:`animate` wrote: the file, the steps of its frames, their statistics."""

    path: Optional[Path]  # the file written (None from frames())
    steps: List[Optional[int]]  # the training step of each frame (None: unknown)
    n_regions: np.ndarray  # (T,) regions in the slice per frame
    table: Any  # spatial.migration.MigrationTable over the T checkpoints
    images: Optional[List[np.ndarray]] = None  # (H, W, 3) uint8 frames, kept by frames()

    def _repr_html_(self) -> str:
        """In Jupyter: the movie, playable inline, with its frame and region counts."""
        from ._notebook import animation_html
        return animation_html(self)

    def __repr__(self) -> str:
        return (f"Animation({len(self.steps)} frames, regions {int(self.n_regions.min())}.."
                f"{int(self.n_regions.max())}, path={str(self.path) if self.path else None})")


def _stat_values(parts, color, X, distances):
    """Per-frame region values and one shared norm, or (None, None) for pattern colours."""
    if not isinstance(color, str) or color == "pattern":
        return [None] * len(parts), None
    from matplotlib.colors import LogNorm, Normalize
    from splinescope.spatial.migration import region_statistic
    from ._plot import _COLOR_OPTIONS
    option(color, _COLOR_OPTIONS, "color option")
    vals = [region_statistic(p, color, data=X, distances=d) for p, d in zip(parts, distances)]
    allv = np.concatenate([v[np.isfinite(v)] for v in vals] + [np.zeros(0)])
    if not len(allv):
        return vals, Normalize(0, 1)
    if color == "area" and allv.min() > 0:
        return vals, LogNorm(allv.min(), allv.max())
    return vals, Normalize(allv.min(), allv.max())


def _partitions(checkpoints, bounds, *, arch, glob, prefix, trust, plane, progress):
    """The steps and partitions of the checkpoints, all computed before anything is drawn.

    An unsupported layer (or a bad slice) fails before any frame is drawn; one pass, so each
    checkpoint file is loaded once and its model dropped after its partition.
    """
    from splinescope import spatial
    from tqdm.auto import tqdm

    pairs = _resolve(checkpoints, arch, glob=glob, prefix=prefix, trust=trust)
    steps, parts = [], []
    for s, m in tqdm(pairs, desc="partition", disable=not progress, unit="ckpt"):
        steps.append(s)
        parts.append(spatial.partition(m, bounds, plane=plane))
        del m
    return steps, parts


def draw_frames(partitions, table=None, steps=None, *, data=None, distances=None,
                color: str = "pattern", stats: bool = True, figsize=(10.0, 5.0), dpi: int = 80,
                label: str = "", progress: bool = True, **kwargs) -> List[np.ndarray]:
    """Draw ready-made partitions, one frame each, beside their statistics; no geometry here.

    Parameters
    ----------
    partitions : sequence of spatial.Partition
        One per frame, all on the same slice.
    table : spatial.migration.MigrationTable, optional
        The :func:`spatial.migration.migration_table` of ``partitions`` (leading axis T), drawn
        in the statistics panel; needed when ``stats`` is true.
    steps : sequence of int or None, optional
        The training step of each frame, for titles and the panel's x axis (default: unknown,
        frames are numbered).
    data : (X, y) pair or (N, 2) array, optional
        Points in slice coordinates, drawn on top (and the data of a ``"data_distance"`` colour).
    distances : sequence of (R, 2) arrays, optional
        The :func:`spatial.migration.region_distances` of each partition, used by the distance
        colours instead of computing them again.
    color, stats, figsize, dpi, label, progress, **kwargs
        As in :func:`animate`.

    Returns
    -------
    list of (H, W, 3) uint8 arrays
        One image per partition.

    Examples
    --------
    >>> from splinescope import spatial
    >>> from splinescope.spatial.train import toy_mlp
    >>> parts = [spatial.partition(toy_mlp(4, 1, seed=s), (-1, 1, -1, 1)) for s in (0, 1)]
    >>> imgs = draw_frames(parts, stats=False, progress=False)
    >>> len(imgs), imgs[0].shape
    (2, (400, 400, 3))
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from tqdm.auto import tqdm

    from ._plot import _data_arrays, plot_partition

    parts = list(partitions)
    if not parts:
        raise ValueError("partitions is empty: need at least one partition")
    T = len(parts)
    steps = [None] * T if steps is None else list(steps)
    if len(steps) != T:
        raise ValueError(f"steps has {len(steps)} entries for {T} partitions")
    if stats:
        if table is None:
            raise ValueError("stats=True needs table= (spatial.migration.migration_table of the partitions)")
        if np.shape(table.n_regions) != (T,):
            raise ValueError(f"table is over {np.shape(table.n_regions)} checkpoints, not the {T} partitions")
    distances = [None] * T if distances is None else list(distances)
    if len(distances) != T:
        raise ValueError(f"distances has {len(distances)} arrays for {T} partitions")
    X, y = _data_arrays(data)
    data_xy = None if X is None else (X, y)
    vals, norm = _stat_values(parts, color, X, distances)

    fig = Figure(figsize=figsize if stats else (figsize[1], figsize[1]), dpi=dpi)
    FigureCanvasAgg(fig)
    if stats:
        gs = fig.add_gridspec(2, 2, width_ratios=(1.3, 1.0), hspace=0.45, wspace=0.2,
                              left=0.04, right=0.97, top=0.9, bottom=0.12)
        ax = fig.add_subplot(gs[:, 0])
        ax_n, ax_d = fig.add_subplot(gs[0, 1]), fig.add_subplot(gs[1, 1])
        known = all(s is not None for s in steps)
        xs = np.array(steps if known else range(len(steps)), dtype=np.float64)
        for a in (ax_n, ax_d):
            if known and len(xs) > 1 and xs.max() > 10 * max(xs[xs > 0].min(initial=1), 1):
                a.set_xscale("symlog", linthresh=max(1.0, xs[xs > 0].min(initial=1)))
            a.grid(alpha=0.3)
            a.tick_params(labelsize=8)
        ax_n.plot(xs, table.n_regions, color="0.2", lw=1.5)
        ax_n.set_title("regions in the slice", fontsize=10)
        ax_d.plot(xs, table.density_data, color="#1f77b4", lw=1.5, label="near data")
        ax_d.plot(xs, table.density_boundary, color="black", lw=1.5, label="near boundary")
        ax_d.set_title(f"regions per unit area (within {table.radius:.2g})", fontsize=10)
        ax_d.set_xlabel("training step" if known else "checkpoint", fontsize=9)
        ax_d.legend(fontsize=8, loc="best", frameon=False)
        marks = [ax_n.axvline(xs[0], color="#d62728", lw=1, alpha=0.6),
                 ax_d.axvline(xs[0], color="#d62728", lw=1, alpha=0.6)]
        dots = [ax_n.plot([], [], "o", color="#d62728", ms=5)[0],
                ax_d.plot([], [], "o", color="#1f77b4", ms=5)[0],
                ax_d.plot([], [], "o", color="black", ms=5)[0]]
    else:
        ax = fig.add_axes((0.04, 0.04, 0.92, 0.86))
    ax.tick_params(labelsize=8)
    if norm is not None:  # one colour scale for all frames, shown once
        from matplotlib.cm import ScalarMappable
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=kwargs.get("cmap", "viridis")), ax=ax,
                           fraction=0.046, pad=0.02)
        bar.set_label(color.replace("_", " "), fontsize=8)
        bar.ax.tick_params(labelsize=7)

    images: List[np.ndarray] = []
    art = None
    for i, p in enumerate(tqdm(parts, desc="frames", disable=not progress, unit="frame")):
        if art is not None:
            art.remove()
        c = "pattern" if vals[i] is None else vals[i]
        head = f"step {steps[i]}" if steps[i] is not None else f"checkpoint {i}"
        art = plot_partition(p, ax, data=data_xy, color=c, norm=norm,
                             title=f"{label + ' · ' if label else ''}{head} · {len(p)} regions", **kwargs)
        if stats:
            for m in marks:
                m.set_xdata([xs[i], xs[i]])
            dots[0].set_data([xs[i]], [table.n_regions[i]])
            dots[1].set_data([xs[i]], [table.density_data[i]])
            dots[2].set_data([xs[i]], [table.density_boundary[i]])
        fig.canvas.draw()
        images.append(np.asarray(cast(Any, fig.canvas).buffer_rgba())[..., :3].copy())
    return images


def frames(checkpoints, bounds=(-1, 1, -1, 1), *, arch=None, glob=None, prefix=None, trust=False,
           plane=None, data=None,
           color: str = "pattern", stats: bool = True, figsize=(10.0, 5.0), dpi: int = 80,
           radius: Optional[float] = None, label: str = "", progress: bool = True,
           **kwargs) -> Animation:
    """Draw one frame per checkpoint; the images are in the result's ``images``.

    Load -> partition -> statistics -> :func:`draw_frames`. Parameters are those of
    :func:`animate` (without ``out`` and ``fps``).

    Examples
    --------
    >>> import torch
    >>> from splinescope.spatial.train import toy_mlp
    >>> a = frames([toy_mlp(4, 1, seed=0), toy_mlp(4, 1, seed=1)], progress=False, stats=False)
    >>> len(a.images), a.images[0].shape, a.images[0].dtype
    (2, (400, 400, 3), dtype('uint8'))
    """
    from splinescope.spatial.migration import migration_table, region_distances
    from tqdm.auto import tqdm

    from ._plot import _data_arrays

    steps, parts = _partitions(checkpoints, bounds, arch=arch, glob=glob, prefix=prefix, trust=trust,
                               plane=plane, progress=progress)
    X, _ = _data_arrays(data)
    # the distances once per partition, shared by the table and the distance colours
    distances = [region_distances(p, X) for p in tqdm(parts, desc="migration", disable=not progress, unit="ckpt")]
    table = migration_table(parts, X, radius=radius, distances=distances)
    images = draw_frames(parts, table, steps, data=data, distances=distances, color=color, stats=stats,
                         figsize=figsize, dpi=dpi, label=label, progress=progress, **kwargs)
    return Animation(path=None, steps=steps, n_regions=np.asarray(table.n_regions), table=table, images=images)


def save(images: Sequence[np.ndarray], out, *, fps: float = 8, hold: float = 1.5) -> Path:
    """Write images (H, W, 3) uint8 to a GIF or MP4, atomically.

    The file appears complete or not at all: it is written to a temporary file in the same folder
    and renamed over ``out`` (``os.replace``); an error or Ctrl-C removes the temporary file and
    leaves any earlier ``out`` untouched.

    Parameters
    ----------
    images : sequence of (H, W, 3) uint8 arrays, all one shape
    out : path ending in ``.gif`` or ``.mp4``
    fps : frames per second
    hold : seconds to hold the last frame (GIF only)

    Examples
    --------
    >>> import tempfile, imageio.v3 as iio
    >>> imgs = [np.full((8, 8, 3), v, np.uint8) for v in (0, 255)]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     iio.imread(save(imgs, d + "/a.gif", fps=4), index=None).shape
    (2, 8, 8, 3)
    >>> save(imgs, "a.png")
    Traceback (most recent call last):
    ...
    ValueError: '.png' is not a supported output format, must be one of '.gif', '.mp4'
    """
    out = _check_out(out)
    imgs = [np.asarray(im) for im in images]
    if not imgs:
        raise ValueError("images is empty: nothing to write")
    shape = imgs[0].shape
    for i, im in enumerate(imgs):
        if im.shape != shape or im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise ValueError(f"image {i} is {im.dtype} {im.shape}; all images must be uint8 (H, W, 3) "
                             f"of the first image's shape {shape}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return atomic_write(out, lambda tmp: _write(imgs, tmp, out.suffix.lower(), fps, hold), suffix=out.suffix)


def _write(imgs: List[np.ndarray], path: str, ext: str, fps: float, hold: float) -> None:
    import imageio.v2 as iio2
    import imageio.v3 as iio

    if ext == ".gif":
        dur = [1000.0 / fps] * len(imgs)
        dur[-1] = max(dur[-1], 1000.0 * hold)
        # Pillow takes a list of durations only for several frames
        iio.imwrite(path, np.stack(imgs), extension=".gif", duration=dur if len(dur) > 1 else dur[0], loop=0)
    else:
        H, W, _ = imgs[0].shape
        pad = ((0, H % 2), (0, W % 2), (0, 0))  # yuv420p needs even sides
        with iio2.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", quality=8,
                             pixelformat="yuv420p", macro_block_size=1) as w:
            for im in imgs:
                cast(Any, w).append_data(np.pad(im, pad, mode="edge"))


def animate(checkpoints, bounds=(-1, 1, -1, 1), out="run.gif", *, arch=None, glob=None, prefix=None,
            trust=False, plane=None, data="auto",
            color: str = "pattern", stats: bool = True, fps: float = 8, figsize=(10.0, 5.0),
            dpi: int = 80, radius: Optional[float] = None, label: str = "", progress: bool = True,
            **kwargs) -> Animation:
    """Write a GIF (or MP4) of a network's linear regions, one frame per checkpoint.

    Parameters
    ----------
    checkpoints : folder, file, list of files, list of modules, or list of (step, module)
        Files and folders are read by :func:`spatial.checkpoints.load_checkpoints` (sorted by
        step, read from the checkpoint itself first, then from the file name; aliases such as
        ``last.ckpt`` skipped; one model in memory at a time); a folder written by
        ``splinescope train`` carries its architecture (``arch.json``) and data (``data.npz``).
    bounds : (xmin, xmax, ymin, ymax)
        The slice, fixed across frames.
    out : path ending in ``.gif`` or ``.mp4``
        Written atomically.
    arch : "pkg.module:factory", "path/to/file.py:factory" or callable, optional
        The architecture of state_dict checkpoints.
    glob : str, optional
        Which files of the folder to read (e.g. ``"model_*.pt"``).
    prefix : str, optional
        The key prefix of the weights when a file holds several sets (EMA and live weights).
    trust : bool
        Unpickle Python objects (whole modules saved with ``torch.save(model)``); such files can
        run code when loaded: only for files you trust.
    plane : spatial.Plane, optional
        For networks of more than 2 inputs.
    data : (X, y) pair, (N, 2) array, None or "auto"
        Points in slice coordinates, drawn on top; they also define "near data" in the
        statistics panel. ``"auto"`` (default): the ``data.npz`` of a ``splinescope train``
        folder when its inputs are 2-D (with its held-out points, if any, as ``test``), else none.
    color : ``"pattern"`` (stable per region), ``"area"``, ``"slope"``, ``"boundary_distance"``,
        ``"data_distance"`` (one colour scale shared by all frames).
    stats : bool
        Draw the statistics panel (region count; region density near the data and near the
        boundary) with a marker at the current step.
    fps, figsize, dpi : frame rate and frame size (pixels: figsize * dpi).
    radius : float, optional
        "Near" for the densities (default: 1/20 of the slice's shorter side).
    label : str
        Put before the title of every frame (``"ReLU · step 120 · 431 regions"``).
    progress : bool
        tqdm progress bars.
    **kwargs
        Passed to :func:`render.plot_partition` (``test=(X_test, y_test)`` to draw held-out
        points too, edgecolor, linewidth, boundary_width, ...).

    Returns
    -------
    Animation
        The path written, the steps and region counts of the frames, the migration table.
    """
    out = _check_out(out)
    data, test = _run_points(checkpoints, plane, data, kwargs.get("test"))
    if test is not None:
        kwargs["test"] = test
    a = frames(checkpoints, bounds, arch=arch, glob=glob, prefix=prefix, trust=trust, plane=plane,
               data=data, color=color, stats=stats,
               figsize=figsize, dpi=dpi, radius=radius, label=label, progress=progress, **kwargs)
    assert a.images is not None  # frames() keeps its images
    a.path = save(a.images, out, fps=fps)
    a.images = None
    return a
