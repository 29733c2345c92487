"""splinescope.spatial: the exact geometry of piecewise-linear networks, and estimators.

Partition
---------
partition(model, bounds, *, plane=None, exact=True, max_memory=None)
                                          every linear region of a network on a 2-D slice
                                          (in tiles, stitched, within max_memory bytes; client=: tiles on Dask)
count_regions(model, bounds, *, plane, max_memory, client)   the number of regions, in tiles, without
                                          keeping the partition (tens of millions of regions)
Partition                                 its result: regions, patterns, boundary, checks (verify, certify),
                                          sub-resolution regions (subresolution, exact_polygon)
Plane(origin, u, v), Plane.through(a, b, c)   a 2-D slice of a high-dimensional input space
register_activation(module_type, breakpoints=(...), slopes=(...))   a user's own continuous
                                          piecewise-linear activation module, read exactly

Local complexity
----------------
local_complexity(model, x, radius, frame|dim, seed, *, center, normalize, layers)
                                          per-layer count of neurons switching in the cross-polytope x +- r v_p
LocalComplexity(model, radius, ...)       the same, accumulated: a torchmetrics.Metric (update / compute /
                                          reset / sync / merge_state; per_layer=False for one number;
                                          layer_names); loaded on first use (torchmetrics imports matplotlib)
random_frame(dim, in_features, seed)      a random orthonormal frame from its own generator

Adversarial robustness
----------------------
robust_accuracy(model, X, y, eps, *, norm="linf"|"l2", steps, step_size, restarts, clip, seed, batch_size)
                                          fraction of points a PGD attack of radius eps leaves correct, at one
                                          radius (0-d) or several ((R,) float64); exact on affine models

Representation similarity and layer imbalance
---------------------------------------------
spatial.cka.cka(X, Y, *, debiased=False)  linear CKA of (n, p1), (n, p2) features in feature space, a 0-d float64 tensor
spatial.cka.CKA(debiased=False)           the same over minibatches, exact (a torchmetrics.Metric: update / compute /
                                          merge / sync); not re-exported: torchmetrics imports matplotlib and scipy
layer_imbalance(model, *, matrices=False) ||W_{i+1}^T W_{i+1} - W_i W_i^T||_F over consecutive Linear layers
spatial.imbalance.train_deep_linear(depth, width, *, steps, lr, ...) -> DeepLinearRun   GD/SGD on a deep linear net
agreement(model_a, model_b, bounds, *, plane=None, method="exact"|"grid")
                                          fraction of a slice where two classifiers give the same class
spatial.dynamics                          representations (hooks), cka_matrices across checkpoints,
                                          fit_probe, probe_model, probe_agreement

Models, checkpoints and data
----------------------------
load_model(path, arch=None, *, prefix=None, trust=False)
load_checkpoints(path, arch=None, *, glob=None, prefix=None, trust=False)   lazy, in training order
spatial.checkpoints.list_checkpoints(...)  the records (path, step, where the step came from)
spatial.runs          the run folder: step_000123.pt, arch.json, data.npz (X, y, X_test, y_test)
spatial.sweep.sweep(run_dir, out, *, slices, lc, workers|scheduler)   partition statistics (and LC) of every
                      checkpoint and slice into one table, in-process or on Dask, resumable
spatial.train         toy training runner (train, ToyRun + train_toy: the configuration of `splinescope train`)
spatial.data (2-D toys, digits, digits_split), spatial.idx (IDX files), spatial.lc_run (LC over a run),
spatial.migration (region migration statistics)

Errors
------
SplinescopeError, UnsupportedLayerError, VerificationError, MissingDependencyError, CheckpointError,
NonFiniteWeightsError

Conventions
-----------
Slice coordinates are (s, t): a 2-input network's own inputs, or ``x = origin + s u + t v`` on a
plane. Bounds are ``(xmin, xmax, ymin, ymax)`` in those coordinates. A partition is arrays:
``vertices`` (V, 2) float64; regions as CSR (``offsets`` (R+1,), ``indices`` (E,)), each polygon
counter-clockwise; activation patterns packed with ``np.packbits`` (bit set: pre-activation > 0),
neurons in layer order; per-region affine maps (R, K, 3) with ``out = A[:, :, :2] @ (s, t) + A[:, :, 2]``;
the decision boundary as segments (S, 2, 2).

``data=`` (and ``test=``) are points in slice coordinates: an (N, 2) array or tensor, or a pair
``(X, y)`` of (N, 2) points and (N,) labels (``y`` may be None). A 2-tuple is read as a pair only
when its first element is 2-D, so ``((0.1, 0.2), (0.3, 0.4))`` is two points (``_validate.points``,
everywhere ``data=`` is taken). A wrong type raises TypeError, a wrong value ValueError; an unknown
option answers "'x' is not a valid <what>, must be one of 'a', 'b'".

No module here imports matplotlib (spatial.cka and spatial._lc_metric do, through
torchmetrics, so the package imports them only when ``CKA`` or ``LocalComplexity`` is first used:
``spatial.LocalComplexity`` is resolved lazily).
"""
from .agreement import agreement
from ._graph import register_activation
from ._errors import (CheckpointError, MissingDependencyError, NonFiniteWeightsError, SplinescopeError,
                      UnsupportedLayerError, VerificationError)
from ._partition import CertifyReport, Partition, VerifyReport, count_regions, partition
from ._plane import Plane
from .checkpoints import load_checkpoints, load_model
from .imbalance import layer_imbalance
from .local_complexity import local_complexity, random_frame
from .robust import robust_accuracy

_LAZY = {"LocalComplexity": "._lc_metric"}  # names whose modules import torchmetrics (and matplotlib)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CertifyReport",
    "CheckpointError",
    "LocalComplexity",
    "MissingDependencyError",
    "NonFiniteWeightsError",
    "Partition",
    "Plane",
    "SplinescopeError",
    "UnsupportedLayerError",
    "VerificationError",
    "VerifyReport",
    "agreement",
    "count_regions",
    "layer_imbalance",
    "load_checkpoints",
    "load_model",
    "local_complexity",
    "partition",
    "random_frame",
    "register_activation",
    "robust_accuracy",
]
