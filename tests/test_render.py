"""Tests of render/: colours, frames (as pixels), movies, atomic writes, errors, the CLI."""
import os

import imageio.v3 as iio
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from splinescope import render
from splinescope import spatial
from splinescope.render import _animate, _plot
from splinescope.render.cli import main
from splinescope.spatial.migration import migration_table
from splinescope.spatial.train import toy_mlp, train

torch.set_num_threads(1)

B = (-1.0, 1.0, -1.0, 1.0)
DATA = (np.array([[-0.5, -0.5], [0.5, 0.5], [0.2, -0.6]]), np.array([0, 1, 0]))
SMALL = dict(figsize=(3.0, 1.5), dpi=40, progress=False)  # 120 x 60 pixel frames


_GRID = torch.cartesian_prod(torch.linspace(-1, 1, 21), torch.linspace(-1, 1, 21))


def _centre_output(m):
    """Shift the output so that it is zero at its median over the box: a boundary runs through it."""
    with torch.no_grad():
        m[-1].bias -= m(_GRID)[:, 0].median()
    return m


def _net(seed=0, width=10):
    m = toy_mlp(width, 2, seed=seed)
    with torch.no_grad():
        m[0].weight.mul_(3.0)  # more lines through the box: more regions
    return _centre_output(m)


def _new_output_layer(net, seed):
    """The same hidden layers (same regions), another output layer (another boundary)."""
    m = toy_mlp(10, 2, seed=0)
    m.load_state_dict(net.state_dict())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m[-1].weight.copy_(torch.randn(m[-1].weight.shape, generator=g))
    return _centre_output(m)


def _draw(p, **kw):
    fig = Figure(figsize=(4, 4), dpi=50)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    art = render.plot_partition(p, ax, title=False, **kw)
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    return fig, ax, art, img


def _pixel(ax, img, xy):
    x, y = ax.transData.transform(xy)  # display pixels, origin at the bottom-left corner
    return img[img.shape[0] - 1 - int(np.floor(y)), int(np.floor(x))].astype(int)


def _interior_points(p, margin=0.06):
    """Centroids of regions whose centroid is far from every edge and boundary (one per region)."""
    from splinescope.spatial.migration import region_distances
    c = p.centroids()
    keep = []
    for i, poly in enumerate(p.polygons()):
        nxt = np.roll(poly, -1, 0)
        d = nxt - poly
        t = np.clip(((c[i] - poly) * d).sum(1) / (d * d).sum(1), 0, 1)
        if np.linalg.norm(c[i] - (poly + t[:, None] * d), axis=1).min() > margin:
            keep.append(i)
    near = region_distances(p)[:, 0] == 0  # regions the boundary crosses: skip
    return [i for i in keep if not near[i]]


# ---- colours
def test_region_colors_are_a_fixed_function_of_the_key():
    keys = np.array([0, 1, 2**63, 12345678901234, 1], dtype=np.uint64)
    c = render.region_colors(keys)
    assert c.shape == (5, 4) and np.all((c >= 0) & (c <= 1))
    np.testing.assert_array_equal(c[1], c[4])
    assert len(np.unique(c[:4].round(6), axis=0)) == 4
    np.testing.assert_array_equal(c, render.region_colors(keys))  # no hidden state
    # light colours: edges, boundary and data stand out
    assert (c[:, :3].max(1) >= 0.85).all()


def test_region_pixels_have_the_region_colour_and_it_survives_training():
    net = _net()
    moved = _new_output_layer(net, seed=5)
    p, q = spatial.partition(net, B), spatial.partition(moved, B)
    assert np.array_equal(p.region_keys(), q.region_keys())  # same regions ...
    assert not np.array_equal(p.boundary, q.boundary)  # ... another decision boundary
    _, ax, _, img_p = _draw(p)
    _, ax2, _, img_q = _draw(q)
    colours = np.round(255 * render.region_colors(p.region_keys())[:, :3]).astype(int)
    inside = [i for i in _interior_points(p) if i in _interior_points(q)]
    assert len(inside) >= 3
    for i in inside:
        xy = p.centroids()[i]
        np.testing.assert_allclose(_pixel(ax, img_p, xy), colours[i], atol=2)
        np.testing.assert_array_equal(_pixel(ax, img_p, xy), _pixel(ax2, img_q, xy))


