"""Tests of spatial.robust: exact against the closed form on linear models, bounds on trained MLPs
(clean accuracy, a one-step attack written here, ART's PGD), reproducibility, state, errors."""

import numpy as np
import pytest
import torch

from common import DEVICES
from splinescope.spatial.data import digits_split, moons
from splinescope.spatial.robust import _robust_points, robust_accuracy

torch.set_num_threads(1)
F = torch.nn.functional


# ---------------------------------------------------------------------- linear models, closed form

def linear(W, b):
    """A float64 Linear with weight ``W`` (K, D) and bias ``b`` (K,)."""
    W = np.asarray(W, dtype=np.float64)
    net = torch.nn.Linear(W.shape[1], W.shape[0]).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor(W, dtype=torch.float64))
        net.bias.copy_(torch.tensor(b, dtype=torch.float64))
    return net


def worst_margins(W, b, X, y, eps, norm, box=None):
    """(N,) exact worst-case margin over the ball (l-inf: intersected with ``box``), numpy float64.

    One logit: ``sign(y) (w.x + b)`` falls by ``eps ||w||_*``. Several: the adversary picks one rival
    ``c``; ``(w_y - w_c).x + (b_y - b_c)`` falls by ``eps ||w_y - w_c||_*`` (l1 for l-inf, l2 for l2),
    or with a box by ``sum_i max(g_i (x_i - low_i), g_i (x_i - high_i))``."""
    W, b, X = np.asarray(W, float), np.asarray(b, float), np.asarray(X, float)
    if len(W) == 1:
        s = 2.0 * y - 1
        G = (s[:, None] * W[0])[:, None, :]  # (N, 1, D)
        d = (s * (X @ W[0] + b[0]))[:, None]  # (N, 1)
    else:
        G = W[y][:, None, :] - W[None]  # (N, K, D): gradients of d_c = z_y - z_c
        d = (X @ W.T + b)[np.arange(len(X)), y][:, None] - (X @ W.T + b)
    if box is None:
        fall = eps * (np.abs(G).sum(2) if norm == "linf" else np.linalg.norm(G, axis=2))
    else:
        low, high = np.maximum(X - eps, box[0])[:, None], np.minimum(X + eps, box[1])[:, None]
        fall = np.maximum(G * (X[:, None] - low), G * (X[:, None] - high)).sum(2)
    worst = d - fall
    if len(W) > 1:
        worst[np.arange(len(X)), y] = np.inf
    return worst.min(1)


def linear_case(K, D, N=300, seed=0, box=None):
    """A random linear model and points; labels mostly its own class, some wrong on purpose."""
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(max(K, 1), D)), rng.normal(size=max(K, 1)) * 0.3
    X = rng.uniform(0, 1, (N, D)) if box else rng.normal(size=(N, D))
    z = X @ W.T + b
    y = (z[:, 0] > 0).astype(np.int64) if K == 1 else z.argmax(1)
    flip = rng.random(N) < 0.1
    y[flip] = rng.integers(0, max(K, 2), flip.sum())
    return W, b, X, y


RADII = [0.0, 0.01, 0.03, 0.1, 0.3]


def check_exact(W, b, X, y, norm, box=None, device="cpu", restarts=1):
    """Per point and per radius, PGD's verdict is the closed form's; no point sits within 1e-6 of
    its threshold (they are dropped first). The model on ``device``; the points given on the CPU."""
    worst = np.stack([worst_margins(W, b, X, y, e, norm, box) for e in RADII])  # (R, N)
    keep = (np.abs(worst) > 1e-6).all(0)
    X, y, worst = X[keep], y[keep], worst[:, keep]
    assert keep.mean() > 0.95
    net = linear(W, b).to(device)
    got = _robust_points(net, torch.tensor(X), torch.tensor(y), RADII, norm=norm, clip=box, restarts=restarts)
    assert got.device.type == device and np.array_equal(got.cpu().numpy(), worst > 0)
    acc = robust_accuracy(net, torch.tensor(X), torch.tensor(y), RADII, norm=norm, clip=box, restarts=restarts)
    np.testing.assert_allclose(acc.cpu().numpy(), (worst > 0).mean(1), rtol=1e-15, atol=0)  # a GPU mean: last bit
    assert 0 < acc[-1] < acc[1] < acc[0] < 1  # the radii cover robust, broken and wrong points


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_one_logit_linear_model_is_exact(norm):
    check_exact(*linear_case(1, 6, seed=1), norm)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_two_logit_linear_model_is_exact(norm):
    check_exact(*linear_case(2, 6, seed=2), norm)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_several_classes_linear_model_is_exact(norm):
    check_exact(*linear_case(5, 8, seed=3), norm)


