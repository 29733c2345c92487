"""Local complexity over training on sklearn digits: descent, ascent, second descent.

Run (one CPU thread, about 5 minutes)::

    python gallery/lc_digits.py                       # writes gallery/lc_digits.png
    python gallery/lc_digits.py --save runs/digits    # and keeps the checkpoints, for e.g.
    splinescope lc runs/digits --radius 0.03 --out lc_r003.png

A 64-200-200-200-10 ReLU MLP (``spatial.train:toy_mlp``) is trained on 1,000 of the 1,797 digits
(pixels in ``[0, 1]``) with the MSE loss on one-hot targets, AdamW (lr 1e-3, weight decay 0.01),
batches of 200, for 40,000 steps, with 40 log-spaced checkpoints. Then the computation of
``splinescope lc`` (:mod:`spatial.lc_run`, called here directly) measures the mean local complexity (summed over the three layers, ``P = 25`` random directions,
radius ``r = 0.1``) at the 1,000 training points, the 797 test points and 1,000 points drawn
uniformly in the box of the training inputs, following Humayun, Balestriero and Baraniuk, "Deep Networks Always
Grok and Here is Why" (ICML 2024): LC first falls, then rises while the network fits the data,
and in a second descent the regions leave the training points, so late in training LC there
falls below LC at random points.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from splinescope.render.lc import save_lc_plot
from splinescope.spatial.checkpoints import load_checkpoints
from splinescope.spatial.data import digits_split
from splinescope.spatial.lc_run import lc_over_training, point_sets
from splinescope.spatial.local_complexity import random_frame
from splinescope.spatial.train import toy_mlp, train as fit

HERE = Path(__file__).resolve().parent


def train(run: Path, steps: int, checkpoints: int, n_train: int, seed: int) -> None:
    """Train the MLP (:func:`spatial.train.train`, MSE on one-hot targets), writing ``step_*.pt``
    state_dicts, ``arch.json`` and ``data.npz`` to ``run``."""
    Xtr, ytr, Xte, yte = digits_split(n_train, seed)
    arch = {"factory": "splinescope.spatial.train:toy_mlp",
            "kwargs": {"width": 200, "depth": 3, "in_features": 64, "out_features": 10, "seed": seed}}
    fit(toy_mlp(**arch["kwargs"]), Xtr, ytr, steps=steps, lr=1e-3, weight_decay=0.01, batch_size=200,
        checkpoints=checkpoints, out_dir=run, arch=arch, seed=seed, test=(Xte, yte), loss="mse")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--checkpoints", type=int, default=40, help="log-spaced checkpoints")
    ap.add_argument("--train-size", type=int, default=1000)
    ap.add_argument("--radius", type=float, default=0.1)
    ap.add_argument("--directions", "--dim", type=int, default=25, help="directions P (--dim: its old name)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", type=Path, help="folder to keep the checkpoints in (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=HERE / "lc_digits.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.save or Path(tmp)
        run.mkdir(parents=True, exist_ok=True)
        train(run, args.steps, args.checkpoints, args.train_size, args.seed)
        Xtr, ytr, Xte, yte = digits_split(args.train_size, args.seed)  # the split train() used
        sets = point_sets(Xtr, ytr, Xte, yte, points=1000, seed=args.seed)
        frame = random_frame(args.directions, Xtr.shape[1], seed=args.seed)
        rows = []
        for row in lc_over_training(load_checkpoints(run), sets, args.radius, frame=frame):
            rows.append(row)
            print(f"step {row['step']}: LC train {row['lc_train']:.2f}, test {row['lc_test']:.2f}, "
                  f"random {row['lc_random']:.2f}", flush=True)
    save_lc_plot(rows, args.out, title=f"64-200-200-200-10 MLP on {args.train_size} digits, MSE, AdamW wd 0.01: "
                                       f"mean local complexity (3 layers, r={args.radius:g}, P={args.directions})")
    print(f"wrote {args.out}")
    lc = {k: np.array([r[f"lc_{k}"] for r in rows]) for k in ("train", "test", "random")}
    steps = np.array([int(r["step"]) for r in rows])
    low = int(np.argmin(lc["train"][: int(np.argmax(lc["train"]))] if np.argmax(lc["train"]) > 0 else lc["train"]))
    peak = low + int(np.argmax(lc["train"][low:]))
    print(f"LC at train points: {lc['train'][0]:.1f} at step 0, descent to {lc['train'][low]:.1f} "
          f"(step {steps[low]}), ascent to {lc['train'][peak]:.1f} (step {steps[peak]}), second "
          f"descent to {lc['train'][-1]:.1f} (step {steps[-1]}); at random points {lc['random'][-1]:.1f}")
    print(f"done in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
