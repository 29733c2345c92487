"""Region migration on two moons: regions leave the data for the decision boundary.

Trains the default toy network of ``render.demo`` (3 x 32 ReLU, 256 moons, 30,000 full-batch
Adam steps, 40 log-spaced checkpoints), writes the movie, and a heat map of the regions' distance
to the boundary and to the data over training.

Run from the repository root (about 2 minutes on one core):

    python gallery/migration_moons.py
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

import render  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    anim = render.demo(HERE / "migration_moons.gif", checkpoints=40)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for ax, to in zip(axes, ("boundary", "data")):
        mesh = render.plot_migration(anim.table, ax, to=to, steps=anim.steps, norm=LogNorm(vmin=1))
        fig.colorbar(mesh, ax=ax, label="regions")
    fig.savefig(HERE / "migration_moons.png", dpi=80)
    print(anim, f"{(HERE / 'migration_moons.gif').stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
