"""Tests of spatial.imbalance: the formula, and what gradient-flow theory predicts of it."""

import numpy as np
import pytest
import torch

from splinescope.spatial.imbalance import DeepLinearRun, layer_imbalance, train_deep_linear

torch.set_num_threads(1)


def drift(run):
    """Largest relative change of any ||D_i|| over the run."""
    return np.abs(run.imbalance / run.imbalance[0] - 1).max()


def data(n=64, d_in=3, d_out=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d_in, generator=g, dtype=torch.float64),
            torch.randn(n, d_out, generator=g, dtype=torch.float64))


def gd(net, X, Y, lr, steps):
    """Plain full-batch gradient descent on 0.5 mean ||net(x) - y||^2."""
    params = list(net.parameters())
    for _ in range(steps):
        grads = torch.autograd.grad(0.5 * ((net(X) - Y) ** 2).sum(1).mean(), params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(lr * g)
    return net


# ---------------------------------------------------------------------- the formula

def test_equals_the_definition_on_any_module():
    class Net(torch.nn.Module):  # not a Sequential; an activation and a nested block in between
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 5)
            self.act = torch.nn.ReLU()
            self.block = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 2))

        def forward(self, x):
            return self.block(self.act(self.a(x)))

    torch.manual_seed(0)
    net = Net().float()
    norms, Ds = layer_imbalance(net, matrices=True)
    Ws = [m.weight.detach().double().numpy() for m in (net.a, net.block[0], net.block[1])]
    for i, D in enumerate(Ds):
        want = Ws[i + 1].T @ Ws[i + 1] - Ws[i] @ Ws[i].T
        np.testing.assert_allclose(D.numpy(), want, rtol=1e-12, atol=1e-12)
        assert norms[i].item() == pytest.approx(np.linalg.norm(want), rel=1e-12)
    assert norms.dtype == torch.float64 and norms.shape == (2,) and not norms.requires_grad
    assert torch.equal(layer_imbalance(net), norms)


def test_balanced_factors_have_zero_imbalance():
    U = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))[0]
    net = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 4, bias=False)).double()
    with torch.no_grad():  # W1 = U S, W2 = S U^T: W2^T W2 = U S^2 U^T = W1 W1^T
        S = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64))
        net[0].weight.copy_(U @ S)
        net[1].weight.copy_(S @ U.T)
    assert layer_imbalance(net).item() < 1e-13


@pytest.mark.parametrize("model, match", [
    (torch.nn.Linear(2, 2), "the model has 1 Linear layer; the imbalance needs at least 2"),
    (torch.nn.Sequential(torch.nn.ReLU()), "the model has 0 Linear layers"),
    (torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(4, 1)),
     "Linear layers do not chain: 1 takes 4 inputs but 0 gives 3"),
])
def test_layer_imbalance_errors(model, match):
    with pytest.raises(ValueError, match=match):
        layer_imbalance(model)


def test_layer_imbalance_needs_a_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got list"):
        layer_imbalance([torch.nn.Linear(2, 2)])


# ---------------------------------------------------------------------- the theory

def test_conserved_under_small_step_gradient_descent():
    """D_i is a gradient-flow invariant; GD moves it by O(lr^2) per step, O(lr) over a fixed time."""
    a = train_deep_linear(3, 6, steps=1000, lr=0.002)  # time lr * steps = 2
    b = train_deep_linear(3, 6, steps=2000, lr=0.001)  # the same time, half the step
    assert a.loss[-1] < 0.2 * a.loss[0]  # it did learn
    assert drift(a) < 1e-3 and drift(b) < 5e-4
    assert drift(a) / drift(b) == pytest.approx(2.0, rel=0.05)  # first order in lr: the lr^2 term


def test_weight_decay_shrinks_it_as_exp_minus_2_mu_t():
    mu, lr = 0.05, 0.01
    run = train_deep_linear(3, 6, steps=800, lr=lr, weight_decay=mu)
    t = np.arange(len(run.loss))
    for i in range(2):
        slope = np.polyfit(t, np.log(run.imbalance[:, i]), 1)[0]
        assert slope == pytest.approx(-2 * mu * lr, rel=0.02)


def test_small_batches_shrink_it_full_batch_does_not():
    full = train_deep_linear(3, 8, steps=600, lr=0.05)
    small = train_deep_linear(3, 8, steps=600, lr=0.05, optimizer="sgd", batch_size=4)
    assert drift(full) < 0.04
    assert (small.imbalance[-1] < 0.9 * small.imbalance[0]).all()
    assert (small.imbalance[-1] < full.imbalance[-1]).all()


