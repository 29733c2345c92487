"""Self-tests of the exact graph reference (tests/_exact_graph.py): hand-derived counts and areas,
conv == hand-scattered dense layers, merging of max-pool pieces, and agreement with float64
sampling and with the model's own float64 forward pass on every region."""
import types
from fractions import Fraction as Fr

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from _exact_graph import exact_graph_regions, sampled_patterns

torch.set_num_threads(1)
D = torch.float64


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=D)


def _linear(W, b):
    W = np.asarray(W, dtype=np.float64)
    m = nn.Linear(W.shape[1], W.shape[0]).double()
    with torch.no_grad():
        m.weight.copy_(_t(W))
        m.bias.copy_(_t(b))
    return m


def _plane(origin, basis, shape):
    return types.SimpleNamespace(origin=np.asarray(origin, np.float64).ravel(),
                                 basis=np.asarray(basis, np.float64).reshape(2, -1), shape=tuple(shape))


def _dyadic(rng, shape, lo=-4, hi=4, den=4):
    return rng.integers(lo, hi + 1, size=shape).astype(np.float64) / den


def _set_dyadic(model, rng):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(_t(_dyadic(rng, tuple(p.shape))))
    return model


def _box_area(bounds):
    x0, x1, y0, y1 = (Fr(b) for b in bounds)
    return (x1 - x0) * (y1 - y0)


def _centroid(poly):
    n = len(poly)
    return sum(p[0] for p in poly) / n, sum(p[1] for p in poly) / n


def _check(model, bounds, plane=None, in_shape=None, activations=None, n=60):
    """Exact regions: area sums to the box, every sampled pattern is an exact one, and the exact
    output map matches the model's float64 forward at each region's centroid. Returns regions."""
    regions = exact_graph_regions(model, bounds, plane=plane, in_shape=in_shape, activations=activations)
    assert sum(r["area"] for r in regions) == _box_area(bounds)
    assert all(r["area"] > 0 for r in regions)
    sampled = sampled_patterns(model, bounds, plane=plane, n=n, in_shape=in_shape,
                               activations=activations, return_patterns=True)
    pats = {r["pattern"] for r in regions}
    assert sampled <= pats
    for r in regions:
        s, t = (float(c) for c in _centroid(r["polygon"]))
        if plane is None:
            x = _t([s, t]).reshape((1,) + tuple(in_shape or (2,)))
        else:
            x = _t(plane.origin + s * plane.basis[0] + t * plane.basis[1]).reshape((1,) + plane.shape)
        with torch.no_grad():
            y = model(x)[0].numpy()
        out = r["output"]
        exact = np.vectorize(float)(out[..., 0]) * s + np.vectorize(float)(out[..., 1]) * t \
            + np.vectorize(float)(out[..., 2])
        np.testing.assert_allclose(exact, y, rtol=1e-9, atol=1e-9)
    return regions


# ----------------------------------------------------------------------------- hand-derived


def test_mlp_two_crossing_lines():
    # z1 = s + t, z2 = s - t: the two diagonals of [-1, 1]^2 cross at the origin -> 4 triangles
    # of area 1 each, one per ReLU pattern.
    m = nn.Sequential(_linear([[1, 1], [1, -1]], [0, 0]), nn.ReLU(), _linear([[1, 2]], [0]))
    regions = _check(m, (-1, 1, -1, 1))
    assert [r["pattern"] for r in regions] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [r["area"] for r in regions] == [1, 1, 1, 1]
    assert all(len(r["polygon"]) == 3 for r in regions)


def test_mlp_parallel_lines_and_constant_unit():
    # z1 = s, z2 = s - 1/2: the strips s < 0, 0 < s < 1/2, s > 1/2 of [-1, 1]^2 (areas 2, 1, 1);
    # z3 = 0*s + 0*t + 1 is constant and active everywhere: it never splits.
    m = nn.Sequential(_linear([[1, 0], [1, 0], [0, 0]], [0, -0.5, 1]), nn.ReLU(), _linear([[1, 1, 1]], [0]))
    regions = _check(m, (-1, 1, -1, 1))
    assert {r["pattern"]: r["area"] for r in regions} == {(0, 0, 1): 2, (1, 0, 1): 1, (1, 1, 1): 1}
    assert sampled_patterns(m, (-1, 1, -1, 1), n=50) == 3


