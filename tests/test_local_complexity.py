"""Tests of spatial.local_complexity against the definition, computed slowly and independently."""

import copy

import numpy as np
import pytest
import shapely
import torch

from _dist import run_gloo
from common import DEVICES
from splinescope import spatial
from splinescope.spatial._errors import UnsupportedLayerError
from splinescope.spatial._net import parse
from splinescope.spatial.local_complexity import LocalComplexity, _plan, local_complexity, random_frame

torch.set_num_threads(1)


def mlp(widths, act=torch.nn.ReLU, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) / a ** 0.5)
            lin.bias.copy_(torch.randn(b, generator=g) * 0.3)
        mods.append(lin)
        if i < len(widths) - 2:
            mods.append(act())
    return torch.nn.Sequential(*mods).to(dtype)


def points(n, d, seed=1):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def slow_lc(model, x, frame, radius, center=False):
    """The definition, one point at a time, in float64 numpy through the parsed network."""
    net = parse(model)
    x, F = np.asarray(x, np.float64), np.asarray(frame, np.float64)
    out = []
    for c in x:
        verts = [c + radius * v for v in F] + [c - radius * v for v in F] + ([c] if center else [])
        zs = net.forward(np.array(verts))[:-1]  # pre-activations of the hidden layers
        out.append([int(((z.min(0) < 0) & (z.max(0) > 0)).sum()) for z in zs])
    return np.array(out).reshape(len(x), -1)


class Residual(torch.nn.Module):
    """Not a Sequential: read through hooks. One ReLU module called twice."""

    def __init__(self, d=5, h=7, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.inp = torch.nn.Linear(d, h)
        self.mid = torch.nn.Linear(h, h)
        self.out = torch.nn.Linear(h, 2)
        self.relu = torch.nn.ReLU(inplace=True)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.double()

    def forward(self, x):
        h = self.relu(self.inp(x))
        return self.out(self.relu(h + self.mid(h)))

    def layers(self, x):
        z1 = self.inp(x)
        h = torch.relu(z1)
        return [z1, h + self.mid(h)]


# ---------------------------------------------------------------------------- against the definition

@pytest.mark.parametrize("widths,act,center", [
    ([3, 6, 5, 4, 1], torch.nn.ReLU, False),
    ([3, 6, 5, 4, 1], torch.nn.ReLU, True),
    ([5, 8, 8, 3], lambda: torch.nn.LeakyReLU(0.2), False),
    ([4, 7, 2], torch.nn.PReLU, True),
])
def test_equals_definition_per_layer(widths, act, center):
    model = mlp(widths, act)
    x = points(40, widths[0])
    F = random_frame(2, widths[0], seed=3, dtype=torch.float64)
    for r in (0.05, 0.5, 2.0):
        lc = local_complexity(model, x, r, frame=F, center=center)
        assert lc.dtype == torch.int64 and lc.shape == (40, len(widths) - 2)
        np.testing.assert_array_equal(lc.numpy(), slow_lc(model, x, F, r, center))
        # the hook path (used for arbitrary models) agrees with the Sequential path
        hooked = _plan(model, hooks=True)
        from splinescope.spatial.local_complexity import _lc_update, _prepare_x
        xt, shape = _prepare_x(hooked, x)
        np.testing.assert_array_equal(_lc_update(hooked, xt, shape, F, r, center, None).numpy(), lc.numpy())


def test_hooks_on_a_non_sequential_model():
    model = Residual()
    x = points(30, 5)
    F = random_frame(3, 5, seed=4, dtype=torch.float64)
    r = 0.4
    lc = local_complexity(model, x, r, frame=F)
    expected = []
    for c in x:
        verts = torch.cat([c + r * F, c - r * F])
        zs = model.layers(verts)
        expected.append([int(((z.amin(0) < 0) & (z.amax(0) > 0)).sum()) for z in zs])
    np.testing.assert_array_equal(lc.numpy(), np.array(expected))


def test_conv_net_frame_in_flattened_space():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8, 3)).double()
    x = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    F = random_frame(4, 16, seed=1, dtype=torch.float64)
    lc = local_complexity(model, x, 0.3, frame=F)
    assert lc.shape == (6, 1)
    conv = model[0]
    for i in range(6):
        v = torch.cat([x[i].reshape(1, -1) + 0.3 * F, x[i].reshape(1, -1) - 0.3 * F]).reshape(-1, 1, 4, 4)
        z = conv(v).reshape(8, -1)
        assert lc[i, 0] == int(((z.amin(0) < 0) & (z.amax(0) > 0)).sum())


