"""spatial._predicates: exact decisions where float64 is in doubt, fuzzed against the rational reference.

Thirteen families of small networks (random, integer and quarter-integer weights, bias-free,
duplicated / scaled / dead neurons, weights x1e6 and x1e-6, boxes 2e-9 wide, boxes at 1e6, plane
slices of 3-10-input nets, float32 models, lines 1e-12..1e-6 apart): the partition has exactly
the regions of exact rational arithmetic (``tests/_exact.py``, which reads the torch modules
itself and shares no code with the engine), with their patterns and areas, and ``verify()`` passes.
"""
from fractions import Fraction

import numpy as np
import pytest
import torch

from splinescope import spatial
from splinescope.spatial._net import parse
from splinescope.spatial._predicates import ExactNet

from _exact import area as exact_area
from common import L, assert_matches_exact

FAMILIES = ("random", "integer", "quarter", "biasfree", "duplicated", "scaled_up", "scaled_down",
            "tiny_box", "far_box", "plane", "float32", "near_lines", "dead")


def make(family: str, seed: int):
    """(model, bounds, plane) of one fuzz case; weights built as float64 tensors."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 4))
    widths = [2] + [int(rng.integers(2, 7)) for _ in range(depth)] + [int(rng.integers(1, 3))]
    bounds = [-1.0, 1.0, -1.0, 1.0]
    plane = None
    if family == "plane":
        widths[0] = int(rng.integers(3, 11))
    params = []
    for a, b in zip(widths[:-1], widths[1:]):
        if family == "integer":
            W, c = rng.integers(-3, 4, (b, a)).astype(float), rng.integers(-3, 4, b).astype(float)
        elif family == "quarter":
            W, c = rng.integers(-8, 9, (b, a)) / 4.0, rng.integers(-8, 9, b) / 4.0
        else:
            W, c = rng.normal(size=(b, a)), rng.normal(size=b) * 0.5
        if family == "biasfree":
            c = np.zeros(b)
        params.append([W, c])
    W0, b0 = params[0]
    if family == "duplicated":  # a copy and a scaled copy of a neuron
        W0[-1], b0[-1] = W0[0], b0[0]
        if len(W0) > 2:
            W0[-2], b0[-2] = 3.0 * W0[0], 3.0 * b0[0]
    if family == "dead":
        W0[0], b0[0] = 0.0, -1.0
        params[-1][0][:, 0] = 0.0
    if family == "near_lines":  # two first-layer lines 1e-12..1e-6 apart
        gap = 10.0 ** rng.uniform(-12, -6)
        W0[1], b0[1] = W0[0] * (1 + rng.uniform(-1, 1) * gap), b0[0] + gap
    if family in ("scaled_up", "scaled_down"):
        f = 1e6 if family == "scaled_up" else 1e-6
        params = [[W * f, c * f ** (i + 1)] for i, (W, c) in enumerate(params)]
    if family == "tiny_box":
        x, y = rng.uniform(-1, 1, 2)
        bounds = [x, x + 2e-9, y, y + 2e-9]
        params[0][1] = params[0][1] - params[0][0] @ np.array([x + 1e-9, y + 1e-9]) * (1 - 1e-9 * rng.uniform())
    if family == "far_box":
        x, y = rng.uniform(-1, 1, 2) * 1e6
        bounds = [x - 1, x + 1, y - 1, y + 1]
        params[0][1] = params[0][1] - params[0][0] @ np.array([x, y])
    slopes = [float(rng.choice([0.0, 0.1, 0.01, 0.25])) for _ in range(depth)]
    dtype = torch.float32 if family == "float32" else torch.float64
    mods = []
    for i, (W, c) in enumerate(params):
        lin = L.Linear(W.shape[1], W.shape[0]).to(dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W, dtype=torch.float64))
            lin.bias.copy_(torch.tensor(c, dtype=torch.float64))
        mods.append(lin)
        if i < depth:
            mods.append(L.LeakyReLU(slopes[i]) if slopes[i] else L.ReLU())
    model = L.Sequential(*mods)
    if family == "plane":
        a, b_, c_ = (torch.tensor(rng.normal(size=widths[0]), dtype=torch.float64) for _ in range(3))
        plane = spatial.Plane.through(a, b_, c_)
        bounds = [-0.5, 1.5, -0.5, 1.5]
    return model, tuple(bounds), plane


def check(model, bounds, plane):
    return assert_matches_exact(model, bounds, plane)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_fuzz_against_rational_reference(family):
    for seed in range(16):
        model, bounds, plane = make(family, seed)
        try:
            check(model, bounds, plane)
        except AssertionError as e:
            raise AssertionError(f"{family} seed {seed}: {e}") from None


def test_subresolution_region_is_kept_flagged_and_exact():
    # slope 0.1 is not 1/10 in binary: exact arithmetic cuts a region of area ~1e-32
    spec = {"layers": [[[[3.0, 1.0], [-2.0, 0.0], [-3.0, -2.0]], [0.0, 2.0, 0.0]],
                       [[[2.0, -1.0, 1.0], [0.0, -1.0, 2.0], [1.0, 0.0, -1.0], [0.0, -3.0, 0.0],
                         [-1.0, 1.0, 2.0], [1.0, 3.0, 1.0], [0.0, 0.0, 3.0], [-2.0, 2.0, 1.0]],
                        [-3.0, -3.0, 1.0, -1.0, -1.0, 1.0, 3.0, -3.0]],
                       [[[-2.0, 3.0, 3.0, 3.0, -3.0, -3.0, 2.0, 2.0], [0.0, 0.0, -2.0, -2.0, 3.0, 2.0, -2.0, -3.0],
                         [1.0, 3.0, 1.0, 3.0, 3.0, 2.0, -2.0, 0.0], [-2.0, 1.0, -2.0, -2.0, -1.0, 3.0, 3.0, 1.0],
                         [-1.0, 1.0, -2.0, -3.0, 3.0, 1.0, -2.0, 3.0], [1.0, -2.0, 1.0, -3.0, 2.0, -1.0, 3.0, -2.0]],
                        [0.0, -3.0, 2.0, 2.0, -2.0, 2.0]],
                       [[[-3.0, -3.0, 2.0, -3.0, 1.0, 3.0]], [-2.0]]]}
    mods = []
    for i, (W, b) in enumerate(spec["layers"]):
        lin = L.Linear(len(W[0]), len(W)).double()
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W, dtype=torch.float64))
            lin.bias.copy_(torch.tensor(b, dtype=torch.float64))
        mods += [lin, L.LeakyReLU(0.1)] if i < 3 else [lin]
    net = L.Sequential(*mods)
    p = check(net, (-2.0, 2.0, -2.0, 2.0), None)
    assert len(p) == 48 and p.subresolution.sum() == 1
    i = int(np.nonzero(p.subresolution)[0][0])
    poly = p.exact_polygon(i)
    assert all(isinstance(c, Fraction) for P in poly for c in P)
    assert 0 < float(exact_area(poly)) < 1e-20 and p.areas()[i] == float(exact_area(poly))
    with pytest.raises(ValueError, match="exact=True"):
        spatial.partition(net, bounds=(-2, 2, -2, 2), exact=False).exact_polygon(0)
    assert len(spatial.partition(net, bounds=(-2, 2, -2, 2), exact=False)) == 47  # merged


def test_exact_net_lines_and_points():
    lin = L.Linear(2, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64))
        lin.bias.copy_(torch.tensor([-0.5, 0.0], dtype=torch.float64))
    net = parse(L.Sequential(lin, L.ReLU(), L.Linear(2, 1).double()))
    ex = ExactNet(net.layers, np.zeros(2), (-1, 1, -1, 1))
    ex.begin_layer(0, 1)
    ids = ex.line_ids(0, 0, np.array([0, 1]))
    assert ex.decode(ids)[1].tolist() == [0, 1] and ex.decode([0, 3])[0].tolist() == [-1, -1]
    assert ex.point(int(ids[0]), int(ids[1])) == (Fraction(1, 2), Fraction(-1, 2))
    assert ex.point(int(ids[0]), 2) == (Fraction(1, 2), Fraction(-1))  # with the side t = -1
    with pytest.raises(ArithmeticError, match="parallel"):
        ex.point(0, 1)


def test_exact_values_from_a_lines_face_map_equal_the_forward_pass():
    # ExactNet.fix takes the value at a vertex made on a line of the layer from the affine map of
    # the face that line was made in (by continuity); the exact forward pass at the exact vertex
    # gives the same floats, for every column, on every such vertex of a 3-layer net
    torch.manual_seed(3)
    model = L.Sequential(L.Linear(2, 12), L.ReLU(), L.Linear(12, 10), L.ReLU(), L.Linear(10, 8), L.ReLU(),
                         L.Linear(8, 1)).double()
    p = spatial.partition(model, (-2, 2, -2, 2))
    ex, lines = p._exact, p.vertex_lines
    checked = 0
    for layer in (1, 2):
        lay = ex.decode(lines.reshape(-1))[0].reshape(-1, 2)
        rows = np.nonzero((lay == layer).any(1))[0][:40]
        width = ex.layers[layer].width
        pairs = np.repeat(lines[rows], width, axis=0)
        k = np.tile(np.arange(width), len(rows))
        got = ex._exact_at(layer, pairs, k).reshape(len(rows), width)
        want = np.array([ex.values(int(a), int(b), layer).floats() for a, b in lines[rows]])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(ex.exact_rows(lines[rows], layer)[1], want)  # (whole rows, as new vertices get)
        checked += len(rows)
    assert checked > 40


def test_exact_forward_passes_and_maps_of_many_vertices_equal_one_at_a_time():
    # _forward_many applies each layer's exact map to all the vertices' rows at once (integer
    # numerators, each row's denominator as its multiplier of the constants); the rationals equal
    # those of one ExactNet.values per vertex, on a graph of a sorting network, a leaky ReLU with a skip and a max pooling
    class Net(L.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = L.Conv2d(1, 4, 2), L.Linear(8, 2)

        def forward(self, x):
            h = self.conv(x).flatten(1).view(-1, 4, 4).sort(-1).values.flatten(1)  # (4 groups of 4)
            h = torch.nn.functional.leaky_relu(h, 0.1) + h  # a slope of denominator 2**k, values carried past it
            return self.fc(torch.nn.functional.max_pool1d(h[:, None], 2).flatten(1))
    torch.manual_seed(4)
    model = Net().double().eval()
    plane = spatial.Plane.through(*np.random.default_rng(4).random((3, 1, 3, 3)))
    p = spatial.partition(model, (0.0, 1.0, 0.0, 1.0), plane=plane)
    layers = len(p.network.layers) - 1
    keys = sorted({(int(min(a, b)), int(max(a, b))) for a, b in p.vertex_lines})
    keys = [k for k in keys if min(k) >= 4][:150]  # (vertices of two network lines)
    many = ExactNet.restore(p._exact.layers, p._center, p.bounds, p._exact.state())
    one = ExactNet.restore(p._exact.layers, p._center, p.bounds, p._exact.state())
    many._forward_many(keys, layers - 1)
    assert len(keys) > 50
    for key in keys:
        for layer in range(layers):
            a, b = many._forward[key][layer], one.values(key[0], key[1], layer)
            np.testing.assert_array_equal(a.fractions(), b.fractions())
    # the faces' maps (_maps_many: each level once for all of them) equal one _map at a time
    maps = {many._line_key(lid) for key in keys for lid in key} - {None}
    many, one = (ExactNet.restore(p._exact.layers, p._center, p.bounds, p._exact.state()) for _ in range(2))
    many._maps_many(sorted(maps))
    assert len([m for m in maps if m[0] > 0]) > 10
    for layer, bits in maps:
        np.testing.assert_array_equal(many._maps[(layer, bits)].fractions(), one._map(layer, bits).fractions())
