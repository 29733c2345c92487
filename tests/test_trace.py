"""spatial._trace: modules whose forward is a chain, read by tracing them (torch.fx).

Each subclass is checked against its ``nn.Sequential`` twin (the same weights): the same layers,
exactly, and the same partition.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common import assert_maps_equal_model
from splinescope import spatial
from splinescope.spatial._net import parse

L = torch.nn
BOX = (-1.0, 1.0, -1.0, 1.0)


class MLP(L.Module):
    """fc1, fc2, fc3 and one activation module reused."""

    def __init__(self, act=None):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = L.Linear(2, 6), L.Linear(6, 5), L.Linear(5, 2)
        self.act = act if act is not None else L.ReLU()

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


class Functional(MLP):
    def __init__(self):
        super().__init__()
        self.w = L.Parameter(torch.randn(5, 6))
        self.register_buffer("b", torch.randn(5))

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = torch.relu(F.linear(x, self.w, self.b))
        return self.fc3(x)


class Clamped(MLP):
    def forward(self, x):
        x = self.fc1(x).clamp(min=0)
        return self.fc3(torch.clamp(self.fc2(x), min=0))


class Leaky(MLP):
    def forward(self, x):
        return self.fc3(F.leaky_relu(self.fc2(F.leaky_relu(self.fc1(x), 0.1)), negative_slope=0.1))


class Flattened(MLP):
    def forward(self, x):
        x = torch.flatten(x, 1)
        x = self.act(self.fc1(x.view(x.size(0), -1)))
        x = self.act(self.fc2(x.reshape(len(x), -1)))
        return self.fc3(x.flatten(1))


class Scaled(MLP):
    def forward(self, x):
        x = self.act(2 * self.fc1(x) + 1.0)
        x = self.act(self.fc2(x / 4) - 0.5)
        return self.fc3(x)


def _twin(m, kind):
    """The nn.Sequential with the same weights (constants folded in float64 by hand)."""
    if kind == "scaled":
        fc1, fc2 = L.Linear(2, 6).double(), L.Linear(6, 5).double()
        with torch.no_grad():
            fc1.weight.copy_(m.fc1.weight * 2)
            fc1.bias.copy_(m.fc1.bias * 2 + 1.0)
            fc2.weight.copy_(m.fc2.weight / 4)
            fc2.bias.copy_(m.fc2.bias - 0.5)
        return L.Sequential(fc1, L.ReLU(), fc2, L.ReLU(), m.fc3)
    if kind == "functional":
        fc2 = L.Linear(6, 5).double()
        with torch.no_grad():
            fc2.weight.copy_(m.w)
            fc2.bias.copy_(m.b)
        return L.Sequential(m.fc1, L.ReLU(), fc2, L.ReLU(), m.fc3)
    act = L.LeakyReLU(0.1) if kind == "leaky" else L.ReLU()
    first = [L.Flatten()] if kind == "flatten" else []
    return L.Sequential(*first, m.fc1, act, m.fc2, act, m.fc3)


CASES = {"reused": MLP, "functional": Functional, "clamped": Clamped, "leaky": Leaky, "flatten": Flattened,
         "scaled": Scaled}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_subclass_reads_as_its_sequential_twin(kind):
    torch.manual_seed(0)
    m = CASES[kind]().double()
    twin = _twin(m, kind)
    a, b = parse(m), parse(twin)
    assert len(a.layers) == len(b.layers) == 3
    for la, lb in zip(a.layers, b.layers):
        assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
        assert la.slope == lb.slope
    x = torch.rand(7, 1, 2, dtype=torch.float64) * 2 - 1  # (1, 2) inputs: flattened by the models that flatten
    xin = x if kind == "flatten" else x[:, 0]
    with torch.no_grad():
        np.testing.assert_allclose(a(x[:, 0].numpy()), m(xin).numpy(), rtol=1e-12, atol=1e-12)
    p, q = spatial.partition(m, bounds=BOX), spatial.partition(twin, bounds=BOX)
    assert len(p) == len(q) > 1
    assert np.array_equal(p.patterns, q.patterns)
    assert np.array_equal(p.vertices, q.vertices)


class _Refused(MLP):
    def __init__(self, forward):
        super().__init__()
        self._f = forward

    def forward(self, x):
        return self._f(self, x)


REFUSED = {
    "tanh": (lambda s, x: s.fc3(torch.tanh(s.fc2(s.fc1(x).abs()))),  # abs first: the non-PL op is named
             r"node 'tanh' \(torch\.tanh\), line \d+ of .*test_trace\.py: `.*torch\.tanh.*` is not piecewise linear"),
    "gelu": (lambda s, x: s.fc3(s.fc2(F.gelu(s.fc1(x)))), r"node 'gelu' \(F\.gelu\).* is not piecewise linear"),
    "square": (lambda s, x: s.fc3(s.fc2(s.fc1(x) * s.fc1(x))), r"node 'mul' \(\*\).* is not piecewise linear"),
    "sigmoid": (lambda s, x: s.fc3(s.fc2(s.fc1(x).sigmoid())), r"x\.sigmoid\(\).* is not piecewise linear"),
    "quotient": (lambda s, x: s.fc3(s.fc2(s.fc1(x) / s.fc1(x).relu())), r"node 'truediv' .* is not piecewise linear"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusals_name_the_node_and_its_line(case):
    forward, match = REFUSED[case]
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        parse(_Refused(forward))


def test_activation_modules_in_a_traced_forward():
    with pytest.raises(spatial.UnsupportedLayerError, match=r"node 'act' \(Tanh\).* is not piecewise linear"):
        parse(MLP(L.Tanh()))
    # ReLU6 (two breakpoints) and a PReLU per unit are read as a graph (spatial._graph)
    assert [l.units for l in parse(MLP(L.ReLU6())).layers] == [12, 10, 2]
    with pytest.raises(spatial.UnsupportedLayerError, match=r"F\.dropout\).* in training mode"):
        parse(_Refused(lambda s, x: s.fc3(s.fc2(F.dropout(s.fc1(x), 0.5)))))
    assert parse(_Refused(lambda s, x: s.fc3(s.fc2(F.dropout(s.fc1(x), 0.5, training=False))))).out_features == 2


class Branchy(MLP):
    def forward(self, x):
        if x.sum() > 0:
            x = -x
        return self.fc3(self.fc2(self.fc1(x)))


def test_an_untraceable_forward_names_the_class():
    with pytest.raises(spatial.UnsupportedLayerError, match=r"^Branchy could not be traced with torch\.fx .*"
                                                            r"control flow"):
        parse(Branchy())


def test_shape_errors_and_nonfinite_weights_name_the_layer():
    m = _Refused(lambda s, x: s.fc3(s.fc1(x)))
    with pytest.raises(ValueError, match=r"layer fc3 \(Linear\) expects 5 inputs but receives 6"):
        parse(m)
    m = MLP()
    with torch.no_grad():
        m.fc2.bias[0] = float("inf")
    with pytest.raises(spatial.NonFiniteWeightsError, match=r"^layer fc2 \(Linear\) has non-finite weights"):
        parse(m)
    with pytest.raises(spatial.UnsupportedLayerError, match=r"forward takes 2 inputs \(x, y\)"):
        parse(_TwoInputs())


class _TwoInputs(MLP):
    def forward(self, x, y):
        return self.fc1(x)


ARCH = '''
import torch
L = torch.nn


class Net(L.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = L.Linear(2, 8), L.Linear(8, 8), L.Linear(8, 1)
        self.act = L.ReLU()

    def forward(self, x):
        return self.out(self.act(self.fc2(self.act(self.fc1(x)))))


def factory():
    return Net()
'''


def test_the_command_line_counts_a_subclass(tmp_path, capsys):
    from splinescope.render.cli import main

    arch = tmp_path / "arch_mlp.py"
    arch.write_text(ARCH)
    from splinescope.spatial.checkpoints import resolve_arch

    torch.manual_seed(1)
    m = resolve_arch(f"{arch}:factory")()
    sd = tmp_path / "net.pt"
    torch.save(m.state_dict(), sd)
    twin = L.Sequential(m.fc1, L.ReLU(), m.fc2, L.ReLU(), m.out)
    want = len(spatial.partition(twin, bounds=BOX))
    assert main(["count", str(sd), "--arch", f"{arch}:factory", "--bounds", "-1", "1", "-1", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(want)


def test_local_complexity_reads_a_subclass_as_its_twin():
    from splinescope.spatial.local_complexity import local_complexity, random_frame

    torch.manual_seed(2)
    m = Functional().double()
    twin = _twin(m, "functional")
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    frame = random_frame(2, 2, 0, dtype=torch.float64)
    assert torch.equal(local_complexity(m, x, 0.3, frame), local_complexity(twin, x, 0.3, frame))


class Block(L.Module):
    def __init__(self, lin):
        super().__init__()
        self.lin = lin

    def forward(self, x):
        return F.relu(self.lin(x))


def test_a_sequential_of_blocks_is_traced():
    torch.manual_seed(3)
    m = MLP().double()
    net = L.Sequential(Block(m.fc1), Block(m.fc2), m.fc3)
    a, b = parse(net), parse(_twin(m, "reused"))
    assert all(np.array_equal(la.weight, lb.weight) and la.slope == lb.slope for la, lb in zip(a.layers, b.layers))
    with pytest.raises(spatial.UnsupportedLayerError, match=r"node '_1_act' \(Tanh\).* is not piecewise linear"):
        parse(L.Sequential(Block(m.fc1), MLP(L.Tanh())))


def test_only_a_reshape_that_keeps_the_batch_is_read():
    bad = _Refused(lambda s, x: s.fc3(s.fc2(s.fc1(x).view(-1, 3))))
    with pytest.raises(ValueError, match=r"reshapes to 3 features but receives 6"):
        parse(bad)
    ok = _Refused(lambda s, x: s.fc3(s.fc2(s.fc1(x.view(x.shape[0], -1)).view(-1, 6))))
    assert [l.width for l in parse(ok).layers] == [2]  # no activation: one affine map
    with pytest.raises(ValueError, match=r"reshapes to 4 features but receives 6"):
        parse(_Refused(lambda s, x: s.fc3(s.fc2(s.fc1(x).reshape(-1, 4)))))


class _InPlace(torch.nn.Module):
    """``forward`` changes a value in place and reads it afterwards through its old name."""

    def __init__(self, form):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.a, self.b = torch.nn.Linear(3, 6).double(), torch.nn.Linear(6, 2).double()
        self.act = torch.nn.ReLU(inplace=True)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        self.form = form

    def forward(self, x):
        h = self.a(x)
        if self.form == "relu_":
            h.relu_()
        elif self.form == "functional":
            F.relu(h, inplace=True)
        elif self.form == "module":
            self.act(h)
        elif self.form == "clamp_mul":
            h.clamp_(min=0.0).mul_(2.0)
        elif self.form == "alias":  # one tensor under two names: both change
            same = h
            h += torch.relu(h)
            return self.b(same + h)
        return self.b(h)


@pytest.mark.parametrize("form, twin", [
    ("relu_", lambda m, x: m.b(torch.relu(m.a(x)))),
    ("functional", lambda m, x: m.b(torch.relu(m.a(x)))),
    ("module", lambda m, x: m.b(torch.relu(m.a(x)))),
    ("clamp_mul", lambda m, x: m.b(2 * torch.relu(m.a(x)))),
    ("alias", lambda m, x: m.b(2 * (m.a(x) + torch.relu(m.a(x))))),
])
def test_a_value_changed_in_place_is_read_changed(form, twin):
    model = _InPlace(form)
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    p = assert_maps_equal_model(model, (-3.0, 3.0, -3.0, 3.0), plane=plane)  # the model changes h in place
    assert len(p) > 3 and p.verify().ok
    with torch.no_grad():  # ... as its twin says
        x = torch.tensor(plane.lift(p.centroids()), dtype=torch.float64)
        np.testing.assert_allclose(model(x.clone()).numpy(), twin(model, x).numpy(), atol=1e-12)


def test_a_value_changed_in_place_under_a_view_is_refused():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 6), torch.nn.Linear(6, 2)

        def forward(self, x):
            h = self.a(x)
            v = h.view(-1, 6)
            h.relu_()
            return self.b(v)
    with pytest.raises(spatial.UnsupportedLayerError, match=r"changes 'a' in place while 'view', which shares its "
                                                             r"memory, is read afterwards \('b'\)"):
        spatial.partition(Net(), (-1.0, 1.0, -1.0, 1.0), plane=spatial.Plane.through(*np.eye(3)))


@pytest.mark.parametrize("form", ["relu_", "functional", "module", "clamp_mul", "alias"])
def test_a_value_changed_in_place_in_a_torch_export_program_is_read_changed(form):
    model = _InPlace(form)
    ep = torch.export.export(model, (torch.zeros(2, 3, dtype=torch.float64),))  # (aten.relu_, aten.add_, ...)
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    a, b = (spatial.partition(m, (-3.0, 3.0, -3.0, 3.0), plane=plane) for m in (ep, model))
    assert len(a) == len(b) > 3
    np.testing.assert_array_equal(a.patterns, b.patterns)
    np.testing.assert_allclose(a.affine_maps(), b.affine_maps(), atol=1e-12)


class _PartInPlace(torch.nn.Module):
    """``forward`` changes a part of a value in place (a view of it) and reads the whole afterwards."""

    def __init__(self, assign):
        super().__init__()
        self.a, self.b, self.assign = torch.nn.Linear(3, 6).double(), torch.nn.Linear(6, 2).double(), assign

    def forward(self, x):
        h = self.a(x).clone()
        if self.assign:
            h[:, 0] = 0.0
        else:
            h[:, :2].relu_()
        return self.b(torch.relu(h))


@pytest.mark.parametrize("assign", [False, True])
def test_a_part_of_a_value_changed_in_place_in_a_torch_export_program_is_refused(assign):
    # torch.export keeps aten.relu_ of a slice of h and then reads h itself: read as it was, the maps
    # were 0.03 off; h[:, 0] = 0.0 (aten.fill_ of a select; torch.fx cannot trace it) is refused alike
    model = _PartInPlace(assign)
    ep = torch.export.export(model, (torch.zeros(2, 3, dtype=torch.float64),))
    for m in (ep, model):
        with pytest.raises(spatial.UnsupportedLayerError, match=r"in place while 'clone.*', which shares its memory, "
                                                                r"is read afterwards .*h\[\.\.\.\] = v as torch.cat"):
            spatial.partition(m, (-1.0, 1.0, -1.0, 1.0), plane=spatial.Plane.through(*np.eye(3)))


def test_a_forward_that_changes_a_parameter_in_place_is_refused_before_it_runs():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.fc = torch.nn.Parameter(torch.ones(3)), torch.nn.Linear(3, 2)

        def forward(self, x):
            self.w.data.mul_(2.0)  # (never read: the graph reader's example run would have changed it)
            return self.fc(torch.relu(x * 2.0))
    model = Net()
    with pytest.raises(spatial.UnsupportedLayerError, match="changes 'w', a parameter or buffer of the model, in place"):
        spatial.partition(model, (-1.0, 1.0, -1.0, 1.0), plane=spatial.Plane.through(*np.eye(3)))
    assert torch.equal(model.w.detach(), torch.ones(3))


def test_a_random_tensor_drawn_on_constant_arguments_is_refused():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)

        def forward(self, x):  # (torch.fx would run torch.randn once and keep its draw as a constant)
            return self.b(torch.relu(self.a(x) + 0.1 * torch.randn(4)))
    randn = torch.randn
    with pytest.raises(spatial.UnsupportedLayerError, match=r"calls torch.randn on arguments that do not depend on "
                                                            r"the input, line \d+ of .*test_trace.py"):
        spatial.partition(Net(), (-1.0, 1.0, -1.0, 1.0), plane=spatial.Plane.through(*np.eye(3)))
    assert torch.randn is randn  # put back


def test_arguments_with_defaults_are_read_at_their_defaults():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4).double(), torch.nn.Linear(4, 2).double()

        def forward(self, x, return_features=False, scale=2.0, *, mask=None):
            h = torch.relu(self.a(x))
            if mask is not None:
                h = h * mask
            if return_features:
                return h
            return self.b(h) * scale
    p = assert_maps_equal_model(Net(), (-1.0, 1.0, -1.0, 1.0), plane=spatial.Plane.through(*np.eye(3)))
    assert len(p) > 3  # (read as model(x) calls it: was "cannot be traced")


def test_a_second_input_without_a_default_is_refused():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 2)

        def forward(self, x, y):
            return self.a(x + y)
    with pytest.raises(spatial.UnsupportedLayerError, match=r"takes 2 inputs \(x, y\); only one input"):
        spatial.partition(Net(), (-1.0, 1.0, -1.0, 1.0), plane=spatial.Plane.through(*np.eye(3)))
