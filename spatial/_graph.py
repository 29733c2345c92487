"""Any piecewise-linear module graph, read into the engine's stages.

``compile(model, in_shape)`` traces ``model.forward`` with ``torch.fx`` and reads it into a
:class:`~splinescope.spatial._net.Network` whose layers are *stages*. Convolutions, pooling,
batch norm, reshapes, skip connections (``x + f(x)``), concatenation and constants are affine
(:mod:`._ops`); the piecewise-linear operations split the input space:

* an elementwise activation with breakpoints ``b_1 < ... < b_k`` and slopes ``s_0 .. s_k``
  (ReLU, LeakyReLU, PReLU per channel too, Hardtanh, ReLU6, abs, clamp, and the user's own,
  :func:`register_activation`) becomes ``k`` units per element, one per breakpoint:
  ``sigma(z) = sigma(b_1) + s_1 leaky(z - b_1; s_0/s_1) + sum_{j>=2} (s_j - s_{j-1}) relu(z - b_j)``
  (when ``s_1 = 0`` the first unit is ``-s_0 relu(b_1 - z)``); each unit's zero line is where
  ``z`` crosses its breakpoint, so the regions are those of the activation's pieces;
* a max over windows (MaxPool, AdaptiveMaxPool, ``x.amax(dim)``) becomes a tournament, one stage
  per round: ``max(a, b) = b + relu(a - b)``. A tournament also cuts where the losers of one round
  swap places, so the driver merges the cells that share every region's argmax (``Network.merge``).

Stage ``l`` maps the state after stage ``l - 1`` (the post-activations of its units, then the
values it carries: the outputs still needed later, a skip connection's input, the tournament's
running maxima) to the pre-activations of its own units and the values it carries on. The
engine splits by the first ``units`` columns and carries the others untouched (their
activation is the identity), so every value is affine on every face, and a skip connection
costs its width in columns, never a dense matrix.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F

from . import _ops
from ._rational import Q
from ._errors import NonFiniteWeightsError, UnsupportedLayerError
from ._net import DROPOUT_MODULES, SELECTION_MODULES, SUPPORTED, untouched
from ._trace import _CASTS, _COMPARE

__all__ = ["compile", "register_activation", "registered", "StageOp", "MaxInfo"]

_REGISTRY: Dict[type, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {}

SUPPORTED_GRAPH = SUPPORTED


def register_activation(module_type: type, breakpoints: Sequence[float], slopes: Sequence[float]) -> None:
    """Declare a module type as a continuous piecewise-linear activation, so networks using it are read.

    Parameters
    ----------
    module_type : type
        A ``torch.nn.Module`` subclass applied elementwise.
    breakpoints : sequence of float
        Where the slope changes, increasing.
    slopes : sequence of float
        ``len(breakpoints) + 1`` slopes: left of the first breakpoint, between them, right of the
        last. The value at the first breakpoint is read from the module; the module is checked
        against the pieces when a network using it is read.

    Examples
    --------
    >>> class Abs(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x.abs()
    >>> register_activation(Abs, breakpoints=(0.0,), slopes=(-1.0, 1.0))
    >>> registered(Abs)
    ((0.0,), (-1.0, 1.0))
    """
    if not (isinstance(module_type, type) and issubclass(module_type, torch.nn.Module)):
        raise TypeError(f"module_type must be a torch.nn.Module subclass, got {module_type!r}")
    bp = tuple(float(b) for b in breakpoints)
    sl = tuple(float(s) for s in slopes)
    if not bp:
        raise ValueError("breakpoints must hold at least one breakpoint (an activation without one is affine)")
    if len(sl) != len(bp) + 1:
        raise ValueError(f"slopes must have len(breakpoints) + 1 = {len(bp) + 1} entries (left of the first "
                         f"breakpoint, between, right of the last), got {len(sl)}")
    if not all(math.isfinite(v) for v in bp + sl):
        raise ValueError(f"breakpoints and slopes must be finite, got {bp} and {sl}")
    if any(b2 <= b1 for b1, b2 in zip(bp, bp[1:])):
        raise ValueError(f"breakpoints must be strictly increasing, got {bp}")
    _REGISTRY[module_type] = (bp, sl)


def registered(module_type: type) -> Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]:
    """The (breakpoints, slopes) registered for a module type, or None."""
    for t in type.mro(module_type) if isinstance(module_type, type) else ():
        if t in _REGISTRY:
            return _REGISTRY[t]
    return None


# ---- the graph read from torch.fx


_INDEX = frozenset({"getitem", "permute", "transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "flip",
                    "fliplr", "flipud", "roll", "narrow", "select", "slice", "repeat", "tile", "expand", "pad",
                    "constant_pad_nd", "index_select", "t", "alias", "expand_copy", "slice_copy", "select_copy",
                    "permute_copy", "repeat_interleave", "stack", "unfold", "im2col", "interpolate",
                    "upsample_nearest1d", "upsample_nearest2d", "_upsample_nearest_exact1d",
                    "_upsample_nearest_exact2d", "gather", "take_along_dim", "triu", "tril", "diag_embed",
                    "diagonal"})
"""Operations that only select, move or repeat elements: one gather each (``_Reader.index``)."""
_RESAMPLE_ATEN = frozenset({"upsample_linear1d", "upsample_bilinear2d", "upsample_bicubic2d",
                            "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa"})
"""ATen forms of linear interpolation (``torch.export``): read as :class:`_ops.Resample`."""
_TUPLE = frozenset({"chunk", "split", "split_with_sizes", "unbind", "tensor_split", "hsplit", "vsplit", "dsplit"})
"""Operations that return parts of a tensor (a tuple, indexed after them)."""


def _keeps_shape(where: str, c: np.ndarray, value, shape) -> None:
    """Refuse an elementwise constant ``c`` that would broadcast a sample's ``value`` shape to another
    (or that has a batch dimension of its own)."""
    if c.ndim > len(shape) and c.shape[0] != 1:
        raise _Refuse(2, f"{where}: a constant of shape {c.shape} has a dimension more than one sample's value "
                         f"{tuple(value)} (a batch dimension of its own, as torch.ones(h.shape) makes); only "
                         "constants of one sample's shape are supported (torch.ones_like(h))")
    if tuple(np.broadcast_shapes((1,) + tuple(value), c.shape)[1:]) != tuple(value) or tuple(shape) != tuple(value):
        raise _Refuse(2, f"{where}: a constant of shape {c.shape} would broadcast the value {tuple(value)} to "
                         f"{tuple(shape)}; only constants that keep its shape are supported")


def _element_ids(shape) -> torch.Tensor:
    """(2,) + shape float64: the elements of a batch of two samples numbered from 1 (0 stays free for
    the zeros an operation makes, -1 for a padding marker)."""
    n = int(np.prod(shape, dtype=np.int64))
    return torch.arange(1, 2 * n + 1, dtype=torch.float64).reshape((2,) + tuple(shape))


_UIDS = itertools.count()  # node keys: unlike id(), the same after the compiled stages are pickled


@dataclass
class _Node:
    kind: str  # "input", "affine", "act", "max"
    args: List["_Node"]
    shape: Tuple[int, ...]  # one sample's shape
    label: str
    op: Optional[_ops.Op] = None  # affine
    bp: Optional[np.ndarray] = None  # act: (k,) breakpoints
    slopes: Optional[np.ndarray] = None  # act: (k + 1, numel) slopes per element
    value0: Optional[np.ndarray] = None  # act: (numel,) sigma(b_1) per element
    table: Optional[List[List[int]]] = None  # max: candidates (flat input indices) of each output
    level: int = 0
    end: int = 0
    _cands: Any = None  # max: the candidates of each window (padding dropped), set by _stages
    fn: Any = None  # tuple (chunk, split, unbind): its parts as a function of its input (an index tensor)
    uid: int = field(default_factory=lambda: next(_UIDS), compare=False)  # a key that survives pickling

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class MaxInfo:
    """Where a tournament's units sit among a network's units: for each round (stage, first unit,
    and per unit the (window, left, right) positions it compares), to read back each window's argmax."""

    stages: List[int]
    starts: List[int]
    pairs: List[np.ndarray]  # per round: (units, 2) candidate positions compared (left wins when bit set)
    sizes: np.ndarray  # (out,) candidates per window
    label: str


def _f64(t) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


from ._trace import _Refusal as _Refuse  # noqa: E402 -- one refusal type (rank, message) for both readers


def _pair(v, n: int) -> Tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * n


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_ADAPTIVE_AVG_POOL = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
"""torch's functions of a convolution or an average pooling by its number of spatial dimensions."""


def _nd(name: str) -> int:
    """The spatial dimensions of a layer or call named ``...1d``, ``...2d`` or ``...3d``.

    >>> _nd("Conv3d"), _nd("max_pool2d_with_indices"), _nd("avg_pool1d")
    (3, 2, 1)
    """
    return 3 if "3d" in name else 2 if "2d" in name else 1


def _zeros_like_node(src: "_Node", shape, label) -> "_Node":
    """A node of zeros of the sample shape ``shape``, made from ``src`` (any node: a selection of
    the zero that :class:`_ops.Gather`'s index -1 reads), for a constant to be added to."""
    return _Node("affine", [src], tuple(shape), label,
                 op=_ops.Gather(np.full(int(np.prod(shape, dtype=np.int64)), -1, np.int64), tuple(shape)))


def _pool_table(in_shape, kernel, stride, padding, dilation, ceil_mode, adaptive_out=None):
    """(out_shape, table (out_elems, k) with -1 for padding) of a pooling over the last dims."""
    nd = len(kernel) if adaptive_out is None else len(adaptive_out)
    spatial_in = in_shape[-nd:]
    lead = in_shape[:-nd]
    per_dim = []
    for d in range(nd):
        if adaptive_out is not None:
            per_dim.append(_ops.adaptive_windows(spatial_in[d], adaptive_out[d]))
        else:
            per_dim.append(_ops.windows(spatial_in[d], kernel[d], stride[d], padding[d], dilation[d], ceil_mode))
    out_sp = tuple(len(w) for w in per_dim)
    strides = np.cumprod((1,) + tuple(spatial_in[::-1]))[:-1][::-1]
    lead_n = int(np.prod(lead, dtype=np.int64))
    sp_n = int(np.prod(spatial_in, dtype=np.int64))
    rows: List[List[int]] = []
    import itertools
    for c in range(lead_n):
        for pos in itertools.product(*per_dim):
            cand = []
            for combo in itertools.product(*pos):
                if any(p < 0 for p in combo):
                    cand.append(-1)
                else:
                    cand.append(c * sp_n + int(sum(p * s for p, s in zip(combo, strides))))
            rows.append(cand)
    return tuple(lead) + out_sp, rows


class _Reader:
    """Turns the fx graph into :class:`_Node` s, refusing what cannot be read (named by node and line)."""

    def __init__(self, model: torch.nn.Module, gm: torch.fx.GraphModule, in_shape):
        from . import _trace

        self.model, self.gm, self.in_shape = model, gm, tuple(in_shape)
        self.t = _trace
        self.cls = type(model).__name__
        self._kinds: Dict[Any, str] = {}
        self._nodes: Dict[Any, Any] = {}

    def where(self, node, shown):
        return f"{self.cls}.forward: node {node.name!r} ({shown}){self.t._where(node)}"

    def read(self) -> _Node:
        t = self.t
        nodes: Dict[Any, Any] = {}
        kinds: Dict[Any, str] = {}
        self._kinds = kinds  # (read by const and is_const: a weight may be a constant made in forward)
        self._nodes = nodes  # (read by where_act: the value a condition compares)
        refusals: List[_Refuse] = []
        out_node = None
        for node in self.gm.graph.nodes:
            args: List[torch.fx.Node] = []
            torch.fx.node.map_arg((node.args, node.kwargs), args.append)
            data_in = [a for a in args if kinds.get(a) == "data"]
            if node.op == "placeholder":
                if "data" in kinds.values():
                    refusals.append(_Refuse(2, f"{self.cls}.forward takes more than one input; only one is supported"))
                kinds[node] = "data"
                nodes[node] = _Node("input", [], self.in_shape, "input")
                continue
            if node.op == "get_attr":
                kinds[node] = "const"
                continue
            if node.op == "output":
                out = node.args[0]
                if not (isinstance(out, torch.fx.Node) and kinds.get(out) == "data"):
                    refusals.append(_Refuse(2, t.output_refusal(self.cls, out)))
                else:
                    out_node = nodes.get(out)
                continue
            if node.op == "call_module":
                shown = self.t._name(self.model.get_submodule(node.target))
            else:
                family, name, shown = t._op(node)
                first = kinds.get(node.args[0]) if node.args and isinstance(node.args[0], torch.fx.Node) else None
                q = t._shape_query(node, name, first)
                if q is not None:
                    kinds[node] = q
                    continue
                like = self.like(node, name, first)
                if like is not None:  # zeros_like(x): a constant of one sample's shape
                    node.meta["splinescope_like"] = like
                    kinds[node] = "const"
                    continue
                if name in _COMPARE and first == "data" and len(node.args) == 2 and not node.kwargs \
                        and t._number(node.args[1]):
                    kinds[node] = "cond"  # h > c: only a torch.where or a product may read it (:meth:`where_act`)
                    node.meta["splinescope_cond"] = node
                    continue
                if first == "cond" and name in _CASTS:  # (h > 0).float(): the same condition
                    kinds[node] = "cond"
                    node.meta["splinescope_cond"] = node.args[0].meta["splinescope_cond"]
                    continue
                if first == "data" and name == "getattr" and node.args[1] in ("dtype", "device", "is_cuda"):
                    kinds[node] = "shape"  # (read only by casts: x.to(h.dtype))
                    continue
                if name in ("getitem", "getattr") and first == "data" and not node.users and \
                        node.args[1] in (1, "indices") and node.args[0].op != "placeholder" and \
                        t._op(node.args[0])[1] in _VALUES_OF:  # indices never read (torch.export keeps the node)
                    kinds[node] = "unused"
                    continue
                if name.startswith("_assert") and family == "torch":  # torch.export's checks: no value
                    kinds[node] = "assert"
                    continue
            if not data_in:
                kinds[node] = "const"
                continue
            kinds[node] = "data"
            if any(nodes.get(a) is None for a in data_in):
                nodes[node] = None  # after a refusal
                continue
            try:
                nodes[node] = self.node(node, shown, [nodes[a] for a in data_in], data_in, kinds)
            except _Refuse as r:
                refusals.append(r)
                nodes[node] = None
        if refusals:
            raise UnsupportedLayerError(str(min(refusals, key=lambda r: r.rank)))
        assert out_node is not None
        return out_node

    def shape(self, node) -> Tuple[int, ...]:
        tm = node.meta.get("tensor_meta")
        from torch.fx.passes.shape_prop import TensorMetadata
        if not isinstance(tm, (TensorMetadata, _Meta)) and isinstance(tm, (tuple, list)) and tm:
            tm = tm[0]  # x.max(dim): (values, indices)
        if tm is None or not hasattr(tm, "shape"):
            raise _Refuse(2, f"{self.where(node, node.name)}: its value is not one tensor")
        s = tuple(int(v) for v in tm.shape)
        if not s or s[0] != 2:
            raise _Refuse(2, f"{self.where(node, node.name)} mixes the batch dimension into the features "
                             f"(shape {s} for a batch of 2); the batch must stay the first dimension")
        return s[1:]

    def node(self, node, shown, ins: List[_Node], data_in, kinds) -> _Node:
        t = self.t
        where = self.where(node, shown)
        shape = self.shape(node)
        label = f"{node.target if node.op == 'call_module' else node.name} ({shown})"
        not_pl = t.not_pl(where, t._op(node)[1] if node.op != "call_module" else "", SUPPORTED_GRAPH)
        unknown = f"{where} is not supported (not a known piecewise-linear operation); supported: {SUPPORTED_GRAPH}"

        def affine(op, args=None):
            return _Node("affine", args if args is not None else [ins[0]], shape, label, op=op)

        def act(bp, slopes, value0, per_channel=None, src=None):
            n = int(np.prod(shape, dtype=np.int64))
            sl = np.asarray(slopes, np.float64)
            if sl.ndim == 1:
                sl = np.repeat(sl[:, None], n, axis=1)
            v0 = np.broadcast_to(np.asarray(value0, np.float64), (n,)).copy()
            return _Node("act", [ins[0] if src is None else src], shape, label, bp=np.asarray(bp, np.float64),
                         slopes=sl, value0=v0)

        def maxpool(table):
            real = [[c for c in r if c >= 0] for r in table]  # (-1: padding, never the max)
            if not all(real):
                raise _Refuse(2, f"{where}: a max-pooling window holds only padding; only windows with at "
                                 "least one input element are supported")
            if max(len(c) for c in real) == 1:  # one element per window, the rest padding: a selection
                return affine(_ops.Gather(np.array([c[0] for c in real]), shape))
            return _Node("max", [ins[0]], shape, label, table=table)

        if node.op == "call_module":
            m = self.model.get_submodule(node.target)
            return self.module(node, m, shown, where, ins, shape, label, affine, act, maxpool)
        family, name, _ = t._op(node)
        if name == "where" and len(node.args) == 3 and not node.kwargs and self.is_const(node.args[0]):
            return self.const_where(where, node.args[0], node.args[1], node.args[2], data_in, ins, shape, label)
        if name == "masked_fill" and len(node.args) == 3 and not node.kwargs and self.is_const(node.args[1]) \
                and node.args[0] is data_in[0]:  # h.masked_fill(mask, v): torch.where(mask, v, h)
            return self.const_where(where, node.args[1], node.args[2], node.args[0], data_in, ins, shape, label)
        if name == "where" and len(node.args) == 3 and not node.kwargs and kinds.get(node.args[0]) == "cond":
            return self.where_act(where, node.args[0], node.args[1], node.args[2], shape, act)
        conds = [a for a in node.args if isinstance(a, torch.fx.Node) and kinds.get(a) == "cond"]
        if name == "mul" and len(node.args) == 2 and not node.kwargs and len(conds) == 1:  # h * (h > 0)
            other = node.args[1] if node.args[0] is conds[0] else node.args[0]
            return self.where_act(where, conds[0], other, 0.0, shape, act, form="h * (h > c) with h")
        if name == "masked_fill" and len(node.args) == 3 and not node.kwargs and kinds.get(node.args[1]) == "cond" \
                and node.args[0] is data_in[0]:  # h.masked_fill(h < 0, 0.0): torch.where(h < 0, 0.0, h)
            return self.where_act(where, node.args[1], node.args[2], node.args[0], shape, act,
                                  form="h.masked_fill(h > c, v) with h and v each")
        if name == "prelu" and node.args[:1] == (data_in[0],) and len(data_in) == 1:
            return self.prelu(where, self.const_array(where, t._arg(node, 1, "weight")), shape, act)
        if (name in _CASTS or (name == "getattr" and node.args[1] == "data")) and node.args[:1] == (data_in[0],):
            return self.cast(where, node, name, ins[0], shape)
        if name in ("view_as", "reshape_as", "expand_as") and node.args[:1] == (data_in[0],):  # another's shape
            src = ins[0]
            if name != "expand_as":
                return affine(_ops.Reshape(shape))
            if len(src.shape) != len(shape):
                raise _Refuse(2, f"{where}: an expand_as that adds dimensions ({src.shape} to {tuple(shape)}) is not "
                                 "supported; unsqueeze first")
            return affine(_ops.Gather(np.broadcast_to(np.arange(src.numel).reshape(src.shape), shape).reshape(-1),
                                      shape))
        if name in ("matmul", "mm") and len(data_in) == 1 and node.args[:1] == (data_in[0],) and len(node.args) == 2:
            # x @ W with W a constant (a parameter or buffer, or made from them): a Linear without bias
            w = self.const(where, node.args[1])
            if not isinstance(w, torch.Tensor) or w.ndim != 2:
                raise _Refuse(2, f"{where}: only x @ W with a 2-D weight W is supported, got W of shape "
                                 f"{tuple(getattr(w, 'shape', ()))}")
            return affine(self.weighted_linear(where, w.detach().T, None))
        if name == "einsum" and len(data_in) == 1:
            return affine(self.einsum(where, node, data_in[0], ins[0].shape))
        if name == "tensordot" and len(data_in) == 1:
            return affine(self.tensordot(where, node, data_in[0], ins[0].shape))
        if name in ("cumsum", "diff") and len(data_in) == 1 and node.args[:1] == (data_in[0],):
            return affine(self.along(where, node, name, ins[0].shape))
        if name == "addmm":
            return self.addmm(where, node, data_in, ins, shape, label)
        if name == "lerp":
            return self.lerp(where, node, data_in, ins, shape, label)
        if name == "instance_norm" and family == "torch" and not t._arg(node, 5, "use_input_stats", True):
            op = self.norm_call(where, node, shape)  # (aten.instance_norm in eval mode: its running statistics)
            if op is not None:
                return affine(op)
        if name in t._NOT_PL or name in t._STEPS or name == "instance_norm":
            raise _Refuse(0, not_pl)
        x = data_in[0]
        if len(data_in) > 1:
            if name in ("add", "sub") and len(data_in) == 2 and len(node.args) == 2:  # x + alpha * y
                alpha = self.arith_alpha(where, node, name)
                two = [self.broadcast(where, src, ins, shape, label) for src in ins]
                if alpha != 1.0:
                    two[1] = _Node("affine", [two[1]], tuple(shape), label, op=_ops.Scale(alpha))
                return affine(_ops.Add() if name == "add" else _ops.Sub(), two)
            if name in ("cat", "concat", "concatenate", "stack"):
                return self.concat(where, node, name, data_in, ins, shape, label, kinds)
            if name in ("maximum", "minimum", "max", "min", "fmax", "fmin") and len(data_in) == 2 \
                    and len(node.args) + len(node.kwargs) == 2:
                return self.pair_max(where, name, ins, shape, label)
            if name in ("mul", "truediv", "div", "matmul", "pow", "bmm", "mm"):
                raise _Refuse(0, f"{where} is not piecewise linear (a product or quotient of two values that "
                                 f"depend on the input); supported: {SUPPORTED_GRAPH}")
            raise _Refuse(2, unknown)
        if family == "operator" and name == "truediv" and node.args[1] is x:
            raise _Refuse(0, f"{where} divides by a value that depends on the input: it is not piecewise linear")
        if ins[0].kind == "tuple" and name not in ("getitem", "cat", "concat", "concatenate", "stack"):
            raise _Refuse(2, f"{where}: the parts of a split can be indexed, concatenated or stacked, not "
                             f"passed on whole; supported: {SUPPORTED_GRAPH}")
        if (name == "interpolate" and t._arg(node, 3, "mode", "nearest") not in ("nearest", "nearest-exact")) or \
                name in _RESAMPLE_ATEN:
            return self.resample(node, where, x, ins[0], shape, label)
        seq = node.args[0] if node.args else None
        if name in ("cat", "concat", "concatenate", "stack") and ins[0].kind != "tuple" \
                and isinstance(seq, (list, tuple)) and any(kinds.get(a) != "data" for a in seq):
            return self.concat(where, node, name, data_in, ins, shape, label, kinds)  # the value and constants
        values_of_max = name == "getitem" and x.op in ("call_method", "call_function") and t._op(x)[1] in _VALUES_OF
        if not values_of_max and (name in _INDEX or name in _TUPLE or (
                ins[0].kind == "tuple" and name in ("cat", "concat", "concatenate", "stack"))):
            return self.index(node, where, x, ins[0], shape, label, kinds)
        other = node.args[1] if len(node.args) == 2 and node.args[0] is x else \
            node.args[0] if len(node.args) == 2 else None
        if name in ("maximum", "minimum", "max", "min", "fmax", "fmin") and self.is_const(other):  # a constant tensor
            return self.const_max(where, ins[0], self.const_array(where, other),
                                  name in ("minimum", "min", "fmin"), shape, label)
        if name in ("cat", "concat", "concatenate"):  # one tensor (with constants: above)
            return affine(_ops.Reshape(shape))
        if node.args[:1] != (x,) and not (family == "operator" and name in ("mul", "add", "sub")
                                          and node.args[1:2] == (x,)):
            raise _Refuse(2, unknown)
        if name == "relu":
            return act([0.0], [0.0, 1.0], 0.0)
        if name == "leaky_relu":
            s = float(t._arg(node, 1, "negative_slope", 0.01))
            return act([0.0], [s, 1.0], 0.0)
        if name in ("abs", "absolute"):
            return act([0.0], [-1.0, 1.0], 0.0)
        if name == "softshrink":
            lam = float(t._arg(node, 1, "lambd", 0.5))
            return act([-lam, lam], [1.0, 0.0, 1.0], 0.0)
        if name == "rrelu":
            return self.rrelu(where, float(t._arg(node, 1, "lower", 1.0 / 8)), float(t._arg(node, 2, "upper", 1.0 / 3)),
                              bool(t._arg(node, 3, "training", False)), act)
        if name in ("threshold", "_threshold"):
            return self.threshold(where, float(t._arg(node, 1, "threshold")), float(t._arg(node, 2, "value")), act)
        if name == "hardsigmoid":
            return self.hardsigmoid(ins[0], shape, label)
        if name == "hardshrink":
            raise self.hardshrink(where)
        if name == "relu6":
            return act([0.0, 6.0], [0.0, 1.0, 0.0], 0.0)
        if name == "hardtanh":
            lo, hi = float(t._arg(node, 1, "min_val", -1.0)), float(t._arg(node, 2, "max_val", 1.0))
            return self.clamp(where, lo, hi, act)
        if name in ("clamp", "clip", "clamp_min", "clamp_max"):
            cmin = None if name == "clamp_max" else t._arg(node, 1, "min", None)
            cmax = t._arg(node, 1, "max", None) if name == "clamp_max" else None if name == "clamp_min" \
                else t._arg(node, 2, "max", None)
            if any(isinstance(v, torch.fx.Node) for v in (cmin, cmax)):  # constant tensors: max, then min
                res = ins[0]
                for v, low in ((cmin, False), (cmax, True)):
                    if v is not None:
                        c = self.const_array(where, v) if isinstance(v, torch.fx.Node) else np.asarray(float(v))
                        res = self.const_max(where, res, c, low, shape, label)
                return res
            for v in (cmin, cmax):
                if v is not None and not t._number(v):
                    raise _Refuse(2, f"{where}: clamp bounds must be numbers or constant tensors")
            return self.clamp(where, None if cmin is None else float(cmin), None if cmax is None else float(cmax), act)
        if name == "linear" and family == "F":
            w, b = t._arg(node, 1, "weight"), t._arg(node, 2, "bias")
            return affine(self.weighted_linear(where, self.attr(where, w), None if b is None else self.attr(where, b)))
        if name == "batch_norm" and family == "torch":  # torch.batch_norm / aten.batch_norm (torch.export)
            op = None if t._arg(node, 5, "training", False) else self.norm_call(where, node, shape)
            if op is None:
                raise _Refuse(2, f"{where}: batch norm in training mode (batch statistics are not a fixed map); "
                                 "export the model after model.eval()")
            return affine(op)
        if name in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d") and family in ("F", "torch"):
            nd = _nd(name)
            b = t._arg(node, 2, "bias")
            return affine(self.conv(where, nd, self.attr(where, t._arg(node, 1, "weight")),
                                    None if b is None else self.attr(where, b), _pair(t._arg(node, 3, "stride", 1), nd),
                                    t._arg(node, 4, "padding", 0), _pair(t._arg(node, 7, "dilation", 1), nd),
                                    int(t._arg(node, 6, "groups", 1)), ins[0].shape, shape, transpose=True,
                                    output_padding=t._arg(node, 5, "output_padding", 0)))
        if name in ("conv1d", "conv2d", "conv3d") and family in ("F", "torch"):
            w, b = t._arg(node, 1, "weight"), t._arg(node, 2, "bias")
            nd = _nd(name)
            w = self.attr(where, w)
            return self.conv_node(where, nd, w, None if b is None else self.attr(where, b),
                                  _pair(t._arg(node, 3, "stride", 1), nd), t._arg(node, 4, "padding", 0),
                                  _pair(t._arg(node, 5, "dilation", 1), nd), int(t._arg(node, 6, "groups", 1)),
                                  ins[0], shape, label)
        if name in ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
                    "max_pool3d_with_indices"):
            nd = _nd(name)
            if t._arg(node, 6, "return_indices", False) and not _values_only(node):
                raise _Refuse(2, f"{where}: only the values of a max-pooling with return_indices=True are supported "
                                 "(its [0]), not its indices")
            k = _pair(t._arg(node, 1, "kernel_size"), nd)
            st = t._arg(node, 2, "stride", None)
            st = k if st is None or st == [] or st == () else _pair(st, nd)
            _, table = _pool_table(ins[0].shape, k, st, _pair(t._arg(node, 3, "padding", 0), nd),
                                   _pair(t._arg(node, 4, "dilation", 1), nd), bool(t._arg(node, 5, "ceil_mode", False)))
            return maxpool(table)
        if name in ("adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"):
            nd = _nd(name)
            out = _pair(t._arg(node, 1, "output_size"), nd)
            out = tuple(ins[0].shape[-nd + i] if o is None else int(o) for i, o in enumerate(out))
            _, table = _pool_table(ins[0].shape, None, None, None, None, False, adaptive_out=out)
            return maxpool(table)
        if name in ("avg_pool1d", "avg_pool2d", "avg_pool3d") and family in ("F", "torch"):
            nd = _nd(name)
            k = _pair(t._arg(node, 1, "kernel_size"), nd)
            st = t._arg(node, 2, "stride", None)
            st = k if st is None or st == [] or st == () else _pair(st, nd)
            p = _pair(t._arg(node, 3, "padding", 0), nd)
            cm, cip = bool(t._arg(node, 4, "ceil_mode", False)), bool(t._arg(node, 5, "count_include_pad", True))
            dov = t._arg(node, 6, "divisor_override", None) if nd == 2 else None
            return affine(self.avgpool(nd, k, st, p, cm, cip, dov, ins[0].shape, shape))
        if name in ("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d"):
            nd = _nd(name)
            out = _pair(t._arg(node, 1, "output_size"), nd)
            out = tuple(ins[0].shape[-nd + i] if o is None else int(o) for i, o in enumerate(out))
            return affine(self.adaptive_avg(nd, out, ins[0].shape, shape))
        if name in ("sort", "topk") and family in ("torch", "method"):
            return self.sort_node(node, where, name, ins[0], shape, label)
        if name in ("amin", "min") and family in ("torch", "method"):  # min(x) = -max(-x)
            neg = _Node("affine", [ins[0]], ins[0].shape, label, op=_ops.Scale(-1.0))
            top = self.node_max(node, where, name.replace("min", "max"), neg, shape, label, called=name)
            return _Node("affine", [top], top.shape, label, op=_ops.Scale(-1.0))
        if name in ("amax", "max") and family in ("torch", "method"):
            return self.node_max(node, where, name, ins[0], shape, label)
        if name in ("cummax", "cummin") and family in ("torch", "method"):
            return self.running_max(node, where, name, ins[0], shape, label)
        if values_of_max:
            if node.args[1] != 0:
                raise _Refuse(2, f"{where}: only the values of x.{t._op(x)[1]}(dim) are supported, not its indices")
            return ins[0]
        if name in ("getattr",) and node.args[1:] == ("values",) and x.op in ("call_method", "call_function") \
                and t._op(x)[1] in _VALUES_OF:
            return ins[0]
        if name in ("mean", "sum"):
            dim = t._arg(node, 1, "dim", None)
            keep = bool(t._arg(node, 2, "keepdim", False))
            if dim is None:
                raise _Refuse(2, f"{where}: a {name} over the batch is not a map of one sample; give dim=")
            dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
            dims = tuple(d if d >= 0 else d + len(ins[0].shape) + 1 for d in dims)
            if 0 in dims:
                raise _Refuse(2, f"{where}: a {name} over the batch dimension is not a map of one sample")
            count = int(np.prod([ins[0].shape[d - 1] for d in dims]))
            return affine(_ops.Reduce(dims, keep, name == "mean", count))
        if name in ("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze"):
            if name == "flatten" and t._arg(node, 1, "start_dim", 0) == 0:
                raise _Refuse(2, f"{where}: flatten(x) merges the batch; use flatten(x, 1)")
            return affine(_ops.Reshape(shape))
        if name in _DROPOUTS:
            if t._arg(node, 2, "training", True):
                raise _Refuse(2, f"{where} is in training mode (a random mask is not a fixed map); pass "
                                 "training=self.training and call model.eval() first")
            return affine(_ops.Reshape(shape))
        if name in t._ARITH or name == "rsub":
            alpha = self.arith_alpha(where, node, name)
            if name in ("neg", "pos"):
                return affine(_ops.Scale(-1.0 if name == "neg" else 1.0))
            c = node.args[0] if node.args[1:2] == (x,) else t._arg(node, 1, "other")
            if self.is_const(c):
                c = self.const_array(where, c)
                if not np.isfinite(c).all():
                    raise NonFiniteWeightsError(f"{where}: its constant has non-finite values (NaN or inf)")
                _keeps_shape(where, c, ins[0].shape, shape)  # (no batch dimension of its own: torch.ones(h.shape))
                if name not in ("add", "sub", "rsub"):  # x * t, x / t: elementwise by a constant tensor
                    if name != "mul" and (c == 0).any():
                        raise _Refuse(2, f"{where} divides by a constant with zeros")
                    return affine(_ops.ScaleConst(c, divide=name != "mul"))
            elif not t._number(c):
                raise _Refuse(2, f"{where}: only a constant may scale or shift the value (x * 2, x + 1.0, x / 4); "
                                 f"supported: {SUPPORTED_GRAPH}")
            c = np.asarray(c, np.float64)
            if name == "rsub" or (name == "sub" and node.args[0] is not x):  # c - alpha * x
                neg = _Node("affine", [ins[0]], shape, label, op=_ops.Scale(-alpha))
                return _Node("affine", [neg], shape, label, op=_ops.AddConst(c))
            if name in ("add", "sub"):  # x + alpha * c, x - alpha * c
                return affine(_ops.AddConst((alpha if name == "add" else -alpha) * c))
            return affine(_ops.Scale(float(c), divide=name in ("truediv", "div")))
        raise _Refuse(2, not_pl if name in t._NOT_PL else unknown)

    def const_where(self, where, cond, a, b, data_in, ins: List[_Node], shape, label) -> _Node:
        """``torch.where(m, a, b)`` with a constant condition ``m`` (a fixed mask: a buffer, or made
        from parameters) and values or constants ``a``, ``b``: ``m * a + (1 - m) * b`` elementwise
        (products by 0 and 1, exact); ``h.masked_fill(m, v)`` is ``where(m, v, h)``."""
        m = self.attr(where, cond).detach()
        if m.dtype != torch.bool:
            raise _Refuse(2, f"{where}: the condition of a where / masked_fill must be a boolean tensor, got {m.dtype}")
        mask = m.to(torch.float64).numpy()
        _keeps_shape(where, mask, shape, shape)
        by = {id(v): n for v, n in zip(data_in, ins)}
        terms: List[_Node] = []
        const = np.zeros(())
        for v, w in ((a, mask), (b, 1.0 - mask)):
            if isinstance(v, torch.fx.Node) and id(v) in by:
                src = self.broadcast(where, by[id(v)], ins, shape, label)
                if (w == 1).all():
                    terms.append(src)
                elif w.any():
                    terms.append(_Node("affine", [src], tuple(shape), label, op=_ops.ScaleConst(w)))
                continue
            const = const + w * self.const_operand(where, v, shape, "the branches of a where")
        if not terms:  # every value's elements masked off: a constant of the output's shape
            terms.append(_zeros_like_node(ins[0], shape, label))
        out = terms[0] if len(terms) == 1 else _Node("affine", terms, tuple(shape), label, op=_ops.Add())
        if const.any():
            out = _Node("affine", [out], tuple(shape), label, op=_ops.AddConst(np.broadcast_to(const, shape).copy()
                                                                               if const.ndim else const))
        return out

    def const_operand(self, where, v, shape, what: str) -> np.ndarray:
        """A number or constant tensor ``v`` (an operand of an elementwise map whose output has the
        sample shape ``shape``) as a float64 array; ``what``: the operands, named in the refusal."""
        if not (self.is_const(v) or self.t._number(v)):
            raise _Refuse(2, f"{where}: {what} must be values or constants")
        cv = self.const_array(where, v) if self.is_const(v) else np.asarray(float(v))
        _keeps_shape(where, cv, shape, shape)
        return cv

    def concat(self, where, node, name, data_in, ins: List[_Node], shape, label, kinds) -> _Node:
        """``torch.cat`` / ``torch.stack`` of values of the input and constants (a stack: each part
        given its new dimension). A constant has the batch dimension of the example run (two
        samples, ``torch.zeros(h.size(0), 2)``) and the same value for both; it is made from zeros
        selected from a value (:class:`_ops.Gather` of index -1) plus the constant."""
        t = self.t
        stack = name == "stack"
        dim = t._arg(node, 1, "dim", 0)
        dim = dim if dim >= 0 else dim + len(shape) + 1
        if dim == 0:
            raise _Refuse(2, f"{where} {'stacks' if stack else 'concatenates'} along the batch dimension")
        seq = node.args[0]
        order = list(seq) if isinstance(seq, (list, tuple)) else []
        by = {id(a): n for a, n in zip(data_in, ins)}
        parts = []
        for a in order:
            if isinstance(a, torch.fx.Node) and kinds.get(a) == "data":
                parts.append(by[id(a)])
                continue
            c = self.const(where, a) if isinstance(a, torch.fx.Node) else a
            rank = len(shape) if stack else len(shape) + 1
            if isinstance(a, torch.fx.Node) and "splinescope_like" in a.meta and c.ndim == rank - 1:
                c = c[None].expand((2,) + tuple(c.shape))  # zeros_like(h): one sample's shape already
            if not isinstance(c, torch.Tensor) or c.ndim != rank or len(c) != 2:
                raise _Refuse(2, f"{where}: only values of the input and constants with the batch dimension "
                                 f"(torch.zeros(h.size(0), k)) can be {'stacked' if stack else 'concatenated'}")
            c = c.detach().to(torch.float64)
            if not torch.equal(c[0], c[1]):
                raise _Refuse(2, f"{where}: a constant {'stacked' if stack else 'concatenated'} with the input "
                                 "differs between the samples of a batch: not a map of one sample")
            one = tuple(c.shape[1:])
            parts.append(_Node("affine", [_zeros_like_node(ins[0], one, label)], one, label,
                               op=_ops.AddConst(c[0].numpy().copy())))
        if stack:
            parts = [_Node("affine", [src], one, label, op=_ops.Reshape(one)) for src in parts
                     for one in [tuple(src.shape[:dim - 1]) + (1,) + tuple(src.shape[dim - 1:])]]
        return _Node("affine", parts, tuple(shape), label, op=_ops.Cat(dim, len(parts)))

    def norm_call(self, where, node, shape) -> Optional[_ops.ChannelAffine]:
        """``batch_norm`` / ``instance_norm`` (torch's and ATen's: input, weight, bias, running mean,
        running variance, a flag, momentum, eps) by its running statistics; None without them."""
        t = self.t
        w, b, mean, var = (t._arg(node, i, k) for i, k in ((1, "weight"), (2, "bias"), (3, "running_mean"),
                                                           (4, "running_var")))
        if mean is None or var is None:
            return None
        return _batchnorm(None if w is None else self.attr(where, w), None if b is None else self.attr(where, b),
                          self.attr(where, mean), self.attr(where, var), float(t._arg(node, 7, "eps", 1e-5)), shape)

    def arith_alpha(self, where, node, name: str) -> float:
        """The ``alpha`` of ``torch.add(x, y, alpha=a)`` (``sub``, ``rsub``; 1 for the others), after
        refusing the options that are not read: a rounding division (``rounding_mode=``: not
        piecewise linear) and any other keyword."""
        kw = dict(node.kwargs)
        if isinstance(node.target, torch._ops.OpOverload):  # ATen's alpha may be positional (aten.rsub.Scalar)
            kw.update(zip([a.name for a in node.target._schema.arguments][2:], node.args[2:]))
        elif len(node.args) > 2:
            raise _Refuse(2, f"{where}: {len(node.args)} arguments; supported: {SUPPORTED_GRAPH}")
        mode = kw.get("rounding_mode")
        if mode is not None:
            raise _Refuse(0, f"{where} rounds (rounding_mode={mode!r}): not piecewise linear; supported: "
                             f"{SUPPORTED_GRAPH}")
        alpha = kw.get("alpha", 1)
        other = set(kw) - {"other", "alpha", "rounding_mode"}
        if other or not self.t._number(alpha) or (alpha != 1 and name not in ("add", "sub", "rsub")):
            raise _Refuse(2, f"{where}: of its options only a number alpha (torch.add(x, y, alpha=2)) is read, "
                             f"got {', '.join(sorted(kw))}")
        return float(alpha)

    @staticmethod
    def reduced_shape(shape, dims, keep):
        dims = {d if d >= 0 else d + len(shape) + 1 for d in dims}
        return tuple((1 if i + 1 in dims else s) for i, s in enumerate(shape) if keep or i + 1 not in dims)

    def max_over(self, src: _Node, dims, keep, out_shape, label) -> _Node:
        nd = len(src.shape)
        dims = sorted({d if d >= 0 else d + nd + 1 for d in dims})
        if 0 in dims:
            raise _Refuse(2, f"{label}: a max over the batch dimension is not a map of one sample")
        idx = np.arange(src.numel).reshape(src.shape)
        axes = [d - 1 for d in dims]
        keep_axes = [a for a in range(nd) if a not in axes]
        moved = np.transpose(idx, keep_axes + axes).reshape(-1, int(np.prod([src.shape[a] for a in axes])))
        table = [list(map(int, r)) for r in moved]
        if moved.shape[1] == 1:
            return _Node("affine", [src], out_shape, label, op=_ops.Gather(moved[:, 0], out_shape))
        return _Node("max", [src], out_shape, label, table=table)

    @staticmethod
    def const_max(where, src: _Node, c: np.ndarray, low: bool, shape, label) -> _Node:
        """``max(x, c)`` (``low``: ``min(x, c)``) for a constant ``c`` broadcast over one sample:
        ``relu(x - c) + c`` (and ``c - relu(c - x)``), a ReLU of each element against its own constant."""
        c = np.asarray(c, np.float64)
        if not np.isfinite(c).all():
            raise NonFiniteWeightsError(f"{where}: its constant has non-finite values (NaN or inf)")
        _keeps_shape(where, c, src.shape, shape)
        n = int(np.prod(shape, dtype=np.int64))
        shape = tuple(shape)

        def affine(node, op):
            return _Node("affine", [node], shape, label, op=op)
        x = affine(src, _ops.Scale(-1.0)) if low else src
        z = affine(x, _ops.AddConst(c if low else -c))  # x - c, or c - x
        h = _Node("act", [z], shape, label, bp=np.array([0.0]), slopes=np.repeat(np.array([0.0, 1.0])[:, None], n, 1),
                  value0=np.zeros(n))
        return affine(affine(h, _ops.Scale(-1.0)) if low else h, _ops.AddConst(c))

    def pair_max(self, where, name, ins: List[_Node], shape, label) -> _Node:
        """``torch.maximum(a, b)`` (``torch.max(a, b)``, ``fmax``) elementwise as a max over windows of
        two candidates, one from each; a minimum as ``-max(-a, -b)``."""
        ins = [self.broadcast(where, a, ins, shape, label) for a in ins]
        n = int(np.prod(shape, dtype=np.int64))
        low = name in ("minimum", "min", "fmin")
        flat = []
        for a in ins:
            if low:
                a = _Node("affine", [a], a.shape, label, op=_ops.Scale(-1.0))
            flat.append(_Node("affine", [a], (n,), label, op=_ops.Reshape((n,))))
        both = _Node("affine", flat, (2 * n,), label, op=_ops.Cat(1, 2))
        m = _Node("max", [both], tuple(shape), label, table=[[i, n + i] for i in range(n)])
        return _Node("affine", [m], tuple(shape), label, op=_ops.Scale(-1.0)) if low else m

    def sort_node(self, node, where, name, src: _Node, shape, label) -> _Node:
        """The values of ``x.sort(dim, descending)`` and ``x.topk(k, dim, largest)`` (GroupSort, MaxMin)
        by a sorting network (:func:`_sorting_network`): each layer of comparators one max over
        windows of two (the larger), the smaller the pair's sum minus it; a region is one outcome of
        every comparator, that is one order of each group."""
        t = self.t
        if not _values_only(node):
            raise _Refuse(2, f"{where}: only the values of x.{name}() are supported (x.{name}(...)[0] or .values), "
                             "not its indices")
        if name == "sort":
            dim, desc = t._arg(node, 1, "dim", -1), bool(t._arg(node, 2, "descending", False))
            k = None
        else:
            k, dim = int(t._arg(node, 1, "k")), t._arg(node, 2, "dim", -1)
            desc = bool(t._arg(node, 3, "largest", True))
            if not t._arg(node, 4, "sorted", True) and k > 1:
                raise _Refuse(2, f"{where}: topk(sorted=False) returns its values in an order torch does not fix; "
                                 "only sorted=True (the default) is supported")
        nd = len(src.shape)
        ax = dim - 1 if dim > 0 else dim + nd
        if dim == 0 or not 0 <= ax < nd:
            raise _Refuse(2, f"{where}: a {name} over the batch dimension is not a map of one sample")
        n, size = src.numel, src.shape[ax]
        ids = np.moveaxis(np.arange(n).reshape(src.shape), ax, -1)  # (..., size): each group's flat ids
        groups = ids.reshape(-1, size)
        flat = lambda v, m: _Node("affine", [v], (m,), label, op=_ops.Reshape((m,)))  # noqa: E731
        cur = flat(src, n)
        for layer in _sorting_network(size):
            a = groups[:, [i for i, _ in layer]].reshape(-1)
            b = groups[:, [j for _, j in layer]].reshape(-1)
            m = len(a)
            hi = _Node("max", [cur], (m,), label, table=np.stack([a, b], 1).tolist())
            pair = _Node("affine", [_Node("affine", [cur], (m,), label, op=_ops.Gather(a, (m,))),
                                    _Node("affine", [cur], (m,), label, op=_ops.Gather(b, (m,)))],
                         (m,), label, op=_ops.Add())
            lo = _Node("affine", [pair, hi], (m,), label, op=_ops.Sub())
            index = np.arange(n)
            index[a], index[b] = n + m + np.arange(m), n + np.arange(m)  # the smaller first
            both = _Node("affine", [cur, hi, lo], (n + 2 * m,), label, op=_ops.Cat(1, 3))
            cur = _Node("affine", [both], (n,), label, op=_ops.Gather(index, (n,)))
        order = ids[..., ::-1] if desc else ids  # the sorted values sit at the group's positions in order
        if k is not None:
            order = order[..., :k]
        pick = np.moveaxis(order, -1, ax)
        return _Node("affine", [cur], tuple(shape), label, op=_ops.Gather(pick.reshape(-1).copy(), tuple(shape)))

    def node_max(self, node, where, name, src: _Node, shape, label, called=None) -> _Node:
        """``x.amax(dim)`` / ``x.max(dim)`` (its values) of ``src`` (``called``: the name the messages use)."""
        t = self.t
        called = called or name
        dim = t._arg(node, 1, "dim", None)
        if dim is None or isinstance(dim, torch.fx.Node):
            raise _Refuse(2, f"{where}: only a {called} over given dimensions (x.a{called.lstrip('a')}(dim), "
                             f"x.{called.lstrip('a')}(dim)[0]) or of two tensors of one shape is supported, not "
                             f"a {called} of everything")
        dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
        keep = bool(t._arg(node, 2, "keepdim", False))
        if name == "max":
            if len(dims) != 1:
                raise _Refuse(2, f"{where}: x.{called} takes one dimension")
            if not _values_only(node):
                raise _Refuse(2, f"{where}: only the values of x.{called}(dim) are supported (x.{called}(dim)[0] "
                                 "or .values), not its indices")
            out_shape = self.reduced_shape(src.shape, dims, keep)
        else:
            out_shape = shape
        return self.max_over(src, dims, keep, out_shape, label)

    def running_max(self, node, where, name, src: _Node, shape, label) -> _Node:
        """``x.cummax(dim)`` / ``x.cummin(dim)`` (their values): a max over the windows of each element
        and the ones before it along ``dim`` (a minimum as ``-max(-x)``)."""
        dim = self.t._arg(node, 1, "dim")
        nd = len(src.shape) + 1
        if not isinstance(dim, int) or not -nd <= dim < nd or dim % nd == 0:
            raise _Refuse(2, f"{where}: a {name} along a dimension of one sample (not the batch) is supported, got "
                             f"dim={dim!r}")
        if not _values_only(node):
            raise _Refuse(2, f"{where}: only the values of x.{name}(dim) are supported ([0] or .values), not its indices")
        ax = dim % nd - 1
        size = src.shape[ax]
        along = np.moveaxis(np.arange(src.numel).reshape(src.shape), ax, -1)  # (..., size)
        table = np.full(along.shape + (size,), -1, np.int64)  # (..., element j, window)
        for j in range(size):
            table[..., j, :j + 1] = along[..., :j + 1]
        rows = np.moveaxis(table, -2, ax).reshape(-1, size)
        low = name == "cummin"
        x = _Node("affine", [src], src.shape, label, op=_ops.Scale(-1.0)) if low else src
        m = _Node("max", [x], tuple(shape), label, table=[[int(c) for c in r] for r in rows])
        return _Node("affine", [m], tuple(shape), label, op=_ops.Scale(-1.0)) if low else m

    def index(self, node, where, x, src: _Node, shape, label, kinds) -> _Node:
        """An operation that only selects, moves or repeats elements (slicing, permute, flip, pad,
        chunk, ...) as one :class:`_ops.Gather`: torch's own operation is run on a tensor of element
        indices (float64, a batch of two samples), and the indices it returns are the map; padding
        is marked -1 (its constant added after). A split's parts (``_TUPLE``) become a ``tuple``
        node, whose parts the indexing after it selects."""
        t = self.t
        _, name, _ = t._op(node)
        base = src.args[0] if src.kind == "tuple" else src
        idx = _element_ids(base.shape)
        value_in = src.fn(idx) if src.kind == "tuple" else idx

        def value(a):
            if a is x:
                return value_in
            if a.op == "get_attr":
                return self.attr(where, a).detach()
            if "splinescope_value" in a.meta and kinds.get(a) != "data":
                return a.meta["splinescope_value"]
            if kinds.get(a) == "const":  # an index made from a buffer (self.idx.expand(h.size(0), -1))
                return self.const(where, a)
            raise _Refuse(2, f"{where}: its argument {a.name!r} is computed in the graph; only constants and "
                             "sizes of the input are supported")

        args = torch.fx.node.map_arg(node.args, value)
        kwargs = dict(torch.fx.node.map_arg(node.kwargs, value))
        fill = None
        if name in ("pad", "constant_pad_nd"):  # padding: -1 marks it, its constant is added after
            mode = t._arg(node, 2, "mode", "constant") if name == "pad" else "constant"
            if mode == "constant":
                pos = 3 if name == "pad" else 2
                fill = t._arg(node, pos, "value", None)
                fill = 0.0 if fill is None else fill
                if not t._number(fill):
                    raise _Refuse(2, f"{where}: the padding value must be a number")
                if len(args) > pos:
                    args = args[:pos] + (-1.0,) + args[pos + 1:]
                else:
                    kwargs["value"] = -1.0

        def call(a, k):
            return getattr(a[0], node.target)(*a[1:], **k) if node.op == "call_method" else node.target(*a, **k)

        try:
            out = call(args, kwargs)
        except Exception as e:  # noqa: BLE001 -- torch's reason, named by the node
            raise _Refuse(2, f"{where} could not be read as a selection of elements ({type(e).__name__}: {e})")
        if isinstance(out, (tuple, list)):
            if not all(isinstance(o, torch.Tensor) for o in out):
                raise _Refuse(2, f"{where}: expected a tensor or a tuple of tensors")

            def parts(i, _a=node.args, _k=node.kwargs, _src=src.fn):
                own = _src(i) if _src is not None else i  # (the parts of the split before this one)
                a = torch.fx.node.map_arg(_a, lambda v: own if v is x else value(v))
                return call(a, dict(torch.fx.node.map_arg(_k, lambda v: own if v is x else value(v))))
            return _Node("tuple", [base], tuple(base.shape), label, fn=parts)
        return self.selection(where, base, out, shape, label, fill)

    def resample(self, node, where, x, src: _Node, shape, label) -> _Node:
        """``F.interpolate`` in a linear mode (linear, bilinear, bicubic, area; not antialiased) or
        its ATen form (``aten.upsample_bilinear2d``, ...) as a fixed linear map (:class:`_ops.Resample`)."""
        t = self.t
        name = t._op(node)[1]
        if name in _RESAMPLE_ATEN:
            if "_aa" in name:
                raise _Refuse(2, f"{where}: antialiased interpolation is not supported")
            def const(a):
                if a is x or "splinescope_value" not in a.meta:
                    raise _Refuse(2, f"{where}: the size or scale of an interpolation must be constants")
                return a.meta["splinescope_value"]
            rest = torch.fx.node.map_arg(node.args[1:], const)
            kw = dict(torch.fx.node.map_arg(node.kwargs, const))

            def aten(v, _f=node.target, _a=tuple(rest), _k=kw):
                return _f(v, *_a, **_k)
            return _Node("affine", [src], tuple(shape), label,
                         op=_ops.Resample.of(repr((str(node.target), rest, sorted(kw.items()))), aten, src.shape,
                                             shape))
        mode = t._arg(node, 3, "mode", "nearest")
        if mode not in ("linear", "bilinear", "bicubic", "area") or t._arg(node, 6, "antialias", False):
            raise _Refuse(2, f"{where}: interpolation mode {mode!r} is not supported (nearest, nearest-exact, "
                             "linear, bilinear, bicubic and area are, without antialias)")
        kw = {k: t._arg(node, i, k, None) for i, k in ((1, "size"), (2, "scale_factor"), (4, "align_corners"),
                                                        (5, "recompute_scale_factor"))}
        if any(isinstance(v, torch.fx.Node) for v in kw.values()):
            raise _Refuse(2, f"{where}: the size or scale of an interpolation must be constants")

        def fn(v, _kw=kw, _mode=mode):
            return F.interpolate(v, mode=_mode, **_kw)
        return _Node("affine", [src], tuple(shape), label,
                     op=_ops.Resample.of(repr(("interpolate", mode, sorted(kw.items()))), fn, src.shape, shape))

    @staticmethod
    def selection(where, base: _Node, out, shape, label, fill=None) -> _Node:
        """The node selecting the elements of ``base`` named by ``out``: a selection run on
        :func:`_element_ids` of ``base`` (a batch of two samples). In ``out`` an id is an element, 0
        a zero the operation made (zero padding), -1 the padding marker of the constant ``fill``."""
        n = base.numel
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2,) + tuple(shape):
            raise _Refuse(2, f"{where} could not be read as a selection of elements of one sample")
        r0, r1 = out[0].reshape(-1).numpy(), out[1].reshape(-1).numpy()
        if not (np.isfinite(r0).all() and (r0 == np.round(r0)).all()):
            raise _Refuse(2, f"{where} combines elements (not a selection of them); supported: {SUPPORTED_GRAPH}")
        made = r0 <= 0  # a zero or the fill
        pad = (r0 == -1) if fill is not None else np.zeros(len(r0), bool)
        ok = np.where(made, (r1 == r0) & ((r0 == 0) | pad), (r0 <= n) & (r1 == r0 + n))
        if not ok.all():
            raise _Refuse(2, f"{where} mixes the samples of a batch; the batch must stay the first dimension")
        g = _Node("affine", [base], tuple(shape), label,
                  op=_ops.Gather(np.where(made, -1, r0 - 1).astype(np.int64), shape))
        if fill is not None and fill != 0 and pad.any():
            return _Node("affine", [g], tuple(shape), label,
                         op=_ops.AddConst(np.where(pad, float(fill), 0.0).reshape(shape)))
        return g

    def broadcast(self, where, src: _Node, ins, shape, label) -> _Node:
        """``src`` as an operand of ``x + y`` or ``torch.maximum(x, y)`` of shape ``shape``: itself, or
        broadcast (a dimension of size 1 repeated, as torch broadcasts it; ``h - h.mean(1,
        keepdim=True)``) by a selection."""
        if tuple(src.shape) == tuple(shape):
            return src
        if len(src.shape) != len(shape) or any(a not in (1, b) for a, b in zip(src.shape, shape)):
            raise _Refuse(2, f"{where} broadcasts {ins[0].shape} and {ins[1].shape}; only tensors of one shape, or "
                             "of one rank with sizes 1 where they differ (keepdim=True), are supported")
        return self.selection(where, src, torch.broadcast_to(_element_ids(src.shape), (2,) + tuple(shape)), shape,
                              label)

    def where_act(self, where, cond, a, b, shape, act,
                  form: str = "torch.where(h > c, a, b) with a and b each") -> _Node:
        """``torch.where(h > c, a, b)`` (``>=``, ``<``, ``<=``; ``c`` a number; the condition cast to
        any dtype) where ``a`` and ``b`` are each ``alpha * h + beta`` through numbers (``h``,
        ``0.1 * h``, ``h - 1``, a number, a constant like ``zeros_like(h)``): an activation of ``h`` with
        one breakpoint ``c``, if it is continuous there (a leaky ReLU written as
        ``torch.where(h > 0, h, 0.1 * h)``; a ReLU written as ``h * (h > 0)`` is ``where(h > 0, h, 0)``)."""
        t = self.t
        cond = cond.meta["splinescope_cond"]  # the comparison itself (through casts)
        h, c = cond.args[0], float(cond.args[1])
        pieces = [self.affine_of(v, h, where) for v in (a, b)]
        if any(p is None for p in pieces) or tuple(self._nodes[h].shape) != tuple(shape):
            raise _Refuse(2, f"{where}: only {form} alpha * h + "
                             "beta (numbers alpha, beta; the value the condition compares) is supported")
        (aa, ba), (ab, bb) = (p for p in pieces if p is not None)
        fa, fb = aa * Fraction(c) + ba, ab * Fraction(c) + bb  # (exact: the pieces' constants need not be floats)
        if fa != fb:
            raise _Refuse(2, f"{where} is piecewise linear but not continuous ({float(fa):g} and {float(fb):g} at "
                             f"{c:g}); only continuous activations are supported: {SUPPORTED_GRAPH}")
        above = t._op(cond)[1] in ("gt", "ge", "greater", "greater_equal")  # a holds above c
        slopes = [float(ab), float(aa)] if above else [float(aa), float(ab)]
        return act([c], slopes, float(fa), src=self._nodes[h])

    @staticmethod
    def prelu(where, weight: np.ndarray, shape, act) -> _Node:
        """PReLU with ``weight``: one slope, or one per channel (the first dimension after the batch)."""
        a = np.asarray(weight, np.float64).reshape(-1)
        n = int(np.prod(shape, dtype=np.int64))
        if len(a) == 1:
            per = np.full(n, a[0])
        else:
            if len(shape) < 1 or shape[0] != len(a):
                raise _Refuse(2, f"{where} has {len(a)} slopes but its input has {shape[0] if shape else 1} channels")
            per = np.repeat(a, n // len(a))
        return act([0.0], np.stack([per, np.ones(n)]), 0.0)

    def cast(self, where, node, name: str, src: _Node, shape) -> _Node:
        """A copy or a cast to a floating dtype (``x.clone()``, ``x.float()``, ``x.to(torch.float32)``,
        ``x.type_as(w)``, ``x.detach()``, ``x.cpu()``): the value itself. The network is read in exact
        arithmetic, as everywhere (a float32 model's own rounding is not part of it); a cast to a
        dtype that is not floating (``x.int()``, ``x.bool()``) is refused: it rounds or compares."""
        tm = node.meta.get("tensor_meta")
        dtype = getattr(tm, "dtype", None)
        if dtype is None or not dtype.is_floating_point:
            raise _Refuse(0, f"{where} makes a value of dtype {dtype} (rounding or comparing): not piecewise linear; "
                             "casts to a floating dtype (x.float(), x.to(torch.float64)) are read as the value itself")
        if tuple(shape) != tuple(src.shape):
            raise _Refuse(2, f"{where}: a copy or cast that changes the shape ({src.shape} to {tuple(shape)}) is "
                             "not supported")
        return src

    def affine_of(self, n, h, where: str) -> Optional[Tuple[Fraction, Fraction]]:
        """``(alpha, beta)``, exact, when ``n`` is ``alpha * h + beta`` elementwise, made from ``h`` by
        negation, multiplication, division, addition and subtraction by numbers (or is a number, or a
        constant tensor of one value); else None."""
        t = self.t
        if n is h:
            return Fraction(1), Fraction(0)
        if t._number(n):
            return Fraction(0), Fraction(float(n))
        if not isinstance(n, torch.fx.Node) or n.op not in ("call_function", "call_method") or n.kwargs:
            return None
        if self.is_const(n):
            v = self.const(where, n)
            if isinstance(v, torch.Tensor) and v.numel() and bool((v == v.reshape(-1)[0]).all()):
                return Fraction(0), Fraction(float(v.reshape(-1)[0]))
            return None
        name = t._op(n)[1]
        if name == "neg" and len(n.args) == 1:
            r = self.affine_of(n.args[0], h, where)
            return None if r is None else (-r[0], -r[1])
        if len(n.args) != 2 or name not in ("mul", "add", "sub", "truediv", "div"):
            return None
        x, y = n.args
        if isinstance(y, (int, float)) and not isinstance(y, bool):
            r, k = self.affine_of(x, h, where), Fraction(float(y))
            if r is None or (name in ("truediv", "div") and k == 0):
                return None
            return {"mul": (r[0] * k, r[1] * k), "add": (r[0], r[1] + k), "sub": (r[0], r[1] - k)}.get(
                name, (r[0] / k, r[1] / k))
        if isinstance(x, (int, float)) and not isinstance(x, bool) and name in ("mul", "add", "sub"):
            r, k = self.affine_of(y, h, where), Fraction(float(x))
            if r is None:
                return None
            return {"mul": (k * r[0], k * r[1]), "add": (r[0], k + r[1]), "sub": (-r[0], k - r[1])}[name]
        return None

    def like(self, node, name: str, first: Optional[str]) -> Optional[torch.Tensor]:
        """``torch.zeros_like(x)``, ``ones_like(x)``, ``full_like(x, v)`` of a value that depends on the
        input: only its shape is read, so the result is a constant of one sample's shape (a number
        ``v``); ``x.new_zeros(size)``, ``new_ones``, ``new_full(size, v)``: a constant of the shape the
        example run made (with a batch dimension where ``size`` names one, ``h.new_zeros(h.size(0),
        k)``: what a concatenation reads); None for any other call."""
        if first == "data" and name in ("new_zeros", "new_ones", "new_full"):
            fill = {"new_zeros": 0.0, "new_ones": 1.0}.get(name)
            if fill is None:
                fill = self.t._arg(node, 2, "fill_value", None)
            tm = node.meta.get("tensor_meta")
            if not self.t._number(fill) or tm is None or not hasattr(tm, "shape") or not tm.dtype.is_floating_point:
                return None
            return torch.full(tuple(int(v) for v in tm.shape), float(fill), dtype=torch.float64)
        if first != "data" or name not in ("zeros_like", "ones_like", "full_like"):
            return None
        fill = {"zeros_like": 0.0, "ones_like": 1.0}.get(name)
        if fill is None:
            fill = self.t._arg(node, 1, "fill_value", None)
        rest = [a for a in list(node.args[1 if name != "full_like" else 2:]) + list(node.kwargs.values())
                if isinstance(a, torch.fx.Node)]
        tm = node.meta.get("tensor_meta")
        if not self.t._number(fill) or rest or tm is None or not hasattr(tm, "shape"):
            return None
        return torch.full(tuple(int(v) for v in tm.shape)[1:], float(fill), dtype=torch.float64)

    def const(self, where, n):
        """The value of an argument that does not depend on the input: a parameter or buffer, a
        number, or torch's own call on such values (``self.w.t()``), evaluated here."""
        if not isinstance(n, torch.fx.Node):
            return n
        if self._kinds.get(n) == "data":
            raise _Refuse(2, f"{where}: {n.name!r} depends on the input where a constant is expected")
        if n.op == "get_attr":
            return self.attr(where, n).detach()
        if "splinescope_like" in n.meta:
            return n.meta["splinescope_like"]
        if "splinescope_value" in n.meta:
            return n.meta["splinescope_value"]
        if n.op not in ("call_function", "call_method"):
            raise _Refuse(2, f"{where}: its constant {n.name!r} is made by a module; only parameters, buffers "
                             "and torch calls on them are read")
        args = torch.fx.node.map_arg(n.args, lambda a: self.const(where, a))
        kwargs = dict(torch.fx.node.map_arg(n.kwargs, lambda a: self.const(where, a)))
        fn = str(getattr(n.target, "__name__", n.target))
        training = "dropout" in fn and (args[2] if len(args) > 2 else kwargs.get("training", True))
        if any(r in fn for r in _RANDOM) or training or fn.startswith("empty") or fn.endswith("empty"):
            raise _Refuse(2, f"{where}: its constant {n.name!r} ({fn}) is random or uninitialized, not a fixed "
                             "value; only deterministic torch calls on parameters and buffers are read")
        if fn.endswith("_") and not fn.startswith("_"):
            raise _Refuse(2, f"{where}: its constant {n.name!r} is made in place ({fn}), which would change the "
                             "model's parameters; only torch calls that return a new tensor are read")
        with torch.no_grad():
            v = getattr(args[0], n.target)(*args[1:], **kwargs) if n.op == "call_method" else n.target(*args, **kwargs)
        return v.detach() if isinstance(v, torch.Tensor) else v

    def const_array(self, where, n) -> np.ndarray:
        """A constant tensor argument (:meth:`attr`) as a float64 array."""
        return self.attr(where, n).detach().to(torch.float64).numpy()

    def is_const(self, n) -> bool:
        """Whether ``n`` is a node whose value does not depend on the input (a parameter, or made from
        parameters in forward)."""
        return isinstance(n, torch.fx.Node) and self._kinds.get(n) == "const"

    def attr(self, where, n):
        """A weight: a parameter or buffer, or a tensor made from them in forward (:meth:`const`)."""
        if isinstance(n, torch.fx.Node) and n.op != "get_attr" and self.is_const(n):
            v = self.const(where, n)
            if isinstance(v, torch.Tensor):
                return v
        if not (isinstance(n, torch.fx.Node) and n.op == "get_attr"):
            raise _Refuse(2, f"{where}: weights must be attributes of the module (parameters or buffers) or "
                             "tensors made from them")
        import functools
        return functools.reduce(getattr, n.target.split("."), self.model)

    @staticmethod
    def rrelu(where, lower: float, upper: float, training: bool, act):
        if training:
            raise _Refuse(2, f"{where} is in training mode (a random slope is not a fixed map); call model.eval() "
                             "first (then its slope is (lower + upper) / 2)")
        return act([0.0], [(lower + upper) / 2, 1.0], 0.0)

    @staticmethod
    def threshold(where, th: float, value: float, act):
        if value != th:
            raise _Refuse(2, f"{where} is piecewise linear but not continuous (x > {th:g} else {value:g} jumps "
                             f"at {th:g}); only a continuous threshold (value = threshold, max(x, threshold)) is "
                             "supported")
        return act([th], [0.0, 1.0], th)

    @staticmethod
    def hardshrink(where) -> "_Refuse":
        """The refusal of Hardshrink (module and function alike)."""
        return _Refuse(2, f"{where} is piecewise linear but not continuous (it jumps at +-lambd); only "
                          f"continuous activations are supported: {SUPPORTED_GRAPH}")

    @staticmethod
    def hardsigmoid(src: _Node, shape, label) -> _Node:
        """``relu6(x + 3) / 6`` (torch's formula), the division exact on the exact side."""
        n = int(np.prod(shape, dtype=np.int64))
        up = _Node("affine", [src], tuple(shape), label, op=_ops.AddConst(np.asarray(3.0)))
        a = _Node("act", [up], tuple(shape), label, bp=np.array([0.0, 6.0]),
                  slopes=np.repeat(np.array([0.0, 1.0, 0.0])[:, None], n, axis=1), value0=np.zeros(n))
        return _Node("affine", [a], tuple(shape), label, op=_ops.Scale(6.0, divide=True))

    def clamp(self, where, lo, hi, act):
        if lo is None and hi is None:
            raise _Refuse(2, f"{where}: clamp without bounds")
        if lo is not None and hi is not None:
            if not lo < hi:
                raise _Refuse(2, f"{where}: clamp needs min < max, got {lo} and {hi}")
            return act([lo, hi], [0.0, 1.0, 0.0], lo)
        if lo is not None:
            return act([lo], [0.0, 1.0], lo)
        return act([hi], [1.0, 0.0], hi)

    def weighted_linear(self, where, w, b) -> _ops.Op:
        w = _f64(w)
        if w.ndim != 2:
            raise _Refuse(2, f"{where}: the weight must be (out, in), got {tuple(w.shape)}")
        return _ops.Weighted(lambda x, ww: F.linear(x, ww), w, b, w.shape[1], (-1,))

    def einsum(self, where, node, x, in_shape) -> _ops.Op:
        """``torch.einsum`` of the input and one constant tensor (a parameter, a buffer, or a constant
        made from them): ``f(x, w) = einsum(eq, x, w)``, linear in each, as a weighted operation
        (exact through :func:`_ops.exact_bilinear`; at most the product of the summed dimensions'
        sizes of products per value). The input's first index must be the batch: the output's first,
        read once, and not an index of the constant."""
        ops = node.args[1:]
        if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
            ops = tuple(ops[0])
        eq = node.args[0]
        if not isinstance(eq, str) or node.kwargs or len(ops) != 2 or sum(a is x for a in ops) != 1:
            raise _Refuse(2, f"{where}: only einsum of the input and one constant tensor is supported")
        k = 0 if ops[0] is x else 1
        w = self.const(where, ops[1 - k])
        if not isinstance(w, torch.Tensor):
            raise _Refuse(2, f"{where}: only einsum of the input and one constant tensor is supported")
        eq = eq.replace(" ", "")
        if "->" not in eq or "." in eq:
            raise _Refuse(2, f"{where}: only einsum equations with an explicit output ('...->...') and no "
                             "ellipsis are supported")
        return self.einsum_op(where, eq, k, w, in_shape)

    def einsum_op(self, where, eq: str, k: int, w: torch.Tensor, in_shape) -> _ops.Op:
        """The weighted operation ``einsum(eq, x, w)`` (``k == 0``) or ``einsum(eq, w, x)`` (``k == 1``)
        of the input ``x`` (its sample's shape ``in_shape``) and a constant ``w``."""
        lhs, out = eq.split("->")
        subs = lhs.split(",")
        sx, sw = subs[k], subs[1 - k]
        b = sx[:1]
        if not b or len(sx) != len(in_shape) + 1 or len(sw) != w.ndim or sx.count(b) != 1 or b in sw \
                or out[:1] != b or out.count(b) != 1:
            raise _Refuse(2, f"{where}: in einsum {eq!r} the input's first index must be its batch index, "
                             "the output's first, and not an index of the constant")

        def f(v, ww, _eq=eq, _k=k):
            return torch.einsum(_eq, v, ww) if _k == 0 else torch.einsum(_eq, ww, v)
        return _ops.Weighted(f, _f64(w), None, _einsum_terms(sx[1:], in_shape, sw, w.shape, out), None)

    def tensordot(self, where, node, x, in_shape) -> _ops.Op:
        """``torch.tensordot(x, w, dims)`` (or ``(w, x)``) of the input and a constant tensor: the
        einsum it stands for (:meth:`einsum_op`), ``dims`` a number (the last ``dims`` dimensions of
        the first operand against the first of the second) or two lists of dimensions. The batch
        dimension must stay the output's first: it is not summed, and the constant comes second
        unless all of its dimensions are summed."""
        t = self.t
        a, b = t._arg(node, 0, "a"), t._arg(node, 1, "b")
        if sum(v is x for v in (a, b)) != 1:
            raise _Refuse(2, f"{where}: only tensordot of the input and one constant tensor is supported")
        k = 0 if a is x else 1
        w = self.const(where, b if k == 0 else a)
        if not isinstance(w, torch.Tensor):
            raise _Refuse(2, f"{where}: only tensordot of the input and one constant tensor is supported")
        ranks = (len(in_shape) + 1, w.ndim) if k == 0 else (w.ndim, len(in_shape) + 1)
        if isinstance(node.target, torch._ops.OpOverload):  # aten.tensordot(a, b, dims_a, dims_b)
            dims = (node.args[2], node.args[3])
        else:
            dims = t._arg(node, 2, "dims", 2)
            if t._arg(node, 3, "out", None) is not None:
                raise _Refuse(2, f"{where}: tensordot into out= is not supported")
        if isinstance(dims, torch.Tensor):
            dims = dims.tolist()
        if isinstance(dims, int):
            da, db = list(range(ranks[0] - dims, ranks[0])), list(range(dims))
        elif isinstance(dims, (list, tuple)) and len(dims) == 2:
            da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
        else:
            raise _Refuse(2, f"{where}: tensordot dims must be a number or two lists of dimensions, got {dims!r}")
        da = [d + ranks[0] if d < 0 else d for d in da]
        db = [d + ranks[1] if d < 0 else d for d in db]
        if len(da) != len(db) or not all(0 <= d < r for ds, r in ((da, ranks[0]), (db, ranks[1])) for d in ds):
            raise _Refuse(2, f"{where}: tensordot dims {dims!r} do not name dimensions of both operands")
        letters = iter("abcdefghijklmnopqrstuvwxyz")
        ia, ib = [next(letters) for _ in range(ranks[0])], [next(letters) for _ in range(ranks[1])]
        for i, j in zip(da, db):
            ib[j] = ia[i]
        out = [c for i, c in enumerate(ia) if i not in da] + [c for j, c in enumerate(ib) if j not in db]
        return self.einsum_op(where, f"{''.join(ia)},{''.join(ib)}->{''.join(out)}", k, w, in_shape)

    def along(self, where, node, name, in_shape) -> _ops.Op:
        """``torch.cumsum(x, dim)`` and ``torch.diff(x, n, dim)`` along one dimension of a sample: a
        weighted operation by the (size, out size) matrix applied along that dimension (ones on and
        above the diagonal: a running sum; the ``n``-th differences of neighbours), exact through
        :func:`_ops.exact_bilinear`. ``diff``'s ``prepend`` / ``append`` are not read: concatenate
        first."""
        t = self.t
        nd = len(in_shape) + 1
        if name == "cumsum":
            dim = t._arg(node, 1, "dim")
            dtype = t._arg(node, 2, "dtype", None)
            if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
                raise _Refuse(0, f"{where}: a running sum cast to {dtype} rounds: it is not piecewise linear")
        else:
            dim = t._arg(node, 2, "dim", -1)
            if t._arg(node, 3, "prepend", None) is not None or t._arg(node, 4, "append", None) is not None:
                raise _Refuse(2, f"{where}: diff with prepend= or append= is not supported; concatenate first "
                                 "(torch.diff(torch.cat([a, x], dim), dim=dim))")
        if not isinstance(dim, int) or not -nd <= dim < nd:
            raise _Refuse(2, f"{where}: the dimension of a {name} must be a number within the value's {nd}, got "
                             f"{dim!r}")
        d = dim % nd
        if d == 0:
            raise _Refuse(2, f"{where}: a {name} along the batch dimension is not a map of one sample")
        size = in_shape[d - 1]
        if name == "cumsum":
            w, fan = torch.triu(torch.ones(size, size, dtype=torch.float64)), size
        else:
            n = t._arg(node, 1, "n", 1)
            if not isinstance(n, int) or not 0 <= n < size:
                raise _Refuse(2, f"{where}: diff's n must be a number from 0 to the size along dim less one "
                                 f"({size - 1}), got {n!r}")
            w = torch.eye(size, dtype=torch.float64)
            for _ in range(n):  # each a difference of neighbours: out[j] = in[j + 1] - in[j]
                w = w[:, 1:] - w[:, :-1]
            fan = n + 1

        def f(v, ww, _d=d):
            return torch.movedim(torch.movedim(v, _d, -1) @ ww, -1, _d)
        return _ops.Weighted(f, w, None, fan, None)

    def addmm(self, where, node, data_in, ins: List[_Node], shape, label) -> _Node:
        """``torch.addmm(c, x, W, beta=, alpha=)`` of the input ``x`` with constants ``c`` and ``W``:
        ``x @ W``, times ``alpha``, plus ``beta * c``."""
        t = self.t
        c, a, w = (t._arg(node, i, n) for i, n in enumerate(("input", "mat1", "mat2")))
        beta, alpha = t._arg(node, 3, "beta", 1), t._arg(node, 4, "alpha", 1)
        src = ins[0]
        if len(data_in) != 1 or a is not data_in[0] or not (self.is_const(c) or t._number(c)) or not self.is_const(w) \
                or not (t._number(beta) and t._number(alpha)):
            raise _Refuse(2, f"{where}: only addmm(c, x, W) of the input x with constants c and W (and numbers beta, "
                             "alpha) is supported")
        w = self.const(where, w)
        if not isinstance(w, torch.Tensor) or w.ndim != 2:
            raise _Refuse(2, f"{where}: only addmm with a 2-D weight is supported")
        y = _Node("affine", [src], tuple(shape), label, op=self.weighted_linear(where, w.detach().T, None))
        if float(alpha) != 1.0:
            y = _Node("affine", [y], tuple(shape), label, op=_ops.Scale(float(alpha)))
        cv = self.const_operand(where, c, shape, "addmm's c")
        return _Node("affine", [y], tuple(shape), label, op=_ops.AddConst(float(beta) * cv))

    def lerp(self, where, node, data_in, ins: List[_Node], shape, label) -> _Node:
        """``torch.lerp(a, b, w) = a + w (b - a)`` with ``w`` a number or a constant tensor and ``a``, ``b``
        values of the input or constants (one of them a value), read as those sums and products."""
        t = self.t
        a, b, w = t._arg(node, 0, "input"), t._arg(node, 1, "end"), t._arg(node, 2, "weight")
        if isinstance(w, torch.fx.Node) and not self.is_const(w):
            raise _Refuse(0, f"{where}: a lerp whose weight depends on the input is a product of two values that "
                             "depend on it: not piecewise linear")
        by = {id(v): n for v, n in zip(data_in, ins)}

        def value(v):  # a node of the output's shape, or a constant array
            if id(v) in by:
                return self.broadcast(where, by[id(v)], ins, shape, label)
            return self.const_operand(where, v, shape, "lerp's ends")

        def node_of(op, args):
            return _Node("affine", args, tuple(shape), label, op=op)
        va, vb = value(a), value(b)
        if isinstance(va, np.ndarray):  # b - a, a value
            diff = node_of(_ops.AddConst(-va), [vb])
        elif isinstance(vb, np.ndarray):
            diff = node_of(_ops.AddConst(vb), [node_of(_ops.Scale(-1.0), [va])])
        else:
            diff = node_of(_ops.Sub(), [vb, va])
        if self.is_const(w):
            wc = self.const_array(where, w)
            _keeps_shape(where, wc, shape, shape)
            step = node_of(_ops.ScaleConst(wc), [diff])
        else:
            step = node_of(_ops.Scale(float(w)), [diff])
        return node_of(_ops.AddConst(va), [step]) if isinstance(va, np.ndarray) else node_of(_ops.Add(), [va, step])

    def conv_node(self, where, nd, w, b, stride, padding, dilation, groups, src: _Node, shape, label,
                  mode: str = "zeros") -> _Node:
        """A convolution of ``src``: padding given as numbers, 'valid' or 'same', of any ``mode``
        (zeros, reflect, replicate, circular). A padding that is not one number per side of the
        convolution's own kind (another mode, or 'same' with an even span: one more on the right) is
        a selection first (torch's padding of the element ids, :meth:`selection`), then the convolution
        without padding."""
        dil = _pair(dilation, nd)
        k = tuple(w.shape[2:])
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise _Refuse(2, f"{where}: padding={padding!r} is not supported (numbers, 'same' or 'valid')")
            total = [0] * nd if padding == "valid" else [d * (kk - 1) for d, kk in zip(dil, k)]
            sides = [(t_ // 2, t_ - t_ // 2) for t_ in total]
        else:
            sides = [(p, p) for p in _pair(padding, nd)]
        if mode == "zeros" and all(lo == hi for lo, hi in sides):
            return _Node("affine", [src], tuple(shape), label,
                         op=self.conv(where, nd, w, b, stride, [lo for lo, _ in sides], dilation, groups, src.shape,
                                      shape))
        ids = F.pad(_element_ids(src.shape), [v for lo, hi in reversed(sides) for v in (lo, hi)],
                    mode="constant" if mode == "zeros" else mode)  # (zeros: the 0 ids it makes)
        padded = self.selection(where, src, ids, tuple(ids.shape[1:]), label)
        return _Node("affine", [padded], tuple(shape), label,
                     op=self.conv(where, nd, w, b, stride, 0, dilation, groups, padded.shape, shape))

    def conv(self, where, nd, w, b, stride, padding, dilation, groups, in_shape, out_shape,
             transpose=False, output_padding=0) -> _ops.Op:
        w = _f64(w)
        if isinstance(padding, str):
            raise _Refuse(2, f"{where}: padding={padding!r} is not supported; give the padding as numbers")
        padding = _pair(padding, nd)
        if transpose:
            fn = _CONV_TRANSPOSE[nd]
            op_ = _pair(output_padding, nd)

            def f(x, ww):
                return fn(x, ww, None, stride, padding, op_, groups, dilation)
            fan = (w.shape[0] // groups) * int(np.prod(w.shape[2:]))
        else:
            fn = _CONV[nd]  # type: ignore[assignment]

            def f(x, ww):
                return fn(x, ww, None, stride, padding, dilation, groups)
            fan = int(np.prod(w.shape[1:]))
        return _ops.Weighted(f, w, b, fan, (-1,) + (1,) * nd, matrix=True)

    def avgpool(self, nd, k, s, p, ceil_mode, count_include_pad, divisor_override, in_shape, out_shape):
        _, table = _pool_table(in_shape, k, s, p, (1,) * nd, ceil_mode)
        tab = np.array(table, np.int64)
        if divisor_override:
            div = np.full(len(tab), int(divisor_override))
        elif count_include_pad:
            # torch counts the padded positions inside the padded input, not those past it (ceil_mode)
            div = []
            import itertools
            per = [_ops.windows(in_shape[-nd + d], k[d], s[d], p[d], 1, ceil_mode) for d in range(nd)]
            lead = int(np.prod(in_shape[:-nd], dtype=np.int64))
            for _c in range(lead):
                for pos in itertools.product(*[range(len(w)) for w in per]):
                    cnt = 1
                    for d in range(nd):
                        i = pos[d]
                        start = i * s[d] - p[d]
                        end = min(start + k[d], in_shape[-nd + d] + p[d])
                        cnt *= end - start
                    div.append(cnt)
            div = np.array(div)
        else:
            div = (tab >= 0).sum(1)
        fn_ = _AVG_POOL[nd]
        kw: Dict[str, Any] = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode,
                                  count_include_pad=count_include_pad)
        if nd == 2:
            kw["divisor_override"] = divisor_override
        return _ops.Pool(lambda x: fn_(x, **kw), tab, div)

    def adaptive_avg(self, nd, out, in_shape, out_shape):
        _, table = _pool_table(in_shape, None, None, None, None, False, adaptive_out=out)
        width = max(len(r) for r in table)
        tab = np.array([r + [-1] * (width - len(r)) for r in table], np.int64)
        div = np.array([len(r) for r in table])
        fn_ = _ADAPTIVE_AVG_POOL[nd]
        return _ops.Pool(lambda x: fn_(x, out), tab, div)

    def module(self, node, m, kind, where, ins, shape, label, affine, act, maxpool) -> _Node:
        t = self.t
        for tensor in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
                raise NonFiniteWeightsError(f"layer {node.target} ({kind}) has non-finite weights (NaN or inf)")
        reg = registered(type(m))
        if reg is not None:
            return self.registered_act(where, m, reg, shape, act)
        if kind == "Linear":
            return affine(self.weighted_linear(where, m.weight, m.bias))
        if kind in SELECTION_MODULES:
            idx = _element_ids(ins[0].shape)
            if isinstance(m, torch.nn.modules.padding._ConstantPadNd):  # its constant is added after
                return self.selection(where, ins[0], F.pad(idx, list(m.padding), value=-1.0), shape, label,
                                      float(m.value))
            if kind == "Upsample" and m.mode not in ("nearest", "nearest-exact"):
                if m.mode not in ("linear", "bilinear", "bicubic"):
                    raise _Refuse(2, f"{where}: Upsample(mode={m.mode!r}) is not supported (nearest, linear, "
                                     "bilinear and bicubic are)")
                key = repr(("Upsample", m.mode, m.size, m.scale_factor, m.align_corners, m.recompute_scale_factor))
                return _Node("affine", [ins[0]], tuple(shape), label, op=_ops.Resample.of(key, m, ins[0].shape, shape))
            return self.selection(where, ins[0], m(idx), shape, label)
        if kind in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"):
            nd = _nd(kind)
            if m.padding_mode != "zeros" and kind.startswith("ConvTranspose"):
                raise _Refuse(2, f"{where}: padding_mode={m.padding_mode!r} is not supported for a transposed "
                                 "convolution (only 'zeros')")
            if not kind.startswith("ConvTranspose"):
                return self.conv_node(where, nd, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups, ins[0],
                                      shape, label, m.padding_mode)
            return affine(self.conv(where, nd, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups,
                                    ins[0].shape, shape, transpose=kind.startswith("ConvTranspose"),
                                    output_padding=getattr(m, "output_padding", 0)))
        if kind in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"):
            if m.training:
                raise _Refuse(2, f"{where} is in training mode (batch statistics are not a fixed map); "
                                 "call model.eval() first")
            if m.running_mean is None:
                raise _Refuse(2, f"{where} keeps no running statistics (track_running_stats=False)")
            return affine(_running_norm(m, shape))
        if kind in ("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"):  # affine only with its running statistics, in eval mode
            if m.training or not m.track_running_stats or m.running_mean is None:
                raise _Refuse(0, self.t.not_pl(where, kind, SUPPORTED_GRAPH))
            return affine(_running_norm(m, shape))
        if kind in ("Flatten", "Unflatten", "Identity"):
            return affine(_ops.Reshape(shape))
        if kind in DROPOUT_MODULES:
            if m.training and m.p > 0:
                raise _Refuse(2, f"{where} is in training mode (a random mask is not a fixed map); "
                                 "call model.eval() first")
            return affine(_ops.Reshape(shape))
        if kind == "ReLU":
            return act([0.0], [0.0, 1.0], 0.0)
        if kind == "LeakyReLU":
            return act([0.0], [float(m.negative_slope), 1.0], 0.0)
        if kind == "PReLU":
            return self.prelu(where, m.weight.detach().to("cpu", torch.float64).numpy(), shape, act)
        if kind == "ReLU6":
            return act([0.0, 6.0], [0.0, 1.0, 0.0], 0.0)
        if kind == "Softshrink":
            return act([-float(m.lambd), float(m.lambd)], [1.0, 0.0, 1.0], 0.0)
        if kind == "RReLU":
            return self.rrelu(where, float(m.lower), float(m.upper), m.training, act)
        if kind == "Threshold":
            return self.threshold(where, float(m.threshold), float(m.value), act)
        if kind == "Hardsigmoid":
            return self.hardsigmoid(ins[0], shape, label)
        if kind == "Hardshrink":
            raise self.hardshrink(where)
        if kind == "Hardtanh":
            return self.clamp(where, float(m.min_val), float(m.max_val), act)
        if kind in ("MaxPool1d", "MaxPool2d", "MaxPool3d"):
            nd = _nd(kind)
            if m.return_indices:
                raise _Refuse(2, f"{where}: return_indices=True is not supported")
            k = _pair(m.kernel_size, nd)
            s = _pair(m.stride if m.stride is not None else m.kernel_size, nd)
            _, table = _pool_table(ins[0].shape, k, s, _pair(m.padding, nd), _pair(m.dilation, nd), m.ceil_mode)
            return maxpool(table)
        if kind in ("AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d"):
            nd = _nd(kind)
            if m.return_indices:
                raise _Refuse(2, f"{where}: return_indices=True is not supported")
            out = _pair(m.output_size, nd)
            out = tuple(ins[0].shape[-nd + i] if o is None else int(o) for i, o in enumerate(out))
            _, table = _pool_table(ins[0].shape, None, None, None, None, False, adaptive_out=out)
            return maxpool(table)
        if kind in ("AvgPool1d", "AvgPool2d", "AvgPool3d"):
            nd = _nd(kind)
            k = _pair(m.kernel_size, nd)
            s = _pair(m.stride if m.stride is not None else m.kernel_size, nd)
            return affine(self.avgpool(nd, k, s, _pair(m.padding, nd), m.ceil_mode, m.count_include_pad,
                                       getattr(m, "divisor_override", None), ins[0].shape, shape))
        if kind in ("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d"):
            nd = _nd(kind)
            out = _pair(m.output_size, nd)
            out = tuple(ins[0].shape[-nd + i] if o is None else int(o) for i, o in enumerate(out))
            return affine(self.adaptive_avg(nd, out, ins[0].shape, shape))
        if t.nonlinear_module(kind):
            raise _Refuse(0, t.not_pl(where, kind, SUPPORTED_GRAPH))
        raise _Refuse(2, f"{where} is not supported (not a known piecewise-linear layer; a continuous "
                         "piecewise-linear activation of your own can be declared with "
                         f"spatial.register_activation); supported: {SUPPORTED_GRAPH}")

    def registered_act(self, where, m, reg, shape, act):
        bp, sl = reg
        dtype = next((p.dtype for p in m.parameters()), torch.float64)
        dtype = torch.float64 if not dtype.is_floating_point else dtype

        def f(v):
            with torch.no_grad():
                return m(torch.full((1,) + tuple(shape), float(v), dtype=torch.float64 if dtype == torch.float64
                                    else dtype)).detach().to(torch.float64).reshape(-1).numpy()
        v0 = f(bp[0])
        # check the pieces: the module must be the declared function at points of every piece
        pts = [bp[0] - 1.0] + [(a + b) / 2 for a, b in zip(bp, bp[1:])] + [bp[-1] + 1.0] + list(bp)
        for z in pts:
            expect = v0 + _pl_value(z, bp, sl)
            got = f(z)
            tol = 1e-6 * (1 + np.abs(expect)) if dtype != torch.float64 else 1e-12 * (1 + np.abs(expect))
            if not np.all(np.abs(got - expect) <= tol):
                raise UnsupportedLayerError(
                    f"{where}: the activation registered for {type(m).__name__} (breakpoints {bp}, slopes {sl}) "
                    f"does not match the module at z = {z}: it gives {float(got.reshape(-1)[0])}, the declared "
                    f"pieces give {float(np.reshape(expect, -1)[0])}")
        return act(bp, sl, v0)


def _pl_value(z, bp, sl) -> float:
    """sigma(z) - sigma(b_1) of the declared pieces."""
    v = 0.0
    if z <= bp[0]:
        return sl[0] * (z - bp[0])
    for j in range(len(bp)):
        hi = bp[j + 1] if j + 1 < len(bp) else math.inf
        v += sl[j + 1] * (min(z, hi) - bp[j])
        if z <= hi:
            break
    return v


# ---- stages


@dataclass
class _Group:
    """Units of one PL node at one stage (in the split part of the state)."""

    node: _Node
    round: int  # tournament round (0 for an activation)
    start: int = 0  # first unit in the stage
    size: int = 0
    # activation: per unit (k * numel): sign a_j, breakpoint b_j, leaky slope alpha, multiplier m (exact)
    a: Optional[np.ndarray] = None
    b: Optional[np.ndarray] = None
    alpha: Optional[np.ndarray] = None
    mult: Optional[Q] = None  # exact
    mult_f: Optional[np.ndarray] = None
    # tournament round: per unit (window, left pos, right pos) into the current candidates
    pairs: Optional[np.ndarray] = None
    _cur: Any = None  # tournament: (running values, column of each slot) during one program call
    cand_in: Optional[List[List[int]]] = None  # per window: candidate slots entering this round
    cand_out: Optional[List[List[int]]] = None  # per window: slots after (winners, leftover)


def _fractions_of(x: np.ndarray, minus: Optional[np.ndarray] = None) -> np.ndarray:
    """An object array of the exact Fractions ``x`` (or ``x - minus``), made once per distinct
    value (every unit of a ReLU layer has the same slopes)."""
    pairs = np.stack([x, np.zeros_like(x) if minus is None else minus], 1)
    u, inv = np.unique(pairs, axis=0, return_inverse=True)
    vals = np.array([Fraction(float(a)) - Fraction(float(b)) for a, b in u], dtype=object)
    return vals[inv.reshape(-1)]


def _hinges(node: _Node) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per unit of an activation node (breakpoint-major): sign a, breakpoint b, leaky slope, multiplier."""
    bp, sl = node.bp, node.slopes
    assert bp is not None and sl is not None
    k, n = len(bp), sl.shape[1]
    A, B, AL, M = [], [], [], []
    s0, s1 = sl[0], sl[1]
    a1 = np.where(s1 != 0, 1.0, -1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        al1 = np.where(s1 != 0, s0 / np.where(s1 != 0, s1, 1.0), 0.0)
    bad = (s1 != 0) & (al1 * s1 != s0)
    if bad.any() or any(Fraction(float(x)) * Fraction(float(y)) != Fraction(float(z))
                        for x, y, z in zip(al1[s1 != 0][:64], s1[s1 != 0][:64], s0[s1 != 0][:64])):
        raise UnsupportedLayerError(
            f"{node.label}: the slopes {float(s0[0])} and {float(s1[0])} around the first breakpoint have a ratio "
            "that is not exact in float64; only ratios such as 0, 0.01 with a slope 1 after, -1, 0.5 are supported")
    A.append(a1)
    B.append(np.full(n, bp[0]))
    AL.append(al1)
    M.append(_fractions_of(np.where(s1 != 0, s1, -s0)))
    for j in range(1, k):
        A.append(np.ones(n))
        B.append(np.full(n, bp[j]))
        AL.append(np.zeros(n))
        M.append(_fractions_of(sl[j + 1], sl[j]))
    mult = np.concatenate(M)
    return np.concatenate(A), np.concatenate(B), np.concatenate(AL), mult


def _sources(node: _Node, memo: Dict[int, Set[int]], byid: Dict[int, _Node]) -> Set[int]:
    """The ids of the input / PL nodes an affine expression reads."""
    if node.uid in memo:
        return memo[node.uid]
    byid[node.uid] = node
    if node.kind in ("input", "act", "max"):
        out = {node.uid}
    else:
        out = set()
        for a in node.args:
            out |= _sources(a, memo, byid)
    memo[node.uid] = out
    return out


class StageOp:
    """The affine map of one stage: previous state -> (units' pre-activations, carried values).

    ``rows(H)``: float64 numpy rows (V, in) -> (V, out); ``rows_torch(H, c)`` on a torch tensor;
    ``bound(S)``: the same map with absolute weights (a bound of the terms' size); ``exact(M, c)``:
    object Fractions (k, in) -> (k, out), ``c`` (k,) integer multipliers of the constants (0/1, or a
    row's denominator: :meth:`~._predicates.ExactNet._forward_many`).
    """

    def __init__(self, program, in_features: int, out_features: int):
        self.program = program  # a function (backend, state (N, in), c) -> (N, out)
        self.in_features, self.out_features = in_features, out_features
        self._absmax: Optional[np.ndarray] = None
        self._rowsum: Optional[np.ndarray] = None
        self._cabs: Optional[np.ndarray] = None

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.out_features, self.in_features)

    def rows_torch(self, H: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        if c is None:
            c = torch.ones(len(H), dtype=H.dtype, device=H.device)
        return self.program(_TORCH, H, c)

    def rows(self, H: np.ndarray, c: Optional[np.ndarray] = None) -> np.ndarray:
        Ht = torch.from_numpy(np.ascontiguousarray(H, dtype=np.float64))
        ct = None if c is None else torch.from_numpy(np.asarray(c, np.float64))
        return self.rows_torch(Ht, ct).numpy()

    def bound(self, S: np.ndarray, c: Optional[np.ndarray] = None) -> np.ndarray:
        St = torch.from_numpy(np.ascontiguousarray(S, dtype=np.float64))
        ct = torch.ones(len(S), dtype=torch.float64) if c is None else torch.from_numpy(np.asarray(c, np.float64))
        return self.program(_BOUND, St, ct).numpy()

    def exact(self, M: Q, c: np.ndarray) -> Q:
        """The map at the rows of ``M``, exactly; ``c`` (k,) an object array of ints (the constants' multipliers)."""
        return self.program(_EXACT, M, c)

    EXACT_ABSMAX = 8192  # inputs up to which absmax() is each output's largest |weight| itself

    def absmax(self) -> np.ndarray:
        """(out,) a bound of each output's largest |weight|: the largest itself (the map with
        absolute weights on each unit input, in chunks) up to ``EXACT_ABSMAX`` inputs, else the
        row sum of |weights|. (The tolerance ``|h|_1 * absmax`` is a fan-in tighter with the first.)"""
        if self._absmax is None:
            n = self.in_features
            if n > self.EXACT_ABSMAX:
                self._absmax = self.rowsum()
            else:
                out = np.zeros(self.out_features)
                step = max(1, (1 << 22) // max(self.out_features, 1))
                for s in range(0, n, step):
                    E = np.zeros((min(step, n - s), n))
                    E[np.arange(len(E)), s + np.arange(len(E))] = 1.0
                    np.maximum(out, self.bound(E, np.zeros(len(E))).max(axis=0), out=out)
                self._absmax = out
        return self._absmax

    def rowsum(self) -> np.ndarray:
        """(out,) each output's sum of |weights| (the map with absolute weights on a row of ones)."""
        if self._rowsum is None:
            self._rowsum = self.bound(np.ones((1, self.in_features)), np.zeros(1))[0]
        return self._rowsum

    def const_abs(self) -> np.ndarray:
        """(out,) the size of each output's constant terms."""
        if self._cabs is None:
            self._cabs = self.bound(np.zeros((1, self.in_features)), np.ones(1))[0]
        return self._cabs


class _Backend:
    def __init__(self, kind: str):
        self.kind = kind

    def apply(self, op: _ops.Op, args, c):
        if self.kind == "torch":
            return op.run(args, c)
        if self.kind == "bound":
            return op.bound(args, c)
        return op.exact(args, c)

    def cat(self, parts, n, like=None):
        """The parts side by side; none: (n, 0) (on ``like``'s device, when given)."""
        if self.kind == "exact":
            return Q.cat(parts, axis=1) if parts else Q.zeros((n, 0))
        if parts:
            return torch.cat(parts, 1)
        return torch.zeros((n, 0), dtype=torch.float64, device=None if like is None else like.device)

    def const(self, values, c):
        """(N, len(values)) the constants times c (exact: Q; bound: |values|)."""
        if self.kind == "exact":
            return c.reshape(-1, 1) * values[None, :]
        v = values if self.kind == "torch" else np.abs(values)
        return c.reshape(-1, 1) * torch.as_tensor(v, dtype=c.dtype, device=c.device)[None, :]

    def mul(self, x, values):
        if self.kind == "exact":
            return x * values[None, :]
        v = values if self.kind == "torch" else np.abs(values)
        return x * torch.as_tensor(v, dtype=x.dtype, device=x.device)[None, :]

    def sub(self, a, b):
        return a + b if self.kind == "bound" else a - b


_TORCH, _BOUND, _EXACT = _Backend("torch"), _Backend("bound"), _Backend("exact")


@dataclass
class _Layout:
    """Where the values live in one stage's output: units first, then carries."""

    groups: List[_Group] = field(default_factory=list)
    units: int = 0
    carries: List[Tuple[str, Any, int, int]] = field(default_factory=list)  # (what, key, start, size)
    width: int = 0


def compile(model: torch.nn.Module, in_shape: Optional[Sequence[int]] = None):
    """Read ``model`` into a staged :class:`~splinescope.spatial._net.Network` (see the module doc)."""
    from . import _trace
    from ._net import Layer, Network

    graph = _trace._trace(model, leaf=lambda m: registered(type(m)) is not None)
    gm = torch.fx.GraphModule(model, graph)
    if in_shape is None:
        in_shape = _guess_shape(model)
        if in_shape is None:
            raise ValueError(f"{type(model).__name__}: the input shape is needed to read this network; pass a plane "
                             "(spatial.Plane.through(a, b, c) with points shaped like one input, e.g. (1, 8, 8); "
                             "--through A B C on the command line) or in_shape=")
    in_shape = tuple(int(s) for s in in_shape)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    try:  # (the example run leaves the model as it was: a BatchNorm in training mode, the reader refuses afterwards)
        with untouched(model):
            _Shapes(gm).run(torch.zeros((2,) + in_shape, dtype=dtype))
    except _ShapeError as e:  # any failure is the same answer
        raise ValueError(_shape_error(model, in_shape, e)) from None
    out = _Reader(model, gm, in_shape).read()
    return _stages(out, in_shape, Layer, Network)


def _batchnorm(weight, bias, mean, var, eps: float, shape) -> _ops.ChannelAffine:
    """Batch norm in eval mode as one per-channel ``x * scale + shift`` (float64)."""
    f64 = lambda v: v.detach().to("cpu", torch.float64).numpy()  # noqa: E731
    scale = 1.0 / np.sqrt(f64(var) + eps)
    if weight is not None:
        scale = scale * f64(weight)
    shift = (0.0 if bias is None else f64(bias)) - scale * f64(mean)
    extra = (1,) * (len(shape) - 1)
    return _ops.ChannelAffine(scale.reshape((-1,) + extra), np.array(np.broadcast_to(shift, scale.shape)).reshape((-1,) + extra))


def _running_norm(m: Any, shape) -> _ops.ChannelAffine:
    """A BatchNorm or InstanceNorm module in eval mode by its running statistics."""
    return _batchnorm(m.weight if m.affine else None, m.bias if m.affine else None, m.running_mean, m.running_var,
                      float(m.eps), shape)


class _ShapeError(Exception):
    """A node of the traced graph failed on the example input (``cause``: torch's own error)."""

    def __init__(self, node: torch.fx.Node, cause: BaseException):
        super().__init__(str(cause))
        self.node, self.cause = node, cause


class _Meta(NamedTuple):
    """What the reader needs of a tensor value: its shape and dtype."""

    shape: torch.Size
    dtype: torch.dtype


_RANDOM = ("rand", "normal", "bernoulli", "multinomial", "poisson", "uniform", "exponential", "geometric", "cauchy",
           "random")
"""Parts of the names of torch's random functions (``randn``, ``rand_like``, ``normal_``, ...): a
constant they make is refused (:meth:`_Reader.const`)."""


_VALUES_OF = frozenset({"max", "min", "sort", "topk", "max_pool1d_with_indices", "max_pool2d_with_indices",
                        "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
                        "cummax", "cummin"})
"""Calls that return (values, indices), of which only the values are read (:func:`_values_only`)."""


_DROPOUTS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "feature_dropout", "alpha_dropout",
                       "feature_alpha_dropout"})
"""Dropout calls (``F.dropout2d``, ATen's ``feature_dropout`` in torch.export programs): the value
itself when not training (their third argument)."""


def _values_only(node: torch.fx.Node) -> bool:
    """Whether only the values of a call that returns (values, indices) are read: each use is
    ``[0]`` or ``.values``, or the indices unused (torch.export keeps their ``getitem`` node)."""
    def use(u):
        item = u.op == "call_function" and getattr(u.target, "__name__", "") in ("getitem", "getattr")
        return item and (u.args[1] in (0, "values") or (u.args[1] in (1, "indices") and not u.users))
    return all(use(u) for u in node.users)


def _sorting_network(k: int) -> List[List[Tuple[int, int]]]:
    """Batcher's odd-even merge sort of ``k`` items: layers of disjoint comparators ``(i, j)``,
    ``i < j``, each putting the smaller value at ``i``; ``k`` is padded to a power of two with
    values above all others, which stay where they are, so comparators that reach them are left out.

    >>> _sorting_network(2), _sorting_network(3)
    ([[(0, 1)]], [[(0, 1)], [(0, 2)], [(1, 2)]])
    >>> [len(layer) for layer in _sorting_network(8)]
    [4, 4, 2, 4, 2, 3]
    """
    n = 1 << max(0, (k - 1).bit_length())
    layers = []
    p = 1
    while p < n:
        q = p
        while q >= 1:
            layer = [(i + j, i + j + q) for j in range(q % p, n - q, 2 * q) for i in range(min(q, n - j - q))
                     if (i + j) // (2 * p) == (i + j + q) // (2 * p) and i + j + q < k]
            if layer:
                layers.append(layer)
            q //= 2
        p *= 2
    return layers


def _einsum_terms(sx: str, x_shape, sw: str, w_shape, out: str) -> int:
    """The most products an einsum sums into one value: the product of the sizes of the indices
    it sums over (those of the operands that the output does not keep); at least 1.

    >>> _einsum_terms("dhw", (2, 3, 3), "dhwk", (2, 3, 3, 4), "bk")  # ("bdhw,dhwk->bk"; b the batch)
    18
    >>> _einsum_terms("i", (5,), "ij", (5, 7), "bj"), _einsum_terms("i", (5,), "i", (5,), "bi")
    (5, 1)
    """
    size = dict(zip(sx, x_shape))
    size.update(zip(sw, w_shape))
    return max(1, int(np.prod([size[i] for i in set(sx + sw) - set(out)], dtype=np.int64)))


class _Shapes(torch.fx.Interpreter):
    """Runs the graph on an example input and records ``node.meta["tensor_meta"]``, the shape and
    dtype of each tensor value (:class:`_Meta`; a tuple of them for a tuple), as torch.fx's
    ``ShapeProp`` records its ``TensorMetadata``, without ``ShapeProp``'s symbolic-shape
    machinery, whose import (sympy) cost a process's first partition 0.3 s. A failing node raises
    :class:`_ShapeError`."""

    def run_node(self, n: torch.fx.Node) -> Any:
        try:
            result = super().run_node(n)
        except Exception as e:  # noqa: BLE001 -- any failure is the same answer, named by its node
            raise _ShapeError(n, e) from e
        found = False

        def meta(v):
            nonlocal found
            if isinstance(v, torch.Tensor):
                found = True
                return _Meta(v.shape, v.dtype)
            return v

        m = torch.fx.node.map_aggregate(result, meta)
        if found:
            n.meta["tensor_meta"] = m
        elif _plain_value(result):  # a size or a number (a slice bound): what an index map reads
            n.meta["splinescope_value"] = result
        return result


def _plain_value(v) -> bool:
    if isinstance(v, (tuple, list)):
        return all(_plain_value(u) for u in v)
    return v is None or isinstance(v, (bool, int, float, slice, type(Ellipsis), torch.dtype, torch.device))


def _shape_error(model, in_shape, e: _ShapeError) -> str:
    """One line: the module or function that failed on inputs of ``in_shape`` and torch's own
    reason."""
    cause = e.cause
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    n = e.node
    if n.op == "call_module":
        at = f" at module '{n.target}'"
    elif n.op in ("call_function", "call_method"):
        at = f" at {getattr(n.target, '__name__', n.target)}"
    else:
        at = ""
    return (f"{type(model).__name__} does not accept inputs of shape {tuple(in_shape)}{at} "
            f"({type(cause).__name__}: {first}); the plane's points (or in_shape=) must have the shape "
            "of one input without the batch dimension")


def _guess_shape(model) -> Optional[Tuple[int, ...]]:
    """One input's shape when the model tells it: a ``torch.export`` program's example input, or
    the first Linear's ``in_features`` before any convolution; else None."""
    if isinstance(model, torch.fx.GraphModule):
        vals = [n.meta.get("val") for n in model.graph.nodes if n.op == "placeholder"]
        if len(vals) == 1 and isinstance(vals[0], torch.Tensor) and vals[0].ndim >= 2:
            try:
                return tuple(int(d) for d in vals[0].shape[1:])
            except (TypeError, ValueError):  # (a dynamic size)
                return None
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            return (m.in_features,)
        if isinstance(m, (torch.nn.modules.conv._ConvNd)):
            return None
    return None


def _stages(out: _Node, in_shape, Layer, Network):
    memo: Dict[int, Set[int]] = {}
    byid: Dict[int, _Node] = {}
    _sources(out, memo, byid)
    # every PL node the output depends on, in dependency order
    order: List[_Node] = []
    seen: Set[int] = set()

    def visit(n: _Node):
        if n.uid in seen:
            return
        seen.add(n.uid)
        byid[n.uid] = n
        for a in n.args:
            visit(a)
        if n.kind in ("act", "max"):
            order.append(n)
    visit(out)
    inp = next((n for n in byid.values() if n.kind == "input"), None)
    src_memo: Dict[int, Set[int]] = {}
    for n in order:
        srcs = _sources(n.args[0], src_memo, byid) - ({inp.uid} if inp is not None else set())
        n.level = 0 if not srcs else max(byid[s].end for s in srcs) + 1
        if n.kind == "act":
            n.end = n.level
        else:
            k = max(sum(1 for c in r if c >= 0) for r in n.table or [[0, 0]])  # (padding is no candidate)
            n.end = n.level + math.ceil(math.log2(max(k, 2))) - 1
    L = 1 + max((n.end for n in order), default=-1)  # hidden stages; stage L is the output map
    # uses: the stages that read each source (L: the output)
    uses: Dict[int, int] = {}
    for n in order:
        for s in _sources(n.args[0], src_memo, byid):
            uses[s] = max(uses.get(s, -1), n.level)
    for s in _sources(out, src_memo, byid):
        uses[s] = max(uses.get(s, -1), L)
    end_of = {n.uid: n.end for n in order}
    if inp is not None:
        end_of[inp.uid] = -1
    # tournament bookkeeping: per max node, its windows' candidate slots per round
    tour: Dict[int, List[Dict[str, Any]]] = {}
    for n in order:
        if n.kind != "max":
            continue
        tab = n.table or []
        cands = [[c for c in r if c >= 0] for r in tab]  # (every window holds an element: `maxpool`)
        rounds = []
        cur = [list(range(len(c))) for c in cands]  # slot ids per window: slots index the running values
        nslots = [len(c) for c in cands]
        while max(len(c) for c in cur) > 1:
            pairs, nxt = [], []
            for w, c in enumerate(cur):
                new = []
                for i in range(0, len(c) - 1, 2):
                    pairs.append((w, c[i], c[i + 1]))
                    new.append(nslots[w])
                    nslots[w] += 1
                if len(c) % 2:
                    new.append(c[-1])
                nxt.append(new)
            rounds.append({"pairs": np.array(pairs, np.int64).reshape(-1, 3), "after": nxt})
            cur = nxt
        tour[n.uid] = rounds
        n._cands = cands
    # layouts
    layouts: List[_Layout] = []
    for s in range(L):
        lay = _Layout()
        for n in order:
            if n.kind == "act" and n.level == s:
                a, b, al, mult = _hinges(n)
                g = _Group(n, 0, lay.units, len(a), a=a, b=b, alpha=al, mult=Q.of(mult),
                           mult_f=np.array([float(v) for v in mult]))
                lay.groups.append(g)
                lay.units += g.size
            elif n.kind == "max" and n.level <= s <= n.end:
                r = s - n.level
                pr = tour[n.uid][r]["pairs"]
                g = _Group(n, r, lay.units, len(pr), pairs=pr)
                lay.groups.append(g)
                lay.units += g.size
        pos = lay.units
        for sid, last in uses.items():
            if end_of[sid] < s <= last - 1:
                size = byid[sid].numel
                lay.carries.append(("value", sid, pos, size))
                pos += size
        for n in order:  # a tournament's running values (every slot still alive after the round)
            if n.kind == "max" and n.level <= s <= n.end:
                r = s - n.level
                alive = tour[n.uid][r]["after"]
                # the losers' values are not needed: carry the right operand of each pair and leftovers
                fn = _first_new_all(tour[n.uid], r, n)
                size = len(tour[n.uid][r]["pairs"]) + sum(1 for w, c in enumerate(alive) for slot in c if slot < fn[w])
                lay.carries.append(("slots", n.uid, pos, size))
                pos += size
        lay.width = pos
        layouts.append(lay)
    info: List[MaxInfo] = []
    for n in order:
        if n.kind == "max":
            info.append(MaxInfo(stages=list(range(n.level, n.end + 1)),
                                starts=[next(g.start for g in layouts[s].groups if g.node is n)
                                        for s in range(n.level, n.end + 1)],
                                pairs=[r["pairs"] for r in tour[n.uid]],
                                sizes=np.array([len(c) for c in n._cands]), label=n.label))  # type: ignore
    layers = []
    in_features = int(np.prod(in_shape, dtype=np.int64))
    prev_width = in_features
    for s in range(L + 1):
        prog = _program(s, layouts, out if s == L else None, tour, byid, inp, in_shape)
        width = layouts[s].width if s < L else out.numel
        op = StageOp(prog, prev_width, width)
        if s < L:
            lay = layouts[s]
            slope = np.zeros(lay.units)
            for g in lay.groups:
                if g.alpha is not None:
                    slope[g.start: g.start + g.size] = g.alpha
            names = [g.node.label for g in lay.groups]
            layers.append(Layer(None, None, slope, list(dict.fromkeys(names)), op=op, carry=lay.width - lay.units))
        else:
            layers.append(Layer(None, None, None, ["output"], op=op))
        prev_width = width
    net = Network(layers)
    net.max_info = info
    return net


def _first_new_all(rounds, r, n) -> np.ndarray:
    """(windows,) the first slot id made in round ``r`` for each window (slots below it existed
    before); kept on the round, for every window at once (a Python loop per window and slot was
    quadratic: 0.14 s per partition of the digits CNN)."""
    key = "first_new"
    hit = rounds[r].get(key) if r < len(rounds) else None
    if hit is not None:
        return hit
    base = np.array([len(c) for c in n._cands], np.int64)
    for rr in range(r):
        base += np.bincount(np.asarray(rounds[rr]["pairs"][:, 0], np.int64), minlength=len(base))
    if r < len(rounds):
        rounds[r][key] = base
    return base


def _program(s: int, layouts: List[_Layout], out: Optional[_Node], tour, byid, inp, in_shape):
    """The function computing stage ``s``'s outputs from the state after stage ``s - 1``."""
    prev = layouts[s - 1] if s > 0 else None
    lay = layouts[s] if out is None else None

    static: Dict[Any, Any] = {}  # index tables of the tournaments, made on the first call

    def program(bk: _Backend, X, c):
        N = X.shape[0]
        env: Dict[int, Any] = {}  # values of sources (flat (N, numel))
        slots: Dict[int, Dict[Tuple[int, int], Any]] = {}  # tournament running values: (window, slot) -> (N,)

        def source(sid):
            if sid in env:
                return env[sid]
            node = byid[sid]
            if prev is None:
                assert node is inp
                v = X
            else:
                v = None
                for what, key, start, size in prev.carries:
                    if what == "value" and key == sid:
                        v = X[:, start: start + size]
                if v is None:  # made at the previous stage
                    g = [g for g in prev.groups if g.node is node]
                    if node.kind == "act":
                        (g0,) = g
                        h = X[:, g0.start: g0.start + g0.size]
                        n = node.numel
                        k = g0.size // n
                        if bk.kind != "exact" and k == 1 and not node.value0.any() and (g0.mult_f == 1).all():
                            v = h  # (a ReLU: sigma(0) = 0 and one hinge of slope 1, the value itself)
                        else:
                            v = bk.const(_exact_or_float(node.value0, bk), c)  # (floats would make the exact side inexact)
                            hm = bk.mul(h, g0.mult if bk.kind == "exact" else g0.mult_f)
                            for j in range(k):
                                v = v + hm[:, j * n: (j + 1) * n]
                    else:
                        mat, index = tournament(node, g[0])
                        # the winner's slot: after the last round each window holds one slot
                        last = tour[node.uid][-1]["after"]
                        v = _take(bk, mat, [index[(w, last[w][0])] for w in range(len(last))])
            env[sid] = v
            return v

        def tournament(node, g):
            """The running values after the previous stage's round of this tournament: a matrix
            (N, slots) and the column of each (window, slot)."""
            if node.uid in slots:
                return slots[node.uid]
            assert prev is not None
            carry = next((st, sz) for what, key, st, sz in prev.carries if what == "slots" and key == node.uid)
            r = g.round
            made, left = _slot_keys(tour[node.uid], r, node, static)
            # carried: the right operands (in pair order) then the leftovers that existed before
            st, P = carry[0], len(made)
            mat = bk.cat([X[:, st: st + P] + X[:, g.start: g.start + P], X[:, st + P: st + P + len(left)]], N)
            key = ("index", node.uid, r)
            if key not in static:
                static[key] = {k: i for i, k in enumerate(made + left)}
            index = static[key]
            slots[node.uid] = (mat, index)
            return slots[node.uid]

        def evaluate(node: _Node, memo: Dict[int, Any]):
            if node.uid in memo:
                return memo[node.uid]
            if node.kind in ("input", "act", "max"):
                v = source(node.uid)
                v = v.reshape((N,) + node.shape)
            else:
                args = [evaluate(a, memo) for a in node.args]
                assert node.op is not None
                v = bk.apply(node.op, args, c)
            memo[node.uid] = v
            return v

        memo: Dict[int, Any] = {}
        try:
            if out is not None:
                v = evaluate(out, memo)
                return v.reshape(N, -1)
            assert lay is not None
            parts = []
            for g in lay.groups:
                node = g.node
                if node.kind == "act":
                    z = evaluate(node.args[0], memo).reshape(N, -1)
                    n = node.numel
                    k = g.size // n
                    zz = bk.cat([z] * k, N)
                    # u = a (z - b): a in {1, -1}
                    assert g.a is not None and g.b is not None
                    u = bk.sub(zz, bk.const(_exact_or_float(g.b, bk), c))
                    parts.append(bk.mul(u, _exact_or_float(g.a, bk)))
                else:
                    if g.round == 0:
                        z = evaluate(node.args[0], memo).reshape(N, -1)
                        key0 = ("round0", node.uid)
                        if key0 not in static:
                            static[key0] = {(w, i): cand for w, cs in enumerate(node._cands) for i, cand in enumerate(cs)}
                        cur = (z, static[key0])
                    else:
                        assert prev is not None
                        pg = next(p for p in prev.groups if p.node is node)
                        cur = tournament(node, pg)
                    mat, index = cur
                    ia, ib = _pair_cols(g, index, static)
                    parts.append(bk.sub(_take(bk, mat, ia), _take(bk, mat, ib)))
                    g._cur = cur
            for what, key, start, size in lay.carries:
                if what == "value":
                    parts.append(source(key))
                else:
                    node = byid[key]
                    g = next(g for g in lay.groups if g.node is node)
                    mat, index = g._cur
                    kc = ("carry", g.node.uid, g.round)
                    if kc not in static:
                        rounds = tour[key]
                        fn = _first_new_all(rounds, g.round, node).tolist()
                        keys = [(w, b) for w, b in np.asarray(rounds[g.round]["pairs"])[:, [0, 2]].tolist()]
                        keys += [(w, slot) for w, cs in enumerate(rounds[g.round]["after"]) for slot in cs
                                 if slot < fn[w]]
                        static[kc] = [index[k] for k in keys]
                    parts.append(_take(bk, mat, static[kc]))
            return bk.cat(parts, N, like=X)
        finally:  # evaluate refers to itself, a cycle that would keep this call's values (X, env, slots)
            # alive until the garbage collector runs (hundreds of MB of fresh pages over a transition)
            del evaluate
            if lay is not None:
                for g in lay.groups:
                    g._cur = None

    return program


def _slot_keys(rounds, r, node, static) -> Tuple[List[Tuple[int, int]], List[Tuple[int, int]]]:
    """The (window, slot) of the values after round ``r``: the one made by each pair (in pair
    order), then the leftovers that existed before it (in window order)."""
    key = ("slots", node.uid, r)
    if key not in static:
        pr = rounds[r]["pairs"]
        fn = _first_new_all(rounds, r, node).tolist()
        seen: Dict[int, int] = {}
        made = []
        for w in pr[:, 0].tolist():
            made.append((w, fn[w] + seen.get(w, 0)))
            seen[w] = seen.get(w, 0) + 1
        left = [(w, slot) for w, cs in enumerate(rounds[r]["after"]) for slot in cs if slot < fn[w]]
        static[key] = (made, left)
    return static[key]


def _pair_cols(g, index, static) -> Tuple[List[int], List[int]]:
    """The columns of each pair's left and right operand in the running values."""
    key = ("pairs", g.node.uid, g.round)
    if key not in static:
        static[key] = ([index[(int(w), int(a))] for w, a, b in g.pairs], [index[(int(w), int(b))] for w, a, b in g.pairs])
    return static[key]


def _take(bk: _Backend, mat, cols: List[int]):
    """``mat[:, cols]`` for a torch tensor or an exact Q: a strided view when the columns step
    evenly, else numpy's gather on the CPU (about 3x torch's column gather there)."""
    idx = np.asarray(cols, np.int64)
    if bk.kind == "exact":
        return mat[:, idx]
    if len(idx) > 1:
        step = int(idx[1] - idx[0])
        if step > 0 and (np.diff(idx) == step).all():
            return mat[:, int(idx[0]): int(idx[-1]) + 1: step]
    if mat.device.type == "cpu" and not mat.requires_grad:
        return torch.from_numpy(np.take(mat.numpy(), idx, axis=1))
    return mat[:, torch.as_tensor(idx, device=mat.device)]


def _exact_or_float(v: np.ndarray, bk: _Backend):
    if bk.kind == "exact":
        return Q.of(np.asarray(v, np.float64))
    return v