def test_clipped_linf_linear_model_is_exact():
    """With clip binding, the worst point is a vertex of the ball cut by the box."""
    W, b, X, y = linear_case(4, 6, seed=4, box=(0.0, 1.0))
    check_exact(W, b, X, y, "linf", box=(0.0, 1.0))
    # the box binds: without it the closed form differs
    assert not np.array_equal(worst_margins(W, b, X, y, 0.3, "linf") > 0,
                              worst_margins(W, b, X, y, 0.3, "linf", (0.0, 1.0)) > 0)


@pytest.mark.parametrize("device", DEVICES)
def test_a_linear_model_on_a_device_is_exact(device):
    """The model on ``device`` (the points moved there, the random starts drawn on the CPU and
    moved there): the closed form, as on the CPU, with and without the box."""
    for K, D, seed, norm, box in ((1, 6, 1, "l2", None), (5, 8, 3, "linf", None), (5, 8, 3, "l2", None),
                                  (4, 6, 4, "linf", (0.0, 1.0))):
        check_exact(*linear_case(K, D, seed=seed, box=box), norm, box=box, device=device, restarts=3)


def naive_margin_pgd(net, x, y, eps, steps=10):
    """Untargeted CW PGD: the rival is the largest other logit at the current point."""
    xa = x.clone()
    for _ in range(steps):
        xa.requires_grad_(True)
        z = net(xa)
        other = z.clone()
        other[torch.arange(len(y)), y] = -torch.inf
        g, = torch.autograd.grad((other.max(1).values - z[torch.arange(len(y)), y]).sum(), xa)
        xa = torch.min(torch.max(xa.detach() + 2.5 * eps / steps * g.sign(), x - eps), x + eps)
    return (net(xa).argmax(1) == y).double().mean().item()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_worst_rival_is_not_the_nearest(norm):
    """Class 1 is the nearest rival at x but loses its margin slowly; class 2 is far but falls fast."""
    W, b = [[0.0, 0.0], [0.1, 0.0], [-2.0, -2.0]], [0.0, -0.1, -1.0]
    net, x, y = linear(W, b), torch.zeros(1, 2, dtype=torch.float64), torch.tensor([0])
    assert worst_margins(W, b, x.numpy(), y.numpy(), 0.5, norm) < 0
    assert robust_accuracy(net, x, y, [0.0, 0.5], norm=norm).tolist() == [1.0, 0.0]
    if norm == "linf":
        assert naive_margin_pgd(net, x, y, 0.5) == 1.0  # following the nearest rival misses it


# ---------------------------------------------------------------------- trained MLPs

@pytest.fixture(scope="module")
def digits_net():
    """A 64-32-32-10 ReLU MLP trained on 600 digits; 300 test digits (float32, pixels in [0, 1])."""
    Xtr, ytr, Xte, yte = (torch.as_tensor(a) for a in digits_split(600, seed=0))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(net(Xtr), ytr).backward()
        opt.step()
    net.zero_grad(set_to_none=True)
    return net.eval(), Xte[:300], yte[:300]


@pytest.fixture(scope="module")
def moons_net():
    """A 2-16-16-1 ReLU MLP (one logit) trained on 200 moons."""
    X, y = (torch.as_tensor(a) for a in moons(200, noise=0.15, seed=0))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(300):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(net(X)[:, 0], y.float()).backward()
        opt.step()
    net.zero_grad(set_to_none=True)
    return net.eval(), X, y


def clean(net, X, y):
    with torch.no_grad():
        z = net(X)
    pred = (z[:, 0] > 0).long() if z.shape[1] == 1 else z.argmax(1)
    return (pred == y).double().mean().item()


def one_step(net, X, y, eps, norm, clip=None):
    """Accuracy after one full step of radius eps along the loss gradient (FGSM for l-inf, FGM for
    l2): cross-entropy, or BCE of the logit."""
    x = X.clone().requires_grad_(True)
    z = net(x)
    loss = (F.binary_cross_entropy_with_logits(z[:, 0], y.to(z.dtype), reduction="sum") if z.shape[1] == 1
            else F.cross_entropy(z, y, reduction="sum"))
    g, = torch.autograd.grad(loss, x)
    if norm == "linf":
        step = g.sign()
    else:
        step = g / g.flatten(1).norm(dim=1).clamp_min(1e-30).reshape(-1, *[1] * (g.ndim - 1))
    xa = X + eps * step
    if clip is not None:
        xa = xa.clamp(*clip)
    return clean(net, xa.detach(), y)


