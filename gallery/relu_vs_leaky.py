"""ReLU vs leaky ReLU: one initialisation, one dataset, two activations, side by side.

Two 3 x 32 networks from the same seed (so the first frame's lines coincide), one with ReLU, one
with LeakyReLU(0.1), trained on three-arm spirals for 8,000 full-batch Adam steps.

Run from the repository root (about 2 minutes on one core):

    python gallery/relu_vs_leaky.py
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
from spatial.data import spirals  # noqa: E402
from spatial.train import toy_mlp, train  # noqa: E402

HERE = Path(__file__).resolve().parent
STEPS, CHECKPOINTS = 8000, 28


def main() -> None:
    X, y = spirals(300, classes=3, turns=1.0, noise=0.03, seed=0)
    movies = []
    for act, label in (("relu", "ReLU"), ("leaky_relu", "leaky ReLU (0.1)")):
        ckpts = train(toy_mlp(32, 3, act, out_features=3, seed=0), X, y, steps=STEPS, lr=3e-3,
                      checkpoints=CHECKPOINTS, seed=0)
        movies.append(render.frames(ckpts, data=(X, y), stats=False, label=label, figsize=(4.5, 4.5)))
    images = [np.concatenate(pair, axis=1) for pair in zip(movies[0].images, movies[1].images)]
    out = render.save(images, HERE / "relu_vs_leaky.gif", fps=6)
    print(movies, f"{out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
