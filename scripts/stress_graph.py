"""Randomized stress test of ``spatial.partition`` on small graph networks against the exact reference.

Each case is a random small torch network of one *family* (``--list``: conv, max / adaptive /
functional pooling, ``amax``, residual, concatenation, PL activations, average pooling, BatchNorm,
strided / grouped / transposed convolutions, selections (padding, chunk, flip, permute, slicing)
with a maximum or minimum of two tensors, a constant-tensor scale with bilinear upsampling, sorts and
topk, running sums, differences, running maxima, lerp, tensordot and addmm, 3-D convolutions and
poolings) with
small dyadic float64 weights made degenerate (coarse or duplicated units, zero rows and biases), a
plane through degenerate images (few values, blocks, shared or mirrored pixels) and a box whose
side or corner may lie on a first-layer line.
Its partition is compared with ``exact_graph_regions`` (``tests/_exact_graph.py``: exact rational
arithmetic, no code shared with the engine) by the checks of ``tests/common.py``: region count
and sorted areas, each exact region's vertex-mean centroid located in its own engine region with
the exact output map, ``Partition.verify()``, and the maps against the model's forward pass.

Usage (from the repository root; one thread)::

    python scripts/stress_graph.py --cases 200 --seed 0 [--seconds 600] [--out results.jsonl]
    python scripts/stress_graph.py --seed 1234 --cases 1 --families two_pools -v   # one case again

Case ``i`` has seed ``K + i`` (``--seed K``) and family ``families[seed % len(families)]``, so
``--seed S --cases 1 --families F`` rebuilds the case reported as seed S of family F. One line is
printed per case that is not a plain pass (``-v``: per case), then a table per family of statuses:

- ``pass``: every check holds.
- ``sliver``: only exact regions of area < 1e-15 along a box side were missed: their float
  vertex-mean centroid rounds into a neighbour, while the engine has a region of the same polygon
  (within 1e-12) and map. A limit of the check, not a bug.
- ``nondyadic``: a check fails, but the first stage (the affine ops before the first
  piecewise-linear op) has constants that are not short dyadic numbers (BatchNorm ``eps=1e-5``,
  average pooling dividing by 6 or 9): the engine rounds that stage in float64 and the reference
  does not, as its docstring says, so both are right for their input.
- ``skip``: the reference raised, or the case ran past ``--timeout``.
- ``FAIL``: anything else, an exception from the engine included: worth a look.

The exit status is 1 when a case is a FAIL, else 0. ``--out FILE`` appends a JSON line per case.
"""
import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from _exact_graph import exact_graph_regions  # noqa: E402
from common import dyadic_images, dyadic_model  # noqa: E402

from splinescope import spatial  # noqa: E402

torch.set_num_threads(1)
D = torch.float64
SLIVER_AREA = 1e-15  # exact regions below this area may be missed by their float centroid
STATUSES = ("pass", "sliver", "nondyadic", "skip", "FAIL")


# ----------------------------------------------------------------------------- families
# Each family maps an rng to (model with uninitialised weights, input shape (C, H, W)).

def _pick(rng, *options):
    return options[int(rng.integers(len(options)))]


class _Net(nn.Module):
    """A network made of functions: ``forward(m, x)`` over the submodules ``mods`` and ``first(m, x)``,
    the input of its first piecewise-linear op (``is_max``: that op is a max)."""

    def __init__(self, forward, first=None, is_max=False, **mods):
        super().__init__()
        self.fwd, self.first, self.is_max = forward, first, is_max
        for name, m in mods.items():
            self.add_module(name, m)

    def forward(self, x):
        return self.fwd(self, x)


def _seq(shape, *mods, out=2):
    """``nn.Sequential(*mods, Flatten, Linear(n, out))`` with n read from a forward pass."""
    body = nn.Sequential(*mods, nn.Flatten()).double()
    with torch.no_grad():
        n = body(torch.zeros((1,) + tuple(shape), dtype=D)).numel()
    return nn.Sequential(*body, nn.Linear(n, out)), shape


def _conv_relu_pool(rng):
    c, hw, co = _pick(rng, 1, 2), _pick(rng, 3, 4), _pick(rng, 1, 2)
    return _seq((c, hw, hw), nn.Conv2d(c, co, 2, padding=_pick(rng, 0, 1)), nn.ReLU(), nn.MaxPool2d(2),
                out=_pick(rng, 1, 2))


def _pool_first(rng):
    c, hw = _pick(rng, 1, 2), _pick(rng, 3, 4)
    return _seq((c, hw, hw), nn.MaxPool2d(2, stride=_pick(rng, 1, 2)), nn.Conv2d(c, _pick(rng, 1, 2), 2, padding=1),
                nn.ReLU())


def _pool_conv(rng):
    c, hw = _pick(rng, 1, 2), _pick(rng, 3, 4)
    return _seq((c, hw, hw), nn.Conv2d(c, 2, 2, padding=1 if hw == 3 else _pick(rng, 0, 1)), nn.ReLU(),
                nn.MaxPool2d(2), nn.Conv2d(2, _pick(rng, 1, 2), 2, padding=1), nn.ReLU())


def _two_pools(rng):
    c, hw = _pick(rng, 1, 2), _pick(rng, 3, 4)
    return _seq((c, hw, hw), nn.Conv2d(c, 2, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2, 2, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2))


