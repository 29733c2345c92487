"""spatial.agreement: exact decision-region agreement against an independent rational overlay and sampling."""
from fractions import Fraction as Fr

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splinescope import spatial
from splinescope.spatial.agreement import agreement

from _exact import area, clip, exact_regions
from _exact_graph import exact_graph_regions
from common import L, integer_net, mlp

BOX = (-1.0, 1.0, -1.0, 1.0)


def graph_regions(model, bounds, plane=None):
    """``exact_regions``' [(polygon, _, output maps (c, a, b) of c + a s + b t)] from the module-graph
    reference (CNNs too), whose maps are (a, b, c)."""
    return [(r["polygon"], None, [(c, a, b) for a, b, c in r["output"].reshape(-1, 3)])
            for r in exact_graph_regions(model, bounds, plane=plane)]


def reference(ma, mb, bounds=BOX, plane=None, regions=exact_regions):
    """Overlay the two models' exact regions pair by pair (Fractions), then clip by the classes.

    A class is the argmax, the first on ties (as ``torch.argmax``, and so the grid): class ``c``
    holds where ``f_c >= f_j`` for ``j > c`` and ``f_c > f_j`` for ``j < c``; the strict half-plane
    has the closed one's area unless ``f_c - f_j`` is 0 on the whole piece, where it is empty."""
    ra, rb = regions(ma, bounds, plane), regions(mb, bounds, plane)

    def classes(maps):
        return [(Fr(0), Fr(0), Fr(0)), maps[0]] if len(maps) == 1 else maps

    total = Fr(0)
    for pa, _, maps_a in ra:
        for pb, _, maps_b in rb:
            piece = pa
            n = len(pb)
            for i in range(n):  # inside pb: left of each counter-clockwise edge
                (x0, y0), (x1, y1) = pb[i], pb[(i + 1) % n]
                piece = clip(piece, x0 * y1 - x1 * y0, y0 - y1, x1 - x0) if len(piece) >= 3 else piece
            if len(piece) < 3 or area(piece) <= 0:
                continue
            A, B = classes(maps_a), classes(maps_b)
            for c in range(len(A)):
                cell = piece
                for M in (A, B):
                    for j in range(len(M)):
                        g = (M[c][0] - M[j][0], M[c][1] - M[j][1], M[c][2] - M[j][2])
                        if j < c and g == (0, 0, 0):  # tied with an earlier class all over the piece
                            cell = []
                        if j != c and len(cell) >= 3:
                            cell = clip(cell, *g)
                if len(cell) >= 3:
                    total += area(cell)
    x0, x1, y0, y1 = (Fr(float(v)) for v in bounds)
    return float(total / ((x1 - x0) * (y1 - y0)))


def net(widths, seed, slope=0.01):
    torch.manual_seed(seed)
    mods = []
    for a, b in zip(widths[:-1], widths[1:]):
        mods += [L.Linear(a, b), L.LeakyReLU(slope) if slope else L.ReLU()]
    return L.Sequential(*mods[:-1]).double()


@pytest.mark.parametrize("wa,wb,seed", [([2, 6, 3], [2, 5, 3], 3), ([2, 5, 4, 3], [2, 6, 3], 3),
                                        ([2, 4, 1], [2, 3, 5, 1], 1), ([2, 3, 3, 4, 3], [2, 5, 3], 1)])
def test_exact_against_rational_overlay(wa, wb, seed):
    a, b = net(wa, seed), net(wb, seed + 10)
    want = reference(a, b)
    assert agreement(a, b, BOX) == pytest.approx(want, abs=1e-12)
    assert agreement(b, a, BOX) == pytest.approx(want, abs=1e-12)
    assert 0.0 < want < 1.0


def test_integer_weights_and_relu():
    # integer weights: classes tied all over some regions, which the boundaries of the other
    # classifier cross; a tie is the first class's, as for the grid (before, both tied classes
    # were counted there: 0.3061, while the grid closes in on 0.2957)
    a, b = integer_net([2, 4, 3], seed=3), integer_net([2, 3, 4, 3], seed=4)
    bounds = (-2, 2, -2, 2)
    exact = agreement(a, b, bounds)
    assert exact == pytest.approx(reference(a, b, bounds), abs=1e-12)
    assert exact == pytest.approx(0.2956686889, abs=1e-9)
    assert abs(agreement(a, b, bounds, method="grid", grid=1000) - exact) < 2e-4


