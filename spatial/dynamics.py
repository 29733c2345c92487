"""Representations across training: layer-wise CKA between checkpoints, and linear probes.

After Sharon and Dar (2024): for each layer (named by its module), the representation of a fixed
set of inputs at checkpoint ``i`` is compared with the one at checkpoint ``j`` by linear CKA,
giving a checkpoint x checkpoint matrix per layer (:func:`cka_matrices`). A linear probe per layer
per checkpoint (:func:`fit_probe`) composed with the network up to its layer
(:func:`probe_model`) is a piecewise-linear classifier, so how much two probes' decision regions
agree on a slice is exact (:func:`probe_agreement`, through :func:`spatial.agreement.agreement`).

Representations are read with forward hooks on the model's activation modules (``ReLU``,
``LeakyReLU``, ``PReLU``; or any modules named in ``layers=``), so any ``torch.nn.Module`` works
for CKA; probes and their agreement need a ``torch.nn.Sequential`` (the composed model is a
prefix of it).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

__all__ = ["activation_layers", "cka_matrices", "fit_probe", "probe_agreement", "probe_model",
           "representations"]

_ACTIVATIONS = (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.PReLU)


def activation_layers(model: torch.nn.Module) -> List[str]:
    """Names of the model's activation modules, in order (the default layers)."""
    return [n for n, m in model.named_modules() if isinstance(m, _ACTIVATIONS)]


