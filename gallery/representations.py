"""Representations across training on digits with label noise: layer-wise CKA between checkpoints,
and how much linear probes' decision regions agree, exactly and sampled, on a plane through three
training digits of classes 0, 3 and 7 (after Sharon and Dar, 2024).

An MLP (64 -> 3 x 64 ReLU -> 10) is trained with Adam far past the point where it fits 500
training digits with 20% of their labels shuffled. Deeper layers keep changing after that point
more than shallow ones: their CKA to their state at perfect fit falls further.

Run from the repository root (a few minutes on one core):

    python gallery/representations.py

Writes ``gallery/cka_digits.png`` (heat maps + agreement curves) and ``gallery/cka_digits.csv``
(step, train accuracy on the noisy labels, each layer's CKA to its state at perfect fit and to the
final checkpoint, each layer's exact and sampled probe agreement with the final probe).
"""
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from splinescope import spatial  # noqa: E402
from splinescope.render.dynamics import plot_cka_matrices, plot_probe_agreement  # noqa: E402
from splinescope.spatial.data import digits_split  # noqa: E402
from splinescope.spatial.dynamics import cka_matrices, probe_agreement  # noqa: E402
from splinescope.spatial.train import toy_mlp, train  # noqa: E402

HERE = Path(__file__).resolve().parent
N_TRAIN, NOISE, STEPS, CHECKPOINTS, GRID = 500, 0.2, 20000, 20, 300


def main():
    torch.set_num_threads(1)
    Xtr, ytr, Xte, yte = digits_split(N_TRAIN, seed=0)
    rng = np.random.default_rng(0)
    noisy = ytr.copy()
    flip = rng.random(N_TRAIN) < NOISE
    noisy[flip] = rng.integers(0, 10, flip.sum())
    net = toy_mlp(64, 3, in_features=64, out_features=10, seed=0)
    ckpts = train(net, Xtr, noisy, steps=STEPS, lr=1e-3, checkpoints=CHECKPOINTS, progress=False)
    steps = [s for s, _ in ckpts]
    models = [m.double() for _, m in ckpts]  # analysed in float64
    Xt = torch.tensor(Xtr, dtype=torch.float64)
    acc = [float((m(Xt).argmax(1).numpy() == noisy).mean()) for m in models]
    fit = next((i for i, a in enumerate(acc) if a == 1.0), len(acc) - 1)
    print(f"perfect fit of the noisy labels at step {steps[fit]} (checkpoint {fit} of {len(steps)})")
    mats = cka_matrices(models, torch.tensor(Xte[:400], dtype=torch.float64))
    for name, M in mats.items():
        print(f"layer {name}: CKA(perfect fit, final) = {M[fit, -1]:.3f}")
    # a plane through three training digits; the probes learn the clean labels of the training set
    picks = [int(np.nonzero(ytr == c)[0][0]) for c in (0, 3, 7)]  # three digits of three classes
    plane = spatial.Plane.through(*(torch.tensor(Xtr[i], dtype=torch.float64) for i in picks))
    bounds = (-0.2, 1.2, -0.2, 1.2)
    agree = probe_agreement(models, Xt, torch.tensor(ytr), bounds, plane=plane, grid=GRID)
    for name, r in agree.items():
        print(f"layer {name}: probe agreement with the final probe at perfect fit: exact {r['exact'][fit]:.4f}, "
              f"grid {r['grid'][fit]:.4f}; max |exact - grid| {np.abs(r['exact'] - r['grid']).max():.4f}")
    fig = plt.figure(figsize=(13, 7))
    top = [fig.add_subplot(2, len(mats), i + 1) for i in range(len(mats))]
    plot_cka_matrices(mats, steps, axes=top)
    for ax in top:
        ax.axvline(fit, color="cyan", lw=0.8)
        ax.axhline(fit, color="cyan", lw=0.8)
    left = fig.add_subplot(2, 2, 3)
    x = np.asarray(steps) + 1
    for k, (name, M) in enumerate(mats.items()):
        left.plot(x, M[fit], color=f"C{k}", label=f"layer {name}")
    left.axvline(steps[fit] + 1, color="gray", ls=":", label="perfect fit")
    left.set_xscale("log")
    left.set_xlabel("step + 1")
    left.set_ylabel("CKA to the layer at perfect fit")
    left.legend(fontsize=7)
    right = fig.add_subplot(2, 2, 4)
    plot_probe_agreement(steps, agree, ax=right)
    right.axvline(steps[fit] + 1, color="gray", ls=":")
    fig.suptitle(f"digits, {N_TRAIN} training images, {int(NOISE * 100)}% labels shuffled: representations "
                 "across training (cyan: perfect fit)", fontsize=10)
    fig.savefig(HERE / "cka_digits.png", dpi=100)
    with open(HERE / "cka_digits.csv", "w", newline="") as f:
        w = csv.writer(f)
        names = list(mats)
        w.writerow(["step", "train_acc_noisy"] + [f"cka_fit_{n}" for n in names] + [f"cka_final_{n}" for n in names]
                   + [f"agree_exact_{n}" for n in names] + [f"agree_grid_{n}" for n in names])
        for i, s in enumerate(steps):
            w.writerow([s, f"{acc[i]:.4f}"] + [f"{mats[n][fit, i]:.5f}" for n in names]
                       + [f"{mats[n][-1, i]:.5f}" for n in names]
                       + [f"{agree[n]['exact'][i]:.5f}" for n in names] + [f"{agree[n]['grid'][i]:.5f}" for n in names])


if __name__ == "__main__":
    main()
