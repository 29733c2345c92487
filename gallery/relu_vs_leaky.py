"""ReLU vs leaky ReLU: one initialisation, one dataset, two activations, side by side.

Two 3 x 32 networks from the same seed (so the first frame's lines coincide), one with ReLU, one
with LeakyReLU(0.1), trained on three-arm spirals for 8,000 full-batch Adam steps.

Run from the repository root (about 2 minutes on one core):

    python gallery/relu_vs_leaky.py
"""
import _common  # first: this checkout's packages, one thread, no display

from splinescope.spatial.data import spirals
from splinescope.spatial.train import toy_mlp

STEPS, CHECKPOINTS = 8000, 28


def main() -> None:
    X, y = spirals(300, classes=3, turns=1.0, noise=0.03, seed=0)
    kw = dict(steps=STEPS, lr=3e-3, checkpoints=CHECKPOINTS, seed=0)
    _common.side_by_side([(label, toy_mlp(32, 3, act, out_features=3, seed=0), kw)
                          for act, label in (("relu", "ReLU"), ("leaky_relu", "leaky ReLU (0.1)"))],
                         X, y, "relu_vs_leaky.gif")


if __name__ == "__main__":
    main()
