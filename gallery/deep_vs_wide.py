"""A deep vs a wide network with the same number of neurons (128), on the same circles.

Deep: 4 hidden layers of 32 neurons; wide: 1 hidden layer of 128. Depth folds the plane: many
more, smaller regions for the same neurons, and regions bent around the data.

Run from the repository root (about 2 minutes on one core):

    python gallery/deep_vs_wide.py
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

import render  # noqa: E402
from spatial.data import circles  # noqa: E402
from spatial.train import toy_mlp, train  # noqa: E402

HERE = Path(__file__).resolve().parent
STEPS, CHECKPOINTS = 8000, 28


def main() -> None:
    X, y = circles(256, noise=0.08, factor=0.5, seed=0)
    movies = []
    for width, depth in ((32, 4), (128, 1)):
        label = f"{depth} x {width}"
        ckpts = train(toy_mlp(width, depth, seed=0), X, y, steps=STEPS, lr=3e-3,
                      checkpoints=CHECKPOINTS, seed=0)
        movies.append(render.frames(ckpts, data=(X, y), stats=False, label=label, figsize=(4.5, 4.5)))
    images = [np.concatenate(pair, axis=1) for pair in zip(movies[0].images, movies[1].images)]
    out = render.save(images, HERE / "deep_vs_wide.gif", fps=6)
    print(movies, f"{out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