@pytest.mark.parametrize("seed,k,want", [(237, 1, 1.0), (5106, 4, 0.005952380952380952)])
def test_a_class_tied_all_over_a_piece_is_the_first(seed, k, want):
    # found by the test below: b's one logit is exactly 0 over 38% of the box (class 0 there, as
    # both agree on), but a piece's mean of its float values, 1e-16, read as class 1: 0.8398
    a = integer_net([2, 3, 3, k], seed=seed, act="relu")
    b = integer_net([2, 4, k], seed=seed + 1, act="relu")
    bounds = (-2, 2, -2, 2)
    assert reference(a, b, bounds) == pytest.approx(want, abs=1e-15)
    assert agreement(a, b, bounds) == pytest.approx(want, abs=1e-12)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), k=st.sampled_from([1, 2, 3, 4]), act=st.sampled_from(["relu", "leaky"]))
def test_integer_weight_pairs_match_rational_overlay(seed, k, act):
    # small integer weights: classes tied over whole regions, lines through vertices, coincident
    # lines of the two models; ties go to the first class in both the method and the reference
    a = integer_net([2, 3, 3, k], seed=seed, act=act)
    b = integer_net([2, 4, k], seed=seed + 1, act=act)
    bounds = (-2, 2, -2, 2)
    assert agreement(a, b, bounds) == pytest.approx(reference(a, b, bounds), abs=1e-12)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), k=st.sampled_from([1, 2, 3]), budget=st.sampled_from([4_000, 8_000]))
def test_integer_weight_pairs_in_tiles_match_rational_overlay(seed, k, budget):
    # tiles cut at 0 and +-1, where integer nets' lines and ties run: pieces on both sides add up
    a = integer_net([2, 3, 3, k], seed=seed, act="relu")
    b = integer_net([2, 4, k], seed=seed + 1, act="relu")
    bounds = (-2, 2, -2, 2)
    assert agreement(a, b, bounds, max_memory=budget) == pytest.approx(reference(a, b, bounds), abs=1e-12)


def test_many_classes():
    # 100 classes: faces split only by the pairs of their own candidates (the sampled estimate
    # closes in on the exact fraction)
    a = mlp([2, 32, 32, 100], act="relu", seed=2)
    b = mlp([2, 32, 32, 100], act="relu", seed=2)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3), dtype=p.dtype))
    exact = agreement(a, b, (-3, 3, -3, 3))
    assert 0.2 < exact < 0.9
    assert abs(agreement(a, b, (-3, 3, -3, 3), method="grid", grid=600) - exact) < 3e-3


def test_different_activations_and_depths():
    # a leaky-ReLU net against a ReLU one of another depth (the dense joint network refused this)
    a, b = net([2, 5, 4, 3], 2, slope=0.1), net([2, 6, 3], 5, slope=0.0)
    assert agreement(a, b, BOX) == pytest.approx(reference(a, b), abs=1e-12)


class Cnn(torch.nn.Module):
    """A small CNN classifier: conv -> ReLU -> max-pooling (or a residual conv) -> linear."""

    def __init__(self, seed, residual=False):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = L.Conv2d(1, 2, 3, padding=1)
        self.conv2 = L.Conv2d(2, 2, 3, padding=1) if residual else None
        self.fc = L.Linear(8 if not residual else 32, 3)
        self.double().eval()

    def forward(self, x):
        h = torch.relu(self.conv(x))
        h = torch.relu(h + self.conv2(h)) if self.conv2 is not None else torch.nn.functional.max_pool2d(h, 2)
        return self.fc(h.flatten(1))


def test_cnn_classifiers_against_rational_overlay():
    # max-pooling and a skip connection: the joint network is read as one module graph
    imgs = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plane = spatial.Plane.through(*imgs)
    bounds = (-0.5, 1.5, -0.5, 1.5)
    a, b = Cnn(1), Cnn(2, residual=True)
    exact = agreement(a, b, bounds, plane=plane)
    assert exact == pytest.approx(reference(a, b, bounds, plane, regions=graph_regions), abs=1e-12)
    assert 0.05 < exact < 0.95
    assert abs(agreement(a, b, bounds, plane=plane, method="grid", grid=400) - exact) < 3e-3


@pytest.mark.parametrize("case", ["mlp", "cnn"])
def test_tiles_add_up_to_the_whole_box(case, monkeypatch):
    # with max_memory the joint partition is split tile by tile (partition's grid) and the agreeing
    # areas are summed: the same fraction as the rational overlay of the whole box
    import sys
    module = sys.modules["splinescope.spatial.agreement"]
    if case == "cnn":
        imgs = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        plane, bounds = spatial.Plane.through(*imgs), (-0.5, 1.5, -0.5, 1.5)
        a, b, regions, budget = Cnn(1), Cnn(2, residual=True), graph_regions, 60_000  # 81 tiles
    else:
        plane, bounds = None, BOX
        a, b, regions, budget = net([2, 6, 3], 3), net([2, 5, 4, 3], 13), exact_regions, 10_000  # 36 tiles
    tiles = []
    whole_box = module._agreeing_area
    monkeypatch.setattr(module, "_agreeing_area", lambda *args: tiles.append(args[1]) or whole_box(*args))
    tiled = agreement(a, b, bounds, plane=plane, max_memory=budget)
    assert len(tiles) >= 4  # the budget cut the box
    assert sum((x1 - x0) * (y1 - y0) for x0, x1, y0, y1 in tiles) == pytest.approx(
        (bounds[1] - bounds[0]) * (bounds[3] - bounds[2]), rel=1e-15)
    assert tiled == pytest.approx(reference(a, b, bounds, plane, regions=regions), abs=1e-12)
    assert tiled == pytest.approx(agreement(a, b, bounds, plane=plane), abs=1e-13)


