"""Tests of render/_notebook.py (and spatial/_html.py): results display themselves in Jupyter."""
import base64
import io
import re

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from splinescope import render, spatial
from splinescope.spatial.cka import CKA
from splinescope.spatial.migration import migration_table
from splinescope.spatial.train import toy_mlp


def _embedded(html, mime):
    m = re.search(rf'src="data:{mime};base64,([^"]+)"', html)
    assert m, f"no {mime} embedded"
    return base64.b64decode(m.group(1))


def test_partition_shows_its_picture_and_counts():
    p = spatial.partition(toy_mlp(6, 2), (-1, 1, -1, 1))
    html = p._repr_html_()
    img = iio.imread(io.BytesIO(_embedded(html, "image/png")))
    assert img.shape[:2] == (320, 320) and img.std() > 0  # 4 in at 80 dpi, not blank
    assert f"<td>regions</td><td>{len(p)}</td>" in html and "<td>boundary segments</td>" in html


def test_animation_plays_inline(tmp_path):
    nets = [toy_mlp(4, 1, seed=s) for s in (0, 1, 2)]
    a = render.frames(nets, progress=False, stats=False)  # images in memory, no file
    frames = iio.imread(io.BytesIO(_embedded(a._repr_html_(), "image/gif")), index=None)
    assert frames.shape[0] == 3
    written = render.animate(nets, out=tmp_path / "a.gif", progress=False, stats=False)
    assert _embedded(written._repr_html_(), "image/gif") == (tmp_path / "a.gif").read_bytes()
    assert "<td>frames</td><td>3</td>" in written._repr_html_()
    written.path = tmp_path / "gone.gif"
    assert "no file and no images" in written._repr_html_()


def test_reports_and_tables_are_small_html_tables():
    p = spatial.partition(toy_mlp(6, 2), (-1, 1, -1, 1))
    html = p.verify()._repr_html_()
    assert html.startswith("<table><caption>VerifyReport</caption>") and f"<td>regions</td><td>{len(p)}</td>" in html
    t = migration_table([p, p], np.zeros((1, 2)))
    assert t._repr_html_().count("<tr>") == 3  # header and two checkpoints
    m = CKA()
    assert "no examples seen yet" in m._repr_html_()
    X = torch.arange(12.0).reshape(6, 2) ** 1.5
    m.update(X[:1], X[:1])
    assert "needs at least 2 examples" in m._repr_html_()
    m.update(X[1:], X[1:])
    assert "<td>CKA</td><td>1</td>" in m._repr_html_()


def test_certify_report_html():
    pytest.importorskip("cdd")
    p = spatial.partition(toy_mlp(4, 1), (-1, 1, -1, 1))
    assert "<caption>CertifyReport</caption>" in p.certify()._repr_html_()
