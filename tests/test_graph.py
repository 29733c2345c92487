"""Module graphs (spatial/_graph.py, spatial/_ops.py) through the engine, against the independent
exact reference (tests/_exact_graph.py): equal counts, areas and output maps on every region,
verify() passing; the layers the reference does not read (reflect padding, shuffles, unfold,
bicubic) against the model's forward pass and dense sampling; subclass, functional and
torch.export forms equal to their twins; refusals."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (DEVICES, assert_graph_matches_exact, assert_maps_equal_model, assert_same_on_device, dyadic_images,
                    dyadic_model)
from splinescope import spatial
from splinescope.spatial import _net

torch.set_num_threads(1)
D = torch.float64


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 2, padding=1)
        self.conv2 = nn.Conv2d(2, 1, 2)
        self.act = nn.ReLU()
        self.fc = nn.Linear(9, 2)

    def forward(self, x):
        h = self.conv2(self.act(self.conv1(x)))
        return self.fc(self.act(x + h).flatten(1))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 3)
        self.b = nn.Linear(2, 2)
        self.out = nn.Linear(5, 2)

    def forward(self, x):
        return self.out(torch.cat([F.relu(self.a(x)), torch.abs(self.b(x))], dim=1))


class Functional(nn.Module):
    """Functional calls and constants: clamp, hardtanh, relu6, scaling, adding."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 4)
        self.fc2 = nn.Linear(4, 3)
        self.fc3 = nn.Linear(3, 1)

    def forward(self, x):
        h = self.fc1(x).clamp(min=0)
        h = F.hardtanh(self.fc2(h) * 2.0 + 0.5)
        return self.fc3(F.relu6(h * 4.0))


class Step(nn.Module):  # a user's own activation: 0 below -1, slope 1/2 to 1, slope 1 above
    def forward(self, x):
        return torch.where(x < -1, torch.zeros_like(x), torch.where(x < 1, (x + 1) / 2, x))


def _conv_strided():
    return nn.Sequential(nn.Conv2d(1, 2, 2, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))


def _conv_dilated_groups():
    return nn.Sequential(nn.Conv2d(2, 2, 2, dilation=2, padding=1, groups=2), nn.LeakyReLU(0.25),
                         nn.Flatten(), nn.Linear(18, 1))


def _conv_transpose_avg():
    return nn.Sequential(nn.ConvTranspose2d(1, 1, 2, stride=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(4, 2))


def _batchnorm_adaptive_prelu():
    m = nn.Sequential(nn.Conv2d(1, 2, 2), nn.BatchNorm2d(2), nn.PReLU(2), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(2, 2))
    return m


def _conv1d():
    return nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.Hardtanh(), nn.Flatten(), nn.Linear(8, 1))


def _mlp_custom():
    spatial.register_activation(Step, breakpoints=(-1.0, 1.0), slopes=(0.0, 0.5, 1.0))
    return nn.Sequential(nn.Linear(2, 4), Step(), nn.Linear(4, 3), nn.ReLU6(), nn.Linear(3, 2))


def _conv_wide():  # the second conv reads 144 values, 9 each: its rounding bound is |h|_inf-based
    return nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(144, 2))


class Select(nn.Module):  # slices, a flip, a transpose and a stack between two hidden layers
    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(2, 6), nn.Linear(8, 2)

    def forward(self, x):
        h = self.fc(x)
        a = F.relu(torch.cat([h[:, :3], h[:, 3:].flip(1)], 1).view(-1, 2, 3).transpose(1, 2))  # (3, 2)
        b = torch.stack([a[:, 0, 0], a[:, -1, 1]], 1)
        return self.out(torch.cat([b, a.reshape(-1, 6)], 1))


class Extremes(nn.Module):  # maxima and minima of two tensors and of a dimension
    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(2, 4), nn.Linear(2, 4), nn.Linear(10, 2)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        m = torch.maximum(a, b)
        n = torch.min(a, -b)
        return self.out(torch.cat([m, n, m.view(-1, 2, 2).amin(2) + n.view(-1, 2, 2).amin(1)], 1))


class Sorts(nn.Module):  # GroupSort (groups of 3), MaxMin written as a descending sort of pairs, topk
    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(2, 6), nn.Linear(6, 4), nn.Linear(2, 2)

    def forward(self, x):
        h = self.a(x).view(-1, 2, 3).sort(-1).values.flatten(1)
        h = torch.sort(self.b(h).view(-1, 2, 2), dim=2, descending=True)[0].flatten(1)
        return self.out(h.topk(2, dim=1).values)


class Parts(nn.Module):  # padding with a constant, chunk, roll, narrow, select, repeat, expand, unbind
    def __init__(self):
        super().__init__()
        self.conv, self.out = nn.Conv2d(1, 2, 2), nn.Linear(20, 2)

    def forward(self, x):
        h = F.pad(torch.relu(self.conv(x)), (1, 0, 0, 1), value=0.5)  # (2, 3, 3)
        a, b = h.chunk(2, 1)
        m = torch.maximum(a, b.roll(1, 2)).flatten(1)  # 9
        c = h.narrow(2, 1, 2).select(1, 0).repeat(1, 2, 1)  # (4, 3)
        rows = torch.cat(h[:, 1].unbind(1), 1)[:, :3]  # 3
        e = rows.view(-1, 1, 3).expand(-1, 2, 3).reshape(-1, 6)
        return self.out(torch.cat([m, c.flatten(1)[:, :5], e], 1))


class MoreActivations(nn.Module):  # Softshrink, Hardsigmoid (slope 1/6), RReLU (eval), Threshold, nearest upsampling
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 2), nn.Linear(48, 2)
        self.shrink, self.hsig, self.rrelu, self.thr = nn.Softshrink(0.5), nn.Hardsigmoid(), nn.RReLU(0.25, 0.75), \
            nn.Threshold(0.25, 0.25)

    def forward(self, x):
        h = self.conv(x)  # (2, 2, 2)
        a = torch.cat([self.shrink(h), F.hardsigmoid(4 * h), self.rrelu(h), self.thr(h)], 1)  # (8, 2, 2)
        return self.fc(F.softshrink(F.interpolate(a, scale_factor=2, mode="nearest"), 0.25)[:, :, :2].flatten(1)
                       [:, :48])


class Bilinear(nn.Module):  # bilinear upsampling (weights 1/16 .. 9/16), and with aligned corners (quarters)
    def __init__(self):
        super().__init__()
        self.conv, self.up, self.fc = nn.Conv2d(1, 1, 2), nn.Upsample(size=5, mode="bilinear", align_corners=True), \
            nn.Linear(41, 2)

    def forward(self, x):
        h = F.interpolate(torch.relu(self.conv(x)), scale_factor=2, mode="bilinear")  # (1, 4, 4)
        return self.fc(torch.cat([torch.relu(h - 0.25).flatten(1), torch.abs(self.up(self.conv(x))).flatten(1)], 1))


class LayerScale(nn.Module):  # elementwise by constant tensors: a per-channel scale, a mask, a divisor
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 2), nn.Linear(8, 2)
        self.gamma = nn.Parameter(torch.ones(2, 1, 1))
        self.register_buffer("mask", torch.tensor([[1.0, 0.0], [-0.5, 2.0]], dtype=D))
        self.register_buffer("div", torch.tensor([4.0, -2.0], dtype=D).reshape(1, 2, 1, 1))

    def forward(self, x):
        h = torch.relu(self.conv(x) * self.gamma)
        return self.fc((torch.abs(h * self.mask - 0.25) / self.div).flatten(1))


class ConstantBounds(nn.Module):  # maxima and minima against constant tensors, a clamp between two of them
    def __init__(self, clamp=False):
        super().__init__()
        self.fc, self.out, self.clamp = nn.Linear(2, 6), nn.Linear(12, 2), clamp
        self.register_buffer("lo", torch.tensor([-0.5, 0.0, 0.25, -1.0, 0.5, 0.0], dtype=D))
        self.register_buffer("hi", torch.tensor([[0.75]], dtype=D))

    def forward(self, x):
        h = self.fc(x)
        if self.clamp:
            return self.out(torch.cat([torch.clamp(h, min=self.lo, max=self.hi), h.clamp(max=self.lo)], 1))
        return self.out(torch.cat([torch.maximum(h, self.lo), torch.minimum(self.hi, h)], 1))


