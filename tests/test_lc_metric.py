"""Tests of spatial/_lc_metric.py: LocalComplexity as a torchmetrics.Metric (the counting itself is
tested against the definition in test_local_complexity.py)."""
import copy

import pytest
import torch
from torchmetrics import Metric

from splinescope import spatial
from splinescope.spatial.local_complexity import LocalComplexity, local_complexity, random_frame
from common import DEVICES
from test_local_complexity import Residual, mlp, points


class Subclass(torch.nn.Module):
    """fc1..fc3 with one activation module used twice."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(4, 6), torch.nn.Linear(6, 5), torch.nn.Linear(5, 1)
        self.act = torch.nn.ReLU()
        self.double()

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


def test_a_metric_that_measures_the_model_without_owning_it():
    model = mlp([4, 9, 9, 1])
    est = LocalComplexity(model, 0.5, directions=2, seed=0)
    assert isinstance(est, Metric) and spatial.LocalComplexity is LocalComplexity
    assert list(est.parameters()) == [] and list(est.children()) == []
    assert all(not k.startswith("_plan") for k in est.state_dict())
    est.update(points(10, 4))
    assert est.total.dtype == torch.float64 and est.total.shape == (2,) and est.count.item() == 10


def test_layer_names_are_the_activation_modules():
    assert LocalComplexity(mlp([4, 9, 9, 1]), 0.5, directions=2).layer_names == ["1", "3"]
    assert LocalComplexity(mlp([4, 9, 9, 1]), 0.5, directions=2, layers=[-1]).layer_names == ["3"]
    assert LocalComplexity(Subclass(), 0.5, directions=2).layer_names == ["act", "act#2"]
    hooked = LocalComplexity(Residual(), 0.5, directions=2)
    assert hooked.layer_names is None  # known from the first batch
    hooked.update(points(3, 5))
    assert hooked.layer_names == ["relu", "relu#2"]


def test_forward_gives_the_batch_and_accumulates():
    model = mlp([4, 9, 9, 1])
    x = points(30, 4)
    F = random_frame(3, 4, seed=2, dtype=torch.float64)
    ref = local_complexity(model, x, 0.5, frame=F).double()
    for est in (LocalComplexity(model, 0.5, frame=F), LocalComplexity(Residual(d=4), 0.5, frame=F)):
        if not isinstance(est._plan.model, torch.nn.Sequential):
            ref = local_complexity(est._plan.model, x, 0.5, frame=F).double()
        torch.testing.assert_close(est(x[:10]), ref[:10].mean(0))
        torch.testing.assert_close(est(x[10:]), ref[10:].mean(0))
        torch.testing.assert_close(est.compute(), ref.mean(0))


def test_per_layer_false_is_one_number_and_one_layer_keeps_its_axis():
    model = mlp([4, 9, 9, 1])
    x = points(12, 4)
    F = random_frame(2, 4, seed=0, dtype=torch.float64)
    ref = local_complexity(model, x, 0.5, frame=F).double().mean(0)
    total = LocalComplexity(model, 0.5, frame=F, per_layer=False)
    total.update(x)
    assert total.compute().shape == () and float(total.compute()) == pytest.approx(float(ref.sum()))
    one = LocalComplexity(model, 0.5, frame=F, layers=[0])
    one.update(x)
    assert one.compute().shape == (1,)  # torchmetrics would squeeze it to 0-d


def test_merge_state_and_merge():
    model = mlp([4, 9, 9, 1])
    x = points(20, 4)
    F = random_frame(2, 4, seed=0, dtype=torch.float64)
    a, b, c = (LocalComplexity(model, 0.5, frame=F) for _ in range(3))
    a.update(x[:7]); b.update(x[7:15]); c.update(x[15:])
    a.merge_state(b)
    a.merge(c)
    torch.testing.assert_close(a.compute(), local_complexity(model, x, 0.5, frame=F).double().mean(0))
    with pytest.raises(TypeError, match="can only merge LocalComplexity"):
        a.merge(3)
    other = LocalComplexity(mlp([4, 9, 1]), 0.5, frame=F)
    other.update(x)
    with pytest.raises(ValueError, match="cannot merge states of 1 layers into 2"):
        a.merge(other)


def test_follows_the_models_dtype_between_updates():
    model = mlp([4, 9, 9, 1])
    x = points(16, 4)
    F = random_frame(2, 4, seed=0, dtype=torch.float64)
    est = LocalComplexity(model, 0.5, frame=F)
    est.update(x[:8])
    model.float()
    est.update(x[8:])
    want = torch.cat([local_complexity(mlp([4, 9, 9, 1]), x[:8], 0.5, frame=F),
                      local_complexity(model, x[8:], 0.5, frame=F)]).double().mean(0)
    torch.testing.assert_close(est.compute(), want)
    assert est.count.dtype == torch.float64  # the state keeps its own dtype


def test_metric_to_moves_the_state_not_the_model():
    model = mlp([4, 9, 1])
    est = LocalComplexity(model, 0.5, directions=2, seed=0).to(torch.device("cpu"))
    est.update(points(4, 4))
    assert est.device == torch.device("cpu") and next(model.parameters()).dtype == torch.float64


@pytest.mark.parametrize("device", DEVICES)
def test_a_model_on_a_device_gives_the_cpu_means(device):
    """The model on ``device``: the CPU's means, whether the metric's state is there too or stays
    on the CPU, and when the model moves there between updates (the metric follows it)."""
    x = points(30, 4)
    F = random_frame(3, 4, seed=2, dtype=torch.float64)
    for make in (lambda: mlp([4, 9, 9, 1]), lambda: Residual(d=4)):
        model = make()
        want = local_complexity(model, x, 0.5, frame=F).double().mean(0)
        moved = copy.deepcopy(model).to(device)
        there = LocalComplexity(moved, 0.5, frame=F).to(device)  # state and model on the device
        here = LocalComplexity(moved, 0.5, frame=F)  # the state on the CPU
        for est in (there, here):
            est.update(x[:10].to(device)); est.update(x[10:])
            torch.testing.assert_close(est.compute().cpu(), want)
        assert there.total.device.type == device and here.total.device.type == "cpu"
        follows = LocalComplexity(model, 0.5, directions=3, seed=4)
        follows.update(x[:10])
        model.to(device)
        follows.update(x[10:])
        ref = local_complexity(make(), x, 0.5, frame=follows.frame.cpu()).double().mean(0)
        torch.testing.assert_close(follows.compute(), ref)


def test_repr_html():
    est = LocalComplexity(Subclass(), 0.5, directions=2, seed=0)
    assert "no points yet" in est._repr_html_()
    est.update(points(6, 4))
    html = est._repr_html_()
    assert "<td>layer act#2</td>" in html and "points=6" in html and "<td>sum</td>" in html
    assert "points=6" in repr(est) and "per_layer=True" in repr(est)
