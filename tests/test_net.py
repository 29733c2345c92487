"""spatial._net: reading a torch model into a chain of affine maps and activations."""
import numpy as np
import pytest
import torch

from common import assert_maps_equal_model
from splinescope import spatial
from splinescope.spatial._net import parse

L = torch.nn


def test_folding_matches_the_module():
    torch.manual_seed(0)
    net = L.Sequential(L.Flatten(), L.Linear(4, 5), L.Identity(), L.Linear(5, 6), L.BatchNorm1d(6), L.ReLU(),
                       L.Dropout(0.3), L.Sequential(L.Linear(6, 3), L.LeakyReLU(0.2)), L.Linear(3, 2)).double().eval()
    with torch.no_grad():
        net[4].running_mean.uniform_(-1, 1)
        net[4].running_var.uniform_(0.5, 2)
    n = parse(net)
    assert [l.width for l in n.layers] == [6, 3, 2]  # Linear-Identity-Linear-BN folded into one map
    assert [l.slope for l in n.layers] == [0.0, pytest.approx(0.2), None]
    x = torch.rand(20, 4, dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(n(x.numpy()), net(x).numpy(), rtol=1e-12, atol=1e-12)


def test_leading_activation_and_trailing_activation():
    n = parse(L.Sequential(L.ReLU(), L.Linear(2, 3), L.ReLU()), in_features=2)
    assert [l.width for l in n.layers] == [2, 3, 3]
    with pytest.raises(ValueError, match="activation before any Linear layer; pass in_features="):
        parse(L.Sequential(L.ReLU(), L.Linear(2, 3)))


def test_single_linear_and_shape_mismatch():
    assert parse(L.Linear(2, 3)).out_features == 3
    with pytest.raises(ValueError, match=r"layer 1 \(Linear\) expects 4 inputs but receives 3"):
        parse(L.Sequential(L.Linear(2, 3), L.Linear(4, 1)))
    with pytest.raises(ValueError, match="no Linear layer"):
        parse(L.Sequential(L.Identity()))
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        parse([1, 2])


def test_unsupported_layers_are_named():
    with pytest.raises(spatial.UnsupportedLayerError, match=r"layer 2 \(LayerNorm\).*supported: Linear, Conv1d"):
        parse(L.Sequential(L.Flatten(), L.Linear(4, 4), L.LayerNorm(4)))
    bn = L.BatchNorm1d(3, track_running_stats=False).eval()
    with pytest.raises(spatial.UnsupportedLayerError, match="no running statistics"):
        parse(L.Sequential(L.Linear(2, 3), bn))


def test_nonfinite_weights_are_refused_naming_the_layer():
    net = L.Sequential(L.Linear(2, 3), L.ReLU(), L.Linear(3, 3), L.ReLU(), L.Linear(3, 1))
    with torch.no_grad():
        net[2].weight[1, 0] = float("nan")
    with pytest.raises(spatial.NonFiniteWeightsError, match=r"^layer 2 \(Linear\) has non-finite weights \(NaN or inf\)$"):
        parse(net)
    with pytest.raises(ValueError, match=r"layer 2 \(Linear\)"):  # a ValueError too
        parse(torch.jit.script(net))
    bn = L.BatchNorm1d(3).eval()
    bn.running_var[0] = float("inf")
    with pytest.raises(spatial.NonFiniteWeightsError, match=r"layer 1\.0 \(BatchNorm1d\) has non-finite weights"):
        parse(L.Sequential(L.Linear(2, 3), L.Sequential(bn, L.ReLU()), L.Linear(3, 1)))


def test_a_module_used_twice_in_a_sequential_is_read_twice():
    act = L.ReLU()
    net = L.Sequential(L.Linear(2, 3), act, L.Linear(3, 3), act, L.Linear(3, 1))
    assert [l.slope for l in parse(net).layers] == [0.0, 0.0, None]
    assert [l.slope for l in parse(torch.jit.script(net)).layers] == [0.0, 0.0, None]


@pytest.mark.parametrize("wrap", ["weight_norm", "spectral_norm"])
def test_parametrized_layers_equal_their_plain_twins_and_are_refused_in_training(wrap):
    # weight_norm / spectral_norm: a subclass made for the module ("ParametrizedLinear") whose weight
    # is the parametrization's value; in training mode spectral_norm's power iteration would update
    # its state when the weight is read
    from torch.nn.utils import parametrizations

    torch.manual_seed(0)
    param = getattr(parametrizations, wrap)
    a = L.Sequential(param(L.Linear(2, 6)), L.ReLU(), L.Unflatten(1, (1, 6)), param(L.Conv1d(1, 2, 3)), L.ReLU(),
                     L.Flatten(), L.Linear(8, 1)).double().eval()
    b = L.Sequential(L.Linear(2, 6), L.ReLU(), L.Unflatten(1, (1, 6)), L.Conv1d(1, 2, 3), L.ReLU(), L.Flatten(),
                     L.Linear(8, 1)).double().eval()
    with torch.no_grad():
        for i in (0, 3, 6):
            b[i].weight.copy_(a[i].weight)
            b[i].bias.copy_(a[i].bias)
    pa, pb = spatial.partition(a, (-2, 2, -2, 2)), spatial.partition(b, (-2, 2, -2, 2))
    assert len(pa) == len(pb) > 3
    np.testing.assert_array_equal(pa.patterns, pb.patterns)
    with pytest.raises(spatial.UnsupportedLayerError, match=r"layer 0 \(Linear, parametrized: .*\) is in training"):
        spatial.partition(a.train(), (-2, 2, -2, 2))


def _mlp64():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double().eval()


@pytest.mark.parametrize("attach, match", [
    (lambda m: m[0].register_forward_hook(lambda mod, i, o: o * 2), r"layer 0 \(Linear\) has a forward hook \(<lambda>\)"),
    (lambda m: m[2].register_forward_pre_hook(lambda mod, i: (i[0] + 1,)), r"layer 2 \(Linear\) has a forward pre-hook"),
    (lambda m: m.register_forward_hook(lambda mod, i, o: None), r"the model \(Sequential\) has a forward hook"),
    (lambda m: torch.nn.modules.module.register_module_forward_hook(lambda mod, i, o: o),
     "a global module forward hook is registered"),
])
def test_a_model_with_hooks_that_reading_it_would_not_run_is_refused(attach, match):
    model = _mlp64()  # (the hooks were ignored: maps 0.15-1.1 off the model's forward)
    handle = attach(model)
    try:
        with pytest.raises(spatial.UnsupportedLayerError, match=match):
            spatial.partition(model, (-1.0, 1.0, -1.0, 1.0))
    finally:
        handle.remove()


@pytest.mark.parametrize("wrap", ["weight_norm", "prune", "spectral_norm"])
def test_weights_recomputed_by_pre_hooks_are_read_as_forward_computes_them(wrap):
    import torch.nn.utils.prune as prune

    model = _mlp64()
    layer = model[0]
    if wrap == "weight_norm":
        torch.nn.utils.weight_norm(layer)
        with torch.no_grad():  # after the last forward (an optimizer step): the stored weight is stale
            layer.weight_g.mul_(2.0)
    elif wrap == "prune":
        prune.l1_unstructured(layer, "weight", amount=0.5)
        with torch.no_grad():
            layer.weight_orig.mul_(3.0)
    else:
        torch.nn.utils.spectral_norm(layer)
        model.eval()
        with torch.no_grad():
            layer.weight_orig.mul_(3.0)
    p = spatial.partition(model, (-1.0, 1.0, -1.0, 1.0))
    c = p.centroids()
    with torch.no_grad():
        y = model(torch.tensor(c)).numpy()
    maps = p.affine_maps()
    np.testing.assert_allclose(np.einsum("rij,rj->ri", maps[:, :, :2], c) + maps[:, :, 2], y, atol=1e-12)
    if wrap == "spectral_norm":
        model.train()
        with pytest.raises(spatial.UnsupportedLayerError, match="spectral_norm in training mode"):
            spatial.partition(model, (-1.0, 1.0, -1.0, 1.0))


def test_a_torchscript_module_with_its_own_forward_is_refused_as_such():
    class Scaled(torch.nn.Sequential):
        def forward(self, x):
            for m in self:
                x = m(x)
            return x * 2  # (read as a chain of its layers, this would be lost)

    model = torch.jit.script(Scaled(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)).eval())
    with pytest.raises(spatial.UnsupportedLayerError, match=r"\(Scaled\) is a TorchScript module with a forward\(\) "
                                                            "of its own, which is not read"):
        spatial.partition(model, (-1.0, 1.0, -1.0, 1.0))


