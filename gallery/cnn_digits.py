"""A convolutional network on the sklearn digits, on a plane through three digits.

1x8x8 -> Conv 4 (3x3) -> ReLU -> MaxPool 2 -> Conv 8 (3x3) -> ReLU -> Linear 10, trained with
Adam on all 1,797 digits as 1x8x8 images (``train`` takes samples of any shape); each
frame is the exact partition of the plane through a 3, a 5 and an 8 ((s, t) = (0, 0), (1, 0),
(0, 1)) with the argmax boundary between the ten classes. Max-pooling is exact: inside a region
each pooled unit is the max of four affine functions, and the region splits where the argmax
changes.

Run from the repository root (12 s on one core of the development VM):

    python gallery/cnn_digits.py
"""
import _common  # first: this checkout's packages, one thread, no display

import numpy as np
import torch
from splinescope import render
from splinescope import spatial
from splinescope.spatial.data import digits
from splinescope.spatial.train import train

HERE = _common.HERE
STEPS, CHECKPOINTS = 2000, 24
ANCHORS = (3, 5, 8)
BOX = (-0.1, 1.1, -0.1, 1.1)


def cnn() -> torch.nn.Sequential:
    torch.manual_seed(0)
    L = torch.nn
    return L.Sequential(L.Conv2d(1, 4, 3, padding=1), L.ReLU(), L.MaxPool2d(2),
                        L.Conv2d(4, 8, 3, padding=1), L.ReLU(), L.Flatten(), L.Linear(8 * 16, 10))


def main() -> None:
    X, y = digits()
    X = X.reshape(-1, 1, 8, 8)  # images: the plane's three inputs and the training samples alike
    idx = [int(np.nonzero(y == d)[0][0]) for d in ANCHORS]
    plane = spatial.Plane.through(*X[idx])
    ckpts = train(cnn(), X, y, steps=STEPS, lr=2e-3, batch_size=256, checkpoints=CHECKPOINTS, seed=0)
    anchors = (np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array(ANCHORS))
    out = HERE / "cnn_digits.gif"
    anim = render.animate(ckpts, BOX, out, plane=plane, data=anchors, label="CNN, digits 3 / 5 / 8", fps=5,
                          data_kw={"s": 120, "marker": "*", "edgecolors": "black", "linewidths": 1.0})
    print(anim, f"{out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