@pytest.mark.parametrize("act, expect", [
    (lambda z: torch.abs(z), {(0,): 2, (1,): 2}),                                    # kink at s = 0
    (nn.Hardtanh(-0.5, 0.5), {(0,): 1, (1,): 2, (2,): 1}),                           # s = -1/2, 1/2
    (nn.ReLU6(), {(0,): 2, (1,): Fr(3, 2), (2,): Fr(1, 2)}),                          # 8s = 0, 6
    (lambda z: torch.clamp(z, min=-0.25, max=0.75), {(0,): Fr(3, 2), (1,): 2, (2,): Fr(1, 2)}),
    (lambda z: z.clamp(min=0), {(0,): 2, (1,): 2}),
    (nn.LeakyReLU(0.125), {(0,): 2, (1,): 2}),
])
def test_one_unit_activations(act, expect):
    """One unit z = s (z = 8s for ReLU6) on [-1, 1]^2: the areas are the strip widths times 2."""
    scale = 8 if isinstance(act, nn.ReLU6) else 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = _linear([[scale, 0]], [0])

        def forward(self, x):
            return act(self.lin(x)) if not isinstance(act, nn.Module) else self.act(self.lin(x))

    net = Net()
    if isinstance(act, nn.Module):
        net.act = act
    regions = _check(net, (-1, 1, -1, 1))
    assert {r["pattern"]: r["area"] for r in regions} == expect


