"""The browser viewer: one self-contained HTML page of every checkpoint's linear regions.

``viewer()`` is load -> partition every checkpoint once (:func:`_animate._partitions`) -> each
partition's region distances once -> migration table -> one encoded frame per partition -> the
template ``render/_viewer.html`` filled in -> one file, written atomically. The page needs no
network: its script, styles and data are inline. It shows one frame at a time (slider, play
button), the decision boundary and the data, the numbers of the region under the pointer, and the
statistics over training (region count and densities, the run's LC curves from ``log.jsonl``)
with a marker at the current checkpoint. Every number on the page is computed here by
:mod:`spatial`; the page's script only decodes and draws.

A frame is a little-endian binary record, compressed with zlib (the ``"deflate"`` format of the
browser's ``DecompressionStream``) and base64'd into a ``<script type="application/octet-stream">``
element, decoded only when the slider reaches it. Regions are stored in the order of their
centroids along a Hilbert curve (neighbours close together, so the differences below are small);
``perm`` maps them back to their index in the :class:`~spatial.Partition`. The record is a header
of 16 uint32 (:data:`_HEADER`: counts, then the byte length of each section) and the sections

- ``sizes``: the vertex count of each region (varints);
- ``vertices``: the vertices in order of first use, quantised to uint16 over the slice box,
  as zigzag varints of the difference to the previous vertex, (s, t) interleaved;
- ``indices``: each polygon corner as a varint ``code``: 0 for the next vertex not used yet, else
  how far back from it the vertex is;
- ``perm``: the Partition index of each region, zigzag varints of differences;
- ``boundary``: the decision boundary's segment ends, quantised and coded like the vertices;
- ``colors``: RGB bytes of each region (:func:`render.region_colors`);
- ``patterns``: the bits shared by every region of the frame (packed over all N neurons), the
  mask of the neurons that vary, then each region's varying bits (packed rows), each row XORed
  with the previous one;
- ``numbers``: area, distance to the boundary, distance to the data, and the affine map
  ``A[k, j]`` of each region, each rounded to 4 significant digits as ``m * 10**(e - 3)``
  (:func:`_decimal4`): the int16 ``m`` of all values, then their int16 ``e``, each split into its
  low and high bytes.
"""
from __future__ import annotations

import base64
import html
import json
import os
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from splinescope.spatial._io import atomic_write

__all__ = ["ViewerPage", "viewer"]

FORMATS = (".html",)
"""The viewer's output format, by file extension."""

_HEADER = ("version", "regions", "vertices", "corners", "segments", "outputs", "neurons", "varying",
           "sizes", "vertex_bytes", "indices", "perm", "boundary", "colors", "patterns", "numbers")
"""The 16 uint32 of a frame's header: 8 counts, then the byte length of each section."""
_VERSION = 1
_QMAX = 65535  # quantised coordinates: 0 .. _QMAX over the slice box
_NAN_E, _INF_E, _NEG0_E = -32768, 32767, -32767  # exponents of nan, +-inf (sign in m), -0.0
_LOG_COLUMN = "lc_"  # the log's LC columns: lc_*, without the per-layer ones (lc_train/<module>)


@dataclass
class ViewerPage:
    """What :func:`viewer` wrote: the file, its size, the steps of its frames, their statistics."""

    path: Path  # the HTML file written
    size: int  # its size in bytes
    steps: List[Optional[int]]  # the training step of each frame (None: unknown)
    n_regions: np.ndarray  # (T,) regions in the slice per frame
    table: Any  # spatial.migration.MigrationTable over the T checkpoints

    def __repr__(self) -> str:
        return (f"ViewerPage({len(self.steps)} frames, regions {int(self.n_regions.min())}.."
                f"{int(self.n_regions.max())}, {self.size / 1e6:.2f} MB, path={str(self.path)})")


# ---- integer and number coding