@pytest.mark.parametrize("case, norm, radii, clip", [
    ("digits", "linf", [0.0, 0.02, 0.05, 0.1, 0.2], (0.0, 1.0)),
    ("digits", "l2", [0.0, 0.25, 0.5, 1.0], (0.0, 1.0)),
    ("moons", "linf", [0.0, 0.02, 0.05, 0.1, 0.3], None),
    ("moons", "l2", [0.0, 0.02, 0.05, 0.1, 0.3], None)])
def test_trained_mlp_bounds(case, norm, radii, clip, digits_net, moons_net):
    """eps = 0 is the clean accuracy; robust accuracy falls with eps and is never above what one
    FGSM / FGM step leaves."""
    net, X, y = digits_net if case == "digits" else moons_net
    acc = robust_accuracy(net, X, y, radii, norm=norm, clip=clip)
    assert acc.dtype == torch.float64 and acc.shape == (len(radii),)
    assert acc[0].item() == clean(net, X, y) > 0.9
    assert (acc[1:] <= acc[:-1]).all() and acc[-1] < acc[0]
    for e, a in zip(radii, acc.tolist()):
        assert a <= one_step(net, X, y, e, norm, clip)
    # radii in any order: the same values, in that order
    assert robust_accuracy(net, X, y, radii[::-1], norm=norm, clip=clip).tolist() == acc.tolist()[::-1]


def test_restarts_seed_and_global_rng(digits_net):
    net, X, y = digits_net
    radii = [0.05, 0.1]
    torch.manual_seed(123)
    np.random.seed(123)
    before, np_before = torch.get_rng_state(), np.random.get_state()[1].copy()
    masks = [_robust_points(net, X, y, radii, restarts=k, seed=5) for k in (1, 3, 6)]
    for a, b in zip(masks, masks[1:]):
        assert not (b & ~a).any()  # more restarts: a subset of the robust points
    assert torch.equal(_robust_points(net, X, y, radii, restarts=3, seed=5), masks[1])
    l2 = [robust_accuracy(net, X, y, 0.5, norm="l2", restarts=4, seed=s) for s in (0, 0, 1)]
    assert torch.equal(l2[0], l2[1])
    assert torch.equal(torch.get_rng_state(), before) and np.array_equal(np.random.get_state()[1], np_before)


def test_model_state_is_left_alone(digits_net):
    net, X, y = digits_net
    model = torch.nn.Sequential(net, torch.nn.Dropout(0.5)).train()
    net[2].eval()  # mixed modes come back as they were
    net[0].weight.requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    try:
        with torch.no_grad():  # the attack takes its own gradients
            acc = robust_accuracy(model, X, y, [0.0, 0.05], clip=(0, 1))
        assert [m.training for m in model.modules()] == modes
        assert [p.requires_grad for p in model.parameters()] == flags
        assert all(p.grad is None for p in model.parameters())
        assert acc.tolist() == robust_accuracy(net, X, y, [0.0, 0.05], clip=(0, 1)).tolist()  # dropout was off
    finally:
        net.eval()
        net[0].weight.requires_grad_(True)


def test_batches_change_nothing_and_the_jacobian_budget(digits_net, monkeypatch):
    # the random starts are drawn for all the points at once (per batch before: a result with
    # restarts depended on batch_size); the default batch keeps the (batch, K, D) Jacobian in budget
    from splinescope.spatial import robust

    net, X, y = digits_net
    kw = dict(restarts=3, seed=2, clip=(0, 1))
    full = _robust_points(net, X, y, [0.05, 0.1], **kw)
    assert torch.equal(_robust_points(net, X, y, [0.05, 0.1], batch_size=29, **kw), full)
    sizes = []
    pgd = robust._pgd
    monkeypatch.setattr(robust, "_pgd", lambda model, x, *a: sizes.append(len(x)) or pgd(model, x, *a))
    monkeypatch.setattr(robust, "JACOBIAN_BYTES", 50 * 10 * 64 * X.element_size())  # 50 points of K=10, D=64
    assert torch.equal(_robust_points(net, X, y, [0.05, 0.1], **kw), full)
    assert 0 < max(sizes) <= 50


