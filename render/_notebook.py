"""How results display themselves in Jupyter: HTML with an inline picture or movie.

``spatial.Partition._repr_html_`` and ``render.Animation._repr_html_`` call these (``spatial``
imports this module only when a notebook asks for the picture, so ``import splinescope`` still
never imports matplotlib). Pictures are PNG, movies GIF or MP4, embedded as base64 ``data:``
URIs: the notebook keeps them when it is saved and shows them offline.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Optional

import numpy as np

from splinescope.spatial._html import table_html

__all__ = ["animation_html", "partition_html"]


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def partition_html(p, *, size: float = 4.0, dpi: int = 80) -> str:
    """The partition drawn (regions, decision boundary) beside its counts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ._plot import plot_partition

    fig = Figure(figsize=(size, size), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.06, 0.88, 0.86))
    plot_partition(p, ax, title=f"{len(p)} regions")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    counts = {"regions": len(p), "vertices": len(p.vertices), "boundary segments": len(p.boundary),
              "layers": list(p.layer_sizes), "bounds": tuple(float(b) for b in p.bounds),
              "sub-resolution regions": int(np.count_nonzero(p.subresolution))}
    return (f'<div style="display:flex;gap:1em;align-items:flex-start"><img src="{_data_uri(buf.getvalue(), "image/png")}" '
            f'alt="partition">{table_html("Partition", counts)}</div>')


def _gif_bytes(images, fps: float) -> bytes:
    import imageio.v3 as iio
    dur = 1000.0 / fps
    return iio.imwrite("<bytes>", np.stack(images), extension=".gif", duration=dur, loop=0)


def animation_html(a, *, fps: float = 8, max_bytes: int = 50 * 2**20) -> str:
    """An inline playable movie: the file :func:`render.animate` wrote (GIF or MP4), or the
    images :func:`render.frames` kept, as a looping GIF; with the region counts per frame."""
    path: Optional[Path] = a.path
    if path is not None and Path(path).is_file():
        data = Path(path).read_bytes()
        mime = "video/mp4" if Path(path).suffix.lower() == ".mp4" else "image/gif"
    elif a.images:
        data, mime = _gif_bytes(a.images, fps), "image/gif"
    else:
        return f"<p><code>{html.escape(repr(a))}</code>: no file and no images to show</p>"
    if len(data) > max_bytes:
        return (f"<p><code>{html.escape(repr(a))}</code>: the movie is {len(data) / 2**20:.1f} MB, "
                f"more than a notebook should hold; open {html.escape(str(path))}</p>")
    uri = _data_uri(data, mime)
    movie = (f'<video src="{uri}" controls loop autoplay muted></video>' if mime == "video/mp4"
             else f'<img src="{uri}" alt="animation">')
    steps = [s for s in a.steps if s is not None]
    info = {"frames": len(a.steps), "steps": f"{steps[0]}..{steps[-1]}" if steps else "unknown",
            "regions": f"{int(a.n_regions.min())}..{int(a.n_regions.max())}",
            "file": str(path) if path is not None else "(in memory)"}
    return f'<div>{movie}{table_html("Animation", info)}</div>'