def _two_pools_direct(rng):  # a pooling straight after a pooling (no splitting layer between)
    hw = _pick(rng, 3, 4)
    return _seq((1, hw, hw), nn.Conv2d(1, 2, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2, stride=1),
                nn.MaxPool2d(2, stride=_pick(rng, 1, 2)))


def _adaptive_max(rng):
    c, hw = _pick(rng, 1, 2), _pick(rng, 3, 4)
    return _seq((c, hw, hw), nn.Conv2d(c, _pick(rng, 1, 2, 3), 2), _pick(rng, nn.ReLU(), nn.ReLU(), nn.Identity()),
                nn.AdaptiveMaxPool2d(_pick(rng, (1, 1), (2, 2), (2, 1), (1, 2))), out=_pick(rng, 1, 3))


def _pool_variants(rng):  # stride 1, overlapping, padding, dilation, ceil_mode
    hw = _pick(rng, 3, 4)
    conv = nn.Conv2d(1, _pick(rng, 1, 2), 2, padding=_pick(rng, 0, 1))
    pool = nn.MaxPool2d(**_pick(rng, dict(kernel_size=2, stride=1), dict(kernel_size=3, stride=2),
                                dict(kernel_size=2, stride=2, padding=1), dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=2, stride=1, dilation=2), dict(kernel_size=2, ceil_mode=True)))
    act = _pick(rng, nn.ReLU(), nn.LeakyReLU(0.25))
    try:
        return _seq((1, hw, hw), conv, act, pool)
    except RuntimeError:  # the window does not fit the map
        return _seq((1, hw, hw), conv, act, nn.MaxPool2d(2, stride=1))


def _amax(rng):  # a max over the rows or columns of a conv's output, or over groups of a Linear's outputs
    if rng.random() < 0.5:
        hw, dim = _pick(rng, 3, 4), _pick(rng, 2, 3)
        return _Net(lambda m, x: m.fc(torch.relu(m.conv(x).amax(dim=dim)).flatten(1)), lambda m, x: m.conv(x),
                    conv=nn.Conv2d(1, 2, 2), fc=nn.Linear(2 * (hw - 1), 2)), (1, hw, hw)
    g, s = _pick(rng, 1, 2), _pick(rng, 2, 3, 4)
    return _Net(lambda m, x: m.fc2(torch.relu(m.fc1(x.flatten(1)).view(-1, g, s).amax(dim=2))),
                lambda m, x: m.fc1(x.flatten(1)), True, fc1=nn.Linear(9, g * s), fc2=nn.Linear(g, 2)), (1, 3, 3)


def _residual(rng):  # x = act(x + conv2(act(conv1(x)))), once or twice
    c = _pick(rng, 1, 2)
    blocks, mid, act = _pick(rng, 1, 1, 2) if c == 1 else 1, _pick(rng, 1, 2), _pick(rng, nn.ReLU(), nn.LeakyReLU(0.25))

    def forward(m, x):
        for a, b in zip(m.c1, m.c2):
            x = m.act(x + b(m.act(a(x))))
        return m.fc(x.flatten(1))
    return _Net(forward, lambda m, x: m.c1[0](x), act=act, fc=nn.Linear(c * 9, 2),
                c1=nn.ModuleList([nn.Conv2d(c, mid, 3, padding=1) for _ in range(blocks)]),
                c2=nn.ModuleList([nn.Conv2d(mid, c, 3, padding=1) for _ in range(blocks)])), (c, 3, 3)


def _residual_pool(rng):  # maxpool(relu(x + conv(relu(x)))): the first op is a ReLU of the input
    c = _pick(rng, 1, 2)
    return _Net(lambda m, x: m.fc(F.max_pool2d(torch.relu(x + m.conv(torch.relu(x))), 2).flatten(1)),
                lambda m, x: x, conv=nn.Conv2d(c, c, 3, padding=1), fc=nn.Linear(c * 4, 2)), (c, 4, 4)


def _cat(rng):  # two conv branches concatenated: relu|abs, relu|identity then a max pool, or duplicates
    c, hw, kind = _pick(rng, 1, 2), _pick(rng, 3, 4), _pick(rng, "relu_abs", "pool", "dup")
    cat = {"relu_abs": lambda m, x: torch.cat([F.relu(m.a(x)), torch.abs(m.b(x))], dim=1),
           "pool": lambda m, x: F.max_pool2d(torch.cat([F.relu(m.a(x)), m.b(x)], dim=1), 2, stride=1),
           "dup": lambda m, x: torch.cat([F.relu(m.a(x)), F.relu(m.a(x)), F.leaky_relu(m.b(x), 0.25)], dim=1)}[kind]
    n = (3 if kind == "dup" else 2) * ((hw - 2) ** 2 if kind == "pool" else (hw - 1) ** 2)
    return _Net(lambda m, x: m.fc(cat(m, x).flatten(1)), lambda m, x: torch.cat([m.a(x), m.b(x)], dim=1),
                a=nn.Conv2d(c, 1, 2), b=nn.Conv2d(c, 1, 2), fc=nn.Linear(n, 2)), (c, hw, hw)