def test_batches_shapes_dtypes_and_inputs(digits_net):
    net, X, y = digits_net
    radii = [0.0, 0.05, 0.1]
    acc = robust_accuracy(net, X, y, radii, clip=(0, 1))
    assert robust_accuracy(net, X, y, radii, clip=(0, 1), batch_size=37).tolist() == acc.tolist()
    images = torch.nn.Sequential(torch.nn.Flatten(), net)  # (N, 1, 8, 8) inputs
    assert robust_accuracy(images, X.reshape(-1, 1, 8, 8), y, radii, clip=(0, 1)).tolist() == acc.tolist()
    one = robust_accuracy(net, X.numpy(), y.numpy(), 0.05, clip=(0, 1))  # arrays; one radius: 0-d
    assert one.shape == () and one.dtype == torch.float64 and one.device == X.device and one.item() == acc[1].item()
    assert robust_accuracy(net, X, y, torch.tensor(radii), clip=(0, 1)).tolist() == acc.tolist()
    step = robust_accuracy(net, X, y, 0.05, clip=(0, 1), step_size=2.5 * 0.05 / 10)
    assert step.item() == acc[1].item()
    assert robust_accuracy(net, X, y, 0.05, steps=1, step_size=0.05, clip=(0, 1)) >= acc[1]  # FGSM-like
    double = torch.nn.Sequential(torch.nn.Linear(64, 10)).double()
    assert robust_accuracy(double, X, y, [0.0, 0.01]).dtype == torch.float64  # float32 X moved to float64


def test_art_pgd_agrees():
    """Cross-check with the Adversarial Robustness Toolbox's PGD (cross-entropy): exact on a
    two-logit linear model (CE's gradient points along w_1 - w_0), and weaker than ours on the
    trained digits MLP."""
    pytest.importorskip("art")
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    W, b, X, y = linear_case(2, 6, seed=6)
    worst = np.stack([worst_margins(W, b, X, y, e, "linf") for e in RADII[1:]])
    keep = (np.abs(worst) > 1e-4).all(0)  # ART computes in float32
    X, y, worst = X[keep], y[keep], worst[:, keep]
    net = linear(W, b)
    ours = robust_accuracy(net, torch.tensor(X), torch.tensor(y), RADII[1:]).tolist()
    net32, X32, y = net.float(), X.astype(np.float32), torch.tensor(y)
    clf = PyTorchClassifier(model=net32, loss=torch.nn.CrossEntropyLoss(), input_shape=(6,), nb_classes=2)
    theirs = []
    with torch.no_grad():
        right = net32(torch.tensor(X32)).argmax(1) == y
    for e in RADII[1:]:
        atk = ProjectedGradientDescent(clf, norm=np.inf, eps=e, eps_step=e / 4, max_iter=10, num_random_init=0,
                                       batch_size=len(X), verbose=False)
        xa = torch.tensor(atk.generate(X32))
        with torch.no_grad():
            robust = right & (net32(xa).argmax(1) == y)
        theirs.append(robust.double().mean().item())
    assert ours == theirs == (worst > 0).mean(1).tolist()


@pytest.mark.parametrize("norm, eps", [("linf", [0.05, 0.1]), ("l2", [0.5, 1.0])])
def test_art_pgd_is_not_stronger_on_a_trained_mlp(norm, eps, digits_net):
    pytest.importorskip("art")
    import copy

    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    net, X, y = digits_net
    theirs_net = copy.deepcopy(net)  # ART accumulates parameter gradients
    clf = PyTorchClassifier(model=theirs_net, loss=torch.nn.CrossEntropyLoss(), input_shape=(64,), nb_classes=10,
                            clip_values=(0.0, 1.0))
    ours = robust_accuracy(net, X, y, eps, norm=norm, clip=(0, 1)).tolist()
    for e, a in zip(eps, ours):
        atk = ProjectedGradientDescent(clf, norm=np.inf if norm == "linf" else 2, eps=e, eps_step=e / 4,
                                       max_iter=10, num_random_init=0, batch_size=len(X), verbose=False)
        assert a <= clean(net, torch.tensor(atk.generate(X.numpy())), y)


# ---------------------------------------------------------------------- errors

