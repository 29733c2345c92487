"""Layer imbalance of a deep linear network: conserved by gradient flow, driven down by weight decay
and noise; loss and imbalance on one figure show the optimisation phase, then the regularisation
phase (Ginsburg, "On regularization of gradient descent, layer imbalance and flat minima", 2020).

Run from the repository root (about half a minute on one core):

    python gallery/imbalance.py

Writes ``gallery/imbalance.png`` and ``gallery/imbalance.csv`` (step, loss and ||D_1|| of each run).
"""
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from splinescope.render.dynamics import plot_imbalance  # noqa: E402
from splinescope.spatial.imbalance import train_deep_linear  # noqa: E402

HERE = Path(__file__).resolve().parent
STEPS, LR, MU = 8000, 0.01, 2e-3
RUNS = {  # name: keyword arguments of train_deep_linear beside the shared ones
    "gradient descent": {},
    f"weight decay mu={MU:g}": {"weight_decay": MU},
    "input noise 1.0": {"input_noise": 1.0},
    "small batches (SGD, 4)": {"batch_size": 4, "optimizer": "sgd"},
}


def main():
    torch.set_num_threads(1)
    runs = {name: train_deep_linear(4, 8, steps=STEPS, lr=LR, seed=0, **kw) for name, kw in RUNS.items()}
    steps = np.arange(STEPS + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for k, (name, r) in enumerate(runs.items()):
        left.plot(steps + 1, r.imbalance[:, 0] / r.imbalance[0, 0], color=f"C{k}", label=name)
    left.plot(steps + 1, np.exp(-2 * MU * LR * steps), "k:", label="exp(-2 mu t), t = lr x step")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("step + 1")
    left.set_ylabel("||D_1|| / ||D_1|| at step 0")
    left.set_title("imbalance: conserved, exp(-2 mu t), noise", fontsize=10)
    left.legend(fontsize=7)
    r = runs["input noise 1.0"]
    plot_imbalance(steps, r.loss, r.imbalance, axes=[right, right.twinx()])
    right.set_title("input noise: optimisation, then regularisation", fontsize=10)
    fig.tight_layout()
    fig.savefig(HERE / "imbalance.png", dpi=110)
    with open(HERE / "imbalance.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step"] + [f"{n}: {c}" for n in runs for c in ("loss", "imbalance_1")])
        for s in range(0, STEPS + 1, 10):
            w.writerow([s] + [f"{v:.6g}" for r in runs.values() for v in (r.loss[s], r.imbalance[s, 0])])
    for name, r in runs.items():
        print(f"{name:28s} loss {r.loss[0]:.3g} -> {r.loss[-1]:.3g}   ||D_1|| {r.imbalance[0, 0]:.4g} -> "
              f"{r.imbalance[-1, 0]:.4g} (ratio {r.imbalance[-1, 0] / r.imbalance[0, 0]:.4f})")
    print(f"exp(-2 mu lr steps) = {np.exp(-2 * MU * LR * STEPS):.4f}")


if __name__ == "__main__":
    main()