def _funcpool_clamp(rng):  # clamp, functional max pooling, adaptive max pooling
    return _Net(lambda m, x: m.fc(F.adaptive_max_pool2d(
        F.max_pool2d(m.conv(x).clamp(min=-0.25, max=0.5), 2, stride=1), 2).flatten(1)), lambda m, x: m.conv(x),
        conv=nn.Conv2d(1, 2, 2, padding=1), fc=nn.Linear(8, 2)), (1, 3, 3)


def _activations(rng):
    c, co = _pick(rng, 1, 2), _pick(rng, 1, 2)
    act = _pick(rng, nn.LeakyReLU(_pick(rng, 0.25, 0.5, -0.5)), nn.Hardtanh(-0.5, 0.75), nn.ReLU6(),
                _Net(lambda m, x: x.abs()), nn.PReLU(co), nn.PReLU(), nn.Softshrink(0.25), nn.Hardsigmoid(),
                nn.RReLU(0.25, 0.75).eval(), nn.Threshold(-0.25, -0.25))
    if rng.random() < 0.5:
        return _seq((c, 3, 3), nn.Conv2d(c, co, 2), act)
    return nn.Sequential(nn.Conv2d(c, co, 2), act, nn.Flatten(), nn.Linear(co * 4, 3), nn.Hardtanh(-0.25, 0.5),
                         nn.Linear(3, 2)), (c, 3, 3)


def _avgpool(rng):  # a first-stage average pooling with count_include_pad=False divides by 6 and 9
    c = _pick(rng, 1, 2)
    pool = _pick(rng, nn.AvgPool2d(2), nn.AvgPool2d(2, stride=1),
                 nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), nn.AdaptiveAvgPool2d(2))
    conv = nn.Conv2d(c, 2, 2, padding=1)
    if rng.random() < 0.5:
        return _seq((c, 4, 4), pool, conv, nn.ReLU())
    return _seq((c, 4, 4), conv, nn.ReLU(), pool)


def _batchnorm(rng):  # conv, BatchNorm, relu (and a max pool); eps=1e-5 makes the first stage non-dyadic
    c, eps, pool = _pick(rng, 1, 2), 1e-5 if rng.random() < 0.3 else 0.0, rng.random() < 0.5

    def forward(m, x):
        h = torch.relu(m.bn(m.conv(x)))
        return m.fc((F.max_pool2d(h, 2) if pool else h).flatten(1))
    return _Net(forward, lambda m, x: m.bn(m.conv(x)), conv=nn.Conv2d(c, 2, 2), bn=nn.BatchNorm2d(2, eps=eps),
                fc=nn.Linear(2 if pool else 8, 2)), (c, 3, 3)


def _conv_variants(rng):  # stride, dilation, groups, then maybe a stride-1 max pool
    hw = _pick(rng, 3, 4)
    c, conv = _pick(rng, (1, nn.Conv2d(1, 2, 2, stride=2, padding=1)), (1, nn.Conv2d(1, 2, 2, dilation=2, padding=1)),
                    (2, nn.Conv2d(2, 2, 2, groups=2, padding=_pick(rng, 0, 1))),
                    (2, nn.Conv2d(2, 4, 2, groups=2, stride=_pick(rng, 1, 2), dilation=_pick(rng, 1, 2), padding=1)))
    hw = 3 if c == 2 else hw
    pool = [nn.MaxPool2d(2, stride=1)] if rng.random() < 0.4 else []
    return _seq((c, hw, hw), conv, nn.ReLU(), *pool)


def _convtranspose(rng):
    ct = _pick(rng, nn.ConvTranspose2d(1, 1, 2), nn.ConvTranspose2d(1, 2, 2, stride=2, padding=1),
               nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1))
    pool = [nn.MaxPool2d(2)] if rng.random() < 0.5 else []
    return _seq((1, 3, 3), ct, nn.ReLU(), *pool)


class _Scale(nn.Module):
    """``x * t`` by a constant buffer (a LayerScale)."""

    def __init__(self, t):
        super().__init__()
        self.register_buffer("t", t)

    def forward(self, x):
        return x * self.t


def _selections(rng):  # constant padding, chunk, flip, permute, slicing, a maximum / minimum of two tensors
    kind = _pick(rng, "pad_chunk_max", "flip_permute_slice", "min_roll", "scale_bilinear")
    fill = _pick(rng, 0.0, 0.5, -0.25)
    conv = nn.Conv2d(_pick(rng, 1, 2), 2, 2)
    c = conv.in_channels
    if kind == "pad_chunk_max":
        def forward(m, x):
            a, b = F.pad(torch.relu(m.conv(x)), (1, 0, 0, 1), value=fill).chunk(2, 1)
            return m.fc(torch.maximum(a, b).flatten(1))
        return _Net(forward, lambda m, x: m.conv(x), conv=conv, fc=nn.Linear(9, 2)), (c, 3, 3)
    if kind == "flip_permute_slice":
        return _Net(lambda m, x: m.fc(torch.relu(m.conv(x).flip(3).permute(0, 1, 3, 2)[:, :, 1:]).flatten(1)),
                    lambda m, x: m.conv(x), conv=conv, fc=nn.Linear(4, 2)), (c, 3, 3)
    if kind == "scale_bilinear":  # a per-channel constant tensor, then bilinear upsampling (weights 1/16 .. 9/16)
        return _Net(lambda m, x: m.fc(F.interpolate(torch.relu(m.gamma(m.conv(x))), scale_factor=2,
                                                    mode="bilinear").flatten(1)),
                    lambda m, x: m.gamma(m.conv(x)), conv=conv, fc=nn.Linear(32, 2),
                    gamma=_Scale(torch.tensor([[[0.5]], [[-1.25]]], dtype=D))), (c, 3, 3)
    return _Net(lambda m, x: m.fc(torch.relu(torch.minimum(m.conv(x), m.conv(x).roll(1, 3))).flatten(1)),
                lambda m, x: torch.cat([m.conv(x), m.conv(x).roll(1, 3)], 1), True, conv=conv,
                fc=nn.Linear(8, 2)), (c, 3, 3)


