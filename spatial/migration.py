"""Region migration: where a partition's regions sit relative to the decision boundary and the data.

For each region of a :class:`~spatial.Partition` this module measures (with shapely) the distance
from the region's polygon to the decision boundary and to the nearest data point: 0 when the
region touches the boundary / holds a point. From these, over fixed distance bins shared by all
checkpoints, it tabulates the number and the area of regions at each distance, and the *density*
of regions near the data and near the boundary: the number of regions that meet the ``radius``-
neighbourhood of the data (of the boundary) divided by the area of that neighbourhood inside the
slice. Late in training, regions are known to leave the data for the decision boundary
(Humayun, Balestriero & Baraniuk, "Deep Networks Always Grok and Here is Why", ICML 2024): the
density near the data falls while the density near the boundary rises.

All distances are in slice coordinates ``(s, t)``. Data points of a network of more than two
inputs must be given in slice coordinates too (e.g. the ``(s, t)`` of the images a plane goes
through).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union, cast

import numpy as np

from ._validate import option, points

__all__ = ["MigrationTable", "STATISTICS", "migration_table", "partition_statistics", "region_distances",
           "region_statistic"]

STATISTICS = ("area", "slope", "boundary_distance", "data_distance")
"""The per-region statistics of :func:`region_statistic`."""


def _data_xy(data) -> Optional[np.ndarray]:
    """The (N, 2) float64 points of ``data`` (the ``data=`` convention of :mod:`spatial._validate`)."""
    return points(data)[0]


def _nearest(polys, geoms) -> np.ndarray:
    """(R,) distance from each polygon to the nearest of ``geoms`` (inf when there are none)."""
    import shapely

    d = np.full(len(polys), np.inf)
    if len(geoms) == 0 or len(polys) == 0:
        return d
    tree = shapely.STRtree(geoms)
    (ri, _), dist = tree.query_nearest(polys, return_distance=True, all_matches=False)
    np.minimum.at(d, ri, dist)
    return d


def region_distances(p, data=None) -> np.ndarray:
    """Distances from every region to the decision boundary and to the nearest data point.

    Parameters
    ----------
    p : spatial.Partition
    data : (N, 2) array or (X, y) pair, optional
        Points in slice coordinates.

    Returns
    -------
    (R, 2) float64
        Column 0: distance to the decision boundary (inf if the slice has none); column 1:
        distance to the nearest data point (nan without data). 0 where the region touches it.

    Examples
    --------
    >>> import torch, spatial
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ReLU(), torch.nn.Linear(1, 1))
    >>> with torch.no_grad():
    ...     net[0].weight[:] = torch.tensor([[1.0, 0.0]]); net[0].bias[:] = 0.0  # kink at s = 0
    ...     net[2].weight[:] = 1.0; net[2].bias[:] = -0.5                      # boundary at s = 0.5
    >>> p = spatial.partition(net, bounds=(-1, 1, -1, 1))
    >>> region_distances(p, data=[[-0.75, 0.0]])[np.argsort(p.centroids()[:, 0])].tolist()
    [[0.5, 0.0], [0.0, 0.75]]
    """
    import shapely

    polys = p.to_shapely()
    segs = np.asarray(p.boundary, dtype=np.float64).reshape(-1, 2, 2)
    lines = shapely.linestrings(segs) if len(segs) else np.empty(0, object)
    out = np.empty((len(p), 2))
    out[:, 0] = _nearest(polys, lines)
    X = _data_xy(data)
    out[:, 1] = np.nan if X is None else _nearest(polys, shapely.points(X))
    return out


def region_statistic(p, name: str, data=None, *, distances: Optional[np.ndarray] = None) -> np.ndarray:
    """One number per region, for colouring: its area, the slope norm of its affine map (the
    Frobenius norm of the Jacobian of the outputs with respect to ``(s, t)``), or its distance to
    the decision boundary or to the data.

    ``distances``, the (R, 2) result of :func:`region_distances` for ``p`` and ``data``, is used
    instead of computing it again.

    Examples
    --------
    >>> from splinescope import spatial
    >>> from splinescope.spatial.train import toy_mlp
    >>> p = spatial.partition(toy_mlp(4, 2), (-1, 1, -1, 1))
    >>> round(float(region_statistic(p, "area").sum()), 9)
    4.0
    >>> region_statistic(p, "volume")
    Traceback (most recent call last):
    ...
    ValueError: 'volume' is not a valid statistic, must be one of 'area', 'slope', 'boundary_distance', 'data_distance'
    """
    option(name, STATISTICS, "statistic")
    if name == "area":
        return p.areas()
    if name == "slope":
        A = p.affine_maps()  # (R, K, 3)
        return np.sqrt((A[:, :, :2] ** 2).sum(axis=(1, 2)))
    if name == "data_distance" and data is None:
        raise ValueError("the 'data_distance' statistic needs data=")
    d = region_distances(p, data) if distances is None else distances
    return d[:, 0 if name == "boundary_distance" else 1]


@dataclass
class MigrationTable:
    """Where the regions are, per checkpoint (leading axis ``T`` when made from several partitions).

    Histograms are over the distance bins ``edges``; the last bin also holds everything beyond it.
    """

    edges: np.ndarray  # (B+1,) distance bin edges, shared by all checkpoints
    radius: float  # the "near" distance of the densities
    n_regions: np.ndarray  # (...,) regions in the slice
    count_boundary: np.ndarray  # (..., B) regions per bin of distance to the decision boundary
    area_boundary: np.ndarray  # (..., B) their total area
    count_data: np.ndarray  # (..., B) regions per bin of distance to the nearest data point
    area_data: np.ndarray  # (..., B) their total area
    density_boundary: np.ndarray  # (...,) regions per unit area within `radius` of the boundary
    density_data: np.ndarray  # (...,) regions per unit area within `radius` of the data

    def __repr__(self) -> str:
        shape = np.shape(self.n_regions)
        what = f"{shape[0]} checkpoints, " if shape else ""
        return (f"MigrationTable({what}{len(self.edges) - 1} bins up to {self.edges[-1]:.3g}, "
                f"radius={self.radius:.3g})")

    def _repr_html_(self) -> str:
        """In Jupyter: regions and densities per checkpoint, a small table."""
        import html
        cols = ("n_regions", "density_data", "density_boundary")
        vals = [np.atleast_1d(getattr(self, c)) for c in cols]
        head = "".join(f"<th>{c}</th>" for c in ("checkpoint",) + cols)
        body = "".join("<tr><td>" + str(i) + "</td>" + "".join(f"<td>{v[i]:.4g}</td>" for v in vals) + "</tr>"
                       for i in range(len(vals[0])))
        return f"<table><caption>{html.escape(repr(self))}</caption><tr>{head}</tr>{body}</table>"


def _neighbourhood_area(geoms, radius: float, box) -> float:
    import shapely

    if len(geoms) == 0:
        return 0.0
    return float(shapely.area(shapely.intersection(shapely.union_all(shapely.buffer(geoms, radius)), box)))


def _one_table(p, X, edges: np.ndarray, radius: float, d: Optional[np.ndarray] = None):
    import shapely

    d = region_distances(p, X) if d is None else d
    a = p.areas()
    B = len(edges) - 1
    x0, x1, y0, y1 = p.bounds
    box = shapely.box(x0, y0, x1, y1)
    row: Dict[str, Any] = {"n_regions": len(p)}
    for col, key in ((0, "boundary"), (1, "data")):
        dist = d[:, col]
        ok = np.isfinite(dist)
        b = np.clip(np.searchsorted(edges, dist[ok], side="right") - 1, 0, B - 1)
        row[f"count_{key}"] = np.bincount(b, minlength=B).astype(np.int64)
        row[f"area_{key}"] = np.bincount(b, weights=a[ok], minlength=B)
    segs = np.asarray(p.boundary).reshape(-1, 2, 2)
    nb_area = _neighbourhood_area(shapely.linestrings(segs) if len(segs) else [], radius, box)
    row["density_boundary"] = np.count_nonzero(d[:, 0] <= radius) / nb_area if nb_area > 0 else np.nan
    nd_area = _neighbourhood_area(shapely.points(X) if X is not None else [], radius, box)
    row["density_data"] = np.count_nonzero(d[:, 1] <= radius) / nd_area if nd_area > 0 else np.nan
    return row


def migration_table(partitions, data=None, *, bins: Union[int, Sequence[float]] = 10,
                    radius: Optional[float] = None, progress: bool = False,
                    distances: Optional[Sequence[np.ndarray]] = None) -> MigrationTable:
    """Region count and area by distance to the decision boundary and to the data, and the region
    densities near each, for one partition or a sequence of them (e.g. one per checkpoint).

    Parameters
    ----------
    partitions : spatial.Partition or sequence of them
        All on the same slice (the bins are shared).
    data : (N, 2) array or (X, y) pair, optional
        Points in slice coordinates; without them the data columns are zero and the data
        density is nan.
    bins : int or sequence of float
        Distance bin edges (increasing, from 0), or a number of equal bins from 0 to half the
        slice's shorter side. The last bin collects all larger distances.
    radius : float, optional
        The "near" distance of the densities; default: 1/20 of the slice's shorter side.
    progress : bool
        Show a tqdm progress bar over the partitions.
    distances : (R, 2) array or sequence of them, optional
        The :func:`region_distances` of each partition for ``data``, when already computed
        (one array for one partition, else one per partition).

    Returns
    -------
    MigrationTable
        With a leading axis of length T when ``partitions`` is a sequence.

    Examples
    --------
    >>> import torch, spatial
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ReLU(), torch.nn.Linear(1, 1))
    >>> with torch.no_grad():
    ...     net[0].weight[:] = torch.tensor([[1.0, 0.0]]); net[0].bias[:] = 0.0
    ...     net[2].weight[:] = 1.0; net[2].bias[:] = -0.5
    >>> t = migration_table(spatial.partition(net, (-1, 1, -1, 1)), [[-0.75, 0.0]], bins=[0, 0.25, 1])
    >>> t.count_boundary.tolist(), t.count_data.tolist(), t.area_boundary.tolist()
    ([1, 1], [1, 1], [2.0, 2.0])
    """
    single = not isinstance(partitions, (list, tuple))
    parts = [partitions] if single else list(partitions)
    if not parts:
        raise ValueError("partitions is empty: need at least one partition")
    x0, x1, y0, y1 = parts[0].bounds
    side = min(x1 - x0, y1 - y0)
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be a positive int or a sequence of edges, got {bins}")
        edges = np.linspace(0.0, side / 2, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64).reshape(-1)
        if len(edges) < 2 or edges[0] != 0 or np.any(np.diff(edges) <= 0):
            raise ValueError("bins must be increasing edges starting at 0, with at least 2 of them")
    radius = side / 20 if radius is None else float(radius)
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    X = _data_xy(data)
    dists: List[Optional[np.ndarray]]
    if distances is None:
        dists = [None] * len(parts)
    else:
        dists = [cast(np.ndarray, distances)] if single else list(distances)
        if len(dists) != len(parts):
            raise ValueError(f"distances has {len(dists)} arrays for {len(parts)} partitions")
    from tqdm.auto import tqdm
    rows = [_one_table(p, X, edges, radius, d)
            for p, d in zip(tqdm(parts, desc="migration", disable=not progress, unit="ckpt"), dists)]
    cols = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    if single:
        cols = {k: v[0] for k, v in cols.items()}
    return MigrationTable(edges=edges, radius=radius, **cols)


def partition_statistics(p, data=None, *, radius: Optional[float] = None,
                         distances: Optional[np.ndarray] = None) -> Dict[str, float]:
    """The scalars of one partition that a training log or a sweep records.

    ``regions`` (the count), ``boundary_length`` (of the decision boundary in the slice),
    ``density_data`` and ``density_boundary`` (regions per unit area within ``radius`` of the
    data and of the boundary, as in :func:`migration_table`; nan without data / without a
    boundary).

    Parameters
    ----------
    p : spatial.Partition
    data : (N, 2) array or (X, y) pair, optional
        Points in slice coordinates.
    radius : float, optional
        "Near" for the densities (default: 1/20 of the slice's shorter side).
    distances : (R, 2) array, optional
        The :func:`region_distances` of ``p`` for ``data``, when already computed.

    Examples
    --------
    >>> import torch, spatial
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ReLU(), torch.nn.Linear(1, 1))
    >>> with torch.no_grad():
    ...     net[0].weight[:] = torch.tensor([[1.0, 0.0]]); net[0].bias[:] = 0.0
    ...     net[2].weight[:] = 1.0; net[2].bias[:] = -0.5
    >>> stats = partition_statistics(spatial.partition(net, (-1, 1, -1, 1)), [[-0.75, 0.0]])
    >>> stats["regions"], stats["boundary_length"]
    (2, 2.0)
    """
    t = migration_table([p], data, radius=radius, distances=None if distances is None else [distances])
    segs = np.asarray(p.boundary, dtype=np.float64).reshape(-1, 2, 2)
    length = float(np.hypot(*(segs[:, 1] - segs[:, 0]).T).sum()) if len(segs) else 0.0
    return {"regions": int(t.n_regions[0]), "boundary_length": length,
            "density_data": float(t.density_data[0]), "density_boundary": float(t.density_boundary[0])}