def test_plane_slice_and_sampling_converges():
    torch.manual_seed(0)
    a, b = net([5, 6, 3], 5), net([5, 6, 6, 3], 6)
    g = torch.Generator().manual_seed(1)
    plane = spatial.Plane.through(*(torch.randn(5, generator=g, dtype=torch.float64) for _ in range(3)))
    bounds = (-0.5, 1.5, -0.5, 1.5)
    exact = agreement(a, b, bounds, plane=plane)
    assert exact == pytest.approx(reference(a, b, bounds, plane), abs=1e-12)
    errs = [abs(agreement(a, b, bounds, plane=plane, method="grid", grid=n) - exact) for n in (50, 400)]
    assert errs[1] < 2e-3 and errs[1] < errs[0] + 1e-12  # the sampled estimate closes in on it


def test_torchscript():
    # torch.fx does not trace into TorchScript: its chain of dense layers, as read, is rebuilt
    a, b = net([2, 6, 5, 3], 3), net([2, 5, 3], 13, slope=0.0)
    prelu = L.Sequential(L.Linear(2, 4), L.PReLU(1, init=0.25), L.Linear(4, 3)).double()
    for m in (a, prelu):
        sm = torch.jit.script(m)
        assert agreement(sm, b, BOX) == pytest.approx(agreement(m, b, BOX), abs=1e-15)
        assert agreement(b, sm, BOX) == pytest.approx(reference(b, m), abs=1e-12)


def test_wrapped_models():
    # DataParallel / torch.compile: the module they run, as partition reads them
    a, b = net([2, 6, 3], 3), net([2, 5, 3], 13)
    want = agreement(a, b, BOX)
    assert agreement(torch.nn.DataParallel(a), b, BOX) == pytest.approx(want, abs=1e-15)
    assert agreement(b, torch.compile(a), BOX) == pytest.approx(agreement(b, a, BOX), abs=1e-15)


def test_exported_program():
    a, b = net([2, 6, 3], 3), net([2, 5, 3], 13)
    ea = torch.export.export(a, (torch.zeros(4, 2, dtype=torch.float64),),
                             dynamic_shapes={"input": {0: torch.export.Dim("batch")}})
    assert agreement(ea, b, BOX) == pytest.approx(agreement(a, b, BOX), abs=1e-15)
    assert agreement(ea, b, BOX, method="grid", grid=50) == agreement(a, b, BOX, method="grid", grid=50)


def test_identity_and_complement():
    a = net([2, 8, 1], 7)
    assert agreement(a, a, BOX) == pytest.approx(1.0, abs=1e-14)
    flipped = net([2, 8, 1], 7)
    with torch.no_grad():
        flipped[-1].weight.neg_()
        flipped[-1].bias.neg_()
    assert agreement(a, flipped, BOX) == pytest.approx(0.0, abs=1e-14)


def test_errors():
    a, b = net([2, 4, 3], 0), net([2, 4, 2], 0)
    with pytest.raises(ValueError, match="over the same classes"):
        agreement(a, b, BOX)
    with pytest.raises(ValueError, match="must share an input"):
        agreement(a, net([3, 4, 3], 0), BOX, plane=spatial.Plane(np.zeros(3), np.eye(3)[0], np.eye(3)[1]))
    with pytest.raises(ValueError, match="'fast' is not a valid method, must be one of 'exact', 'grid'"):
        agreement(a, a, BOX, method="fast")
    with pytest.raises(ValueError, match="grid must be a positive int"):
        agreement(a, a, BOX, method="grid", grid=0)
    with pytest.raises(ValueError, match="pass plane="):
        agreement(net([3, 4, 3], 0), net([3, 4, 3], 1), BOX)
    with pytest.raises(ValueError, match="max_memory bounds the exact method's joint partition"):
        agreement(a, a, BOX, method="grid", max_memory=2 ** 20)
    with pytest.raises(TypeError, match="max_memory must be a positive int, got 1.5"):
        agreement(a, a, BOX, max_memory=1.5)
    with pytest.raises(ValueError, match=r"max_memory=100 bytes is too small for this partition: the smallest "
                                         r"that works is about [\d,]+ bytes \(tiles down to 1/64 of the box's sides\)"):
        agreement(a, net([2, 5, 3], 1), BOX, max_memory=100)
