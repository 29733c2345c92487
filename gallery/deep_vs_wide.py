"""A deep vs a wide network with the same number of neurons (128), on the same circles.

Deep: 4 hidden layers of 32 neurons; wide: 1 hidden layer of 128. Depth folds the plane: many
more, smaller regions for the same neurons, and regions bent around the data.

Run from the repository root (about 2 minutes on one core):

    python gallery/deep_vs_wide.py
"""
import _common  # first: this checkout's packages, one thread, no display

from splinescope.spatial.data import circles
from splinescope.spatial.train import toy_mlp

STEPS, CHECKPOINTS = 8000, 28


def main() -> None:
    X, y = circles(256, noise=0.08, factor=0.5, seed=0)
    kw = dict(steps=STEPS, lr=3e-3, checkpoints=CHECKPOINTS, seed=0)
    _common.side_by_side([(f"{depth} x {width}", toy_mlp(width, depth, seed=0), kw)
                          for width, depth in ((32, 4), (128, 1))], X, y, "deep_vs_wide.gif")


if __name__ == "__main__":
    main()
