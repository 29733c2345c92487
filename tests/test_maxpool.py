"""Max-pooling regions (spatial/_maxpool.py): the engine's merged cells against the independent
exact reference (tests/_exact_graph.py), verify(), the output maps, locate() and the bits."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from common import assert_graph_matches_exact, assert_maps_equal_model, dyadic_images, dyadic_model
from splinescope import spatial
from splinescope.spatial import _maxpool
from splinescope.spatial._net import parse

torch.set_num_threads(1)
D = torch.float64


class Amax(nn.Module):
    """A subclass with a max over a dimension: max of 3 affine pieces per window."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 6)
        self.fc2 = nn.Linear(2, 2)

    def forward(self, x):
        h = self.fc1(x).view(-1, 2, 3)
        return self.fc2(torch.relu(h.amax(dim=2)))


def _conv_pool():
    return nn.Sequential(nn.Conv2d(1, 2, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8, 1))


def _conv_adaptive():
    return nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(2, 3))


CASES = {  # name: (model, seed, plane input shape or None, bounds)
    "maxpool2d": (_conv_pool, 1, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "adaptive": (_conv_adaptive, 2, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "amax": (Amax, 3, None, (-2.0, 2.0, -2.0, 2.0)),
}


def _case(name):
    make, seed, shape, bounds = CASES[name]
    model = dyadic_model(make(), seed)
    plane = None if shape is None else spatial.Plane.through(*dyadic_images(seed, shape))
    return model, plane, bounds


@pytest.mark.parametrize("name", sorted(CASES))
def test_regions_equal_exact_reference(name):
    model, plane, bounds = _case(name)
    p, ref = assert_graph_matches_exact(model, bounds, plane=plane)
    assert p.network.max_info  # the max is read as a tournament, not refused


@pytest.mark.parametrize("name", sorted(CASES))
def test_affine_maps_equal_model_at_centroids(name):
    model, plane, bounds = _case(name)
    assert_maps_equal_model(model, bounds, plane=plane)


def test_merge_is_needed():
    # without the merge, cells split by comparisons between two losers would be extra regions:
    # the cells of the raw tournament outnumber the regions
    model, plane, bounds = _case("maxpool2d")
    p = spatial.partition(model, bounds, plane=plane)
    rng = np.random.default_rng(0)
    st = rng.uniform([bounds[0], bounds[2]], [bounds[1], bounds[3]], size=(4000, 2))
    net = p.network
    zs = [z[:, :l.units] > 0 for z, l in zip(net.forward(st)[:-1], net.layers)]
    raw = np.concatenate(zs, 1)
    canon = _maxpool.canonical(raw, net, p.layer_sizes)
    assert len(np.unique(raw, axis=0)) > len(np.unique(canon, axis=0))
    assert len(np.unique(canon, axis=0)) <= len(p)  # sampling is a lower bound


def test_argmax_of_a_hand_tournament():
    # amax over 3 candidates of pieces (s, t, -s): argmax read back from the bits agrees with numpy
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 3, bias=False).double()
            with torch.no_grad():
                self.fc.weight.copy_(torch.tensor([[1, 0], [0, 1], [-1, 0]], dtype=D))

        def forward(self, x):
            return self.fc(x).amax(dim=1, keepdim=True)

    net = parse(M(), in_shape=(2,))
    pts = np.random.default_rng(1).normal(size=(500, 2))
    zs = [z[:, :l.units] > 0 for z, l in zip(net.forward(pts)[:-1], net.layers)]
    bits = np.concatenate(zs, 1)
    sizes = [l.units for l in net.hidden]
    (A,) = _maxpool.argmax(bits, net, sizes)
    cand = np.stack([pts[:, 0], pts[:, 1], -pts[:, 0]], 1)
    np.testing.assert_array_equal(A[:, 0], cand.argmax(1))
    assert _maxpool.relevant(bits, net, sizes).any(1).all()


def test_certify_refuses_max_pooling():
    model, plane, bounds = _case("maxpool2d")
    p = spatial.partition(model, bounds, plane=plane)
    with pytest.raises(ValueError, match=r"certify\(\) does not support max-pooling yet .* use verify\(\)"):
        p.certify()


def test_exact_polygons_are_rational():
    # the exact form of an operation network stays in Fractions (a float constant once turned a
    # stage's exact values into floats, and verify() judged thin regions in float64)
    from fractions import Fraction

    model, plane, bounds = _case("maxpool2d")
    p = spatial.partition(model, bounds, plane=plane)
    pts = [c for i in range(len(p)) for v in p.exact_polygon(i) for c in v]
    assert pts and all(type(c) is Fraction for c in pts)