def test_a_compiled_or_data_parallel_model_is_read_as_the_module_it_runs():
    model = _mlp64()
    wrapped = torch.nn.DataParallel(torch.compile(model))  # (nothing is compiled until it is called)
    a, b = (spatial.partition(m, (-1.0, 1.0, -1.0, 1.0)) for m in (wrapped, model))
    assert len(a) == len(b) > 3
    np.testing.assert_array_equal(a.patterns, b.patterns)


def test_quantization_aware_layers_are_refused_and_left_as_they_were():
    import torch.ao.nn.qat as nnqat
    import torch.ao.quantization as tq

    qconfig = tq.get_default_qat_qconfig("fbgemm")
    model = torch.nn.Sequential(nnqat.Linear(2, 8, qconfig=qconfig), torch.nn.ReLU(), torch.nn.Linear(8, 1)).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}  # (its observers' buffers start empty)
    with pytest.raises(spatial.UnsupportedLayerError, match=r"\(torch.ao.nn.qat.modules.linear.Linear\).* is a "
                                                            "quantized or quantization-aware layer"):
        spatial.partition(model, (-1.0, 1.0, -1.0, 1.0))  # (was read as a plain Linear: its forward rounds)
    for k, v in model.state_dict().items():
        assert v.shape == state[k].shape and torch.equal(v, state[k]), k
    float_model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).train()
    float_model.qconfig = qconfig
    prepared = tq.prepare_qat(float_model)
    with pytest.raises(spatial.UnsupportedLayerError, match="a quantization observer"):
        spatial.partition(prepared.eval(), (-1.0, 1.0, -1.0, 1.0))


class _TutorialLeNet(torch.nn.Module):  # the classic PyTorch tutorial's: a loop over x.size(), which torch.fx cannot trace
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.fc = torch.nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(-1, self.num_flat_features(x)))

    def num_flat_features(self, x):
        n = 1
        for s in x.size()[1:]:
            n *= s
        return n


def test_a_forward_torch_fx_cannot_trace_is_captured_by_torch_export():
    torch.manual_seed(0)
    model = _TutorialLeNet().double().eval()
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 1, 6, 6)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    p = assert_maps_equal_model(model, (0.0, 1.0, 0.0, 1.0), plane=plane)
    assert len(p) > 3
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_a_forward_neither_torch_fx_nor_torch_export_can_read_is_refused_with_both_reasons():
    class Branchy(torch.nn.Linear):  # control flow on the input's values
        def forward(self, x):
            y = super().forward(x)
            return y if x.sum() > 0 else -y
    with pytest.raises(spatial.UnsupportedLayerError, match=r"could not be traced with torch.fx .* \(torch.export "
                                                            r"could not capture it either: GuardOnDataDependent"):
        spatial.partition(Branchy(2, 1), (-1.0, 1.0, -1.0, 1.0))