def test_input_noise_keeps_shrinking_it_after_the_fit_has_converged():
    full = train_deep_linear(3, 8, steps=1500, lr=0.05)
    noisy = train_deep_linear(3, 8, steps=1500, lr=0.05, input_noise=1.0)
    late = slice(500, None)  # the clean run has converged: its gradients, and the lr^2 term, are gone
    assert full.loss[500] < 0.01
    assert np.abs(full.imbalance[-1] / full.imbalance[500] - 1).max() < 1e-4
    assert (noisy.imbalance[-1] < 0.95 * noisy.imbalance[500]).all()
    assert (np.diff(noisy.imbalance[late], axis=0).mean(0) < 0).all()


@pytest.mark.parametrize("bias", [False, True])
def test_relu_between_layers_conserves_only_the_diagonal(bias):
    """Du, Hu, Lee (2018): through a ReLU, diag(D - b b^T) is conserved, the rest is not."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5, bias=bias), torch.nn.ReLU(),
                              torch.nn.Linear(5, 2, bias=bias)).double()

    def c():
        b = net[0].bias.detach() if bias else torch.zeros(5, dtype=torch.float64)
        return layer_imbalance(net, matrices=True)[1][0] - torch.outer(b, b)

    before = c()
    gd(net, *data(), lr=0.002, steps=600)
    after = c()
    assert ((after - before).diagonal().abs().max() / before.diagonal().abs().max()).item() < 1e-3
    assert ((after - before).abs().max() / before.abs().max()).item() > 0.05


def test_linear_layers_with_biases_conserve_d_minus_bb():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2)).double()

    def c():
        b = net[0].bias.detach()
        return layer_imbalance(net, matrices=True)[1][0] - torch.outer(b, b)

    before, d_before = c(), layer_imbalance(net)
    gd(net, *data(), lr=0.002, steps=600)
    assert ((c() - before).abs().max() / before.abs().max()).item() < 1e-3
    assert abs(layer_imbalance(net) / d_before - 1).item() > 1e-2  # D itself moves


# ---------------------------------------------------------------------- the runner

def test_runner_record_and_custom_data():
    X, Y = data(40, 3, 2)
    run = train_deep_linear(4, 5, data=(X.numpy(), Y), steps=30, lr=0.05, seed=3)
    assert isinstance(run, DeepLinearRun)
    assert run.loss.shape == (31,) and run.imbalance.shape == (31, 3)
    assert [m.weight.shape for m in run.model] == [(5, 3), (5, 5), (5, 5), (2, 5)]
    assert run.imbalance[-1] == pytest.approx(layer_imbalance(run.model).numpy())
    assert run.loss[-1] == pytest.approx(float(0.5 * ((run.model(X).detach() - Y) ** 2).sum(1).mean()))
    assert "DeepLinearRun(depth=4, steps=30, lr=0.05" in repr(run)
    again = train_deep_linear(4, 5, data=(X, Y), steps=30, lr=0.05, seed=3)
    np.testing.assert_array_equal(again.loss, run.loss)  # seeded


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"depth": 1}, ValueError, "depth=1 must be at least 2"),
    ({"depth": 2.0}, TypeError, "depth must be an int, got float"),
    ({"lr": 0}, ValueError, "lr=0 must be positive and finite"),
    ({"lr": "big"}, TypeError, "lr must be a number, got str"),
    ({"weight_decay": -1}, ValueError, "weight_decay=-1 must be non-negative and finite"),
    ({"optimizer": "adam"}, ValueError, "'adam' is not a valid option, must be one of 'gd', 'sgd'"),
    ({"batch_size": 8}, ValueError, "optimizer='gd' is full-batch; pass optimizer='sgd' with batch_size"),
    ({"optimizer": "sgd"}, ValueError, "optimizer='sgd' needs batch_size"),
    ({"optimizer": "sgd", "batch_size": 1000}, ValueError, "batch_size=1000 is larger than the 256 examples"),
    ({"data": (np.zeros((5, 2)), np.zeros((4, 1)))}, ValueError, r"data of shapes \(5, 2\) and \(4, 1\) is not"),
])
def test_runner_errors(kwargs, exc, match):
    args = {"depth": 2, "width": 3, "steps": 1, "lr": 0.1, **kwargs}
    with pytest.raises(exc, match=match):
        train_deep_linear(args.pop("depth"), args.pop("width"), **args)
