"""Region migration on two moons: regions leave the data for the decision boundary.

Trains the default toy run (``spatial.train.ToyRun``, as ``render.demo`` and ``splinescope train``:
3 x 32 ReLU, 256 moons, 30,000 full-batch Adam steps, 40 log-spaced checkpoints), writes the movie, and a heat map of the regions' distance
to the boundary and to the data over training.

Run from the repository root (about 2 minutes on one core):

    python gallery/migration_moons.py
"""
import _common  # first: this checkout's packages, one thread, no display

import matplotlib.pyplot as plt
from matplotlib.colors import LogNorm

from splinescope import render

HERE = _common.HERE


def main() -> None:
    anim = render.demo(HERE / "migration_moons.gif")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for ax, to in zip(axes, ("boundary", "data")):
        mesh = render.plot_migration(anim.table, ax, to=to, steps=anim.steps, norm=LogNorm(vmin=1))
        fig.colorbar(mesh, ax=ax, label="regions")
    fig.savefig(HERE / "migration_moons.png", dpi=80)
    print(anim, f"{(HERE / 'migration_moons.gif').stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