def _zigzag(a) -> np.ndarray:
    """Signed integers as unsigned: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    a = np.asarray(a, dtype=np.int64)
    return ((a << 1) ^ (a >> 63)).astype(np.uint64)


def _varint(a) -> bytes:
    """Unsigned integers as LEB128 varints (7 bits a byte, high bit: more bytes follow).

    >>> _varint([0, 127, 128, 300]).hex()
    '007f8001ac02'
    """
    v = np.asarray(a, dtype=np.uint64).reshape(-1)
    n = np.ones(len(v), dtype=np.int64)  # bytes per value
    for k in range(1, 10):
        n += v >= np.uint64(1) << np.uint64(7 * k)
    out = np.zeros(int(n.sum()), dtype=np.uint8)
    pos = np.cumsum(n) - n
    for k in range(int(n.max(initial=0))):
        m = n > k
        byte = ((v[m] >> np.uint64(7 * k)) & np.uint64(127)).astype(np.uint8)
        byte[n[m] > k + 1] |= 128
        out[pos[m] + k] = byte
    return out.tobytes()


def _decimal4(values) -> Tuple[np.ndarray, np.ndarray]:
    """Each value rounded to 4 significant digits as ``m * 10**(e - 3)``: int16 ``m``, ``e``.

    Exactly the digits of Python's ``f"{v:.4g}"`` (ties to even on the exact binary value):
    ``1000 <= |m| <= 9999`` and ``e`` the exponent of the leading digit. Zero is ``m = 0, e = 0``;
    -0.0 has ``e = -32767``, nan ``e = -32768``, +-inf ``e = 32767`` with ``m = +-1``.

    >>> m, e = _decimal4([1234.5, -0.000123456, 0.0, float("inf")])
    >>> m.tolist(), e.tolist()
    ([1234, -1235, 0, 1], [3, -4, 0, 32767])
    """
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    m = np.zeros(len(a), dtype=np.int64)
    e = np.zeros(len(a), dtype=np.int64)
    e[np.isnan(a)] = _NAN_E
    inf = np.isinf(a)
    e[inf], m[inf] = _INF_E, np.sign(a[inf])
    e[(a == 0) & np.signbit(a)] = _NEG0_E
    nz = np.nonzero(np.isfinite(a) & (a != 0))[0]
    v = a[nz]
    E = np.floor(np.log10(np.abs(v))).astype(np.int64)
    ok = np.abs(E) < 290  # beyond: powers of ten near the ends of float64, done by Python below

    def mantissa(E):  # v / 10**(E - 3), one rounding (10**k is exact in float64 up to k = 22)
        k = np.clip(E - 3, -300, 300)
        return np.where(k >= 0, v / 10.0 ** np.maximum(k, 0), v * 10.0 ** np.maximum(-k, 0))

    for _ in range(2):  # log10 rounded to the neighbouring decade: one step each way
        mf = mantissa(E)
        E = E + (np.abs(mf) >= 9999.5) - (np.abs(mf) < 999.5)
    mf = mantissa(E)
    r = np.rint(mf)
    frac = np.abs(mf - np.trunc(mf))
    ok &= (np.abs(r) >= 1000) & (np.abs(r) <= 9999) & (np.abs(frac - 0.5) > 1e-6)  # near a tie: Python
    m[nz[ok]], e[nz[ok]] = r[ok], E[ok]
    for i in nz[~ok]:
        digits, exp = f"{a[i]:.3e}".split("e")
        m[i], e[i] = int(digits.replace(".", "")), int(exp)
    return m.astype(np.int16), e.astype(np.int16)


def _planes(a: np.ndarray) -> bytes:
    """An int16 array as its low bytes, then its high bytes (a better input for zlib)."""
    return np.ascontiguousarray(a.astype("<i2").view(np.uint8).reshape(-1, 2).T).tobytes()


# ---- one frame

def _quantise(xy, bounds) -> np.ndarray:
    """(..., 2) slice coordinates -> integers 0 .. 65535 over the box (for drawing only)."""
    x0, x1, y0, y1 = bounds
    xy = np.asarray(xy, dtype=np.float64)
    q = np.empty(xy.shape, dtype=np.int64)
    q[..., 0] = np.rint(np.clip((xy[..., 0] - x0) / (x1 - x0), 0, 1) * _QMAX)
    q[..., 1] = np.rint(np.clip((xy[..., 1] - y0) / (y1 - y0), 0, 1) * _QMAX)
    return q


def _hilbert(q: np.ndarray, order: int = 16) -> np.ndarray:
    """(n,) position of each (n, 2) integer point (0 .. 2**order - 1) along a Hilbert curve."""
    n = 1 << order
    x, y = q[:, 0].astype(np.int64), q[:, 1].astype(np.int64)
    d = np.zeros(len(q), dtype=np.int64)
    s = n >> 1
    while s:
        rx, ry = (x & s) > 0, (y & s) > 0
        d += s * s * ((3 * rx) ^ ry)
        flip = ~ry & rx
        x, y = np.where(flip, n - 1 - x, x), np.where(flip, n - 1 - y, y)
        x, y = np.where(ry, x, y), np.where(ry, y, x)  # the quadrant rotated where ry is 0
        s >>= 1
    return d


def _deltas(q: np.ndarray) -> bytes:
    """(n, 2) integer points as zigzag varints of their differences, (s, t) interleaved."""
    return _varint(_zigzag(np.diff(q.reshape(-1, 2), axis=0, prepend=np.zeros((1, 2), np.int64)).reshape(-1)))


def _pattern_section(p, order: np.ndarray, chunk: int = 4096) -> Tuple[bytes, int]:
    """The shared bits, the mask of varying neurons, and each region's varying bits (rows XORed
    with the previous row); and the number of varying neurons."""
    N = int(sum(p.layer_sizes))
    packed = np.asarray(p.patterns, dtype=np.uint8)
    if N == 0 or not len(packed):
        return np.zeros(2 * ((N + 7) // 8), np.uint8).tobytes(), 0
    any_ = np.bitwise_or.reduce(packed, axis=0)
    all_ = np.bitwise_and.reduce(packed, axis=0)
    varying = np.unpackbits(any_ & ~all_, count=N).astype(bool)
    rows = []
    for s in range(0, len(order), chunk):  # unpacked a chunk at a time: N may be large
        bits = np.unpackbits(packed[order[s: s + chunk]], axis=1, count=N)
        rows.append(np.packbits(bits[:, varying], axis=1))
    V = np.concatenate(rows)
    X = V.copy()
    X[1:] ^= V[:-1]
    return packed[order[0]].tobytes() + np.packbits(varying).tobytes() + X.tobytes(), int(varying.sum())


ZLIB_LEVEL = 6
"""zlib's level for the frames: a trained digits CNN's frame of 147k regions (41.5 MB before
compression) took 2.52 s at level 9 and 0.48 s at level 6, for 7.23 and 7.42 MB (+2.6%)."""


def _encode_frame(p, distances: np.ndarray, level: int = ZLIB_LEVEL) -> bytes:
    """One partition and its (R, 2) region distances as a compressed frame (see the module docstring)."""
    from ._plot import region_colors

    R = len(p)
    order = np.argsort(_hilbert(_quantise(p.centroids(), p.bounds)), kind="stable") if R else np.zeros(0, np.int64)
    sizes = np.diff(p.offsets)[order]
    starts = p.offsets[:-1][order]
    corners = p.indices[np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))]
    used, first = np.unique(corners, return_index=True)
    by_use = used[np.argsort(first)]  # vertices in order of first use
    new_id = np.zeros(len(p.vertices), dtype=np.int64)
    new_id[by_use] = np.arange(len(by_use))
    ids = new_id[corners]
    fresh = np.maximum.accumulate(np.concatenate([[-1], ids[:-1]])) + 1 if len(ids) else ids
    codes = np.where(ids == fresh, 0, fresh - ids)
    segs = np.asarray(p.boundary, dtype=np.float64).reshape(-1, 2, 2)
    colors = np.rint(region_colors(p.region_keys()[order])[:, :3] * 255).astype(np.uint8)
    patterns, n_varying = _pattern_section(p, order)
    A = p.affine_maps()[order]  # (R, K, 3)
    K = A.shape[1]
    cols = [p.areas()[order], distances[order, 0], distances[order, 1]]
    cols += [A[:, k, j] for k in range(K) for j in range(3)]
    m, e = _decimal4(np.concatenate(cols))
    sections = [_varint(sizes), _deltas(_quantise(p.vertices[by_use], p.bounds)), _varint(codes),
                _varint(_zigzag(np.diff(order, prepend=0))), _deltas(_quantise(segs, p.bounds)),
                colors.tobytes(), patterns, _planes(m) + _planes(e)]
    counts = [_VERSION, R, len(by_use), len(corners), len(segs), K, int(sum(p.layer_sizes)), n_varying]
    header = np.array(counts + [len(s) for s in sections], dtype="<u4")
    assert len(header) == len(_HEADER)
    return zlib.compress(header.tobytes() + b"".join(sections), level)


# ---- the page

def _floats(a) -> list:
    """A list of floats for JSON, with None where a value is not finite (JSON has no nan)."""
    return [float(x) if np.isfinite(x) else None for x in np.asarray(a, dtype=np.float64).reshape(-1)]


def _points_json(data) -> Optional[Dict[str, Any]]:
    from ._plot import _data_arrays
    X, y = _data_arrays(data)
    if X is None:
        return None
    return {"X": np.round(X, 6).tolist(), "y": None if y is None else [int(v) for v in np.asarray(y).reshape(-1)]}


def _lc_columns(rows: Sequence[Dict]) -> Dict[str, List[List[float]]]:
    """``{name: [[step, value], ...]}`` of the log's ``lc_*`` columns (not the per-layer ones)."""
    cols: Dict[str, List[List[float]]] = {}
    for row in rows:
        for k, v in row.items():
            if k.startswith(_LOG_COLUMN) and "/" not in k and isinstance(v, (int, float)) \
                    and not isinstance(v, bool) and np.isfinite(v):
                cols.setdefault(k, []).append([int(row["step"]), float(v)])
    return dict(sorted(cols.items()))