def _idioms(rng):  # einsum by a parameter, centring by a broadcast mean, zeros_like / full_like bounds, a weight made in forward
    kind = _pick(rng, "einsum", "centre", "like", "made")
    conv = nn.Conv2d(_pick(rng, 1, 2), 2, 2)
    c = conv.in_channels
    if kind == "einsum":  # channel mixing written as an einsum
        mix = nn.Parameter(torch.tensor(rng.integers(-4, 5, (2, c)) / 4, dtype=D))
        net = _Net(lambda m, x: m.fc(torch.relu(torch.einsum("bchw,dc->bdhw", x, m.mix)).flatten(1)),
                   lambda m, x: torch.einsum("bchw,dc->bdhw", x, m.mix), fc=nn.Linear(18, 2))
        net.mix = mix
        return net, (c, 3, 3)
    if kind == "centre":  # relu(h - h.mean(keepdim)): a sum of tensors whose sizes 1 broadcast
        def forward(m, x):
            h = torch.relu(m.conv(x))
            return m.fc(torch.relu(h - h.mean(dim=(2, 3), keepdim=True)).flatten(1))
        return _Net(forward, lambda m, x: m.conv(x), conv=conv, fc=nn.Linear(8, 2)), (c, 3, 3)
    if kind == "like":  # a clamp written with zeros_like / full_like
        top = _pick(rng, 0.5, 1.0, 0.25)
        def forward(m, x):
            h = m.conv(x)
            return m.fc(torch.minimum(torch.maximum(h, torch.zeros_like(h)), torch.full_like(h, top)).flatten(1))
        return _Net(forward, lambda m, x: m.conv(x), conv=conv, fc=nn.Linear(8, 2)), (c, 3, 3)
    def forward(m, x):  # the last layer's weight made from a parameter: transposed and scaled
        return F.linear(torch.relu(m.conv(x)).flatten(1), m.w.t() * 0.5)
    net = _Net(forward, lambda m, x: m.conv(x), conv=conv)
    net.w = nn.Parameter(torch.tensor(rng.integers(-4, 5, (8, 2)) / 4, dtype=D))
    return net, (c, 3, 3)


def _sorts(rng):  # GroupSort / MaxMin (the values of a sort), topk
    kind = _pick(rng, "groupsort", "maxmin", "topk", "pairs")
    conv = nn.Conv2d(_pick(rng, 1, 2), 2, 2)  # (c, 3, 3) -> (2, 2, 2)
    c = conv.in_channels
    if kind == "groupsort":  # groups of 4 of the 8 values
        fc = nn.Linear(8, 2)
        def forward(m, x):
            return m.fc(m.conv(x).flatten(1).view(-1, 2, 4).sort(-1).values.flatten(1))
    elif kind == "maxmin":  # pairs over the channels, descending
        fc = nn.Linear(8, 2)
        def forward(m, x):
            return m.fc(torch.sort(m.conv(x), dim=1, descending=True)[0].flatten(1))
    elif kind == "topk":
        fc = nn.Linear(3, 2)
        def forward(m, x):
            return m.fc(torch.relu(m.conv(x)).flatten(1).topk(3, dim=1).values)
    else:  # MaxMin over adjacent pairs
        fc = nn.Linear(8, 2)
        def forward(m, x):
            return m.fc(m.conv(x).flatten(1).view(-1, 4, 2).sort(-1).values.flatten(1))
    return _Net(forward, lambda m, x: m.conv(x), is_max=kind != "topk", conv=conv, fc=fc), (c, 3, 3)