class EinsumNet(nn.Module):  # einsum of the input and one constant: channel mixing, a contraction, a transpose
    def __init__(self):
        super().__init__()
        self.mix = nn.Parameter(torch.zeros(2, 1, dtype=D))
        self.w = nn.Parameter(torch.zeros(2, 3, 3, 4, dtype=D))
        self.v = nn.Parameter(torch.zeros(3, 4, dtype=D))

    def forward(self, x):
        h = torch.relu(torch.einsum("bchw,dc->bdhw", x, self.mix))
        h = torch.relu(torch.einsum("dhwk,bdhw->bk", self.w, h))
        return torch.einsum("bk,kj->bj", h, self.v.t())  # the constant made from a parameter


class Broadcasts(nn.Module):  # x - x.mean(keepdim=True) per channel, a dueling head v + a - a.mean, a max
    def __init__(self):
        super().__init__()
        self.conv, self.v, self.a = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(18, 1), nn.Linear(18, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        h = torch.relu(h - h.mean(dim=(2, 3), keepdim=True)).flatten(1)
        a = self.a(h)
        return self.v(h) + torch.maximum(a - a.mean(1, keepdim=True), a[:, :1])


class StdConv2d(nn.Conv2d):  # weight standardization (as BiT's ResNets): the weight made in forward
    def forward(self, x):
        w = self.weight
        w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True) + 1.0)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class MadeWeights(nn.Module):  # weights, scales and bounds made from parameters in forward
    def __init__(self):
        super().__init__()
        self.conv, self.g, self.c = StdConv2d(1, 2, 3, padding=1), nn.Parameter(torch.zeros(2, 3, 3)), \
            nn.Parameter(torch.zeros(18))
        self.w = nn.Parameter(torch.zeros(2, 18))

    def forward(self, x):
        h = torch.relu(self.conv(x) * (self.g * 2.0))
        return F.linear(torch.maximum(h.flatten(1), self.c.abs()), self.w.flip(0))


def test_sums_of_broadcast_tensors_equal_the_model():
    _assert_equals_model(Broadcasts(), 7)


class ConstantsLike(nn.Module):  # zeros_like / ones_like / full_like of a value: constants of its shape
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(18, 2)

    def forward(self, x):
        h = self.conv(x)
        h = torch.minimum(torch.maximum(h, torch.zeros_like(h)), torch.full_like(h, 0.75)) + torch.ones_like(h)
        return self.fc(h.flatten(1))


class FixedMasks(nn.Module):  # a fixed mask (a boolean buffer) in where / masked_fill, constants concatenated
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.register_buffer("keep", torch.tensor([[True, False, True], [True, True, False], [False, True, True]]))
        self.fc = nn.Linear(2 * 9 + 3 + 2, 2)

    def forward(self, x):
        h = self.conv(x)
        g = torch.relu(torch.where(self.keep, h, -0.5 * h))  # per pixel: h or -h/2
        g = g.masked_fill(~self.keep, 0.25)  # masked pixels set to a number
        z = torch.cat([g.flatten(1), h.new_zeros((h.size(0), 3)), h.new_full((h.shape[0], 2), 1.0)], 1)
        return self.fc(torch.relu(z - 0.5))


class RunningMax(nn.Module):  # cummax / cummin along a dimension (their values)
    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(2, 6), nn.Linear(12, 2)

    def forward(self, x):
        h = self.fc(x).view(-1, 2, 3)
        a = torch.cummax(h, 2).values  # along the rows
        b = h.cummin(dim=1)[0]  # down the columns
        return self.out(torch.cat([a.flatten(1), torch.relu(b.flatten(1) + 0.25)], 1))


class Volumetric(nn.Module):  # 3-D layers: a convolution, batch norm, max and average pooling, a transposed conv
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv3d(1, 2, 2, padding=1), nn.BatchNorm3d(2)  # (1, 2, 3, 3) -> (2, 3, 4, 4)
        self.up = nn.ConvTranspose3d(2, 1, 2, stride=(1, 2, 2))  # (2, 1, 2, 2) -> (1, 2, 4, 4)
        self.pad = nn.ReplicationPad3d(1)
        self.fc = nn.Linear(2 * 2 * 2 + 1 * 2 * 4 * 4, 2)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        m = nn.functional.max_pool3d(h, (2, 2, 2), stride=(1, 2, 2))  # (2, 2, 2, 2)
        a = nn.functional.adaptive_avg_pool3d(self.pad(h), 1)  # (2, 1, 1, 1)
        u = torch.relu(self.up(torch.relu(m[:, :, :1] - a)))
        return self.fc(torch.cat([nn.functional.avg_pool3d(m, (2, 1, 1)).flatten(1), u.flatten(1)], 1))


class Gathers(nn.Module):  # gathers by a fixed index (a buffer), triangular bands, diagonals
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.register_buffer("order", torch.tensor([[2, 0, 1], [1, 1, 0], [0, 2, 2]]))
        self.fc = nn.Linear(2 * 9 * 2 + 2 * 3 + 2 * 3 * 3, 2)

    def forward(self, x):
        h = self.conv(x)  # (2, 3, 3)
        g = torch.gather(h, 3, self.order.expand(h.size(0), 2, 3, 3))  # per row, the columns in a fixed order
        t = torch.take_along_dim(torch.relu(h), self.order[None, None], 2)
        u = torch.relu(torch.triu(g, 1) + torch.tril(t))
        d = torch.relu(torch.diagonal(h, dim1=2, dim2=3) - 0.25)  # (2, 3)
        e = torch.diag_embed(torch.relu(d[:, 0] - 0.5)).flatten(1)  # (3 x 3)
        return self.fc(torch.cat([u.flatten(1), torch.relu(g - t).flatten(1), d.flatten(1), e, h[:, 0].flatten(1)], 1))


class LinearAlong(nn.Module):  # running sums, differences, lerp, tensordot and addmm: linear maps
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.end = nn.Parameter(torch.zeros(2, 3, 3, dtype=D))
        self.w = nn.Parameter(torch.zeros(3, 2, dtype=D))
        self.v = nn.Parameter(torch.zeros(12, 2, dtype=D))
        self.c = nn.Parameter(torch.zeros(2, dtype=D))

    def forward(self, x):
        h = torch.relu(torch.cumsum(self.conv(x), 2) - 0.5)  # a running sum down the rows
        g = torch.cat([torch.diff(h, dim=-1), h[..., :1]], -1)  # differences of neighbours, and a column
        h = torch.relu(torch.lerp(g, h, 0.25) - 0.25)  # between two values
        h = torch.lerp(h, self.end, 0.5).cumsum(dim=-1)  # towards a constant
        h = torch.relu(torch.tensordot(h, self.w, dims=1))  # (2, 3, 2)
        return torch.addmm(self.c, h.flatten(1), self.v, beta=0.5, alpha=2.0)


