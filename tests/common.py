"""Shared network builders and checks for the tests."""
import numpy as np
import pytest
import torch

L = torch.nn

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
"""The devices a torch path is tested on: the CPU, and a GPU where there is one (``device`` parameter)."""


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


# ---- module graphs against the exact graph reference (tests/_exact_graph.py)

def dyadic_model(model, seed, den=4):
    """``model`` in float64, eval mode, with small dyadic parameters (BatchNorm: positive scales,
    dyadic running statistics), so that float64 and exact arithmetic see the same network."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            v = rng.integers(-4, 5, size=tuple(p.shape)) / den
            if "bn" in name and name.endswith("weight"):
                v = np.abs(v) + 0.5
            p.copy_(torch.tensor(v, dtype=torch.float64))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.tensor(rng.integers(-2, 3, size=tuple(b.shape)) / 4, dtype=torch.float64))
            elif name.endswith("running_var"):
                b.copy_(torch.tensor(rng.integers(1, 3, size=tuple(b.shape)) * 1.0, dtype=torch.float64))
    return model.double().eval()


def dyadic_images(seed, shape):
    """Three dyadic inputs of ``shape`` (for ``Plane.through``)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(-4, 5, size=shape).astype(np.float64) / 4 for _ in range(3)]


def assert_graph_matches_exact(model, bounds, plane=None, activations=None):
    """The engine's partition against ``exact_graph_regions``: equal counts and sorted areas, each
    exact region's vertex centroid in its own engine region with the exact output map, verify() ok.
    Returns (partition, exact regions)."""
    from _exact_graph import exact_graph_regions
    from splinescope import spatial

    p = spatial.partition(model, bounds, plane=plane)
    ref = exact_graph_regions(model, bounds, plane=plane, activations=activations)
    assert len(p) == len(ref)
    np.testing.assert_allclose(np.sort(p.areas()), np.sort([float(r["area"]) for r in ref]),
                               rtol=1e-12, atol=1e-15)
    cen = np.array([[float(sum(v[k] for v in r["polygon"]) / len(r["polygon"])) for k in (0, 1)]
                    for r in ref])
    idx = p.locate(cen)
    assert (idx >= 0).all() and len(np.unique(idx)) == len(ref)
    A = p.affine_maps()[idx]
    for a, r in zip(A, ref):
        np.testing.assert_allclose(a, np.vectorize(float)(r["output"]).reshape(a.shape), atol=1e-12)
    assert p.verify().ok
    return p, ref


def assert_maps_equal_model(model, bounds, plane=None):
    """Each region's affine map equals the model's float64 forward pass at the region's centroid."""
    from splinescope import spatial

    p = spatial.partition(model, bounds, plane=plane)
    c = p.centroids()
    x = c if plane is None else plane.lift(c).reshape((-1,) + plane.shape)
    with torch.no_grad():
        y = model(torch.tensor(x, dtype=torch.float64)).reshape(len(c), -1).numpy()
    A = p.affine_maps()
    np.testing.assert_allclose(A[:, :, 0] * c[:, :1] + A[:, :, 1] * c[:, 1:] + A[:, :, 2], y,
                               rtol=1e-10, atol=1e-10)
    return p


def assert_same_on_device(model, bounds, plane=None, device="cpu"):
    """``partition(device=...)`` (each layer's forward pass of the vertices there) gives the
    CPU's regions: count, patterns and areas."""
    from splinescope import spatial

    a = spatial.partition(model, bounds, plane=plane)
    b = spatial.partition(model, bounds, plane=plane, device=device)
    assert len(a) == len(b)
    assert {r.tobytes() for r in a.patterns} == {r.tobytes() for r in b.patterns}
    np.testing.assert_allclose(np.sort(a.areas()), np.sort(b.areas()), rtol=1e-12, atol=1e-15)
