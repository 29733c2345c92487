"""Shared network builders and checks for the tests."""
import numpy as np
import pytest
import torch

L = torch.nn


def mlp(widths, act="leaky", seed=0, dtype=torch.float64, bias=True):
    """2 -> widths -> 1 (or widths[-1] outputs when ``widths`` ends with the output width)."""
    torch.manual_seed(seed)
    mods = []
    for a, b in zip(widths[:-1], widths[1:]):
        mods.append(L.Linear(a, b, bias=bias))
        mods.append(L.LeakyReLU(0.01) if act == "leaky" else L.ReLU())
    mods.pop()
    return L.Sequential(*mods).to(dtype)


def set_weights(net, params):
    """Set (weight, bias) of each Linear of ``net`` from a list of arrays."""
    lin = [m for m in net.modules() if isinstance(m, L.Linear)]
    with torch.no_grad():
        for m, (w, b) in zip(lin, params):
            m.weight.copy_(torch.as_tensor(np.asarray(w, dtype=np.float64)))
            if b is not None:
                m.bias.copy_(torch.as_tensor(np.asarray(b, dtype=np.float64)))
    return net


def integer_net(widths, seed, act="relu", lo=-2, hi=2):
    """A network with small integer weights and biases: concurrent and coincident lines galore."""
    rng = np.random.default_rng(seed)
    net = mlp(widths, act=act)
    params = [(rng.integers(lo, hi + 1, (b, a)), rng.integers(lo, hi + 1, b)) for a, b in zip(widths[:-1], widths[1:])]
    return set_weights(net, params)


def reference_net(width):
    """torch.manual_seed(0), default init, 2 -> [w, w, w] -> 1 LeakyReLU(0.01)."""
    torch.manual_seed(0)
    return L.Sequential(L.Linear(2, width), L.LeakyReLU(0.01), L.Linear(width, width), L.LeakyReLU(0.01),
                        L.Linear(width, width), L.LeakyReLU(0.01), L.Linear(width, 1))


def assert_matches_exact(model, bounds=(-1.0, 1.0, -1.0, 1.0), plane=None, rel=1e-9):
    """Same regions (count, patterns, areas) as the rational reference; verify() passes.

    Areas agree to ``rel``, and absolutely to the rounding of coordinates: 1e-12 of the box's area,
    or for a box far from 0 the shift of a line by one rounding of its offset (eps |center|)."""
    from _exact import area, exact_regions

    from splinescope import spatial

    p = spatial.partition(model, bounds=bounds, plane=plane)
    ref = exact_regions(model, bounds, plane)
    assert len(p) == len(ref)
    ref_area = {tuple(bits): float(area(poly)) for poly, bits, _ in ref}
    assert {tuple(row) for row in p.pattern_bits().astype(int)} == set(ref_area)
    width = max(bounds[1] - bounds[0], bounds[3] - bounds[2])
    far = max(abs(bounds[0] + bounds[1]), abs(bounds[2] + bounds[3])) / 2
    tol = max(1e-12 * width ** 2, 64 * np.finfo(float).eps * far * width)
    for bits, a in zip(p.pattern_bits().astype(int), p.areas()):
        assert a == pytest.approx(ref_area[tuple(bits)], rel=rel, abs=tol)
    p.verify()
    return p, ref