def _along(rng):  # running sums and differences of a conv's output, lerp, tensordot, addmm: linear maps
    kind = _pick(rng, "cumsum", "diff", "lerp", "tensordot", "addmm", "cummax")
    conv = nn.Conv2d(_pick(rng, 1, 2), 2, 2)  # (c, 3, 3) -> (2, 2, 2)
    c = conv.in_channels
    w = nn.Parameter(torch.tensor(rng.integers(-4, 5, (2, 2)) / 4, dtype=D))
    dim = int(_pick(rng, 1, 2, 3, -1))
    if kind == "cumsum":
        def forward(m, x):
            return m.fc(torch.relu(torch.cumsum(torch.relu(m.conv(x)), dim) - 0.5).flatten(1))
        fc = nn.Linear(8, 2)
    elif kind == "diff":  # the differences, and the first row along the dimension (the running sum's inverse)
        def forward(m, x):
            h = torch.relu(m.conv(x))
            return m.fc(torch.relu(torch.cat([torch.diff(h, dim=dim), h.narrow(dim, 0, 1)], dim)).flatten(1))
        fc = nn.Linear(8, 2)
    elif kind == "lerp":  # between the conv's output and its ReLU, by a constant tensor
        def forward(m, x):
            h = m.conv(x)
            return m.fc(torch.relu(torch.lerp(h, torch.relu(h), m.w.abs()[:, :1, None] / 2) - 0.25).flatten(1))
        fc = nn.Linear(8, 2)
    elif kind == "cummax":  # a running max (a running min of the negated values)
        def forward(m, x):
            h = m.conv(x)
            return m.fc(torch.cat([torch.cummax(h, dim).values, -torch.cummin(-h, dim)[0]], 1).flatten(1))
        fc = nn.Linear(16, 2)
    elif kind == "tensordot":  # mixing the last dimension
        def forward(m, x):
            return m.fc(torch.relu(torch.tensordot(torch.relu(m.conv(x)), m.w, dims=1)).flatten(1))
        fc = nn.Linear(8, 2)
    else:
        def forward(m, x):
            return torch.addmm(m.w[0], torch.relu(m.conv(x)).flatten(1)[:, :2], m.w, alpha=0.5)
        fc = nn.Identity()
    net = _Net(forward, lambda m, x: m.conv(x), is_max=kind == "cummax", conv=conv, fc=fc)
    net.w = w
    return net, (c, 3, 3)


def _volumetric(rng):  # 3-D convolutions and poolings on a (C, 2, 3, 3) volume
    c = _pick(rng, 1, 2)
    kind = _pick(rng, "maxpool", "avgpool", "adaptive", "batchnorm")
    conv = nn.Conv3d(c, 2, 2, padding=_pick(rng, 0, 1))  # (2, 1, 2, 2) or (2, 3, 4, 4)
    if kind == "maxpool":
        pool = nn.MaxPool3d((1, 2, 2), stride=1)
    elif kind == "avgpool":
        pool = nn.AvgPool3d((1, 2, 2), stride=1)
    elif kind == "adaptive":
        pool = nn.AdaptiveMaxPool3d((1, 1, 1))
    else:
        pool = nn.BatchNorm3d(2)
    mods = [conv, nn.ReLU(), pool] if kind != "batchnorm" else [conv, pool, nn.ReLU()]
    return _seq((c, 2, 3, 3), *mods)


FAMILIES = {
    "conv_relu_pool": _conv_relu_pool, "pool_first": _pool_first, "pool_conv": _pool_conv,
    "two_pools": _two_pools, "two_pools_direct": _two_pools_direct, "adaptive_max": _adaptive_max,
    "pool_variants": _pool_variants, "amax": _amax, "residual": _residual, "residual_pool": _residual_pool,
    "cat": _cat, "activations": _activations, "avgpool": _avgpool, "batchnorm": _batchnorm,
    "conv_variants": _conv_variants, "convtranspose": _convtranspose, "funcpool_clamp": _funcpool_clamp,
    "selections": _selections, "idioms": _idioms, "sorts": _sorts, "along": _along, "volumetric": _volumetric,
}
_AFFINE = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Flatten, nn.Identity, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
           nn.BatchNorm2d, nn.Conv3d, nn.AvgPool3d, nn.BatchNorm3d)


# ----------------------------------------------------------------------------- degenerate cases

@dataclass
class Case:
    """One model, plane and box; ``tags`` name the degeneracies drawn for it."""

    family: str
    seed: int
    model: nn.Module
    plane: spatial.Plane
    bounds: tuple
    tags: list = field(default_factory=list)
    nondyadic: bool = False  # the first stage has constants that are not short dyadic numbers


def _degrade(model, rng, tags):
    """Coarse weights, a duplicated channel or row, a zero row, zero biases, dead first units."""
    mods = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    with torch.no_grad():
        if rng.random() < 0.3:  # weights in {-1/2, 0, 1/2}: many coincident lines
            for p in (p for m in mods for p in (m.weight, m.bias) if p is not None):
                p.copy_(torch.tensor(rng.integers(-1, 2, p.shape) / 2.0, dtype=D))
            tags.append("coarse")
        if rng.random() < 0.35:  # two identical units
            for m in mods:
                if isinstance(m, (nn.Linear, nn.Conv2d)) and getattr(m, "groups", 1) == 1 and m is not mods[-1] \
                        and m.weight.shape[0] >= 2:
                    m.weight[1] = m.weight[0]
                    if m.bias is not None:
                        m.bias[1] = m.bias[0]
                    tags.append("dup_unit")
                    break
        if rng.random() < 0.25:
            m = _pick(rng, *mods)
            i = int(rng.integers(m.weight.shape[0]))
            m.weight[i] = 0
            if m.bias is not None and rng.random() < 0.5:
                m.bias[i] = 0
            tags.append("zero_row")
        if rng.random() < 0.2:  # concurrent lines
            for b in (m.bias for m in mods if m.bias is not None):
                b.zero_()
            tags.append("zero_bias")
        if rng.random() < 0.15 and mods[0].bias is not None:
            mods[0].bias.sub_(0.75)
            tags.append("minus_bias")