def _call(**kw):
    net = linear([[1.0, -1.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0, 0.0])
    args = dict(model=net, X=torch.zeros(4, 2, dtype=torch.float64), y=torch.tensor([0, 1, 2, 0]), eps=0.1)
    args.update(kw)
    return robust_accuracy(args.pop("model"), args.pop("X"), args.pop("y"), args.pop("eps"), **args)


@pytest.mark.parametrize("kw, error, match", [
    (dict(model=lambda x: x), TypeError, "model must be a torch.nn.Module, got function"),
    (dict(eps=-0.1), ValueError, r"eps must be finite and >= 0, got -0.1"),
    (dict(eps=float("nan")), ValueError, r"eps must be finite and >= 0, got nan"),
    (dict(eps=[0.1, float("inf")]), ValueError, r"eps must be finite and >= 0, got inf"),
    (dict(eps=[]), ValueError, "eps has no radii"),
    (dict(eps=[[0.1]]), ValueError, r"eps must be a number or a 1-D sequence of radii, got shape \(1, 1\)"),
    (dict(eps="0.1"), TypeError, "eps must be a number or a sequence of numbers, got str"),
    (dict(eps=True), TypeError, "eps must be a number or a sequence of numbers, got bool"),
    (dict(norm="l1"), ValueError, "'l1' is not a valid norm, must be one of 'linf', 'l2'"),
    (dict(steps=0), ValueError, "steps must be a positive int when eps > 0, got 0"),
    (dict(steps=-1), ValueError, "steps must be an int >= 0, got -1"),
    (dict(steps=2.5), TypeError, "steps must be an int >= 0, got 2.5"),
    (dict(step_size=0.0), ValueError, "step_size must be a finite number > 0, got 0.0"),
    (dict(step_size="big"), TypeError, "step_size must be a number or None, got str"),
    (dict(restarts=0), ValueError, "restarts must be a positive int, got 0"),
    (dict(seed=-1), ValueError, "seed must be an int >= 0, got -1"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive int, got 0"),
    (dict(clip=(1.0, 0.0)), ValueError, r"clip must be \(lo, hi\) with lo < hi, got \(1.0, 0.0\)"),
    (dict(clip=(0.0, 0.0)), ValueError, r"clip must be \(lo, hi\) with lo < hi"),
    (dict(clip=0.5), TypeError, r"clip must be None or a pair \(lo, hi\) of numbers, got 0.5"),
    (dict(clip=(0.5, 1.0)), ValueError, r"X has values outside clip=\(0.5, 1.0\)"),
    (dict(X=torch.zeros(2, dtype=torch.float64)), ValueError, r"X of shape \(2,\) is not a batch"),
    (dict(X=torch.zeros(0, 2), y=torch.zeros(0, dtype=torch.int64)), ValueError, "X has no points"),
    (dict(X="abc"), TypeError, "X must be a tensor or array of numbers, got str"),
    (dict(X=torch.full((4, 2), float("nan"))), ValueError, "X has non-finite entries"),
    (dict(y=torch.tensor([0, 1, 2])), ValueError, "X has 4 points but y has 3 labels"),
    (dict(y=torch.tensor([[0, 1, 2, 0]])), ValueError, r"y must be \(N,\) labels, got shape \(1, 4\)"),
    (dict(y=torch.tensor([0.0, 1.0, 2.0, 0.0])), TypeError, "y must be integer class labels, got torch.float32"),
    (dict(y=["a", "b", "c", "d"]), TypeError, "y must be integer class labels, got list"),
    (dict(y=torch.tensor([0, 1, 3, 0])), ValueError,
     r"y has labels outside 0..2 \(the model has 3 outputs: 3 classes\), got 0..3"),
    (dict(y=torch.tensor([0, -1, 1, 0])), ValueError, r"y has labels outside 0..2 .*, got -1..1"),
    (dict(model=torch.nn.Linear(2, 1).double(), y=torch.tensor([0, 1, 2, 0])), ValueError,
     r"y has labels outside 0..1 \(the model has 1 output: 2 classes\), got 0..2"),
    (dict(model=torch.nn.Flatten(0)), ValueError,
     r"the model's output has shape \(8,\) for 4 inputs; expected \(4, K\)"),
])
def test_errors(kw, error, match):
    with pytest.raises(error, match=match):
        _call(**kw)


def test_eps_zero_needs_no_steps():
    assert _call(eps=[0.0, 0.0], steps=0).tolist() == [0.5, 0.5]  # x = 0: every logit 0, argmax 0