def representations(model: torch.nn.Module, x: torch.Tensor, layers: Optional[Sequence[str]] = None,
                    *, batch: int = 4096) -> Dict[str, torch.Tensor]:
    """{layer name: (n, p) float64 outputs of that module} for the inputs ``x`` (eval mode, no grad).

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    >>> {k: tuple(v.shape) for k, v in representations(net, torch.zeros(5, 2)).items()}
    {'1': (5, 3)}
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = list(layers) if layers is not None else activation_layers(model)
    mods = dict(model.named_modules())
    missing = [n for n in names if n not in mods]
    if missing:
        raise ValueError(f"the model has no module named {missing[0]!r}; its modules: "
                         f"{', '.join(repr(n) for n in list(mods)[1:12])}{' ...' if len(mods) > 12 else ''}")
    if not names:
        raise ValueError("the model has no activation module (ReLU, LeakyReLU, PReLU); pass layers=[...]")
    out: Dict[str, List[torch.Tensor]] = {n: [] for n in names}
    hooks = []
    for n in names:
        def hook(_m, _i, o, n=n):
            out[n].append(o.detach().reshape(len(o), -1).to(torch.float64))
        hooks.append(mods[n].register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        p = next(iter(model.parameters()), None)
        dtype = p.dtype if p is not None else torch.float32
        device = p.device if p is not None else torch.device("cpu")
        x = torch.as_tensor(x)
        with torch.no_grad():
            for k, s in enumerate(range(0, len(x), batch)):
                model(x[s: s + batch].to(device, dtype))
                for n in names:
                    if len(out[n]) != k + 1:
                        raise ValueError(f"module {n!r} ran {len(out[n]) - k} times in one forward pass (a "
                                         "reused module has no single representation); pass layers= naming "
                                         "modules that run once")
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return {n: torch.cat(v) for n, v in out.items()}


def _centred(X: torch.Tensor) -> torch.Tensor:
    return X - X.mean(0, keepdim=True)


def _gram_cka(feats: Sequence[torch.Tensor], debiased: bool) -> np.ndarray:
    """(T, T) CKA between every pair of the feature sets ``feats`` (each (n, p), the same n
    examples), in example space: one Gram matrix per set (:func:`spatial.cka.gram_terms`) and an
    elementwise product per pair (:func:`spatial.cka.gram_hsic`). nan where a self-similarity is
    not positive, as :func:`spatial.cka.cka`."""
    from .cka import _check_n, gram_hsic, gram_terms

    n = feats[0].shape[0]
    _check_n(n, debiased)
    terms = [gram_terms(f, debiased) for f in feats]
    T = len(feats)
    H = np.empty((T, T))
    for i in range(T):
        for j in range(i, T):
            H[i, j] = H[j, i] = float(gram_hsic(terms[i], terms[j], n, debiased))
    d = np.diag(H).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        M = H / np.sqrt(np.outer(d, d))
    np.fill_diagonal(M, 1.0)
    bad = ~(d > 0)
    M[bad, :] = M[:, bad] = np.nan
    return M


def cka_matrices(models: Sequence[torch.nn.Module], x: torch.Tensor, layers: Optional[Sequence[str]] = None,
                 *, debiased: bool = False) -> Dict[str, np.ndarray]:
    """{layer: (T, T) CKA between the layer's representation at checkpoint i and at checkpoint j}.

    ``models`` are the checkpoints (modules of one architecture), ``x`` the inputs they all see.
    With at most as many features ``p`` as examples ``n``, linear CKA is computed from the
    column-centred features once per checkpoint and one product ``Xc_i^T Xc_j`` per pair, and the
    debiased form by :func:`spatial.cka.cka` per pair (feature space, ``p x p``). With more features
    than examples (a convolution's channels times positions) both are computed in example space
    (:func:`_gram_cka`): one ``n x n`` Gram matrix per checkpoint and an elementwise product per pair
    (8,192 features of 400 images: the feature-space products took 11 s and 1.2 GB for 4 checkpoints,
    55 s and 2.7 GB debiased).

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> nets = [torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU()) for _ in range(2)]
    >>> M = cka_matrices(nets, torch.randn(50, 2))["1"]
    >>> M.shape, float(M[0, 0]), bool(M[0, 1] == M[1, 0])
    ((2, 2), 1.0, True)
    """
    models = list(models)
    if not models:
        raise ValueError("no checkpoints given")
    reps = [representations(m, x, layers) for m in models]
    names = list(reps[0])
    T = len(models)
    out = {}
    for name in names:
        feats = [r[name] for r in reps]
        if feats[0].shape[1] > feats[0].shape[0]:
            out[name] = _gram_cka(feats, debiased)
            continue
        M = np.ones((T, T))
        if debiased:
            from .cka import cka
            for i in range(T):
                for j in range(i + 1, T):
                    M[i, j] = M[j, i] = float(cka(feats[i], feats[j], debiased=True))
        else:
            C = [_centred(f) for f in feats]
            self_norm = [torch.linalg.matrix_norm(c.T @ c) for c in C]
            for i in range(T):
                for j in range(i + 1, T):
                    num = torch.linalg.matrix_norm(C[i].T @ C[j]) ** 2
                    M[i, j] = M[j, i] = float(num / (self_norm[i] * self_norm[j]))
            for i in range(T):
                if not float(self_norm[i]) > 0:
                    M[i, :] = M[:, i] = np.nan
        out[name] = M
    return out


def fit_probe(features: torch.Tensor, labels: torch.Tensor, *, l2: float = 1e-4, steps: int = 100,
              classes: Optional[int] = None) -> torch.nn.Linear:
    """A linear probe (multinomial logistic regression, float64, L-BFGS) of ``labels`` from ``features``.

    Deterministic (no random initialisation: it starts at zero). Returns a float64
    ``torch.nn.Linear(p, classes)``.

    Examples
    --------
    >>> X = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]], dtype=torch.float64); y = torch.tensor([0, 0, 1, 1])
    >>> probe = fit_probe(X, y)
    >>> probe(X).argmax(1).tolist()
    [0, 0, 1, 1]
    """
    X = torch.as_tensor(features).to(torch.float64)
    y = torch.as_tensor(labels).long()
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(f"features must be (n, p) and labels (n,), got {tuple(X.shape)} and {tuple(y.shape)}")
    K = int(classes) if classes is not None else int(y.max()) + 1
    if K < 2:
        raise ValueError("a probe needs at least 2 classes")
    mu, sd = X.mean(0), X.std(0).clamp_min(1e-12)
    Xs = (X - mu) / sd
    W = torch.zeros(K, X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(K, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(Xs @ W.T + b, y) + l2 * (W ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    probe = torch.nn.Linear(X.shape[1], K).to(torch.float64)
    with torch.no_grad():  # undo the standardisation: W (x - mu) / sd + b
        probe.weight.copy_(W / sd)
        probe.bias.copy_(b - (W / sd) @ mu)
    return probe


def probe_model(model: torch.nn.Sequential, layer: str, probe: torch.nn.Module) -> torch.nn.Sequential:
    """The Sequential prefix of ``model`` up to and including module ``layer``, then a ``Flatten``
    (the probe reads the layer's output flattened, as :func:`representations` gives it: a
    convolution's channels and positions), then ``probe``."""
    if not isinstance(model, torch.nn.Sequential):
        raise TypeError(f"probe_model needs a torch.nn.Sequential, got {type(model).__name__}")
    names = [n for n, _ in model.named_children()]
    if layer not in names:
        raise ValueError(f"{layer!r} is not a top-level module of the Sequential (its modules: {', '.join(names)})")
    k = names.index(layer)
    return torch.nn.Sequential(*list(model.children())[: k + 1], torch.nn.Flatten(),
                               probe.to(next(model.parameters()).dtype))


def probe_agreement(models: Sequence[torch.nn.Sequential], x: torch.Tensor, y: torch.Tensor, bounds,
                    *, plane=None, layers: Optional[Sequence[str]] = None, reference: int = -1,
                    grid: int = 0, client=None, max_memory: Optional[int] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """Per layer, how much each checkpoint's probe agrees with the ``reference`` checkpoint's.

    A probe is fitted per layer per checkpoint on the representations of ``(x, y)``; the
    agreement of the two probes' decision regions (each composed with its checkpoint's network
    up to the layer) on the slice is exact; with ``grid > 0`` the ``grid x grid`` sampled estimate
    is returned beside it. Returns ``{layer: {"exact": (T,), "grid": (T,)}}``. ``client``: a
    ``dask.distributed.Client`` whose workers compute the agreements, one task each (the same
    numbers; ``spatial.sweep.dask_client`` makes one). ``max_memory``: each exact agreement's
    budget in bytes (:func:`~splinescope.spatial.agreement`: the joint partition in tiles).
    """
    from .agreement import agreement

    models = list(models)
    if not models:
        raise ValueError("no checkpoints given")
    names = list(layers) if layers is not None else activation_layers(models[0])
    K = int(torch.as_tensor(y).max()) + 1
    composed: Dict[str, List[torch.nn.Sequential]] = {n: [] for n in names}
    for m in models:
        reps = representations(m, x, names)
        for n in names:
            composed[n].append(probe_model(m, n, fit_probe(reps[n], y, classes=K)))
    kinds = ["exact", "grid"] if grid else ["exact"]  # agreement's methods
    jobs = [(n, kind, i) for n in names for kind in kinds for i in range(len(models))
            if composed[n][i] is not composed[n][reference]]  # (with itself: 1, not computed)
    args = [(composed[n][i], composed[n][reference], bounds) for n, kind, i in jobs]
    budget = [max_memory if kind == "exact" else None for _, kind, _ in jobs]  # (the grid runs in chunks)
    if client is None:
        values = [agreement(*a, plane=plane, method=kind, grid=grid or 1, max_memory=mm)
                  for a, (_, kind, _), mm in zip(args, jobs, budget)]
    else:
        values = client.gather([client.submit(agreement, *a, plane=plane, method=kind, grid=grid or 1, max_memory=mm,
                                              pure=False) for a, (_, kind, _), mm in zip(args, jobs, budget)])
    out = {n: {kind: np.ones(len(models)) for kind in kinds} for n in names}
    for (n, kind, i), v in zip(jobs, values):
        out[n][kind][i] = v
    return out
