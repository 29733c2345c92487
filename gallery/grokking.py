"""Grokking with a large initialisation: late generalisation, later robustness, regions leaving the data.

Run from the repository root (about 20 minutes on one thread: two runs of 10^5 steps)::

    python gallery/grokking.py                                # writes gallery/grokking.png, .csv, .gif
    python gallery/grokking.py --save runs/grok               # and keeps the two run folders
    python gallery/grokking.py --save runs/grok --plot-only   # redraws from them

The setting of :mod:`render.grok` (``splinescope grok``), after Liu et al., "Omnigrok" and Humayun,
Balestriero, Baraniuk, "Deep Networks Always Grok and Here is Why" (ICML 2024): 1,000 Fashion-MNIST
training images (Debian's ``dataset-fashion-mnist``), a 784-200-200-200-10 ReLU MLP whose initial
weights and biases are multiplied by 8, AdamW (lr 1e-3, weight decay 0.01), batches of 200, the
squared error to one-hot targets, 10^5 steps, 40 log-spaced checkpoints; beside it the control
(standard initialisation, dashed). At each checkpoint: accuracy on the 1,000 training and 10,000
test images, robust accuracy of 1,000 test images under PGD (l-inf, eps 0.05 on [0, 1] pixels, 10
steps), local complexity at 1,000 training, test and random points (radius 0.1, 25 directions), and
the exact partition of the plane through three training images (a T-shirt, a trouser, a pullover).

Writes ``gallery/grokking.png`` (the curves), ``gallery/grokking.csv`` (one row per checkpoint of
the large-init run, the control's numbers in ``control_*`` columns) and ``gallery/grokking.gif``
(the plane across the large-init run).
"""
import _common  # first: this checkout's packages, one thread, no display

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from splinescope import render, spatial
from splinescope.render.grok import (GROK_FILE, PLANE_FILES, GrokRun, grok, milestones, read_table, save_grok_plot,
                                     summary)
from splinescope.spatial._io import atomic_write

HERE = _common.HERE
CSV_COLUMNS = ("step", "train_acc", "test_acc", "robust_acc", "lc_train", "lc_test", "lc_random")
CONTROL_COLUMNS = ("train_acc", "test_acc", "robust_acc", "lc_train", "lc_test", "lc_random")


def write_csv(large, control, out: Path) -> Path:
    """The large run's table (without the timings), the control's main numbers beside it."""
    extra = [k for k in large[0] if k not in CSV_COLUMNS and not k.startswith("seconds_")]
    cols = list(CSV_COLUMNS) + extra + [f"control_{k}" for k in CONTROL_COLUMNS]
    assert [r["step"] for r in large] == [r["step"] for r in control]  # one schedule

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for a, b in zip(large, control):
                row = [a[k] for k in cols if not k.startswith("control_")] + [b[k] for k in CONTROL_COLUMNS]
                w.writerow(["" if isinstance(v, float) and np.isnan(v) else f"{v:.6g}" if isinstance(v, float)
                            else v for v in row])
    return atomic_write(out, write)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", type=Path, help="keep the run folders here (default: a temporary folder)")
    ap.add_argument("--plot-only", action="store_true", help="redraw from the run folders of --save")
    ap.add_argument("--data", default="fashion-mnist", choices=("fashion-mnist", "digits"))
    ap.add_argument("--steps", type=int, default=100_000)
    args = ap.parse_args()
    if args.plot_only and args.save is None:
        ap.error("--plot-only needs --save DIR (the run folders to redraw from)")
    t0 = time.perf_counter()
    cfg = GrokRun(data=args.data, steps=args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.save or Path(tmp)
        if not args.plot_only:
            results = grok(root, cfg)
            for name, res in results.items():
                print(summary(name, res, cfg.eps[0]), flush=True)
        large, control = read_table(root / "large"), read_table(root / "control")
        title = (f"784-200-200-200-10 ReLU MLP on 1,000 Fashion-MNIST images, init x{cfg.init_scale:g} "
                 f"(dashed: x1), AdamW wd {cfg.weight_decay:g}, MSE\n"
                 f"robust: PGD l-inf eps {cfg.eps[0]:g}, 10 steps, on 1,000 test images; LC radius {cfg.lc_radius:g}")
        print("wrote", save_grok_plot(large, control, HERE / "grokking.png", title=title))
        print("wrote", write_csv(large, control, HERE / "grokking.csv"))

        run = root / "large"
        plane = spatial.Plane.through(*(np.load(run / f) for f in PLANE_FILES))
        meta = json.loads((run / GROK_FILE).read_text())
        y = spatial.runs.load_run_data(run)[1]
        anchors = (np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), y[meta["plane_images"]])
        out = HERE / "grokking.gif"
        anim = render.animate(run, tuple(cfg.bounds), out, plane=plane, data=anchors,
                              label=f"x{cfg.init_scale:g} init", fps=4, dpi=70, figsize=(10.0, 5.0),
                              data_kw={"s": 120, "marker": "*", "edgecolors": "black", "linewidths": 1.0})
        print(anim, f"{out.stat().st_size / 1e6:.2f} MB")
        for name, table in (("large", large), ("control", control)):
            m = milestones(table)
            print(name, json.dumps(m))
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
