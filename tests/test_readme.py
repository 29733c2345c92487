"""The README's Python examples run as written (with small stand-ins for the user's objects)."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def namespace():
    torch.manual_seed(0)
    L = torch.nn
    mnist_mlp = L.Sequential(L.Flatten(), L.Linear(784, 32), L.ReLU(), L.Linear(32, 10))
    g = torch.Generator().manual_seed(0)
    img_a, img_b, img_c = (torch.rand(1, 28, 28, generator=g) for _ in range(3))
    from splinescope.spatial.data import moons
    from splinescope.spatial.train import toy_mlp
    X, y = moons(64, seed=0)
    model = L.Sequential(L.Linear(40, 16), L.ReLU(), L.Linear(16, 16), L.ReLU(), L.Linear(16, 3))
    x = torch.rand(8, 40, generator=g)
    F = torch.linalg.qr(torch.randn(40, 5, generator=g))[0].T.contiguous()
    checkpoints = [toy_mlp(8, 2, seed=s) for s in range(3)]
    return dict(mnist_mlp=mnist_mlp, img_a=img_a, img_b=img_b, img_c=img_c, X=X, y=y, model=model, x=x,
                F=F, checkpoints=checkpoints)


def test_there_are_examples():
    assert len(BLOCKS) >= 3


def test_readme_examples_run_in_order(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.close("all")  # a reader starts with no figure: the examples draw on pyplot's current axes
    monkeypatch.chdir(tmp_path)
    ns = namespace()
    for i, block in enumerate(BLOCKS):  # later examples use what earlier ones made (p)
        exec(compile(block, f"README.md python block {i}", "exec"), ns)
    assert len(ns["p"]) > 1
    assert (tmp_path / "run.gif").stat().st_size > 0
    assert ns["lc"].shape == (8, 2)