def _images(rng, seed, shape, tags):
    """Three dyadic images for ``Plane.through``, drawn to make pixels coincide on the plane."""
    mode = _pick(rng, "random", "few_values", "blocky", "shared", "const_dirs", "symmetric")
    tags.append("img_" + mode)
    H, W = shape[-2:]  # (C, H, W), or (C, D, H, W) for a volume
    if mode == "random":
        return dyadic_images(seed, shape)
    if mode == "few_values":
        return [rng.integers(-1, 2, size=shape) / 2 for _ in range(3)]
    if mode == "blocky":  # 2x2 blocks: max-pool windows of identical candidates
        blocks = [rng.integers(-2, 3, size=tuple(shape[:-2]) + ((H + 1) // 2, (W + 1) // 2)) / 2 for _ in range(3)]
        return [b.repeat(2, -2).repeat(2, -1)[..., :H, :W].copy() for b in blocks]
    if mode == "shared":  # b and c differ from a in one or two pixels
        out = [rng.integers(-4, 5, size=shape) / 4]
        for v in (out[0].copy(), out[0].copy()):
            idx = rng.choice(v.size, size=int(rng.integers(1, 3)), replace=False)
            v.flat[idx] = rng.integers(-4, 5, size=len(idx)) / 4
            out.append(v)
        return out
    if mode == "const_dirs":  # b - a constant: every pixel moves alike along s
        a = rng.integers(-4, 5, size=shape) / 4
        return [a, a + rng.integers(-2, 3) / 2, a + rng.integers(-2, 3, size=shape) / 2]
    imgs = [rng.integers(-4, 5, size=shape) / 4 for _ in range(3)]  # mirror-symmetric: pixels equal in pairs
    return [(x + x[..., ::-1]) / 2 for x in imgs]


def first_lines(model, plane):
    """(N, 3) float64 rows ``(a, b, c)``: the lines ``a s + b t + c = 0`` of the first PL op.

    The pre-activations of the first piecewise-linear op on the plane; for a max, the differences
    of its inputs (all pairs, a superset of the window pairs).
    """
    if isinstance(model, _Net):
        stage, is_max = (lambda x: model.first(model, x)), model.is_max
    else:  # a Sequential: its leading affine modules, then an activation or a max pooling
        n = next(i for i, m in enumerate(model) if not isinstance(m, _AFFINE))
        stage, is_max = model[:n], isinstance(model[n], (nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool3d,
                                                         nn.AdaptiveMaxPool3d))
    x = torch.tensor(plane.lift(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])).reshape((3,) + plane.shape), dtype=D)
    with torch.no_grad():
        z = stage(x).reshape(3, -1).numpy()  # values at (0, 0), (1, 0), (0, 1)
    rows = np.stack([z[1] - z[0], z[2] - z[0], z[0]], 1)
    return (rows[:, None] - rows[None]).reshape(-1, 3) if is_max else rows


def _short_dyadic(x, den=2 ** 20, top=4):
    f = Fraction(float(x))
    return f.denominator <= den and abs(f) <= top


def _bounds(rng, rows, tags):
    """A box: standard, wide or unit, or with a side or corner exactly on a first-stage line, or with
    a side a rounding away from one (sub-resolution slivers along that side)."""
    mode = _pick(rng, "std", "wide", "unit", "side", "side", "corner", "near")
    rows = rows[rng.permutation(len(rows))]
    for a, b, c in rows:
        if mode == "near" and a != 0 and b == 0 and abs(c / a) <= 4 and not _short_dyadic(-c / a, 10 ** 9):
            tags.append("box_near_line")  # -c/a rounded: the box side is within an ulp of the line
            return (-c / a, -c / a + 1.5, -1.0, 1.0)
        if mode == "side" and a != 0 and b == 0 and _short_dyadic(-c / a, 64):
            tags.append("box_side_on_line")
            return _pick(rng, (-c / a, -c / a + 1.5, -1.0, 1.0), (-c / a - 1.5, -c / a, -1.0, 1.0))
        if mode == "side" and b != 0 and a == 0 and _short_dyadic(-c / b, 64):
            tags.append("box_side_on_line")
            return _pick(rng, (-1.0, 1.0, -c / b, -c / b + 1.5), (-1.0, 1.0, -c / b - 1.5, -c / b))
        if mode == "corner" and a != 0 and b != 0:
            for s in (0.0, -0.5, 0.5, -1.0):
                t = float(-(Fraction(a) * Fraction(s) + Fraction(c)) / Fraction(b))
                if _short_dyadic(t, 64):
                    tags.append("box_corner_on_line")
                    xs, ys = sorted([s, s + _pick(rng, -1.5, 1.5)]), sorted([t, t + _pick(rng, -1.5, 1.5)])
                    return (xs[0], xs[1], ys[0], ys[1])
    tags.append("box_" + (mode if mode in ("wide", "unit") else "std"))
    return {"wide": (-2.0, 2.0, -2.0, 2.0), "unit": (0.0, 1.0, 0.0, 1.0)}.get(mode, (-1.0, 1.5, -1.0, 1.5))


def build_case(family, seed):
    """The case of ``family`` and ``seed`` (deterministic in both).

    Parameters
    ----------
    family : str
        One of ``FAMILIES``.
    seed : int
        Seeds the architecture, the weights, the degeneracies, the images and the box.

    Returns
    -------
    Case
    """
    if family not in FAMILIES:
        raise ValueError(f"{family!r} is not a valid family, must be one of {', '.join(map(repr, FAMILIES))}")
    rng = np.random.default_rng([seed, zlib.crc32(family.encode())])
    tags = []
    model, shape = FAMILIES[family](rng)
    model = dyadic_model(model, seed)
    if hasattr(model, "bn"):  # variances 1 or 4: dyadic scales when eps = 0
        model.bn.running_var.copy_(torch.tensor(rng.choice([1.0, 4.0], 2), dtype=D))
    _degrade(model, rng, tags)
    for _ in range(20):
        try:
            plane = spatial.Plane.through(*_images(rng, seed, shape, tags))
            break
        except ValueError:  # the three images are collinear
            tags.pop()
    else:
        plane = spatial.Plane.through(*dyadic_images(seed, shape))
        tags.append("img_random")
    rows = first_lines(model, plane)
    bounds = tuple(float(v) for v in _bounds(rng, rows, tags))
    nondyadic = not all(_short_dyadic(v, top=np.inf) for v in rows.ravel())
    return Case(family, seed, model, plane, bounds, tags + ["nondyadic"] * nondyadic, nondyadic)


# ----------------------------------------------------------------------------- comparison

def _hausdorff(P, Q):
    """The Hausdorff distance between the boundaries of two polygons, (n, 2) and (m, 2) vertices."""
    out = 0.0
    for X, Y in ((P, Q), (Q, P)):
        d = np.roll(Y, -1, axis=0) - Y  # (m, 2) edges
        t = np.clip(((X[:, None] - Y) * d).sum(2) / np.maximum((d * d).sum(1), 1e-300), 0, 1)  # (n, m)
        out = max(out, np.linalg.norm(X[:, None] - (Y + t[..., None] * d), axis=2).min(1).max())
    return out


def compare(p, ref, model, bounds, plane):
    """Compare an engine partition with the exact regions.

    Parameters
    ----------
    p : spatial.Partition
    ref : list of dict
        ``exact_graph_regions(model, bounds, plane=plane)``.
    model, bounds, plane
        What both were computed from.

    Returns
    -------
    problems : list of str
        The failed checks (empty when the partition is right).
    slivers : int
        Exact regions of area < ``SLIVER_AREA`` along a box side that ``locate`` missed although
        the engine has them (same polygon within 1e-12, same map): the known limit of the check.
    """
    problems, size = [], max(bounds[1] - bounds[0], bounds[3] - bounds[2])
    areas = np.array([float(r["area"]) for r in ref])
    if len(p) != len(ref):
        problems.append(f"count {len(p)} != exact {len(ref)}")
    elif not np.allclose(np.sort(p.areas()), np.sort(areas), rtol=1e-12, atol=1e-15):
        problems.append(f"areas differ by up to {np.abs(np.sort(p.areas()) - np.sort(areas)).max():.3g}")
    cen = np.array([[float(sum(xy[k] for xy in r["polygon"]) / len(r["polygon"])) for k in (0, 1)] for r in ref])
    idx, A = p.locate(cen), p.affine_maps()
    maps = [np.vectorize(float)(r["output"]).reshape(A.shape[1:]) for r in ref]
    owner, missed = set(), []
    for j in np.argsort(-areas, kind="stable"):  # the largest exact region claims an engine region first
        k = int(idx[j])
        if k >= 0 and k not in owner and np.allclose(A[k], maps[j], rtol=0, atol=1e-12):
            owner.add(k)
        else:
            missed.append(j)
    polys, tol = p.polygons(), 1e-12 * size
    lo, hi = np.array([Q.min(0) for Q in polys]), np.array([Q.max(0) for Q in polys])
    bad = []
    for j in missed:  # a sliver along a box side that the engine has too is fine
        P = np.array(ref[j]["polygon"], dtype=float)
        near = np.nonzero((lo <= P.max(0) + tol).all(1) & (hi >= P.min(0) - tol).all(1))[0]
        if not (areas[j] < SLIVER_AREA and min(np.abs(P[:, i] - v).max() for i, v in zip((0, 0, 1, 1), bounds)) <= tol
                and any(_hausdorff(P, polys[k]) <= tol and np.allclose(A[k], maps[j], rtol=0, atol=1e-12)
                        for k in near)):
            bad.append(j)
    if bad:
        j = bad[0]
        problems.append(f"{len(bad)} exact region(s) not found by locate(centroid), e.g. area {areas[j]:.3g} "
                        f"at {cen[j].round(6).tolist()} -> engine region {int(idx[j])}")
    report = p.verify(raise_on_error=False)
    if not report.ok:
        problems.append(f"verify: { {k: v for k, v in vars(report).items() if k not in ('regions', 'ok') and v} }")
    c = p.centroids()
    with torch.no_grad():
        y = model(torch.tensor(plane.lift(c).reshape((-1,) + plane.shape), dtype=D)).reshape(len(c), -1).numpy()
    err = np.abs(A[:, :, 0] * c[:, :1] + A[:, :, 1] * c[:, 1:] + A[:, :, 2] - y)
    if not (err <= 1e-10 + 1e-10 * np.abs(y)).all():
        problems.append(f"maps differ from the model's forward pass by up to {err.max():.3g}")
    return problems, len(missed) - len(bad)


class _CaseTimeout(BaseException):  # not an Exception: the engine cannot swallow it
    pass


def _alarm(signum, frame):
    raise _CaseTimeout


def check_case(case, *, engine=None, timeout=0):
    """Run the engine and the reference on one case and classify the outcome.

    Parameters
    ----------
    case : Case
    engine : callable, optional
        ``engine(model, bounds, plane=plane) -> Partition``; default ``spatial.partition``.
    timeout : float
        Seconds before the case is given up as ``skip`` (0: none; Unix, main thread only).

    Returns
    -------
    dict
        ``seed``, ``family``, ``status`` (one of ``STATUSES``), ``problems``, ``slivers``,
        ``regions``, ``tags``, ``bounds`` and timings ``t_engine``, ``t_ref`` (seconds).
    """
    engine, stage, alarm = engine or spatial.partition, "engine", timeout > 0 and hasattr(signal, "SIGALRM")
    alarm = alarm and threading.current_thread() is threading.main_thread()  # (signals need the main thread)
    rec = dict(seed=case.seed, family=case.family, status="FAIL", problems=[], slivers=0, regions=None,
               tags=case.tags, bounds=case.bounds, t_engine=None, t_ref=None)
    if alarm:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        t0 = time.perf_counter()
        p = engine(case.model, case.bounds, plane=case.plane)
        stage, t1 = "reference", time.perf_counter()
        ref = exact_graph_regions(case.model, case.bounds, plane=case.plane)
        stage, t2 = "compare", time.perf_counter()
        rec.update(t_engine=round(t1 - t0, 3), t_ref=round(t2 - t1, 3), regions=len(ref))
        rec["problems"], rec["slivers"] = compare(p, ref, case.model, case.bounds, case.plane)
    except _CaseTimeout:
        rec.update(status="skip", problems=[f"timeout after {timeout:g} s in the {stage}"])
    except Exception as e:  # noqa: BLE001 (from the engine: a failure; from the reference: a skip)
        rec.update(status="skip" if stage == "reference" else "FAIL",
                   problems=[f"{stage} raised {type(e).__name__}: {str(e)[:300]}"])
    else:
        if not rec["problems"]:
            rec["status"] = "sliver" if rec["slivers"] else "pass"
        elif case.nondyadic:
            rec["status"] = "nondyadic"
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return rec


# ----------------------------------------------------------------------------- command line

def summary_table(records):
    """The number of cases of each status, per family and in total."""
    counts = defaultdict(Counter)
    for r in records:
        for key in (r["family"], "total"):
            counts[key][r["status"]] += 1
    rows = [("family", "cases") + STATUSES]
    rows += [(f, sum(counts[f].values()), *(counts[f][s] for s in STATUSES))
             for f in sorted(counts, key=lambda f: (f == "total", f))]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{r[0]:<{width}} " + " ".join(f"{v:>9}" for v in r[1:]) for r in rows)


def main(argv=None):
    """Run the sweep; return the exit status (1 when a case is a FAIL)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="See the module docstring for what the statuses mean.")
    ap.add_argument("--cases", type=int, default=200, help="number of cases (default 200)")
    ap.add_argument("--seconds", type=float, default=None, help="time budget: start no case after it")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first case; case i has seed SEED + i")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated (default: all)")
    ap.add_argument("--list", action="store_true", help="print the family names and exit")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per case before a skip (0: none)")
    ap.add_argument("--out", type=Path, default=None, help="append one JSON line per case to this file")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line for every case")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(FAMILIES))
        return 0
    fams = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in fams or [""]:
        if f not in FAMILIES:
            ap.error(f"{f!r} is not a valid family, must be one of {', '.join(map(repr, FAMILIES))}")
    if args.cases < 1 or (args.seconds is not None and args.seconds <= 0):
        ap.error(f"--cases and --seconds must be positive, got {args.cases} and {args.seconds}")
    records, t_start = [], time.perf_counter()
    with open(args.out, "a") if args.out else contextlib.nullcontext() as out:
        for i in range(args.cases):
            if args.seconds is not None and time.perf_counter() - t_start >= args.seconds:
                print(f"time budget of {args.seconds:g} s spent after {i} cases")
                break
            seed = args.seed + i
            family = fams[seed % len(fams)]
            t0 = time.perf_counter()
            case = build_case(family, seed)
            rec = check_case(case, timeout=args.timeout)
            rec["seconds"] = round(time.perf_counter() - t0, 3)
            records.append(rec)
            if out:
                out.write(json.dumps(rec) + "\n")
                out.flush()
            if rec["status"] != "pass" or args.verbose:
                line = f"{rec['status']:<9} seed={seed} family={family} regions={rec['regions']} "
                line += f"{rec['seconds']:.2f}s  "
                line += "; ".join(rec["problems"]) or (f"{rec['slivers']} sliver(s)" if rec["slivers"] else "")
                if rec["status"] != "pass":
                    line += f"  tags={','.join(case.tags)}"
                if rec["status"] == "FAIL":
                    line += f"\n    repro: python scripts/stress_graph.py --seed {seed} --cases 1 --families {family}"
                print(line.rstrip(), flush=True)
    print(f"\n{len(records)} cases, seeds {args.seed}..{args.seed + len(records) - 1}, "
          f"{time.perf_counter() - t_start:.1f} s")
    print(summary_table(records) if records else "no cases run")
    return int(any(r["status"] == "FAIL" for r in records))


if __name__ == "__main__":
    sys.exit(main())