def test_functional_relu_spellings_and_custom_activation():
    class MyAct(nn.Module):  # 1/4 z left of 0, z on [0, 1], 1 + (z - 1)/2 right of 1
        def forward(self, z):
            return torch.where(z < 0, 0.25 * z, torch.where(z < 1, z, 1 + 0.5 * (z - 1)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = _linear([[1, 0], [0, 1], [1, 1], [1, -1], [2, 0]], [0, 0, 0, 0, 0])
            self.act = MyAct()

        def forward(self, x):
            z = self.lin(x)
            a = torch.cat([F.relu(z[:, 0:1]), torch.relu(z[:, 1:2]), z[:, 2:3].relu(),
                           z[:, 3:4].clamp(min=0), self.act(z[:, 4:5])], dim=1)
            return a * 2 - 1

    acts = {MyAct: ((0, 1), (0.25, 1, 0.5))}
    regions = _check(Net(), (-1, 1, -1, 1), activations=acts)
    # lines s = 0, t = 0, s + t = 0, s - t = 0 (all through the origin: 8 sectors) and 2s = 1
    # (s = 1/2: the points (1/2, t), |t| <= 1, have angles within +-63 degrees, so it cuts the four
    # sectors between -90 and 90 degrees: +4 pieces) -> 12
    assert len(regions) == 12
    p = {r["pattern"] for r in regions}
    assert (1, 1, 1, 1, 2) in p and (1, 0, 1, 1, 2) in p and (0, 0, 0, 0, 0) in p


# ----------------------------------------------------------------------------- max pooling


def _quadrant_maxnet(pool):
    # z_i = 2 a_i . x - |a_i|^2 for a_i = (+-1/2, +-1/2): the max is the lifted paraboloid's
    # envelope, its argmax cells the Voronoi cells of the a_i = the 4 quadrants (area 1 each in
    # [-1, 1]^2). Cutting by all 6 lines z_i = z_j (s = 0, t = 0, and both diagonals) would give 8
    # pieces: merging by pattern must leave 4.
    a = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
    lin = _linear(2 * a, -(a ** 2).sum(1))
    if pool == "2d":
        return nn.Sequential(lin, nn.Unflatten(1, (1, 2, 2)), nn.MaxPool2d(2), nn.Flatten())
    if pool == "1d":
        return nn.Sequential(lin, nn.Unflatten(1, (1, 4)), nn.MaxPool1d(4), nn.Flatten())

    class Amax(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(x).amax(1, keepdim=True)
    return Amax()


@pytest.mark.parametrize("pool", ["2d", "1d", "amax"])
def test_max_of_four_is_four_quadrants(pool):
    regions = _check(_quadrant_maxnet(pool), (-1, 1, -1, 1))
    assert sorted(r["pattern"] for r in regions) == [(0,), (1,), (2,), (3,)]
    assert all(r["area"] == 1 for r in regions)
    by = {r["pattern"]: r["polygon"] for r in regions}
    assert sorted(by[(0,)]) == [(0, 0), (0, 1), (1, 0), (1, 1)]  # a_0 = (1/2, 1/2): the first quadrant


def test_max_identical_candidates_and_minimum():
    # max(z, z) never splits and picks position 0; minimum(s, -s) = -|s| picks 1 where s > 0.
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = _linear([[1, 0], [1, 0]], [0, 0])

        def forward(self, x):
            z = self.lin(x)
            return torch.cat([torch.maximum(z[:, :1], z[:, 1:]), torch.minimum(z[:, :1], -z[:, 1:])], 1)

    regions = _check(Net(), (-1, 1, -1, 1))
    assert {r["pattern"]: r["area"] for r in regions} == {(0, 0): 2, (0, 1): 2}


# ----------------------------------------------------------------------------- conv == dense


def _dense_conv2d(K, b, in_hw, stride, padding):
    """The dense (out, in) matrix of a Conv2d, by scattering the kernel by hand."""
    cout, cin, kh, kw = K.shape
    H, W = in_hw
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    M = np.zeros((cout * Ho * Wo, cin * H * W))
    for o in range(cout):
        for i in range(Ho):
            for j in range(Wo):
                for c in range(cin):
                    for p in range(kh):
                        for q in range(kw):
                            y, x = i * stride - padding + p, j * stride - padding + q
                            if 0 <= y < H and 0 <= x < W:
                                M[(o * Ho + i) * Wo + j, (c * H + y) * W + x] += K[o, c, p, q]
    return M, np.repeat(b, Ho * Wo), (cout, Ho, Wo)


@pytest.mark.parametrize("seed, stride, padding", [(0, 1, 0), (1, 2, 1), (2, 1, 1)])
def test_conv_equals_dense(seed, stride, padding):
    rng = np.random.default_rng(seed)
    K, b = _dyadic(rng, (2, 1, 2, 2)), _dyadic(rng, (2,))
    conv = nn.Conv2d(1, 2, 2, stride=stride, padding=padding).double()
    with torch.no_grad():
        conv.weight.copy_(_t(K))
        conv.bias.copy_(_t(b))
    M, bd, oshape = _dense_conv2d(K, b, (3, 3), stride, padding)
    n_hidden = M.shape[0]
    head = _set_dyadic(nn.Linear(n_hidden, 1).double(), rng)
    conv_net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), head)
    dense_net = nn.Sequential(_linear(M, bd), nn.ReLU(), head)
    plane = _plane(_dyadic(rng, 9), _dyadic(rng, (2, 9)), (1, 3, 3))
    bounds = (-2, 2, -2, 2)
    rc = _check(conv_net, bounds, plane)
    rd = _check(dense_net, bounds, _plane(plane.origin, plane.basis, (9,)))
    assert len(rc) == len(rd) > 1
    assert sorted(r["area"] for r in rc) == sorted(r["area"] for r in rd)
    assert [r["pattern"] for r in rc] == [r["pattern"] for r in rd]  # C, H, W order = dense order
    assert [r["polygon"] for r in rc] == [r["polygon"] for r in rd]


# ----------------------------------------------------------------------------- residual, sampling


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = _linear([[1, 0], [0, 1], [1, 1]], [0.25, -0.25, -0.5])
        self.v = _linear([[1, -1], [1, 2]], [0.125, -0.5])

    def forward(self, x):
        y = x + F.relu(self.w(x)[:, :2]) + 0.5 * torch.relu(self.w(x)[:, 2:])
        return self.v(y).relu()


def test_residual_against_sampling():
    bounds = (-1, 1, -1, 1)
    regions = _check(_Residual(), bounds, n=80)
    assert len(regions) >= sampled_patterns(_Residual(), bounds, n=50)
    assert len(regions) == sampled_patterns(_Residual(), bounds, n=400)  # every region is big enough


def _conv_pool_net(rng):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8, 2)).double()
    return _set_dyadic(net, rng)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_conv_pool_nets(seed):
    rng = np.random.default_rng(100 + seed)
    net = _conv_pool_net(rng)
    imgs = _dyadic(rng, (3, 16))
    plane = _plane(imgs[0], [imgs[1] - imgs[0], imgs[2] - imgs[0]], (1, 4, 4))
    regions = _check(net, (0, 1, 0, 1), plane, n=100)
    assert len(regions) >= sampled_patterns(net, (0, 1, 0, 1), plane, n=100)
    assert len(regions[0]["pattern"]) == 32 + 8