CASES = {  # name: (model, seed, plane input shape or None, bounds)
    "conv_strided": (_conv_strided, 1, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "conv_dilated_groups": (_conv_dilated_groups, 2, (2, 3, 3), (-1.0, 1.0, -1.0, 1.0)),
    "convtranspose_avgpool": (_conv_transpose_avg, 3, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "batchnorm_prelu_adaptive": (_batchnorm_adaptive_prelu, 4, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "conv1d_hardtanh": (_conv1d, 5, (1, 4), (-2.0, 2.0, -2.0, 2.0)),
    "residual": (Residual, 6, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "concat_abs": (Concat, 7, None, (-2.0, 2.0, -2.0, 2.0)),
    "functional_clamp_hardtanh_relu6": (Functional, 8, None, (-2.0, 2.0, -2.0, 2.0)),
    "registered_activation": (_mlp_custom, 9, None, (-2.0, 2.0, -2.0, 2.0)),
    "conv_wide_inf_norm": (_conv_wide, 10, (1, 12, 12), (0.0, 0.1875, 0.0, 0.1875)),
    "select_flip_transpose_stack": (Select, 12, None, (-2.0, 2.0, -2.0, 2.0)),
    "maximum_minimum_amin": (Extremes, 13, None, (-2.0, 2.0, -2.0, 2.0)),
    "groupsort_maxmin_topk": (Sorts, 15, None, (-2.0, 2.0, -2.0, 2.0)),
    "pad_chunk_roll_narrow_repeat_expand": (Parts, 14, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "softshrink_hardsigmoid_rrelu_threshold_nearest": (MoreActivations, 19, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "bilinear_upsampling": (Bilinear, 20, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "scaled_by_constant_tensors": (LayerScale, 22, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "maximum_minimum_of_constants": (ConstantBounds, 25, None, (-2.0, 2.0, -2.0, 2.0)),
    "einsum_by_constants": (EinsumNet, 5, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "broadcast_sums_and_maxima": (Broadcasts, 7, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "weights_made_in_forward": (MadeWeights, 6, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "zeros_ones_full_like": (ConstantsLike, 8, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "cumsum_diff_lerp_tensordot_addmm": (LinearAlong, 9, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "fixed_masks_and_constants_concatenated": (FixedMasks, 10, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "gather_take_along_triu_tril_diagonal": (Gathers, 11, (1, 3, 3), (-1.0, 1.5, -1.0, 1.5)),
    "cummax_cummin": (RunningMax, 12, None, (-2.0, 2.0, -2.0, 2.0)),
    "conv3d_batchnorm3d_pools3d_convtranspose3d": (Volumetric, 13, (1, 2, 3, 3), (-0.25, 0.5, -0.25, 0.5)),
}


def _case(name):
    make, seed, shape, bounds = CASES[name]
    model = dyadic_model(make(), seed)
    plane = None if shape is None else spatial.Plane.through(*dyadic_images(seed, shape))
    return model, plane, bounds


def _activations(name):
    return {Step: ((-1.0, 1.0), (0.0, 0.5, 1.0))} if name == "registered_activation" else None


@pytest.mark.parametrize("name", sorted(CASES))
def test_regions_equal_exact_reference(name):
    model, plane, bounds = _case(name)
    p, ref = assert_graph_matches_exact(model, bounds, plane=plane, activations=_activations(name))
    assert len(ref) > 3  # the case splits the slice


@pytest.mark.parametrize("name", sorted(CASES))
def test_affine_maps_equal_model_at_centroids(name):
    model, plane, bounds = _case(name)
    assert_maps_equal_model(model, bounds, plane=plane)


@pytest.mark.parametrize("device", DEVICES)
def test_device_path_gives_the_same_regions(device):
    """partition(device=...): every operation layer's forward pass of the vertices runs there."""
    for name in sorted(CASES):
        model, plane, bounds = _case(name)
        assert_same_on_device(model, bounds, plane, device)


class MLP(nn.Module):
    """The most common MLP: fc1..fc3 and one activation module used twice."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(2, 6), nn.Linear(6, 5), nn.Linear(5, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


class MLPFunctional(MLP):
    def forward(self, x):
        return self.fc3(torch.relu(F.linear(F.relu(self.fc1(x)), self.fc2.weight, self.fc2.bias)))


@pytest.mark.parametrize("cls", [MLP, MLPFunctional])
def test_subclass_and_functional_forms_equal_their_sequential_twin(cls):
    m = dyadic_model(cls(), 11)
    seq = nn.Sequential(m.fc1, nn.ReLU(), m.fc2, nn.ReLU(), m.fc3).double().eval()
    bounds = (-2.0, 2.0, -2.0, 2.0)
    a = spatial.partition(m, bounds)
    b = spatial.partition(seq, bounds)
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.patterns, b.patterns)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-13)


def test_local_operations_take_the_inf_norm_bound():
    # a conv whose outputs read 9 of 144 inputs: |h|_inf * row sums (tighter), a dense layer: |h|_1 * max
    net = _net.parse(_case("conv_wide_inf_norm")[0], in_shape=(1, 12, 12))
    conv2, fc = net.layers[1], net.layers[2]
    assert conv2.tol_inf() and not fc.tol_inf()
    h = np.abs(np.random.default_rng(0).standard_normal((5, conv2.in_features)))
    np.testing.assert_array_equal(conv2.scale(h), h.max(1))
    # the bound it stands for holds: sum_j |w_kj| |h_j| <= |h|_inf * coef_k
    assert (conv2.bound(h, np.zeros(5)) <= conv2.scale(h)[:, None] * conv2.tol_coef() * (1 + 1e-12)).all()


def test_conv_equals_its_dense_twin():
    # the conv net against the same net written as one dense Linear on the flattened image
    model, plane, bounds = _case("conv_strided")
    conv = model[0]
    eye = torch.eye(9, dtype=D).reshape(9, 1, 3, 3)
    with torch.no_grad():
        cols = conv(eye) - conv.bias.reshape(1, -1, 1, 1)  # (9, 2, 2, 2): the response to each pixel
    dense = nn.Linear(9, 8).double()
    with torch.no_grad():
        dense.weight.copy_(cols.reshape(9, 8).T)
        dense.bias.copy_(conv.bias.repeat_interleave(4))
    twin = nn.Sequential(nn.Flatten(), dense, nn.ReLU(), model[3]).double().eval()
    flat = spatial.Plane(plane.origin.ravel(), plane.basis[0].ravel(), plane.basis[1].ravel())
    a = spatial.partition(model, bounds, plane=plane)
    b = spatial.partition(twin, bounds, plane=flat)
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.patterns, b.patterns)
    np.testing.assert_allclose(np.sort(a.areas()), np.sort(b.areas()), rtol=1e-12)


class Softplus(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return F.softplus(self.fc(x))


class _StepSoftmax(nn.Module):  # read by the graph reader (a registered activation), then a softmax
    def __init__(self):
        super().__init__()
        self.fc, self.act = nn.Linear(2, 3), Step()

    def forward(self, x):
        return torch.softmax(self.act(self.fc(x)), dim=1)


def test_a_network_whose_input_shape_is_unknown_asks_for_a_plane():
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    with pytest.raises(ValueError, match=r"Sequential: the input shape is needed .* pass a plane .*"
                                         r"--through A B C on the command line\) or in_shape="):
        spatial.partition(cnn, (-1, 1, -1, 1))
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert len(spatial.partition(cnn, (0, 1, 0, 1), plane=spatial.Plane.through(*images))) > 1


def test_a_non_piecewise_linear_operation_is_refused_naming_node_and_line():
    with pytest.raises(spatial.UnsupportedLayerError, match=r"softplus.*line \d+ of .*test_graph\.py"):
        spatial.partition(Softplus().double(), (-1.0, 1.0, -1.0, 1.0))
    _mlp_custom()  # registers Step: the graph reader refuses the softmax, saying what to partition instead
    with pytest.raises(spatial.UnsupportedLayerError, match=r"node 'softmax'.* is not piecewise linear; a softmax "
                                                            r"at the output .*partition those"):
        spatial.partition(_StepSoftmax().double(), (-1.0, 1.0, -1.0, 1.0))


class MatmulNet(nn.Module):  # x @ W with a parameter W: a Linear without bias
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=D))

    def forward(self, x):
        return torch.relu(x @ self.w).sum(1, keepdim=True)


def test_matmul_by_a_parameter_equals_its_linear_twin():
    a = MatmulNet()
    b = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 1, bias=False)).double()
    with torch.no_grad():
        b[0].weight.copy_(a.w.T)
        b[2].weight.fill_(1.0)
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    pa, pb = (spatial.partition(m, (-3.0, 3.0, -3.0, 3.0), plane=plane) for m in (a, b))
    assert len(pa) == len(pb) > 3
    np.testing.assert_array_equal(pa.patterns, pb.patterns)


def _where_net(fn):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.a = nn.Linear(3, 5).double()
            self.b = nn.Linear(5, 2).double()
            with torch.no_grad():
                for m in (self.a, self.b):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=D))
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=D))

        def forward(self, x):
            return self.b(fn(self.a(x)))
    return Net()


@pytest.mark.parametrize("written, twin", [
    (lambda h: torch.where(h > 0, h, 0.1 * h), lambda h: F.leaky_relu(h, 0.1)),
    (lambda h: torch.where(h >= 0, h, torch.zeros_like(h)), torch.relu),
    (lambda h: torch.where(h.lt(1.0), 0.5 * h + 0.5, h), lambda h: h - 0.5 * torch.relu(1.0 - h)),
    (lambda h: torch.where(h > 0.1, (h - 0.1) * 3, 0.0), lambda h: 3 * torch.relu(h - 0.1)),  # 3 * 0.1: no float
    (lambda h: torch.where((h > 0).bool(), h, 0.1 * h), lambda h: F.leaky_relu(h, 0.1)),
    # a mask product is torch.where(cond, h, 0)
    (lambda h: h * (h > 0), torch.relu),
    (lambda h: (h >= 0).float() * h, torch.relu),
    (lambda h: h * h.lt(0).to(h.dtype), lambda h: -torch.relu(-h)),
    (lambda h: (0.5 * h) * (h > 0).type_as(h), lambda h: 0.5 * torch.relu(h)),
])
def test_an_activation_written_with_torch_where_equals_its_twin(written, twin):
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    pa, pb = (spatial.partition(_where_net(f), (-3.0, 3.0, -3.0, 3.0), plane=plane) for f in (written, twin))
    assert len(pa) == len(pb) > 3 and pa.verify().ok
    np.testing.assert_allclose(np.sort(pa.vertices, 0), np.sort(pb.vertices, 0), atol=1e-12)
    assert_maps_equal_model(_where_net(written), (-3.0, 3.0, -3.0, 3.0), plane=plane)


@pytest.mark.parametrize("written, match", [
    (lambda h: torch.where(h > 0, h + 1, h), r"not continuous \(1 and 0 at 0\)"),
    (lambda h: torch.where(h > 0, h, torch.relu(h)), r"only torch.where\(h > c, a, b\)"),
    (lambda h: h * (h > 1), r"not continuous \(1 and 0 at 1\)"),
    (lambda h: torch.relu(h) * (h > 0), r"only h \* \(h > c\) with h alpha \* h \+ beta"),
    (lambda h: h * h, "is not piecewise linear"),
])
def test_a_where_that_is_not_a_continuous_activation_is_refused(written, match):
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(_where_net(written), (-3.0, 3.0, -3.0, 3.0), plane=plane)


_CASTS = [lambda h: h.float().double(), lambda h: h.clone(), lambda h: torch.clone(h).detach(),
          lambda h: h.to(torch.float64), lambda h: h.to(dtype=h.dtype), lambda h: h.type_as(h), lambda h: h.cpu(),
          lambda h: h.contiguous().data, lambda h: h.to("cpu", non_blocking=True)]


@pytest.mark.parametrize("export", [False, True])
def test_copies_and_casts_are_the_value_itself(export):
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    twin = spatial.partition(_where_net(torch.relu), (-3.0, 3.0, -3.0, 3.0), plane=plane)
    for i, cast in enumerate(_CASTS):
        model = _where_net(lambda h: torch.relu(cast(h)))
        if export:
            if i == 7:  # (torch.export refuses .data itself)
                continue
            model = torch.export.export(model, (torch.zeros(2, 3, dtype=D),))
        p = spatial.partition(model, (-3.0, 3.0, -3.0, 3.0), plane=plane)
        np.testing.assert_array_equal(p.patterns, twin.patterns)  # (the twin is a chain: its own rounding)
        np.testing.assert_allclose(p.vertices, twin.vertices, atol=1e-12)


@pytest.mark.parametrize("written, twin", [
    (lambda h: torch.relu(h.reshape_as(h.unsqueeze(2)).view_as(h.unsqueeze(1)).flatten(1)), torch.relu),
    (lambda h: torch.relu(h.unsqueeze(1).expand_as(torch.cat([h.unsqueeze(1)] * 3, 1))).sum(1),  # 3 copies
     lambda h: 3 * torch.relu(h)),
])
def test_shapes_taken_from_another_value_equal_their_twin(written, twin):
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    pa, pb = (spatial.partition(_where_net(f), (-3.0, 3.0, -3.0, 3.0), plane=plane) for f in (written, twin))
    assert len(pa) == len(pb) > 3 and pa.verify().ok
    np.testing.assert_allclose(np.sort(pa.vertices, 0), np.sort(pb.vertices, 0), atol=1e-12)


_ARITH_OPTIONS = [lambda h: torch.relu(torch.add(h, 1.0, alpha=2.0)), lambda h: torch.relu(h.sub(0.5, alpha=3.0)),
                  lambda h: torch.relu(torch.add(h, h.flip(1), alpha=-2.0)),
                  lambda h: torch.relu(torch.sub(h, h.flip(1), alpha=0.5)),
                  lambda h: torch.relu(torch.rsub(h, 1.0, alpha=2.0)),
                  lambda h: torch.relu(h.masked_fill(h < 0, 0.0)) + F.prelu(h, torch.tensor([0.25], dtype=D))]


@pytest.mark.parametrize("export", [False, True])
@pytest.mark.parametrize("i", range(len(_ARITH_OPTIONS)))
def test_arithmetic_options_masked_fill_and_prelu_equal_the_model(i, export):
    model = _where_net(_ARITH_OPTIONS[i])  # alpha was ignored before (the maps 0.1-0.4 off the model)
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    p = spatial.partition(torch.export.export(model, (torch.zeros(2, 3, dtype=D),)) if export else model,
                          (-3.0, 3.0, -3.0, 3.0), plane=plane)  # (aten.rsub.Scalar takes alpha by position)
    assert len(p) > 3 and p.verify().ok
    c = p.centroids()
    with torch.no_grad():
        y = model(torch.tensor(plane.lift(c), dtype=D)).numpy()
    maps = p.affine_maps()
    np.testing.assert_allclose(np.einsum("rij,rj->ri", maps[:, :, :2], c) + maps[:, :, 2], y, atol=1e-10)


@pytest.mark.parametrize("fn, match", [
    (lambda h: torch.div(h, 2.0, rounding_mode="floor"), r"rounds \(rounding_mode='floor'\): not piecewise"),
    (lambda h: h.masked_fill(h < 0, 1.0), r"not continuous \(1 and 0 at 0\)"),
])
def test_rounding_and_discontinuous_fills_are_refused(fn, match):
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(_where_net(fn), (-3.0, 3.0, -3.0, 3.0), plane=spatial.Plane.through(*np.eye(3)))


def test_a_cast_that_rounds_is_refused():
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    with pytest.raises(spatial.UnsupportedLayerError, match=r"dtype torch.int64 \(rounding or comparing\): not piecewise"):
        spatial.partition(_where_net(lambda h: torch.relu(h.long().double())), (-3.0, 3.0, -3.0, 3.0), plane=plane)


def test_einsum_of_the_input_and_a_constant_equals_the_model():
    _assert_equals_model(EinsumNet(), 5)


def test_einsum_in_a_torch_export_program_equals_the_module_and_certifies():
    pytest.importorskip("cdd")  # pycddlib (libcdd) may be absent: certify() needs it
    model, plane = _export_equals_module(EinsumNet(), 5)
    assert spatial.partition(model, (-1.0, 1.5, -1.0, 1.5), plane=plane).certify().ok


def test_einsum_by_a_parameter_equals_its_linear_twin():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=D))

        def forward(self, x):
            return torch.relu(torch.einsum("bi,ij->bj", x, self.w)).sum(1, keepdim=True)
    a, b = Net(), MatmulNet()
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    pa, pb = (spatial.partition(m, (-3.0, 3.0, -3.0, 3.0), plane=plane) for m in (a, b))
    assert len(pa) == len(pb) > 3
    np.testing.assert_array_equal(pa.patterns, pb.patterns)
    np.testing.assert_array_equal(pa.vertices, pb.vertices)


def test_a_weight_made_from_a_parameter_in_forward_equals_its_twin():
    # x @ W.t() and einsum(..., W.t()): the constant is torch's own call on the parameter
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.wt = nn.Parameter(MatmulNet().w.detach().T.clone())

        def forward(self, x):
            return torch.relu(x @ self.wt.t()).sum(1, keepdim=True)
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    pa, pb = (spatial.partition(m, (-3.0, 3.0, -3.0, 3.0), plane=plane) for m in (Net(), MatmulNet()))
    assert len(pa) == len(pb) > 3
    np.testing.assert_array_equal(pa.vertices, pb.vertices)


def test_weights_made_from_parameters_in_forward_equal_the_model():
    _assert_equals_model(MadeWeights(), 6)


@pytest.mark.parametrize("make, match", [
    (lambda w: F.dropout(w, 0.5, True), r"'dropout' \(dropout\) is random"),  # DropConnect in training
    (lambda w: w + torch.randn_like(w), r"'randn_like' \(randn_like\) is random"),
    (lambda w: w.mul_(1.0), r"changes 'w', a parameter or buffer of the model, in place"),  # (before any run)
    (lambda w: F.dropout(w, 0.5, False), None),  # in eval: the weight itself
])
def test_a_weight_made_randomly_or_in_place_is_refused(make, match):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(2, 3, dtype=D))

        def forward(self, x):
            return torch.relu(F.linear(x, make(self.w)))
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    if match is None:
        assert len(spatial.partition(Net(), (-1.0, 1.0, -1.0, 1.0), plane=plane)) >= 1
        return
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(Net(), (-1.0, 1.0, -1.0, 1.0), plane=plane)


@pytest.mark.parametrize("eq, shape, match", [
    ("bi,bi->bi", None, "is not piecewise linear"),  # the input times itself
    ("...i,ij->...j", (3, 3), "explicit output"),
    ("bi,bj->bj", (2, 3), "batch index"),  # the constant indexed by the batch (of the example run's 2)
    ("bi,ij->jb", (3, 3), "batch"),
])
def test_einsum_that_is_not_a_map_of_one_sample_by_a_constant_is_refused(eq, shape, match):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(shape or (1,), dtype=D))

        def forward(self, x):
            return torch.relu(torch.einsum(eq, x, x if shape is None else self.w)).flatten(1)[:, :1]
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(Net(), (0.0, 1.0, 0.0, 1.0), plane=plane)


class _Between(nn.Module):
    """A Linear (3 -> 4), then ``f``, then a Linear (``width`` -> 2)."""

    def __init__(self, f, width=4):
        super().__init__()
        self.fc, self.out, self.f = nn.Linear(3, 4), nn.Linear(width, 2), f

    def forward(self, x):
        return self.out(self.f(self.fc(x)))


def _assert_twins(a, b):
    """Two forms of one network (the same parameters, dyadic) have the same partition: vertices,
    patterns and maps."""
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    pa, pb = (spatial.partition(dyadic_model(m, 3), (-3.0, 3.0, -3.0, 3.0), plane=plane) for m in (a, b))
    assert len(pa) == len(pb) > 3
    np.testing.assert_array_equal(pa.patterns, pb.patterns)
    np.testing.assert_array_equal(pa.vertices, pb.vertices)
    np.testing.assert_array_equal(pa.affine_maps(), pb.affine_maps())


def test_a_constant_made_in_forward_with_the_values_dtype_and_device_equals_its_twin():
    # torch.tensor(c, dtype=h.dtype, device=h.device): the dtype and device of the example run's value
    _assert_twins(_Between(lambda h: torch.max(h, torch.tensor(0.25, dtype=h.dtype, device=h.device))
                           - torch.full((4,), 0.5, dtype=h.dtype)),
                  _Between(lambda h: torch.clamp(h, min=0.25) - 0.5))


def test_zeros_of_the_batch_size_concatenated_equal_their_twin():
    # torch.zeros(h.size(0), 2): torch.fx cannot trace it, torch.export can; the constant has the
    # batch dimension of the example run, the same in both samples
    _assert_twins(_Between(lambda h: torch.cat([torch.relu(h), torch.zeros(h.size(0), 2, dtype=h.dtype)], 1), 6),
                  _Between(lambda h: torch.cat([torch.relu(h), torch.zeros_like(h[:, :2])], 1), 6))


@pytest.mark.parametrize("f, width", [(lambda h: torch.stack([h, torch.full_like(h, 0.5)], 1), 8),
                                      (lambda h: torch.stack([h.new_ones(h.shape), h], 2), 8),
                                      (lambda h: torch.cat([torch.zeros_like(h), h, h.new_full(h.shape, -0.25)], 1), 12)])
def test_values_stacked_or_concatenated_with_constants_equal_the_model(f, width):
    # (a stack went to the selection reader, which read a constant's 1.0 as element 1: refused, as
    # "mixing the samples of a batch")
    model = dyadic_model(_Between(lambda h: f(torch.relu(h)).flatten(1) - 0.25, width), 3)
    p = assert_maps_equal_model(model, (-3.0, 3.0, -3.0, 3.0), plane=spatial.Plane.through(*np.eye(3)))
    assert len(p) > 3


@pytest.mark.parametrize("f, match", [
    (lambda s, h: torch.cat([h, h.new_zeros(h.size(0), 2) + s.rows], 1), "differs between the samples of a batch"),
    (lambda s, h: torch.cat([h, s.fmask.expand(2, 3)], 1), None),  # (an expand to the example's 2: one value)
])
def test_constants_that_are_not_fixed_per_sample_are_refused(f, match):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.register_buffer("fmask", torch.tensor([1.0, 0.0, 1.0]))
            self.register_buffer("rows", torch.tensor([[0.0], [1.0]]))

        def forward(self, x):
            return torch.relu(f(self, self.fc(x))).sum(1, keepdim=True)
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    if match is None:
        assert len(spatial.partition(Net(), (0.0, 1.0, 0.0, 1.0), plane=plane)) >= 1
        return
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(Net(), (0.0, 1.0, 0.0, 1.0), plane=plane)


@pytest.mark.parametrize("f", [lambda h: torch.floor(h), lambda h: h.round(), lambda h: torch.sign(h) + h,
                               lambda h: h // 0.5, lambda h: torch.fmod(h, 1.0), lambda h: h.frac()])
def test_steps_and_roundings_are_refused_as_discontinuous(f):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return torch.relu(f(self.fc(x))).sum(1, keepdim=True)
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    with pytest.raises(spatial.UnsupportedLayerError, match=r"is not continuous \(a step or a rounding\)"):
        spatial.partition(Net(), (0.0, 1.0, 0.0, 1.0), plane=plane)


@pytest.mark.parametrize("out, match", [(lambda y, h: (y, h), "not a tuple or list; partition a wrapper module"),
                                        (lambda y, h: {"logits": y}, r"not a dict; .*model\(x\)\['logits'\]")])
def test_a_forward_returning_several_values_is_refused_with_what_to_partition(out, match):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = nn.Linear(3, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = torch.relu(self.fc(x))
            return out(self.out(h), h)
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(Net(), (0.0, 1.0, 0.0, 1.0), plane=spatial.Plane.through(*np.eye(3)))


def test_three_dimensional_layers_in_a_sequential_and_a_torch_export_program_equal_the_model():
    # a volumetric CNN as a Sequential (the chain of 3-D layers), and the graph case as an ATen program
    seq = dyadic_model(nn.Sequential(nn.Conv3d(1, 2, 2), nn.ReLU(), nn.MaxPool3d(2), nn.Flatten(), nn.Linear(2, 2)), 2)
    assert len(assert_maps_equal_model(seq, (0.0, 1.0, 0.0, 1.0),
                                       plane=spatial.Plane.through(*dyadic_images(2, (1, 3, 3, 3))))) > 3
    model = dyadic_model(Volumetric(), 13)
    plane = spatial.Plane.through(*dyadic_images(13, (1, 2, 3, 3)))
    ep = torch.export.export(model, (torch.zeros(2, 1, 2, 3, 3, dtype=D),))  # (aten.conv3d, aten.max_pool3d, ...)
    a, b = (spatial.partition(m, (-1.0, 1.5, -1.0, 1.5), plane=plane) for m in (ep, model))
    assert len(a) == len(b) > 3
    np.testing.assert_array_equal(a.patterns, b.patterns)


def test_an_instance_norm_3d_with_running_statistics_in_a_subclass_equals_the_model():
    # (the chain reader refused InstanceNorm3d as dividing by its input's statistics before the graph
    # reader, which reads it by its running statistics, could look)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.norm = nn.Conv3d(1, 2, 1), nn.InstanceNorm3d(2, track_running_stats=True)
            self.fc = nn.Linear(2 * 2 * 3 * 3, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.norm(self.conv(x))).flatten(1))
    model = dyadic_model(Net(), 5)
    p = assert_maps_equal_model(model, (-1.0, 1.0, -1.0, 1.0), plane=spatial.Plane.through(*dyadic_images(5, (1, 2, 3, 3))))
    assert len(p) > 3


def test_linear_maps_along_a_dimension_equal_the_model():
    _assert_equals_model(LinearAlong(), 9)  # cumsum, diff, lerp, tensordot, addmm


def test_linear_maps_along_a_dimension_in_a_torch_export_program_equal_the_module():
    _export_equals_module(LinearAlong(), 9)  # aten.cumsum, aten.lerp, aten.addmm, and what diff / tensordot become


def test_a_running_sum_equals_its_linear_twin():
    # cumsum(h, 1) is h @ U, U the ones on and above the diagonal; torch.diff(h, n=2) is h @ D
    U = torch.triu(torch.ones(4, 4, dtype=D))
    D2 = torch.tensor([[1, 0], [-2, 1], [1, -2], [0, 1]], dtype=D)
    for f, twin in ((lambda h: torch.cumsum(h, 1), lambda h: h @ U),
                    (lambda h: torch.cat([torch.diff(h, n=2), h[:, :2]], 1), lambda h: torch.cat([h @ D2, h[:, :2]], 1))):
        _assert_twins(*(_Between(lambda h, g=g: torch.relu(g(torch.relu(h))) - 0.5) for g in (f, twin)))


@pytest.mark.parametrize("f, match", [
    (lambda s, h: torch.cumsum(h, 0), "along the batch dimension"),
    (lambda s, h: torch.cumsum(h, 1, dtype=torch.int64), "rounds: it is not piecewise linear"),
    (lambda s, h: torch.diff(h, prepend=h[:, :1]), r"prepend= or append= is not supported; concatenate first"),
    (lambda s, h: torch.diff(h, n=3, dim=1), "diff's n must be a number from 0 to"),
    (lambda s, h: torch.lerp(h, -h, h.sigmoid()), "is not piecewise linear"),
    (lambda s, h: torch.lerp(h, -h, h.abs()), "a lerp whose weight depends on the input"),
    (lambda s, h: torch.tensordot(h, s.w[:2], dims=([0], [0])), "batch"),  # (of the example run's 2)
    (lambda s, h: torch.tensordot(s.w, h, dims=([0], [1])), "batch"),
    (lambda s, h: torch.addmm(h, h, s.w), r"only addmm\(c, x, W\) of the input x with constants"),
    (lambda s, h: torch.cummax(h, 0).values, "a cummax along a dimension of one sample"),
    (lambda s, h: h[:, torch.cummax(h, 1).indices[0]], r"only the values of x.cummax\(dim\)"),
])
def test_linear_maps_that_are_not_maps_of_one_sample_are_refused(f, match):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.w = nn.Linear(3, 3), nn.Parameter(torch.ones(3, 3, dtype=D))

        def forward(self, x):
            return torch.relu(f(self, self.fc(x))).sum(1, keepdim=True)
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 3)))
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(Net().double(), (0.0, 1.0, 0.0, 1.0), plane=plane)


def test_an_input_of_the_wrong_shape_names_the_module_and_torchs_reason(capsys):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(5, 1))
    plane = spatial.Plane.through(*np.random.default_rng(0).random((3, 1, 6, 6)))
    with pytest.raises(ValueError, match=r"does not accept inputs of shape \(1, 6, 6\) at module '3' "
                                         r"\(RuntimeError: mat1 and mat2 shapes cannot be multiplied"):
        spatial.partition(model, (0.0, 1.0, 0.0, 1.0), plane=plane)
    assert "Traceback" not in capsys.readouterr().err  # torch's ShapeProp prints one; not shown


class ExportNet(nn.Module):  # conv, batch norm, a skip, leaky ReLU, adaptive pooling, clamp, scaling
    def __init__(self):
        super().__init__()
        self.c1, self.bn, self.c2 = nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Conv2d(2, 1, 3, padding=1)
        self.pool, self.fc = nn.MaxPool2d(2), nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.c1(x)))
        h = F.leaky_relu(x + self.c2(h), 0.25)
        return self.fc(F.adaptive_avg_pool2d(self.pool(h), 2).flatten(1).clamp(min=0.0) * 2.0)


def test_a_torch_export_program_equals_its_module():
    model = dyadic_model(ExportNet(), 11)
    plane = spatial.Plane.through(*dyadic_images(11, (1, 8, 8)))
    ep = torch.export.export(model, (torch.zeros(2, 1, 8, 8, dtype=D),))
    a = spatial.partition(ep, (-1.0, 1.0, -1.0, 1.0), plane=plane)  # ATen calls: aten.conv2d, aten.batch_norm, ...
    b = spatial.partition(model, (-1.0, 1.0, -1.0, 1.0), plane=plane)
    assert len(a) == len(b) > 3
    np.testing.assert_array_equal(a.patterns, b.patterns)
    assert a.verify().ok


@pytest.mark.parametrize("name", ["conv_strided", "residual", "batchnorm_prelu_adaptive", "registered_activation",
                                  "concat_abs", "pad_chunk_roll_narrow_repeat_expand", "maximum_minimum_amin",
                                  "bilinear_upsampling", "scaled_by_constant_tensors",
                                  "cumsum_diff_lerp_tensordot_addmm", "fixed_masks_and_constants_concatenated",
                                  "gather_take_along_triu_tril_diagonal"])
def test_certify_on_operation_layers(name):
    pytest.importorskip("cdd")  # pycddlib (libcdd) may be absent: certify() needs it
    # cdd's exact vertices of each region's H-representation (maps composed by ExactNet) are the engine's
    model, plane, bounds = _case(name)
    if name == "registered_activation":
        _mlp_custom()  # registers the activation
    p = spatial.partition(model, bounds, plane=plane)
    rep = p.certify()
    assert rep.ok and rep.regions > 3 and rep.max_deviation < 1e-12
    v = p.indices[p.offsets[1]]  # a corner of region 1, moved: certify must see it
    p.vertices[v] += 1e-6
    assert not p.certify(regions=[1], raise_on_error=False).ok


def test_reading_a_graph_imports_no_compiler_stack():
    # tracing records each node's line with the traceback module and shapes with a plain
    # interpreter: torch's own stack recording and ShapeProp import torch._dynamo, inductor and
    # sympy, a second of a fresh process's first partition
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from splinescope import spatial\n"
            "L = torch.nn\n"
            "net = L.Sequential(L.Conv2d(1, 2, 2), L.ReLU(), L.MaxPool2d(2), L.Flatten(), L.Linear(2, 1))\n"
            "p = spatial.partition(net, (0, 1, 0, 1), plane=spatial.Plane.through(*torch.rand(3, 1, 3, 3)))\n"
            "print(len(p), sorted(m for m in ('sympy', 'torch._dynamo', 'torch._inductor') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    n, mods = out.stdout.split(" ", 1)
    assert int(n) >= 1 and mods.strip() == "[]"


def test_a_stage_keeps_no_values_of_its_call_once_it_returns():
    # the stage program's nested functions refer to each other; a reference cycle kept each
    # call's input and intermediate values alive until the garbage collector ran (hundreds of MB
    # over one transition of the digits CNN)
    import gc
    import weakref
    net = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8, 1)).double()
    layers = _net.parse(net, in_shape=(1, 5, 5)).layers
    enabled = gc.isenabled()
    gc.disable()
    try:
        for layer in layers[1:]:
            for call in (layer.rows, layer.bound):
                H = np.random.default_rng(0).uniform(0, 1, (7, layer.in_features))
                ref = weakref.ref(H)
                assert call(H).shape == (7, layer.width)
                del H
                assert ref() is None, f"{call.__name__} of {layer.names} keeps its input alive"
    finally:
        if enabled:
            gc.enable()


class Halves(nn.Module):  # a slice bound read from the input's size; the values of x.min(dim) and x.max(dim)
    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(2, 6), nn.Linear(5, 2)

    def forward(self, x):
        h = self.fc(x)
        k = h.shape[1] // 2
        a = h.view(-1, 3, 2)
        return self.out(torch.cat([F.relu(h[:, :k]), a.min(2)[0][:, :1], a.max(2).values[:, 1:2]], 1))


class HalvesTwin(Halves):
    def forward(self, x):
        h = self.fc(x)
        a = h.view(-1, 3, 2)
        return self.out(torch.cat([F.relu(h[:, :3]), a.amin(2)[:, :1], a.amax(2)[:, 1:2]], 1))


def test_sizes_read_from_the_input_and_values_of_min_and_max_equal_their_constant_twin():
    a, b = dyadic_model(Halves(), 15), dyadic_model(HalvesTwin(), 15)
    pa, pb = spatial.partition(a, (-2.0, 2.0, -2.0, 2.0)), spatial.partition(b, (-2.0, 2.0, -2.0, 2.0))
    assert len(pa) == len(pb) > 3
    np.testing.assert_array_equal(pa.patterns, pb.patterns)
    np.testing.assert_array_equal(pa.vertices, pb.vertices)


class ExportSelect(nn.Module):  # selections as ATen calls: slice, flip, permute, constant_pad_nd, split, maximum
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 2), nn.Linear(12, 2)

    def forward(self, x):
        h = F.pad(torch.relu(self.conv(x)), (0, 1), value=0.25)  # (2, 2, 3)
        a, b = h.split(1, 1)
        m = torch.maximum(a, b.flip(3)).permute(0, 1, 3, 2)
        return self.fc(torch.cat([m.flatten(1), h[:, :, 1:, ::2].flatten(1), h[:, 1, 0]], 1)[:, :12])


def _export_equals_module(model, seed):
    """The partition of ``torch.export`` of a 1x3x3-input model (ATen calls) equals the module's
    (patterns and count) and verifies; returns the model and plane."""
    model = dyadic_model(model, seed)
    plane = spatial.Plane.through(*dyadic_images(seed, (1, 3, 3)))
    ep = torch.export.export(model, (torch.zeros(2, 1, 3, 3, dtype=D),))
    a = spatial.partition(ep, (-1.0, 1.5, -1.0, 1.5), plane=plane)
    b = spatial.partition(model, (-1.0, 1.5, -1.0, 1.5), plane=plane)
    assert len(a) == len(b) > 3
    np.testing.assert_array_equal(a.patterns, b.patterns)
    assert a.verify().ok
    return model, plane


def test_selections_in_a_torch_export_program_equal_the_module():
    model, plane = _export_equals_module(ExportSelect(), 16)  # aten.slice, aten.constant_pad_nd, ...
    assert_graph_matches_exact(model, (-1.0, 1.5, -1.0, 1.5), plane=plane)


class _Swap(nn.Module):  # swaps the batch with a feature dimension of the same size
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 6)

    def forward(self, x):
        return self.fc(x).view(-1, 2, 3).permute(1, 0, 2).reshape(-1, 6).relu()


class _Broadcast(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 6)

    def forward(self, x):
        h = self.fc(x)
        return torch.maximum(h.view(-1, 2, 3), h[:, :3])  # (2, 3) and (3,): another rank


class _Indices(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 6)

    def forward(self, x):
        return self.fc(x).view(-1, 3, 2).max(2)[1].double()


class _PerSampleConstant(nn.Module):  # a constant with a batch dimension of 2 (the traced batch's size)
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 6)
        self.register_buffer("c", torch.ones(2, 6, dtype=D))

    def forward(self, x):
        return self.fc(x) * self.c


class _BatchShapedConstant(nn.Module):  # torch.ones(h.shape): the traced batch's size baked in
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 6)

    def forward(self, x):
        h = self.fc(x)
        return h + torch.ones(h.shape, dtype=D)


@pytest.mark.parametrize("model, match", [(_Swap, "mixes the samples of a batch"),
                                          (_PerSampleConstant, r"a constant of shape \(2, 6\) has a dimension more than one sample's value"),
                                          (_BatchShapedConstant, r"\(a batch dimension of its own, as torch.ones"),
                                          (_Broadcast, r"broadcasts \(2, 3\) and \(3,\)"),
                                          (_Indices, r"only the values of x.max\(dim\)")])
def test_a_selection_that_is_not_a_map_of_one_sample_is_refused(model, match):
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(model().double(), (-1.0, 1.0, -1.0, 1.0))


class _Windows(nn.Module):  # sliding windows (Tensor.unfold), im2col with zero padding (F.unfold), a stack of one
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 2), nn.Linear(42, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))  # (2, 2, 2)
        a = h.unfold(3, 2, 1).flatten(1)  # 8
        b = F.unfold(h - 0.5, 2, padding=1).flatten(1)  # 8 x 9 = 72: the first 32
        return self.fc(torch.cat([a, torch.stack([b[:, :32]], 2).flatten(1), h[:, 0, 0]], 1))


def _assert_equals_model(model, seed):
    """A 1x3x3-input model with dyadic weights on a plane through dyadic images: a partition that
    verifies, each region's map the model's forward pass at its centroid, and at least the patterns
    of dense sampling (a lower bound; for layers the exact reference does not read)."""
    from _exact_graph import sampled_patterns
    model = dyadic_model(model, seed)
    plane = spatial.Plane.through(*dyadic_images(seed, (1, 3, 3)))
    p = spatial.partition(model, (-1.0, 1.5, -1.0, 1.5), plane=plane)
    assert len(p) > 3 and p.verify().ok
    assert_maps_equal_model(model, (-1.0, 1.5, -1.0, 1.5), plane=plane)
    assert len(p) >= sampled_patterns(model, (-1.0, 1.5, -1.0, 1.5), plane=plane, n=200)


class _SameConv(nn.Module):  # padding='same' as a function, with an even kernel (one more zero on the right)
    def __init__(self):
        super().__init__()
        self.c, self.c2, self.fc = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 2, padding="same"), nn.Linear(36, 2)

    def forward(self, x):
        h = torch.relu(F.conv2d(x, self.c.weight, self.c.bias, padding="same"))
        return self.fc(torch.cat([h.flatten(1), torch.relu(self.c2(h)).flatten(1)], 1))


@pytest.mark.parametrize("make", [
    lambda mode: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode=mode), nn.ReLU(), nn.Flatten(),
                               nn.Linear(18, 2)),
    lambda mode: nn.Sequential(nn.Conv2d(1, 2, 2, padding="same", padding_mode=mode), nn.ReLU(),
                               nn.Conv2d(2, 1, 3, padding="valid"), nn.ReLU(), nn.Flatten(), nn.Linear(1, 2)),
])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_convolutions_with_other_padding_modes_equal_the_model(make, mode):
    # the padding is a selection of the input's elements, then a convolution without padding
    _assert_equals_model(make(mode), 17)


def test_same_padding_as_a_function_equals_the_model():
    _assert_equals_model(_SameConv(), 23)


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.ZeroPad2d((1, 0, 0, 1)), nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2)),
    lambda: nn.Sequential(nn.Conv2d(1, 4, 2), nn.ReLU(), nn.ConstantPad2d(1, 0.5), nn.PixelShuffle(2),
                          nn.ReflectionPad2d(1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(25, 2)),
    lambda: nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Unfold(2, padding=1), nn.Flatten(), nn.Linear(72, 2)),
    lambda: _Windows(),
    lambda: nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Upsample(scale_factor=2), nn.ReplicationPad2d((0, 1, 1, 0)),
                          nn.ChannelShuffle(2), nn.Conv2d(2, 1, 2), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)),
])
def test_selection_modules_equal_the_model(make):
    # padding, pixel and channel shuffles, nearest upsampling: selections of elements (and a constant)
    _assert_equals_model(make(), 18)


class _Antialiased(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", antialias=True)


@pytest.mark.parametrize("layer, match", [
    (nn.Hardshrink(), r"Hardshrink\).* is piecewise linear but not continuous"),
    (nn.Threshold(0.5, 0.0), r"not continuous \(x > 0.5 else 0 jumps at 0.5\)"),
    (nn.RReLU().train(), r"RReLU\).* is in training mode"),
    (_Antialiased(), r"interpolation mode 'bilinear' is not supported \(nearest, .*, without antialias\)"),
])
def test_activations_that_are_not_continuous_or_fixed_are_refused(layer, match):
    model = nn.Sequential(nn.Conv2d(1, 1, 2), layer, nn.Flatten(), nn.LazyLinear(1)).double()
    model(torch.zeros(1, 1, 3, 3, dtype=D))
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(model, (-1.0, 1.0, -1.0, 1.0), plane=spatial.Plane.through(*dyadic_images(0, (1, 3, 3))))


class _Bicubic(nn.Module):  # bicubic weights are negative too (the rounding bound reads their sizes); area is a mean
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 2), nn.Linear(50, 2)

    def forward(self, x):
        h = torch.relu(nn.functional.interpolate(self.conv(x), scale_factor=2, mode="bicubic"))  # (2, 4, 4)
        return self.fc(torch.cat([h.flatten(1), F.interpolate(h, size=3, mode="area").flatten(1)], 1))


def test_bicubic_and_area_interpolation_equal_the_model():
    _assert_equals_model(_Bicubic(), 21)


class ExportMore(nn.Module):  # the ATen forms of interpolation, the new activations, maxima and constant tensors
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 2), nn.Linear(88, 2)
        self.gamma = nn.Parameter(torch.ones(2, 1, 1))

    def forward(self, x):
        h = self.conv(x) * self.gamma
        a = F.interpolate(torch.relu(h), scale_factor=2, mode="bilinear")
        b = torch.relu(F.interpolate(h, scale_factor=2, mode="nearest"))
        c = torch.maximum(F.hardsigmoid(h), F.softshrink(h, 0.25))
        d = torch.minimum(h, h.flip(2)).amin(3)
        e, f = F.rrelu(h, 0.25, 0.75, training=False), F.threshold(h, 0.25, 0.25)
        return self.fc(torch.cat([v.flatten(1) for v in (a, b, c, d, e)] + [f.flatten(1)[:, :4]], 1))


class ExportModules(nn.Module):  # modules whose ATen calls return (values, indices) or are transposed / eval-only
    def __init__(self):
        super().__init__()
        self.conv, self.up = nn.Conv2d(1, 2, 2), nn.ConvTranspose2d(2, 2, 2)
        self.norm, self.drop = nn.InstanceNorm2d(2, affine=True, track_running_stats=True), nn.Dropout2d(0.5)
        self.amax, self.fc = nn.AdaptiveMaxPool2d(1), nn.Linear(10, 2)

    def forward(self, x):
        h = torch.relu(self.norm(self.up(torch.relu(self.conv(x)))))  # aten.conv_transpose2d, aten.instance_norm
        p = F.max_pool2d(self.drop(h), 2, stride=1, return_indices=True)[0]  # aten.feature_dropout, with indices
        return self.fc(torch.cat([p.flatten(1), self.amax(h).flatten(1)], 1))  # aten.adaptive_max_pool2d: a pair


def test_modules_in_a_torch_export_program_equal_the_module():
    model, plane = _export_equals_module(ExportModules(), 21)
    assert_maps_equal_model(model, (-1.0, 1.5, -1.0, 1.5), plane=plane)


@pytest.mark.parametrize("layer, shape", [(nn.LayerNorm(4), (1, 4)), (nn.GroupNorm(2, 4), (4, 1)),
                                          (nn.InstanceNorm1d(2), (2, 2))])
def test_a_normalization_by_its_own_statistics_is_refused_as_such(layer, shape):
    model = nn.Sequential(nn.Linear(2, 4), nn.Unflatten(1, shape), layer, nn.Flatten(), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(spatial.UnsupportedLayerError, match="not piecewise linear: it divides by statistics of its own"):
        spatial.partition(model.eval(), (-1.0, 1.0, -1.0, 1.0))


def test_the_new_operations_in_a_torch_export_program_equal_the_module():
    model, plane = _export_equals_module(ExportMore(), 3)  # aten.upsample_bilinear2d, aten.rrelu, ...
    assert_maps_equal_model(model, (-1.0, 1.5, -1.0, 1.5), plane=plane)


def test_sorts_in_a_torch_export_program_equal_the_module():
    model = dyadic_model(Sorts(), 15)
    ep = torch.export.export(model, (torch.zeros(2, 2, dtype=D),))  # aten.sort, aten.topk, unused indices
    a, b = (spatial.partition(m, (-2.0, 2.0, -2.0, 2.0)) for m in (ep, model))
    assert len(a) == len(b) > 3
    np.testing.assert_array_equal(a.patterns, b.patterns)


@pytest.mark.parametrize("fn, match", [
    (lambda h: h.sort(1)[1].to(h.dtype), r"only the values of x.sort\(\) are supported"),
    (lambda h: h + h.topk(1, 1).indices.to(h.dtype), r"only the values of x.topk\(\)"),
    (lambda h: torch.sort(h, 0).values, "over the batch dimension"),
    (lambda h: h - h.topk(2, 1, sorted=False).values.sum(1, keepdim=True), r"topk\(sorted=False\)"),
])
def test_a_sort_that_is_not_its_values_in_one_sample_is_refused(fn, match):
    with pytest.raises(spatial.UnsupportedLayerError, match=match):
        spatial.partition(_where_net(fn), (-3.0, 3.0, -3.0, 3.0), plane=spatial.Plane.through(*np.eye(3)))


def test_a_selection_must_not_combine_elements():
    from splinescope.spatial import _graph
    base = _graph._Node("input", [], (2,), "x")
    out = torch.tensor([[1.0, 1.5], [3.0, 3.5]], dtype=D)  # an average of elements 1 and 2 is no selection
    with pytest.raises(_graph._Refuse, match="combines elements"):
        _graph._Reader.selection("f", base, out, (2,), "f")
    g = _graph._Reader.selection("f", base, torch.tensor([[2.0, 0.0], [4.0, 0.0]], dtype=D), (2,), "f")
    assert g.op.index.tolist() == [1, -1]  # element 2, then a zero the operation made


class _BasicBlock(nn.Module):  # torchvision's ResNet block as written there: in-place add, a downsampling branch
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class _TinyResNet(nn.Module):  # the ResNet-18 layout, small: 7x7/2 stem, max pool 3/2/1, two stages, global pool
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, 4, 7, 2, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(_BasicBlock(4, 4))
        self.layer2 = nn.Sequential(_BasicBlock(4, 8, 2, nn.Sequential(nn.Conv2d(4, 8, 1, 2, bias=False),
                                                                        nn.BatchNorm2d(8))))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(8, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_a_resnet_written_as_torchvision_writes_it_equals_the_model():
    from _exact_graph import sampled_patterns
    model = dyadic_model(_TinyResNet(), 24)
    plane = spatial.Plane.through(*dyadic_images(24, (3, 8, 8)))
    bounds = (0.0, 0.25, 0.0, 0.25)
    p = spatial.partition(model, bounds, plane=plane)
    assert len(p) > 20 and p.verify().ok
    assert_maps_equal_model(model, bounds, plane=plane)
    assert len(p) >= sampled_patterns(model, bounds, plane=plane, n=150)


def test_a_clamp_between_constant_tensors_equals_the_model():
    # max(x, lo) then min(., hi), each a ReLU of every element against its own constant; at least as
    # many regions as patterns of (h > lo, h > hi) on a dense grid (the exact reference clamps by numbers)
    model = dyadic_model(ConstantBounds(clamp=True), 25)
    p = spatial.partition(model, (-2.0, 2.0, -2.0, 2.0))
    assert len(p) > 10 and p.verify().ok
    assert_maps_equal_model(model, (-2.0, 2.0, -2.0, 2.0))
    g = np.linspace(-2.0, 2.0, 301)
    with torch.no_grad():
        h = model.fc(torch.tensor(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2))).numpy()
    lo, hi = model.lo.numpy(), model.hi.numpy()
    assert len(p) >= len(np.unique(np.concatenate([h > lo, h > hi], 1), axis=0))


def test_reading_a_model_in_training_mode_leaves_its_state_and_the_random_stream_as_they_were():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.bn, self.drop, self.fc = nn.Conv2d(1, 2, 2), nn.BatchNorm2d(2), nn.Dropout(0.5), nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.drop(torch.relu(self.bn(self.c(x)))).flatten(1))
    model = Net().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with pytest.raises(spatial.UnsupportedLayerError, match="is in training mode"):  # (after the example run)
        spatial.partition(model, (-1.0, 1.0, -1.0, 1.0), plane=spatial.Plane.through(*dyadic_images(1, (1, 3, 3))))
    assert torch.equal(torch.rand(3), expected)
    for k, v in model.state_dict().items():  # (the example run updated the running statistics)
        assert torch.equal(v, state[k]), k