# ---- one picture
def test_plot_partition_draws_collections_boundary_and_data():
    p = spatial.partition(_net(width=16), B)
    fig, ax, art, img = _draw(p, data=DATA)
    assert len(art.regions.get_paths()) == len(p)
    assert len(ax.collections) == 3 and not ax.patches  # three artists, whatever the region count
    assert len(art.boundary.get_segments()) == len(p.boundary) > 0
    np.testing.assert_array_equal(art.data.get_offsets(), DATA[0])
    assert ax.get_xlim() == (-1.0, 1.0) and ax.get_ylim() == (-1.0, 1.0)
    # the bold boundary is black in the image, on the boundary's midpoints
    mid = p.boundary.mean(1)
    dark = [(_pixel(ax, img, m) < 60).all() for m in mid[:: max(1, len(mid) // 10)]]
    assert np.mean(dark) > 0.8
    # data points on top, in their class colours (red for class 0)
    red = np.array([0xD6, 0x27, 0x28])
    assert np.abs(_pixel(ax, img, DATA[0][0]) - red).max() <= 40
    art.remove()
    assert not ax.collections


def test_test_points_are_drawn_as_dark_edged_triangles():
    p = spatial.partition(_net(width=16), B)
    test = (np.array([[0.6, -0.3]]), np.array([1]))
    fig, ax, art, img = _draw(p, data=DATA, test=test)
    np.testing.assert_array_equal(art.test.get_offsets(), test[0])
    assert len(ax.collections) == 4
    # filled with its class colour (blue for class 1), edged in black, and on the image
    np.testing.assert_allclose(art.test.get_facecolors()[0][:3], [0x1F / 255, 0x77 / 255, 0xB4 / 255])
    np.testing.assert_allclose(art.test.get_edgecolors()[0][:3], [0, 0, 0])
    _, ax0, _, img0 = _draw(p, data=DATA)
    x, y = ax.transData.transform(test[0][0])
    r, c = img.shape[0] - 1 - int(y), int(x)
    assert (img[r - 3: r + 4, c - 3: c + 4] != img0[r - 3: r + 4, c - 3: c + 4]).any()
    art.remove()
    assert not ax.collections


def test_plot_partition_by_statistic_and_title():
    p = spatial.partition(_net(), B)
    fig, ax, art, img = _draw(p, color="area")
    np.testing.assert_allclose(art.regions.get_array(), p.areas())
    fig, ax, art, img = _draw(p, color=np.arange(len(p), dtype=float), cmap="gray")
    inside = _interior_points(p)
    lum = [_pixel(ax, img, p.centroids()[i])[0] for i in inside]
    order = np.argsort(inside)
    assert np.all(np.diff(np.array(lum)[order]) >= 0)  # brighter with the value
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    render.plot_partition(p, ax, step=12)
    assert ax.get_title() == f"step 12 · {len(p)} regions"


def test_plot_migration_draws_the_table():
    parts = [spatial.partition(_net(s), B) for s in range(3)]
    t = migration_table(parts, DATA, bins=4)
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    mesh = render.plot_migration(t, ax, to="data", quantity="area", steps=[0, 10, 100])
    np.testing.assert_allclose(mesh.get_array().reshape(4, 3), t.area_data.T)
    assert [x.get_text() for x in ax.get_xticklabels()] == ["0", "10", "100"]


# ---- frames and movies
def test_frames_are_counted_and_change_only_when_the_weights_do():
    a, b = _net(0), _net(1)
    anim = render.frames([(5, a), (5, a), (5, b), (5, a)], stats=False, **SMALL)
    imgs = anim.images
    assert len(imgs) == 4 and imgs[0].shape == (60, 60, 3)
    assert np.array_equal(imgs[0], imgs[1])  # same weights, same picture
    assert not np.array_equal(imgs[1], imgs[2])  # other weights, another picture
    assert np.array_equal(imgs[0], imgs[3])
    # a list of modules is numbered 0, 1, ...: the title (only) tells the frames apart
    anim = render.frames([a, a], stats=False, **SMALL)
    assert anim.steps == [0, 1]
    diff = np.nonzero((anim.images[0] != anim.images[1]).any(2))[0]
    assert len(diff) and diff.max() < 60 * 0.12  # rows of the title, at the top
    # the statistics panel: one more panel, and a marker that moves with the frame
    with_stats = render.frames([(10, a), (20, a)], data=DATA, **SMALL)
    assert with_stats.images[0].shape == (60, 120, 3)
    assert with_stats.steps == [10, 20] and with_stats.n_regions.tolist() == [len(spatial.partition(a, B))] * 2
    assert not np.array_equal(with_stats.images[0], with_stats.images[1])


def test_frames_coloured_by_a_statistic_share_one_scale():
    a, b = _net(0), _net(1)
    anim = render.frames([a, b], color="boundary_distance", cmap="gray", **SMALL)
    plain = render.frames([a, b], **SMALL)
    assert len(anim.images) == 2 and anim.images[0].shape == plain.images[0].shape
    assert not np.array_equal(anim.images[0], plain.images[0])
    # grey regions (a grey colour map), where pattern colours are tinted
    def greyness(img):
        return np.abs(img[..., 0].astype(int) - img[..., 2].astype(int)).mean()
    assert greyness(anim.images[0]) < greyness(plain.images[0])


def test_draw_frames_on_given_partitions_equals_frames_pixel_for_pixel():
    nets = [(10, _net(0)), (20, _net(1)), (40, _net(2))]
    for color, stats in (("pattern", True), ("boundary_distance", True), ("data_distance", False)):
        ref = render.frames(nets, B, data=DATA, color=color, stats=stats, **SMALL)
        parts = [spatial.partition(m, B) for _, m in nets]
        table = migration_table(parts, DATA[0])
        imgs = render.draw_frames(parts, table, [s for s, _ in nets], data=DATA, color=color, stats=stats, **SMALL)
        assert len(imgs) == 3
        for got, want in zip(imgs, ref.images):
            assert np.array_equal(got, want)
    # without the statistics panel no table is needed; without steps the frames are numbered
    assert render.draw_frames(parts, stats=False, **SMALL)[0].shape == (60, 60, 3)
    with pytest.raises(ValueError, match="stats=True needs table="):
        render.draw_frames(parts, **SMALL)
    with pytest.raises(ValueError, match="steps has 2 entries for 3 partitions"):
        render.draw_frames(parts, table, [1, 2], **SMALL)
    with pytest.raises(ValueError, match="partitions is empty"):
        render.draw_frames([], stats=False, **SMALL)


def test_frames_compute_the_region_distances_once_per_frame(monkeypatch):
    from splinescope.spatial import migration
    calls = []
    real = migration.region_distances

    def counted(p, data=None):
        calls.append(p)
        return real(p, data)

    monkeypatch.setattr(migration, "region_distances", counted)
    nets = [_net(0), _net(1), _net(2)]
    for color in ("boundary_distance", "data_distance", "pattern"):
        calls.clear()
        render.frames(nets, B, data=DATA, color=color, **SMALL)
        assert len(calls) == len(nets)
        assert len({id(p) for p in calls}) == len(nets)  # one call per frame, not two for one


def test_animate_writes_a_gif_with_one_frame_per_checkpoint(tmp_path):
    nets = [_net(0), _net(1), _net(2)]
    out = tmp_path / "run.gif"
    anim = render.animate(nets, B, out, data=DATA, **SMALL)
    assert anim.path == out and out.is_file()
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # ordinary permissions, not mkstemp's
    gif = iio.imread(out, index=None)
    ref = render.frames(nets, B, data=DATA, **SMALL).images
    assert gif.shape == (3, 60, 120, 3)
    for g, r in zip(gif, ref):  # GIF palettes are quantised: close, not equal
        assert np.abs(g.astype(int) - r.astype(int)).mean() < 3
    assert "3 frames" in repr(anim)
    one = render.animate([(7, nets[0])], B, tmp_path / "one.gif", **SMALL)  # a single frame works too
    assert one.steps == [7] and iio.imread(tmp_path / "one.gif", index=None).shape == (1, 60, 120, 3)


def test_animate_reads_a_training_folder(tmp_path):
    X, y = DATA
    arch = {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": {"width": 5, "depth": 1}}
    train(toy_mlp(5, 1), X.astype(np.float32), y, steps=8, checkpoints=4, out_dir=tmp_path / "run",
          arch=arch, progress=False)
    n = len(list((tmp_path / "run").glob("step_*.pt")))
    anim = render.animate(tmp_path / "run", B, tmp_path / "run.gif", **SMALL)
    assert len(iio.imread(tmp_path / "run.gif", index=None)) == n == len(anim.steps)
    assert anim.steps == sorted(anim.steps) and anim.steps[-1] == 8
    assert anim.table.density_data.shape == (n,) and np.isfinite(anim.table.density_data).all()  # data.npz used
    anim = render.animate(tmp_path / "run", B, tmp_path / "run2.gif", data=None, **SMALL)
    assert np.isnan(anim.table.density_data).all()


def test_animate_mp4(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as iio2
    out = tmp_path / "run.mp4"
    render.animate([_net(0), _net(1), _net(0)], B, out, stats=False, figsize=(1.5, 1.5), dpi=41, progress=False)
    with iio2.get_reader(out, format="FFMPEG") as r:
        assert r.count_frames() == 3
        assert r.get_data(0).shape[:2] == (62, 62)  # padded to even sides for yuv420p


def test_a_high_dimensional_run_folder_with_a_plane(tmp_path):
    X = np.random.default_rng(0).random((20, 5), np.float32)
    y = np.arange(20) % 3
    arch = {"factory": "splinescope.spatial.train:toy_mlp", "kwargs": {"width": 6, "depth": 1, "in_features": 5, "out_features": 3}}
    train(toy_mlp(6, 1, in_features=5, out_features=3), X, y, steps=4, checkpoints=[0, 4], out_dir=tmp_path / "r",
          arch=arch, progress=False)
    plane = spatial.Plane.through(*X[:3])
    anim = render.animate(tmp_path / "r", B, tmp_path / "r.gif", plane=plane, **SMALL)  # 5-d data.npz: not drawn
    assert anim.steps == [0, 4] and np.isnan(anim.table.density_data).all()


def test_plane_through_three_inputs():
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    a, b, c = np.eye(5)[:3]
    plane = spatial.Plane.through(a, b, c)
    anim = render.frames([net], (-0.5, 1.5, -0.5, 1.5), plane=plane, stats=False,
                         data=([[0, 0], [1, 0], [0, 1]], [0, 1, 2]), **SMALL)
    assert len(anim.images) == 1 and anim.n_regions[0] == len(spatial.partition(net, (-0.5, 1.5, -0.5, 1.5), plane=plane))


# ---- atomic writes, fail-fast
@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, exc):
    imgs = [np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 200, np.uint8)]

    def failing(images, path, ext, fps, hold):
        with open(path, "wb") as f:
            f.write(b"GIF89a partial")
        raise exc

    monkeypatch.setattr(_animate, "_write", failing)
    with pytest.raises(type(exc)):
        render.save(imgs, tmp_path / "a.gif")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "b.gif").write_bytes(b"old")
    with pytest.raises(type(exc)):
        render.animate([_net(0)], B, tmp_path / "b.gif", stats=False, **SMALL)
    assert [f.name for f in tmp_path.iterdir()] == ["b.gif"] and (tmp_path / "b.gif").read_bytes() == b"old"


def test_an_unsupported_layer_fails_before_any_frame(tmp_path, monkeypatch):
    drawn = []
    real = _plot.plot_partition
    monkeypatch.setattr(_plot, "plot_partition", lambda *a, **k: drawn.append(1) or real(*a, **k))
    bad = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.GELU(), torch.nn.Linear(4, 1))
    with pytest.raises(spatial.UnsupportedLayerError, match=r"layer 1 \(GELU\) is not piecewise linear"):
        render.animate([_net(0), _net(1), bad], B, tmp_path / "x.gif", **SMALL)
    assert drawn == [] and list(tmp_path.iterdir()) == []


# ---- errors
def test_errors(tmp_path):
    p = spatial.partition(_net(), B)
    with pytest.raises(ValueError, match="'.png' is not a supported output format, must be one of '.gif', '.mp4'"):
        render.animate([_net()], B, tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="the folder of .* does not exist"):
        render.animate([_net()], B, tmp_path / "no" / "x.gif")
    with pytest.raises(TypeError, match="out must be a path, got int"):
        render.save([np.zeros((2, 2, 3), np.uint8)], 3)
    with pytest.raises(ValueError, match="checkpoints is empty: need at least one model"):
        render.frames([], B)
    with pytest.raises(TypeError, match="checkpoints must be all modules, all .* got a list of Sequential, int"):
        render.frames([_net(), 3], B)
    with pytest.raises(TypeError, match="checkpoints must be a folder or file path, .* got float"):
        render.frames(3.0, B)
    with pytest.raises(ValueError, match="'hue' is not a valid color option, must be one of 'pattern', 'area'"):
        render.frames([_net()], B, color="hue", **SMALL)
    with pytest.raises(ValueError, match="'hue' is not a valid color option"):
        render.plot_partition(p, Figure().add_subplot(), color="hue")
    with pytest.raises(ValueError, match=f"color has 2 values but the partition has {len(p)} regions"):
        render.plot_partition(p, Figure().add_subplot(), color=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"data must be \(N, 2\) points in slice coordinates"):
        render.plot_partition(p, Figure().add_subplot(), data=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="data: X has 3 points but y has 2 labels"):
        render.plot_partition(p, Figure().add_subplot(), data=(np.zeros((3, 2)), [0, 1]))
    with pytest.raises(ValueError, match="'everything' is not a valid data option, must be 'auto'"):
        render.animate([_net()], B, tmp_path / "x.gif", data="everything")
    with pytest.raises(ValueError, match="images is empty: nothing to write"):
        render.save([], tmp_path / "x.gif")
    with pytest.raises(ValueError, match=r"image 1 is uint8 \(3, 3, 3\); all images must be uint8 \(H, W, 3\)"):
        render.save([np.zeros((2, 2, 3), np.uint8), np.zeros((3, 3, 3), np.uint8)], tmp_path / "x.gif")
    with pytest.raises(ValueError, match="fps must be > 0, got 0"):
        render.save([np.zeros((2, 2, 3), np.uint8)], tmp_path / "x.gif", fps=0)
    t1 = migration_table(p)
    ax = Figure().add_subplot()
    with pytest.raises(ValueError, match="plot_migration needs a table over training"):
        render.plot_migration(t1, ax)
    t = migration_table([p, p])
    with pytest.raises(ValueError, match="'edge' is not a valid option for to, must be one of 'boundary', 'data'"):
        render.plot_migration(t, ax, to="edge")
    with pytest.raises(ValueError, match="'mass' is not a valid option for quantity, must be one of 'count', 'area'"):
        render.plot_migration(t, ax, quantity="mass")
    with pytest.raises(ValueError, match="steps has 3 labels but the table has 2 checkpoints"):
        render.plot_migration(t, ax, steps=[1, 2, 3])
    with pytest.raises(TypeError, match=r"demo\(\) got unknown settings \['colour'\]"):
        render.demo(tmp_path / "d.gif", colour="red")
    assert list(tmp_path.iterdir()) == []


# ---- the command line and the demo
def test_cli_train_then_animate(tmp_path, capsys):
    run = tmp_path / "xor"
    assert main(["train", "--toy", "xor", "--n", "16", "--out", str(run), "--steps", "12", "--checkpoints", "3",
                 "--width", "4", "--depth", "1", "--quiet"]) == 0
    files = sorted(f.name for f in run.glob("step_*.pt"))
    assert files == ["step_000000.pt", "step_000001.pt", "step_000003.pt", "step_000012.pt"]
    gif = tmp_path / "xor.gif"
    assert main(["animate", str(run), "--out", str(gif), "--dpi", "20", "--quiet"]) == 0
    assert len(iio.imread(gif, index=None)) == 4
    assert "wrote" in capsys.readouterr().out
    # explicit files, architecture and bounds; no data, no stats
    gif2 = tmp_path / "two.gif"
    assert main(["animate", str(run / files[0]), str(run / files[-1]), "--arch",
                 "splinescope.spatial.train:toy_mlp(width=4, depth=1)", "--bounds", "-2", "2", "-1", "1",
                 "--no-data", "--no-stats", "--out", str(gif2), "--dpi", "20", "--quiet"]) == 0
    assert len(iio.imread(gif2, index=None)) == 2
    # errors come out as one line on stderr, exit status 2
    assert main(["animate", str(run), "--out", str(tmp_path / "x.avi"), "--quiet"]) == 2
    assert "splinescope animate: error: '.avi' is not a supported output format" in capsys.readouterr().err
    np.savez(tmp_path / "pts.npz", A=np.zeros((2, 2)))
    assert main(["animate", str(run), "--data", str(tmp_path / "pts.npz"), "--out", str(tmp_path / "z.gif"), "--quiet"]) == 2
    assert "pts.npz holds no array 'X' (keys: A)" in capsys.readouterr().err
    assert main(["train", "--toy", "xor", "--noise", "0.1", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "--noise applies to moons, circles and spirals, not to 'xor'" in capsys.readouterr().err
    assert main(["train", "--toy", "xor", "--test", "-1", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "--test must be >= 0, got -1" in capsys.readouterr().err


def test_cli_animate_on_a_plane_through_three_inputs(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    L = torch.nn
    for step in (0, 5):
        net = L.Sequential(L.Linear(6, 8), L.ReLU(), L.Linear(8, 2))
        torch.save(net, tmp_path / f"step_{step:06d}.pt")
    for n in "abc":
        np.save(tmp_path / f"{n}.npy", np.random.default_rng(ord(n)).random(6))
    gif = tmp_path / "plane.gif"
    args = ["animate", str(tmp_path), "--trust", "--through"] + [str(tmp_path / f"{n}.npy") for n in "abc"]
    assert main(args + ["--bounds", "-0.5", "1.5", "-0.5", "1.5", "--out", str(gif), "--dpi", "20", "--quiet"]) == 0
    assert len(iio.imread(gif, index=None)) == 2
    # without --bounds, a plane's default box: the three inputs and a margin
    import types
    from splinescope.render import _animate
    seen = []
    monkeypatch.setattr(_animate, "animate", lambda ck, bounds, out, **kw: seen.append(bounds) or types.SimpleNamespace(
        path=out, steps=[0], n_regions=np.array([1])))
    assert main(args + ["--out", str(gif), "--quiet"]) == 0 and seen == [(-0.2, 1.2, -0.2, 1.2)]
    capsys.readouterr()
    monkeypatch.undo()
    # without a plane, a 6-input network is refused, naming the way to slice it
    assert main(["animate", str(tmp_path), "--trust", "--out", str(tmp_path / "x.gif"), "--quiet"]) == 2
    assert "6 inputs; pass plane=spatial.Plane(...) (or Plane.through(a, b, c); on the command line --through" in capsys.readouterr().err


def test_held_out_points_travel_with_the_run(tmp_path, monkeypatch):
    run = tmp_path / "moons"
    assert main(["train", "--toy", "moons", "--n", "16", "--test", "5", "--out", str(run), "--steps", "4",
                 "--checkpoints", "2", "--width", "4", "--depth", "1", "--quiet"]) == 0
    from splinescope.spatial.train import load_run_data
    Xt, yt = load_run_data(run, "test")
    assert Xt.shape == (5, 2) and yt.shape == (5,)
    assert not np.isin(Xt, load_run_data(run)[0]).all(axis=1).any()  # other points than the training set
    seen = {}
    real = _plot.plot_partition

    def spy(p, ax=None, **kw):
        seen["test"] = kw.get("test")
        return real(p, ax, **kw)

    monkeypatch.setattr(_plot, "plot_partition", spy)
    assert main(["animate", str(run), "--out", str(tmp_path / "m.gif"), "--dpi", "20", "--quiet"]) == 0
    np.testing.assert_array_equal(seen["test"][0], Xt)
    with pytest.raises(ValueError, match="'val' is not a valid split"):
        load_run_data(run, "val")


def test_demo_tiny(tmp_path):
    anim = render.demo(tmp_path / "demo.gif", steps=10, checkpoints=2, width=4, depth=1, n=16,
                       run_dir=tmp_path / "run", progress=False)
    assert anim.steps == [0, 1, 10]
    assert len(iio.imread(tmp_path / "demo.gif", index=None)) == 3
    assert sorted(f.name for f in (tmp_path / "run").glob("*.pt")) == [
        "step_000000.pt", "step_000001.pt", "step_000010.pt"]