def _log_rows(checkpoints, log) -> Tuple[List[Dict], str]:
    """The log rows named by ``log=`` and a note for the page when there are none."""
    if isinstance(log, str):
        from splinescope.spatial._validate import option
        option(log, ("auto",), "log option", others=("None", "a list of log rows (dicts)"))
        if not (isinstance(checkpoints, (str, os.PathLike)) and Path(checkpoints).is_dir()):
            return [], "No training log given: no LC panel."
        from splinescope.spatial.runs import LOG_FILE, read_log
        rows = read_log(checkpoints)
        return rows, "" if rows else f"No {LOG_FILE} in {Path(checkpoints).name}: no LC panel."
    if log is None:
        return [], "No training log given: no LC panel."
    if not isinstance(log, (list, tuple)) or not all(isinstance(r, dict) and "step" in r for r in log):
        raise TypeError("log must be 'auto', None or a list of dicts with a 'step' (spatial.runs.read_log), "
                        f"got {type(log).__name__}")
    return list(log), ""


def _template() -> str:
    return resources.files("splinescope.render").joinpath("_viewer.html").read_text(encoding="utf-8")


def _page(meta: Dict[str, Any], frames: Sequence[bytes]) -> str:
    """The template with the metadata (JSON) and the frames (base64) filled in."""
    # every "<" escaped: no "</script>" or "<!--" inside the script element (JSON reads \u003c back)
    text = json.dumps(meta, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    blobs = "\n".join(f'<script type="application/octet-stream" id="frame-{i}">'
                      f'{base64.b64encode(f).decode("ascii")}</script>' for i, f in enumerate(frames))
    page = _template()
    for key, value, n in (("__TITLE__", html.escape(meta["title"]), 2), ("/*__META__*/", text, 1),
                          ("<!--__FRAMES__-->", blobs, 1)):
        assert page.count(key) == n, key  # the template's placeholders
        page = page.replace(key, value)
    return page


def viewer(checkpoints, bounds=(-1, 1, -1, 1), out="run.html", *, arch=None, glob=None, prefix=None,
           trust=False, plane=None, data="auto", test=None, log="auto", radius: Optional[float] = None,
           title: Optional[str] = None, progress: bool = True) -> ViewerPage:
    """Write one self-contained HTML page to explore a training run's linear regions in a browser.

    The page works offline (no network: script, styles and data inline). A slider and a play
    button go through the checkpoints; each frame shows the regions of the slice, the decision
    boundary and the data; the pointer over a region shows its index, area, activation pattern,
    affine map and distances to the boundary and the data (to 4 significant digits); beside it,
    the region count and densities over training (:func:`spatial.migration.migration_table`) and
    the run's LC curves (the ``lc_*`` columns of ``log.jsonl``), with a marker at the current
    checkpoint (a click on a curve goes to the nearest checkpoint).

    Parameters
    ----------
    checkpoints : folder, file, list of files, list of modules, or list of (step, module)
        As in :func:`render.animate` (a folder of ``splinescope train`` brings its architecture,
        data and log).
    bounds : (xmin, xmax, ymin, ymax)
        The slice, fixed across frames.
    out : path ending in ``.html``
        Written atomically.
    arch, glob, prefix, trust, plane
        As in :func:`render.animate`.
    data : (X, y) pair, (N, 2) array, None or "auto"
        Points in slice coordinates, drawn coloured by label; they define the distance to the
        data and "near data". ``"auto"``: the run folder's ``data.npz`` when its inputs are 2-D.
    test : (X, y) pair or (N, 2) array, optional
        Held-out points, drawn hollow; with ``data="auto"`` the run's held-out points, if any.
    log : "auto", None or list of dict
        The rows of the run's step-keyed log (:func:`spatial.runs.read_log`); ``"auto"``: the
        folder's ``log.jsonl``. Its ``lc_*`` columns (not the per-layer ``lc_*/<module>``) are drawn.
    radius : float, optional
        "Near" for the densities (default: 1/20 of the slice's shorter side).
    title : str, optional
        The page's title (default: the folder's name).
    progress : bool
        tqdm progress bars.

    Returns
    -------
    ViewerPage
        The path and size of the file, the steps and region counts of its frames, the migration
        table.

    Examples
    --------
    >>> import tempfile
    >>> from splinescope.spatial.train import toy_mlp
    >>> with tempfile.TemporaryDirectory() as d:
    ...     page = viewer([(0, toy_mlp(4, 1, seed=0)), (10, toy_mlp(4, 1, seed=1))], out=d + "/run.html",
    ...                   progress=False)
    ...     page.steps, page.path.read_text().count('type="application/octet-stream"')
    ([0, 10], 2)
    >>> viewer([toy_mlp(4, 1)], out="run.gif")
    Traceback (most recent call last):
    ...
    ValueError: '.gif' is not a supported output format, must be '.html'
    """
    from splinescope.spatial.migration import migration_table, region_distances
    from tqdm.auto import tqdm

    from ._animate import _check_out, _partitions, _run_points
    from ._plot import _data_arrays

    out = _check_out(out, FORMATS)
    data, test = _run_points(checkpoints, plane, data, test)
    rows, lc_note = _log_rows(checkpoints, log)
    X, _ = _data_arrays(data)
    _data_arrays(test)  # a bad test= fails before any work
    steps, parts = _partitions(checkpoints, bounds, arch=arch, glob=glob, prefix=prefix, trust=trust,
                               plane=plane, progress=progress)
    distances = [region_distances(p, X) for p in tqdm(parts, desc="distances", disable=not progress, unit="ckpt")]
    table = migration_table(parts, X, radius=radius, distances=distances)
    frames = [_encode_frame(p, d) for p, d in zip(tqdm(parts, desc="encode", disable=not progress, unit="ckpt"),
                                                   distances)]
    lc = _lc_columns(rows)
    if rows and not lc:
        lc_note = "The training log has no lc_* columns: no LC panel."
    if title is None:
        title = Path(checkpoints).resolve().name if isinstance(checkpoints, (str, os.PathLike)) else ""
        title = title or "splinescope"
    meta = {
        "title": str(title),
        "bounds": [float(b) for b in parts[0].bounds],
        "plane": plane is not None,
        "steps": [None if s is None else int(s) for s in steps],
        "layer_sizes": [int(n) for n in parts[0].layer_sizes],
        "n_outputs": int(parts[0].n_outputs),
        "migration": {"radius": float(table.radius), "n_regions": [int(n) for n in table.n_regions],
                      "density_data": _floats(table.density_data),
                      "density_boundary": _floats(table.density_boundary)},
        "lc": lc,
        "lc_note": lc_note,
        "data": _points_json(data),
        "test": _points_json(test),
    }
    page = _page(meta, frames)
    path = atomic_write(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"), suffix=".html")
    return ViewerPage(path=path, size=path.stat().st_size, steps=list(steps),
                      n_regions=np.asarray(table.n_regions), table=table)
