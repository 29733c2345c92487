"""splinescope.render: pictures and movies of linear regions across training.

Drawing
-------
plot_partition(p, ax=None, *, data=None, color="pattern")   one partition; returns PartitionArtists
plot_migration(table, ax=None, *, to="boundary")             migration table over training (heat map)
region_colors(keys)                                          the stable colour of each region key
plot_lc(steps, lc, accuracy=None)                            local complexity over training (render.lc)

Movies
------
animate(checkpoints, bounds, out="run.gif", *, data=None)   one frame per checkpoint -> GIF / MP4
frames(checkpoints, bounds, ...)                            the same frames as arrays (no file)
draw_frames(partitions, table, steps, *, data=None)         ready-made partitions + statistics -> arrays
save(images, out, *, fps=8)                                 images -> GIF / MP4, written atomically
demo(out="splinescope-demo.gif")                            train a toy network and animate it

In the training loop
--------------------
Tracker(run_dir, data, *, steps|every|at, slices, ...)     LC, partition statistics, checkpoints and a
                                                            step-keyed log on a schedule (.step(model, step))
SplinescopeCallback(run_dir, **tracker options)             the same as a Lightning Callback (imports Lightning)
    (``robust={"eps": (0.02, 0.05), "clip": (0, 1)}``: robust accuracy under PGD too)

Grokking (render.grok)
----------------------
grok(out_dir, GrokRun(...), *, control=True)                 the large-init run and its control, measured at
                                                            every checkpoint: OUT/large, OUT/control (table.csv)
GrokRun(data="fashion-mnist", init_scale=8.0, steps=100_000)  the setting (Omnigrok; Humayun et al.)
milestones(rows), plot_grok(rows, control), read_table(dir)   where the curves turn; the picture; the table

In the browser
--------------
viewer(checkpoints, bounds, out="run.html", *, data="auto")   one self-contained HTML page: every
                                                            checkpoint (slider, play), the numbers of
                                                            the region under the pointer, curves

Command line (``splinescope``)
------------------------------
train    train a toy network, checkpoints on a log-spaced schedule   (render/cli/train.py)
animate  checkpoints -> GIF / MP4                                     (render/cli/animate.py)
view     checkpoints -> one self-contained HTML page                  (render/cli/view.py)
count    regions of one model on a slice                              (render/cli/count.py)
lc       local complexity over training                               (render/cli/lc.py)
dynamics CKA, probe agreement and imbalance over training             (render/cli/dynamics.py)
grok     grokking with a large initialisation and its control         (render/cli/grok.py)

Conventions
-----------
Every number drawn comes from :mod:`spatial` (partitions, areas, slopes, distances, migration
tables): this package has no geometry of its own. Data flows one way: model + slice ->
partition -> frames -> file. Colours: "pattern" gives each activation pattern a fixed pastel
colour (a hash of ``Partition.region_keys()``), so a region keeps its colour while it survives;
statistics use one colour scale across all frames of a movie. Data points are in slice
coordinates. Files are written to a temporary file in the target folder and renamed into place.
"""
from ._animate import Animation, animate, draw_frames, frames, save
from ._demo import demo
from ._plot import PartitionArtists, plot_migration, plot_partition, region_colors
from ._viewer import ViewerPage, viewer
from .lc import plot_lc
from .track import Tracker


def __getattr__(name):  # Lightning is imported only when its callback is asked for
    if name == "SplinescopeCallback":
        from ._lightning import SplinescopeCallback
        return SplinescopeCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Animation",
    "PartitionArtists",
    "SplinescopeCallback",
    "Tracker",
    "ViewerPage",
    "animate",
    "demo",
    "draw_frames",
    "frames",
    "plot_migration",
    "plot_lc",
    "plot_partition",
    "region_colors",
    "save",
    "viewer",
]