# ---------------------------------------------------------------------------- exact in 2-D

def test_first_layer_equals_lines_crossing_the_diamond():
    """In 2-D the first-layer count is the number of neuron lines through the open polygon."""
    model = mlp([2, 40, 10, 1], seed=5)
    W = model[0].weight.detach().numpy()
    b = model[0].bias.detach().numpy()
    x = points(60, 2, seed=6)
    F = random_frame(2, 2, seed=7, dtype=torch.float64)
    Fn = F.numpy()
    for r in (0.05, 0.3, 1.0):
        lc = local_complexity(model, x, r, frame=F, layers=[0])[:, 0].numpy()
        for c, got in zip(x.numpy(), lc):
            diamond = shapely.Polygon([c + r * Fn[0], c + r * Fn[1], c - r * Fn[0], c - r * Fn[1]])
            crossing = 0
            for w, beta in zip(W, b):
                # the line w.x + beta = 0 as a long segment through its point nearest c
                p0 = c - (w @ c + beta) / (w @ w) * w
                t = np.array([-w[1], w[0]]) / np.linalg.norm(w) * 10 * (r + np.linalg.norm(p0 - c))
                crossing += shapely.LineString([p0 - t, p0 + t]).crosses(diamond)
            assert got == crossing


def test_against_the_exact_partition_of_the_diamond():
    """First layer: equal to the exact count of neurons crossing the diamond; deeper: at most it."""
    model = mlp([2, 12, 12, 12, 1], seed=8)
    x = points(25, 2, seed=9)
    F = random_frame(2, 2, seed=10, dtype=torch.float64)
    Fn = F.numpy()
    for r in (0.1, 0.5):
        lc = local_complexity(model, x, r, frame=F).numpy()
        for c, got in zip(x.numpy(), lc):
            # the diamond conv(c +- r F_p) is the box [-1, 1]^2 of this plane
            plane = spatial.Plane(c, r * (Fn[0] + Fn[1]) / 2, r * (Fn[0] - Fn[1]) / 2)
            p = spatial.partition(model, bounds=(-1, 1, -1, 1), plane=plane, boundary=False)
            bits = p.pattern_bits()
            varies = (bits.any(0) & ~bits.all(0)).reshape(3, 12).sum(1)  # neurons crossing, per layer
            assert got[0] == varies[0]
            assert (got <= varies).all()


# ---------------------------------------------------------------------------- options

def test_layers_normalize_and_chunking():
    model = mlp([3, 6, 5, 4, 1])
    x = points(25, 3)
    full = local_complexity(model, x, 0.7, directions=3, seed=0)
    np.testing.assert_array_equal(local_complexity(model, x, 0.7, directions=3, seed=0, layers=[2, 0]).numpy(),
                                  full[:, [2, 0]].numpy())
    np.testing.assert_array_equal(local_complexity(model, x, 0.7, directions=3, seed=0, layers=[-1]).numpy(),
                                  full[:, [2]].numpy())
    frac = local_complexity(model, x, 0.7, directions=3, seed=0, normalize=True)
    assert frac.dtype == torch.float64
    torch.testing.assert_close(frac, full.double() / torch.tensor([6.0, 5.0, 4.0], dtype=torch.float64))
    for bs in (1, 4, 100):
        assert torch.equal(local_complexity(model, x, 0.7, directions=3, seed=0, batch_size=bs), full)
    assert torch.equal(local_complexity(model, x, 0.7, directions=3, seed=0, max_memory=1), full)
    assert local_complexity(model, x[:0], 0.7, directions=3, seed=0).shape == (0, 3)


def test_float32_model_runs_in_its_dtype_and_matches():
    model = mlp([10, 16, 16, 2], dtype=torch.float32)
    x = points(50, 10).float()
    F = random_frame(5, 10, seed=1)
    lc = local_complexity(model, x, 0.2, frame=F)
    ref = slow_lc(model, x.double(), F.double(), 0.2)
    assert (lc.numpy() != ref).mean() < 0.01  # float32 rounding may flip a neuron on the edge


def conv_net():
    """Not a plain chain (convolutions): read through hooks, the frame in the flattened image space."""
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(8, 3)).double()


