"""Drawing one partition, and the migration tables over training, with matplotlib collections.

Regions are one :class:`~matplotlib.collections.PolyCollection` (their thin edges are its edges),
the decision boundary one :class:`~matplotlib.collections.LineCollection`, the data one scatter:
three artists whatever the number of regions, so a 100,000-region frame draws in seconds. Every
number drawn here comes from :mod:`spatial` (areas, slopes, distances); this module only maps
numbers to colours and marks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Union, cast

import numpy as np

from splinescope.spatial._validate import option, points

__all__ = ["PartitionArtists", "plot_migration", "plot_partition", "region_colors"]

CLASS_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd",
                "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
"""Colours of the data points, by class."""

_COLOR_OPTIONS = ("pattern", "area", "slope", "boundary_distance", "data_distance")


def _mix64(k: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every output bit depends on every input bit."""
    k = np.asarray(k, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        k ^= k >> np.uint64(30)
        k *= np.uint64(0xBF58476D1CE4E5B9)
        k ^= k >> np.uint64(27)
        k *= np.uint64(0x94D049BB133111EB)
        k ^= k >> np.uint64(31)
    return k


def region_colors(keys) -> np.ndarray:
    """(R, 4) RGBA colours, a fixed function of each region's key (``Partition.region_keys()``).

    The same activation pattern gets the same colour in every frame, so the eye can follow a
    region through training. Colours are light (pastel) so edges, boundary and data stand out.

    Examples
    --------
    >>> c = region_colors(np.array([1, 2, 1], dtype=np.uint64))
    >>> c.shape, bool((c[0] == c[2]).all()), bool((c[0] == c[1]).all())
    ((3, 4), True, False)
    """
    from matplotlib.colors import hsv_to_rgb

    k = _mix64(keys)
    frac = lambda shift, bits: ((k >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.float64) / (1 << bits)
    hsv = np.stack([frac(0, 24), 0.18 + 0.32 * frac(24, 16), 0.86 + 0.14 * frac(40, 16)], axis=1)
    rgb = hsv_to_rgb(hsv) if len(k) else np.zeros((0, 3))
    return np.concatenate([rgb, np.ones((len(k), 1))], axis=1)


@dataclass
class PartitionArtists:
    """What :func:`plot_partition` drew: the axes and its three artists (None when not drawn)."""

    ax: Any  # matplotlib Axes
    regions: Any  # PolyCollection, one polygon per region
    boundary: Any  # LineCollection of the decision boundary's segments
    data: Any = None  # PathCollection of the data points, or None
    test: Any = None  # PathCollection of the test points, or None

    def remove(self) -> None:
        """Take the artists off the axes (to draw the next frame on the same axes)."""
        for a in (self.regions, self.boundary, self.data, self.test):
            if a is not None:
                a.remove()


def _data_arrays(data):
    """``(X, y)`` of ``data=`` / ``test=`` (the convention of :func:`splinescope.spatial._validate.points`)."""
    return points(data)


def _values(p, color, data):
    """(R,) numbers to colour by, or None for the stable pattern colours."""
    if isinstance(color, str):
        option(color, _COLOR_OPTIONS, "color option", others=("an (R,) array",))
        if color == "pattern":
            return None
        from splinescope.spatial.migration import region_statistic
        return region_statistic(p, color, data=None if data is None else data[0])
    v = np.asarray(color, dtype=np.float64).reshape(-1)
    if len(v) != len(p):
        raise ValueError(f"color has {len(v)} values but the partition has {len(p)} regions")
    return v


def plot_partition(p, ax=None, *, data=None, color="pattern", cmap="viridis", norm=None,
                   edgecolor=(0.15, 0.15, 0.15, 0.45), linewidth: Optional[float] = None,
                   boundary_color="black", boundary_width: float = 2.0, title=None,
                   step: Optional[int] = None, data_kw: Optional[dict] = None, test=None,
                   **kwargs) -> PartitionArtists:
    """Draw a partition: filled regions with thin edges, the bold decision boundary, the data.

    Parameters
    ----------
    p : spatial.Partition
    ax : matplotlib Axes, optional
        Default: the current axes.
    data : (X, y) pair or (N, 2) array, optional
        Points in slice coordinates, drawn on top (coloured by class ``y``).
    color : str or (R,) array
        ``"pattern"`` (default): a stable colour per activation pattern; ``"area"``, ``"slope"``
        (norm of the affine map's Jacobian), ``"boundary_distance"``, ``"data_distance"``: that
        statistic (from :func:`spatial.migration.region_statistic`) through ``cmap``; or one
        number per region.
    cmap, norm : colour map and normalisation for statistics (default norm: the data's range,
        logarithmic for areas). Pass a fixed ``norm`` to compare frames.
    edgecolor, linewidth : region edges; default width 0.4 points, thinner above 5,000 regions.
    boundary_color, boundary_width : the decision boundary (drawn with a white halo).
    title : str, False or None
        None: ``"step S · R regions"`` (``step`` if given); False: no title.
    step : int, optional
        The training step, for the title.
    data_kw : dict, optional
        Passed to ``ax.scatter`` for the data (e.g. ``{"s": 80, "marker": "*"}``).
    test : (X, y) pair or (N, 2) array, optional
        Held-out points, drawn on top as triangles with dark edges (the statistics use ``data``).
    **kwargs
        Passed to the PolyCollection.

    Returns
    -------
    PartitionArtists

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt, torch, spatial
    >>> from splinescope.spatial.train import toy_mlp
    >>> p = spatial.partition(toy_mlp(8, 1), (-1, 1, -1, 1))
    >>> fig, ax = plt.subplots()
    >>> art = plot_partition(p, ax, data=[[0.0, 0.0]], step=7)
    >>> len(art.regions.get_paths()) == len(p), ax.get_title() == f"step 7 · {len(p)} regions"
    (True, True)
    >>> plt.close(fig)
    """
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.colors import LogNorm, Normalize

    if ax is None:
        import matplotlib.pyplot as plt
        ax = plt.gca()
    X, y = _data_arrays(data)
    vals = _values(p, color, None if X is None else (X, y))
    R = len(p)
    if linewidth is None:
        linewidth = 0.4 if R <= 5000 else 0.15
    verts = np.split(p.vertices[p.indices], p.offsets[1:-1]) if R else []
    regions = PolyCollection(verts, closed=True, edgecolors=edgecolor, linewidths=linewidth,
                             antialiaseds=True, zorder=1, **kwargs)
    if vals is None:
        regions.set_facecolor(cast(Any, region_colors(p.region_keys())))
    else:
        finite = vals[np.isfinite(vals)]
        if norm is None:
            if isinstance(color, str) and color == "area" and len(finite) and finite.min() > 0:
                norm = LogNorm(finite.min(), finite.max())
            else:
                norm = Normalize(*((finite.min(), finite.max()) if len(finite) else (0, 1)))
        regions.set_array(np.where(np.isfinite(vals), vals, np.nan))
        regions.set_cmap(cmap)
        regions.set_norm(norm)
    ax.add_collection(regions)
    from matplotlib import patheffects
    boundary = LineCollection(cast(Any, np.asarray(p.boundary).reshape(-1, 2, 2)), colors=boundary_color,
                              linewidths=boundary_width, capstyle="round", zorder=2)
    # a white halo tells the boundary apart from bundles of thin region edges
    boundary.set_path_effects([patheffects.Stroke(linewidth=boundary_width + 2.0, foreground="white"),
                               patheffects.Normal()])
    ax.add_collection(boundary)
    pts = None
    c: Union[str, List[str]]
    if X is not None:
        if y is None:
            c = "white"
        else:
            c = [CLASS_COLORS[int(k) % len(CLASS_COLORS)] for k in y]
        kw = dict(c=c, s=14, edgecolors="white", linewidths=0.6, zorder=3)
        kw.update(data_kw or {})
        pts = ax.scatter(X[:, 0], X[:, 1], **kw)
    tpts = None
    Xt, yt = _data_arrays(test)
    if Xt is not None:
        c = "white" if yt is None else [CLASS_COLORS[int(k) % len(CLASS_COLORS)] for k in yt]
        tpts = ax.scatter(Xt[:, 0], Xt[:, 1], c=c, s=22, marker="^", edgecolors="black", linewidths=0.6,
                          zorder=3.5)
    x0, x1, y0, y1 = p.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    if title is None:
        title = (f"step {step} · " if step is not None else "") + f"{R} regions"
    if title is not False:
        ax.set_title(title)
    return PartitionArtists(ax=ax, regions=regions, boundary=boundary, data=pts, test=tpts)


_TO = ("boundary", "data")
_QUANTITY = ("count", "area")


def plot_migration(table, ax=None, *, to: str = "boundary", quantity: str = "count",
                   steps: Optional[Sequence[int]] = None, cmap="magma", **kwargs):
    """Draw a :class:`spatial.migration.MigrationTable` over training as a heat map.

    x: checkpoints (labelled by ``steps``), y: distance bins to the decision boundary (or to the
    data; the last bin also holds larger distances), colour: the number (or total area) of
    regions at that distance.

    Parameters
    ----------
    table : MigrationTable
        Made from a sequence of partitions (leading axis T).
    ax : matplotlib Axes, optional
    to : ``"boundary"`` or ``"data"``
    quantity : ``"count"`` or ``"area"``
    steps : sequence of int, optional
        Labels of the T checkpoints (default 0 .. T-1).
    cmap, **kwargs
        Passed to ``pcolormesh``.

    Returns
    -------
    matplotlib.collections.QuadMesh

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt, torch, spatial
    >>> from splinescope.spatial.migration import migration_table
    >>> nets = [torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)) for _ in range(3)]
    >>> t = migration_table([spatial.partition(n, (-1, 1, -1, 1)) for n in nets], bins=4)
    >>> fig, ax = plt.subplots()
    >>> plot_migration(t, ax, steps=[0, 10, 100]).get_array().shape
    (4, 3)
    >>> plot_migration(t, ax, to="edge")
    Traceback (most recent call last):
    ...
    ValueError: 'edge' is not a valid option for to, must be one of 'boundary', 'data'
    >>> plt.close(fig)
    """
    option(to, _TO, "option for to")
    option(quantity, _QUANTITY, "option for quantity")
    z = np.asarray(getattr(table, f"{quantity}_{to}"), dtype=np.float64)
    if z.ndim != 2:
        raise ValueError("plot_migration needs a table over training (made from a sequence of partitions)")
    T, B = z.shape
    if steps is None:
        steps = list(range(T))
    if len(steps) != T:
        raise ValueError(f"steps has {len(steps)} labels but the table has {T} checkpoints")
    if ax is None:
        import matplotlib.pyplot as plt
        ax = plt.gca()
    edges = np.asarray(table.edges, dtype=np.float64)
    mesh = ax.pcolormesh(np.arange(T + 1) - 0.5, edges, z.T, cmap=cmap, shading="flat", **kwargs)
    ticks = np.unique(np.linspace(0, T - 1, min(T, 6)).round().astype(int))
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(steps[i]) for i in ticks])
    ax.set_xlabel("training step")
    ax.set_ylabel(f"distance to {'boundary' if to == 'boundary' else 'nearest data point'}")
    ax.set_title(f"region {quantity} by distance to the {'boundary' if to == 'boundary' else 'data'}")
    return mesh
