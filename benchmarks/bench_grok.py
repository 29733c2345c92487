"""Benchmark: the measurements of a grokking run against its training, timed in the same run.

Run (one CPU thread; about 8 minutes for the full setting)::

    python benchmarks/bench_grok.py                  # Fashion-MNIST, 10^5 steps, 40 checkpoints (issue 12's setting)
    python benchmarks/bench_grok.py --steps 20000    # shorter: the same 40 checkpoints over fewer steps
    python benchmarks/bench_grok.py --data digits    # without Debian's dataset-fashion-mnist

The large-initialisation run of :func:`render.grok.train_grok` (no control), which times its
optimiser steps and, at every checkpoint, each measurement: accuracy and loss on the whole
training and test sets; local complexity at 1,000 training, test and random points (25
directions); robust accuracy of 1,000 test images under PGD at 3 radii (10 steps); the exact
partition of the plane through three training images and its statistics; the checkpoint file.
Prints each as seconds in all, milliseconds per checkpoint and a ratio to the training time.
Issue 12's target: all the measurements together at most 0.5x the training.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from splinescope.render.grok import GrokRun, train_grok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--checkpoints", type=int, default=40)
    ap.add_argument("--data", default="fashion-mnist", choices=("fashion-mnist", "digits"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = GrokRun(data=args.data, steps=args.steps, checkpoints=args.checkpoints)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = train_grok(Path(tmp) / "large", cfg, progress=False)
    wall = time.perf_counter() - t0
    n = len(res.rows)
    s = res.seconds
    regions = [int(r["regions"]) for r in res.rows]
    print(f"render.grok.train_grok: {cfg.data}, {cfg.train_size} images, width {cfg.width}, depth {cfg.depth}, "
          f"init x{cfg.init_scale:g}, {cfg.steps:,} steps, {n} checkpoints, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); {wall:.0f} s wall in all")
    print(f"  {'training (optimiser steps)':52s} {s['train']:8.1f} s   {s['train'] / max(cfg.steps, 1) * 1e3:8.2f} "
          f"ms/step   1.00x")
    rows = (("accuracy + loss (whole train and test sets)", "accuracy"),
            (f"LC at train, test, random ({cfg.lc_points} each)", "lc"),
            (f"robust accuracy ({len(cfg.eps)} radii, {cfg.robust_points} pts)", "robust"),
            (f"plane partition + statistics ({min(regions):,}..{max(regions):,} regions)", "slices"),
            ("checkpoint files", "save"))
    for name, key in rows:
        print(f"  {name:52s} {s[key]:8.1f} s   {s[key] / n * 1e3:8.1f} ms/ckpt   {s[key] / s['train']:.3f}x")
    measured = sum(v for k, v in s.items() if k != "train")
    print(f"  {'all measurements':52s} {measured:8.1f} s   {measured / n * 1e3:8.1f} ms/ckpt   "
          f"{res.measure_ratio:.3f}x   (target <= 0.5x: {'met' if res.measure_ratio <= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