@pytest.mark.parametrize("device", DEVICES)
def test_a_model_on_a_device_counts_there_what_it_counts_on_the_cpu(device):
    """Both paths (a Sequential's layers, hooks) with the model on ``device``: the CPU's counts,
    on that device; inputs and frame given on the CPU are moved there."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(12, 1, 4, 4, generator=g, dtype=torch.float64)
    for model, x in ((mlp([5, 8, 8, 1]), points(40, 5)), (Residual(), points(40, 5)), (conv_net(), images)):
        D = x[0].numel()
        F = random_frame(3, D, seed=1, dtype=torch.float64)
        moved = copy.deepcopy(model).to(device)
        for kw in (dict(frame=F), dict(directions=3, seed=1, normalize=True), dict(frame=F, center=True, layers=[-1])):
            want = local_complexity(model, x, 0.4, **kw)
            got = local_complexity(moved, x, 0.4, **kw)
            assert got.device.type == device and got.dtype == want.dtype
            torch.testing.assert_close(got.cpu(), want, rtol=0, atol=0)
        got = local_complexity(moved, x.to(device), 0.4, frame=F.to(device), batch_size=7)
        torch.testing.assert_close(got.cpu(), local_complexity(model, x, 0.4, frame=F))


def test_random_frame_seeded_and_global_rng_untouched():
    model = mlp([9, 5, 1])  # (nn.Linear's own init draws from the global RNG)
    state = torch.get_rng_state()
    a = random_frame(4, 9, seed=11, dtype=torch.float64)
    b = random_frame(4, 9, seed=11, dtype=torch.float64)
    c = random_frame(4, 9, dtype=torch.float64)
    local_complexity(model, points(3, 9), 0.1, directions=4)
    LocalComplexity(model, 0.1, directions=4).update(points(3, 9))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    torch.testing.assert_close(a @ a.T, torch.eye(4, dtype=torch.float64))


# ---------------------------------------------------------------------------- accumulating class

def test_class_equals_functional_per_batch_and_whole():
    model = mlp([4, 9, 9, 1])
    x = points(37, 4)
    F = random_frame(3, 4, seed=2, dtype=torch.float64)
    per_point = local_complexity(model, x, 0.5, frame=F, normalize=True)
    est = LocalComplexity(model, 0.5, frame=F, normalize=True)
    for part in torch.split(x, 10):
        est.update(part)
    torch.testing.assert_close(est.compute(), per_point.double().mean(0))
    a, b = LocalComplexity(model, 0.5, frame=F, normalize=True), LocalComplexity(model, 0.5, frame=F, normalize=True)
    a.update(x[:5]); b.update(x[5:])
    torch.testing.assert_close(a.merge(b).compute(), per_point.double().mean(0))
    assert "points=37" in repr(a)
    est.reset()
    with pytest.raises(ValueError, match="no points seen yet"):
        est.compute()


def test_class_with_directions_and_no_seed_keeps_one_frame():
    model = mlp([4, 9, 1])
    x = points(20, 4)
    est = LocalComplexity(model, 0.5, directions=2)
    est.update(x[:10]); f1 = est.frame.clone(); est.update(x[10:])
    assert torch.equal(est.frame, f1)
    torch.testing.assert_close(est.compute(), local_complexity(model, x, 0.5, frame=f1).double().mean(0))


def test_class_follows_the_live_weights_between_updates():
    """Training between updates: each update counts the model as it is then (issue 7, 6)."""
    model = mlp([4, 9, 9, 1])
    x = points(40, 4)
    y = torch.sin(3 * x[:, :1])  # a target the net must bend for
    F = random_frame(3, 4, seed=2, dtype=torch.float64)
    est = LocalComplexity(model, 0.5, frame=F)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    fresh = []
    for epoch in range(4):
        est.reset()
        est.update(x)
        fresh.append(local_complexity(model, x, 0.5, frame=F).double().mean(0))
        torch.testing.assert_close(est.compute(), fresh[-1])
        for _ in range(25):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    assert not all(torch.equal(f, fresh[0]) for f in fresh[1:])  # training did move the LC
    assert torch.equal(est.frame, F)  # the frame stays fixed
    # without reset: the state is the sum of what each update saw
    est.reset()
    est.update(x)
    before = local_complexity(model, x, 0.5, frame=F).double().mean(0)
    with torch.no_grad():
        model[0].bias.add_(0.7)
    est.update(x)
    after = local_complexity(model, x, 0.5, frame=F).double().mean(0)
    assert not torch.equal(before, after)
    torch.testing.assert_close(est.compute(), (before + after) / 2)


def test_class_refuses_a_model_whose_layers_changed():
    model = mlp([4, 9, 1])
    est = LocalComplexity(model, 0.5, directions=2, seed=0)
    est.update(points(5, 4))
    model[0], model[2] = torch.nn.Linear(4, 6).double(), torch.nn.Linear(6, 1).double()
    with pytest.raises(RuntimeError, match=r"layers changed since the estimator was built \(widths \[9\] then \[6\]\)"):
        est.update(points(5, 4))


def _sync_worker(rank, world):
    model = mlp([4, 9, 9, 1])
    x = points(30, 4)
    est = LocalComplexity(model, 0.5, directions=3, seed=0)
    est.update(x[rank::world])
    whole = est.compute().tolist()  # torchmetrics syncs for compute() and unsyncs after it
    local = est.count.item()
    est.sync()
    synced = est.count.item()
    est.unsync()
    return whole, local, synced, est.count.item()


def test_sync_across_two_gloo_processes():
    results = run_gloo(_sync_worker, 2)
    whole = local_complexity(mlp([4, 9, 9, 1]), points(30, 4), 0.5, directions=3, seed=0).double().mean(0)
    for r in range(2):
        np.testing.assert_allclose(results[r][0], whole.numpy())
        assert results[r][1:] == (15, 30, 15)


def _hooked_sync_worker(rank, world):
    """A model read through hooks (its layers unknown until a batch), and a process that saw none."""
    model = Residual()
    est = LocalComplexity(model, 0.5, directions=3, seed=0)
    if rank == 0:
        est.update(points(12, 5))
    return est.compute().tolist(), est.layer_names


def test_sync_of_a_process_that_saw_no_batch():
    results = run_gloo(_hooked_sync_worker, 2)
    whole = local_complexity(Residual(), points(12, 5), 0.5, directions=3, seed=0).double().mean(0)
    np.testing.assert_allclose(results[0][0], whole.numpy())
    np.testing.assert_allclose(results[1][0], whole.numpy())
    assert results[0][1] == ["relu", "relu#2"] and results[1][1] is None


def test_sync_outside_distributed_is_a_no_op():
    est = LocalComplexity(mlp([4, 9, 1]), 0.5, directions=2, seed=0)
    est.update(points(5, 4))
    before = est.compute()
    est.sync()
    assert torch.equal(est.compute(), before)


# ---------------------------------------------------------------------------- errors

@pytest.mark.parametrize("act,name", [(torch.nn.GELU, "GELU"), (torch.nn.Tanh, "Tanh"),
                                      (torch.nn.ReLU6, "ReLU6")])
def test_non_piecewise_linear_activation_is_refused(act, name):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), act(), torch.nn.Linear(4, 1))
    with pytest.raises(UnsupportedLayerError, match=rf"layer 1 \({name}\) is not piecewise linear"):
        local_complexity(model, points(2, 3).float(), 0.1, directions=2)
    with pytest.raises(UnsupportedLayerError, match="not piecewise linear"):
        LocalComplexity(model, 0.1, directions=2)


class _Functional(torch.nn.Module):
    """``Residual`` with its activation called as ``act(h)``: the module, or a function."""

    def __init__(self, act):
        super().__init__()
        self.inp, self.mid, self.out = Residual().inp, Residual().mid, Residual().out
        self.act = act

    def forward(self, x):
        h = self.act(self.inp(x))
        return self.out(self.act(h + self.mid(h)))


@pytest.mark.parametrize("act", [torch.relu, torch.nn.functional.relu, lambda h: h.relu(),
                                 lambda h: torch.nn.functional.relu(h.clone(), inplace=True)])
def test_activations_called_as_functions_are_counted_as_their_modules(act):
    # read by a torch function mode during the hooked pass, as the ReLU module by its hook (it was
    # refused as having no activation module; a model mixing both had its functional layers missed)
    x, F = points(30, 5), random_frame(3, 5, seed=1, dtype=torch.float64)
    module = local_complexity(Residual(), x, 0.3, frame=F)
    functional = local_complexity(_Functional(act), x, 0.3, frame=F)
    assert module.shape == (30, 2) and module.sum() > 0
    np.testing.assert_array_equal(functional.numpy(), module.numpy())
    est = LocalComplexity(_Functional(act), 0.3, frame=F)
    est.update(x)
    assert est.layer_names == ["relu()", "relu()#2"]


def test_a_model_mixing_activation_modules_and_functions_counts_both():
    class Mixed(_Functional):
        def forward(self, x):
            h = self.act(self.inp(x))  # the module
            return self.out(torch.relu(h + self.mid(h)))  # a function: its layer was missed
    x, F = points(30, 5), random_frame(3, 5, seed=1, dtype=torch.float64)
    lc = local_complexity(Mixed(torch.nn.ReLU()), x, 0.3, frame=F)
    np.testing.assert_array_equal(lc.numpy(), local_complexity(Residual(), x, 0.3, frame=F).numpy())


def test_hook_path_errors():
    with pytest.raises(UnsupportedLayerError, match="calls no ReLU, LeakyReLU or PReLU module and no F.relu"):
        local_complexity(_Functional(lambda h: h.clamp(min=0)), points(2, 5), 0.1, directions=2)
    with pytest.raises(UnsupportedLayerError, match="forward.. calls gelu, which is not piecewise linear"):
        local_complexity(_Functional(torch.nn.functional.gelu), points(2, 5), 0.1, directions=2)
    res = Residual()
    res.bn = torch.nn.BatchNorm1d(3)  # in training mode
    with pytest.raises(UnsupportedLayerError, match=r"bn \(BatchNorm1d\) is in training mode"):
        local_complexity(res, points(2, 5), 0.1, directions=2)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(radius=0.0, directions=2), ValueError, "radius=0.0 must be positive"),
    (dict(radius="a", directions=2), TypeError, "radius must be a number"),
    (dict(), ValueError, "no directions: pass frame="),
    (dict(directions=2.0), TypeError, "directions must be an int"),
    (dict(directions=4), ValueError, r"directions=4 must be between 1 and the input dimension 3"),
    (dict(frame=torch.eye(2)), ValueError, r"frame of shape \(2, 2\) is not \(P, 3\)"),
    (dict(frame=2 * torch.eye(3)), ValueError, "frame rows are not orthonormal"),
    (dict(frame="abc"), TypeError, "frame must be a tensor or array"),
    (dict(frame=torch.eye(3), directions=2), ValueError, "give either frame= or directions="),
    (dict(directions=2, layers=[3]), ValueError, "layer 3 is out of range: the model has 3"),
    (dict(directions=2, layers=["a"]), TypeError, "layers must be ints"),
    (dict(directions=2, batch_size=0), ValueError, "batch_size=0 must be at least 1"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        local_complexity(mlp([3, 6, 5, 4, 1]), points(4, 3), **kwargs)


def test_bad_inputs():
    model = mlp([3, 6, 1])
    with pytest.raises(ValueError, match=r"x has 4 features per point but the model takes 3"):
        local_complexity(model, points(2, 4), 0.1, directions=2)
    with pytest.raises(ValueError, match=r"x of shape \(3,\) is not a batch"):
        local_complexity(model, torch.zeros(3), 0.1, directions=2)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        local_complexity("net", points(2, 3), 0.1, directions=2)
    with pytest.raises(TypeError, match="can only merge LocalComplexity"):
        LocalComplexity(model, 0.1, directions=2).merge(3)


def test_dim_is_a_deprecated_alias_of_directions():
    model, x = mlp([3, 6, 1], seed=0), points(4, 3)
    want = local_complexity(model, x, 0.5, directions=2, seed=0)
    with pytest.warns(FutureWarning, match="dim= is deprecated .* use directions="):
        assert torch.equal(local_complexity(model, x, 0.5, dim=2, seed=0), want)
    with pytest.warns(FutureWarning, match="use directions="):
        est = LocalComplexity(model, 0.5, dim=2, seed=0)
    est.update(x)
    assert torch.equal(est.frame, random_frame(2, 3, seed=0, dtype=est.frame.dtype))
    with pytest.warns(FutureWarning, match="use directions="):
        assert torch.equal(random_frame(dim=2, in_features=3, seed=1), random_frame(2, 3, seed=1))
    with pytest.raises(TypeError, match="give directions= or its deprecated old name dim=, not both"):
        local_complexity(model, x, 0.5, directions=2, dim=2)
    with pytest.raises(TypeError, match="give directions= or its deprecated old name dim=, not both"):
        LocalComplexity(model, 0.5, directions=2, dim=2)
    with pytest.raises(TypeError, match="give directions= or its deprecated old name dim=, not both"):
        random_frame(2, 3, dim=2)
