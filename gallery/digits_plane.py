"""A plane through three images of a digits classifier (sklearn digits, 8 x 8 = 64 inputs).

A 64 -> 64 -> 64 -> 10 ReLU network trained on the digits; each frame is the exact partition of
the plane through three training images (a 3, a 5 and an 8: (s, t) = (0, 0), (1, 0), (0, 1)),
with the argmax decision boundary between the ten classes.

Run from the repository root (about 2 minutes on one core):

    python gallery/digits_plane.py
"""
import _common  # first: this checkout's packages, one thread, no display

import numpy as np
from splinescope import render
from splinescope import spatial
from splinescope.spatial.data import digits
from splinescope.spatial.train import toy_mlp, train

HERE = _common.HERE
STEPS, CHECKPOINTS = 3000, 32
ANCHORS = (3, 5, 8)  # the digits the plane goes through


def main() -> None:
    X, y = digits()
    idx = [int(np.nonzero(y == d)[0][0]) for d in ANCHORS]
    plane = spatial.Plane.through(*X[idx])
    ckpts = train(toy_mlp(64, 2, in_features=64, out_features=10, seed=0), X, y, steps=STEPS,
                  lr=1e-3, batch_size=256, checkpoints=CHECKPOINTS, seed=0)
    anchors = (np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array(ANCHORS))
    out = HERE / "digits_plane.gif"
    anim = render.animate(ckpts, (-0.5, 1.5, -0.5, 1.5), out, plane=plane, data=anchors,
                          label="digits 3 / 5 / 8", fps=6,
                          data_kw={"s": 120, "marker": "*", "edgecolors": "black", "linewidths": 1.0})
    print(anim, f"{out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