# ----------------------------------------------------------------------------- op coverage


class _Kitchen(nn.Module):
    """Many supported ops at once; checked against the model's own float64 forward."""

    def __init__(self, rng):
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, padding=1, stride=1)
        self.bn = nn.BatchNorm2d(2)
        self.pr = nn.PReLU(2)
        self.ct = nn.ConvTranspose2d(2, 2, 2, stride=2, padding=1, output_padding=1)
        self.avg = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)
        self.c2 = nn.Conv2d(2, 2, 3, padding=2, dilation=2, groups=2)
        self.amp = nn.AdaptiveMaxPool2d((2, 1))
        self.aap = nn.AdaptiveAvgPool2d(3)
        self.c1d = nn.Conv1d(2, 1, 2)
        self.head = nn.Linear(5, 2)
        self.double()
        _set_dyadic(self, rng)
        with torch.no_grad():
            self.bn.running_mean.copy_(_t([0.25, -0.5]))
            self.bn.running_var.copy_(_t([1.5, 0.75]))
        self.eval()

    def forward(self, x):
        h = self.pr(self.bn(self.c1(x)))
        r = h + self.c2(h)                        # residual, dilated grouped conv
        u = self.ct(r)                            # 4x4 -> 7x7... cropped by padding
        a = self.avg(u)
        m = F.max_pool2d(a, 2, stride=1)
        g = self.amp(m).flatten(1)                # (2*2*1)
        q = self.aap(r).mean((2, 3)) / 2          # (2,)
        w = self.c1d(self.aap(r).view(x.size(0), 2, -1)).abs().mean(2)  # (1,)
        return self.head(torch.cat([g[:, :2], q, w], dim=1) - 0.125)


def test_kitchen_sink_ops():
    rng = np.random.default_rng(7)
    net = _Kitchen(rng)
    imgs = _dyadic(rng, (3, 16))
    plane = _plane(imgs[0], [imgs[1] - imgs[0], imgs[2] - imgs[0]], (1, 4, 4))
    regions = _check(net, (0, 1, 0, 1), plane, n=40)
    assert len(regions) > 1


class _Kitchen2(nn.Module):
    """More ops: get_attr parameters with ``@``, Conv1d, LeakyReLU, PReLU(1), clamp_max,
    AvgPool2d counting the padding, uneven AdaptiveAvgPool2d, F.leaky_relu, AdaptiveMaxPool1d."""

    def __init__(self, rng):
        super().__init__()
        self.W = nn.Parameter(_t(_dyadic(rng, (2, 6))))
        self.b = nn.Parameter(_t(_dyadic(rng, (6,))))
        self.c1d = nn.Conv1d(1, 2, 3, padding=1).double()
        self.lrelu = nn.LeakyReLU(0.25)
        self.pr = nn.PReLU().double()
        self.avg = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=True)
        self.aap = nn.AdaptiveAvgPool2d((2, 3))
        self.amp = nn.AdaptiveMaxPool1d(2)
        self.head = nn.Linear(2 * 2 + 12, 1).double()
        _set_dyadic(self, rng)
        with torch.no_grad():
            self.pr.weight.fill_(0.5)
        self.eval()

    def forward(self, x):
        h = x @ self.W + self.b                                   # (6,)
        c = self.lrelu(self.c1d(h.unsqueeze(1)))                  # (2, 6)
        p = self.amp(F.leaky_relu(c, 0.125))                      # (2, 2)
        im = self.pr(c.reshape(-1, 2, 2, 3)).clamp_max(1.5)       # (2, 2, 3)
        a = self.aap(self.avg(im))                                # (2, 2, 3)
        return self.head(torch.cat([p.flatten(1), a.flatten(1)], 1))


def test_kitchen_sink_ops_2():
    rng = np.random.default_rng(11)
    regions = _check(_Kitchen2(rng), (-1, 1, -1, 1), n=40)
    assert len(regions) > 1
