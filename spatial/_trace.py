"""Reading a module's ``forward`` into a chain of steps, by tracing it with ``torch.fx``.

``chain(model)`` traces a ``torch.nn.Module`` that is not a ``Sequential`` (a subclass with
``fc1``, ``fc2``, ``fc3`` and one ``self.act`` reused, functional activations, ...) with
``torch.fx`` (https://pytorch.org/docs/stable/fx.html) and returns its operations as a list of
:class:`Step`, in order, for ``_net.parse`` to fold into affine maps and activations. It reads;
it computes nothing.

Every operation is checked before anything else is done: one that is not piecewise linear
(``torch.tanh``, ``F.gelu``, ``x * x``) is refused first, then a graph that is not a chain (a
residual ``x + f(x)``, a concatenation), then what is piecewise linear but not supported yet
(``torch.abs``, Hardtanh, ReLU6, ``clamp`` with a ``max``); each error names the node, its
operation and the line of ``forward`` that made it.
"""
from __future__ import annotations

import functools
import inspect
import linecache
import operator
import os
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.fx

from ._errors import UnsupportedLayerError
from ._net import DROPOUT_MODULES, MODULE_KINDS, SUPPORTED, _name

__all__ = ["Step", "chain"]

# modules and functions by name (in-place variants ``relu_`` and ``x += 1`` read as the same)
_NORMS = frozenset({"LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RMSNorm",
                    "LocalResponseNorm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "normalize",
                    "local_response_norm"})
"""Normalizations by the input's own statistics (not piecewise linear)."""
_NOT_PL = frozenset({
    "tanh", "sigmoid", "gelu", "silu", "elu", "selu", "celu", "softplus", "softmax", "log_softmax",
    "softmin", "mish", "hardswish", "logsigmoid", "softsign", "tanhshrink", "glu",
    "exp", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "sqrt", "rsqrt", "pow",
    "square", "reciprocal", "erf", "erfc", "atan", "asin", "acos", "sinh", "cosh", "asinh", "atanh",
    "matmul", "bmm", "mm", "einsum", "bilinear"}) | (_NORMS - {"instance_norm"})  # (affine with running statistics)
_PL_LATER = frozenset({"abs", "absolute", "hardtanh", "relu6", "threshold", "_threshold", "hardsigmoid", "maximum",
                       "minimum", "max",
                       "min", "hardshrink", "softshrink", "rrelu", "clamp_max", "fmax", "fmin", "sign",
                       "floor", "ceil", "round", "trunc"})
_STEPS = frozenset({"floor", "ceil", "round", "trunc", "fix", "frac", "sign", "sgn", "signbit", "heaviside",
                    "floor_divide", "floordiv", "fmod", "remainder", "mod", "bucketize"})
"""Steps and roundings: discontinuous, so not the continuous piecewise-linear maps the reader reads."""
_SOFTMAX = frozenset({"softmax", "log_softmax", "softmin", "Softmax", "LogSoftmax", "Softmin", "Softmax2d"})


def output_refusal(cls: str, out) -> str:
    """The refusal of a ``forward`` whose output is not one tensor computed from the input (a tuple
    or dict of outputs: what to partition instead)."""
    if isinstance(out, (tuple, list, dict)):
        got = "a dict" if isinstance(out, dict) else "a tuple or list"
        return (f"{cls}.forward must return one tensor computed from its input, not {got}; partition a wrapper "
                "module whose forward returns the one output to partition (the logits: return model(x)[0] or "
                "model(x)['logits'])")
    return f"{cls}.forward must return one tensor computed from its input, not {type(out).__name__}"


def not_pl(where: str, name: str, supported: str) -> str:
    """The refusal of an operation that is not piecewise linear (a softmax: what to partition instead)."""
    if name in _SOFTMAX:
        return (f"{where} is not piecewise linear; a softmax at the output changes neither the regions nor the "
                "argmax decision boundary of the logits before it: partition those (the model without it, e.g. "
                f"model[:-1]); supported: {supported}")
    if name.startswith("torch.ao."):
        return (f"{where} is a quantized or quantization-aware layer: its forward rounds (fake quantization), which "
                f"is not piecewise linear; partition the float model (before prepare_qat or convert); supported: "
                f"{supported}")
    if name in _STEPS:
        return (f"{where} is not continuous (a step or a rounding), so not the continuous piecewise-linear map a "
                f"network of linear regions is; supported: {supported}")
    if name in _NORMS:
        return (f"{where} is not piecewise linear: it divides by statistics of its own input (a BatchNorm in eval "
                f"mode, whose statistics are fixed, is affine); supported: {supported}")
    return f"{where} is not piecewise linear; supported: {supported}"


_CASTS = frozenset({"clone", "detach", "contiguous", "float", "double", "half", "bfloat16", "int", "long", "short",
                    "bool", "to", "type", "type_as", "_to_copy", "cpu", "cuda", "alias", "lift_fresh_copy",
                    "requires_grad"})
"""Copies and casts: the value itself where the dtype stays floating (:meth:`_graph._Reader.cast`); a condition
cast to any dtype stays the condition (``h * (h > 0).float()``)."""
_COMPARE = frozenset({"gt", "ge", "lt", "le", "greater", "greater_equal", "less", "less_equal"})
"""Comparisons of a value with a number: the condition of a ``torch.where`` (:meth:`_graph._Reader.where_act`)."""


def _condition(n) -> bool:
    """Whether ``n`` is a comparison of a value with a number, through casts (``(h > 0).float()``):
    the mask of a product the graph reader reads as an activation (``h * (h > 0)``)."""
    while isinstance(n, torch.fx.Node) and n.op in ("call_function", "call_method"):
        name = _op(n)[1]
        if name in _COMPARE:
            return True
        if name not in _CASTS or not n.args:
            return False
        n = n.args[0]
    return False


_ARITH = {"mul": "*", "add": "+", "sub": "-", "truediv": "/", "div": "/", "neg": "-x", "pos": "+x"}
_RELU = frozenset({"relu"})
_CLAMP = frozenset({"clamp", "clip", "clamp_min"})
_RESHAPE = frozenset({"view", "reshape"})
_IDENTITY = frozenset({"contiguous", "dropout"})
# (an InstanceNorm with running statistics in eval mode is affine: the graph reader decides)
_NONLINEAR_MODULES = (_NORMS - {"InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"}) | frozenset({
                                "Tanh", "Sigmoid", "GELU", "SiLU", "ELU", "SELU", "CELU", "Softplus", "Softmax",
                                "LogSoftmax", "Softmin", "Mish", "Hardswish", "LogSigmoid",
                                "Softsign", "Tanhshrink", "GLU", "Bilinear", "MultiheadAttention"})


def nonlinear_module(kind: str) -> bool:
    """Whether a module of this kind (:func:`_net._name`) is refused as not piecewise linear."""
    return kind in _NONLINEAR_MODULES or kind.startswith("torch.ao.")


_PL_LATER_MODULES = frozenset({"Hardtanh", "ReLU6", "Threshold", "Hardshrink", "Softshrink", "RReLU", "Hardsigmoid"})


@dataclass
class Step:
    """One operation of the chain, in the form ``_net.parse`` folds.

    ``kind`` is ``"module"`` (``module``: a supported layer), ``"linear"`` (``weight``, ``bias``:
    tensors of ``F.linear``), ``"activation"`` (``value``: the negative-side slope), ``"scale"``,
    ``"divide"``, ``"shift"`` (``value``: the constant of ``x * c``, ``x / c``, ``x + c``) or
    ``"width"`` (``value``: the width a reshape to ``(-1, n)`` fixes).
    """

    kind: str
    label: str  # "fc1 (Linear)", "relu (F.relu)": what errors name
    module: Optional[torch.nn.Module] = None
    weight: Optional[torch.Tensor] = None
    bias: Optional[torch.Tensor] = None
    value: Optional[float] = None


class _Tracer(torch.fx.Tracer):
    def __init__(self, leaf=None):
        super().__init__()
        self.leaf = leaf

    def create_node(self, *args, **kwargs):
        """Each node with ``node.stack_trace``, the Python stack that made it (what names the line
        of forward() in a refusal, :func:`_where`), taken with :mod:`traceback`: torch's own
        recording (``record_stack_traces``) imports its compiler stack on first use, a second of
        a process's first partition."""
        node = super().create_node(*args, **kwargs)
        if not node.stack_trace:
            node.stack_trace = "".join(traceback.format_list(traceback.extract_stack()[:-1]))
        return node

    def is_leaf_module(self, m, qualname):  # the user's registered activations are read, not traced
        return (self.leaf is not None and self.leaf(m)) or super().is_leaf_module(m, qualname)

    def proxy(self, node):
        return _Proxy(node, self)


class _Proxy(torch.fx.Proxy):
    """A traced value whose ``+=`` (``-=``, ``*=``, ``/=``) is recorded as the in-place operator
    it is: torch.fx's own Proxy records ``h += y`` as ``h + y``, which loses the change of a tensor
    that another name still holds (:func:`_functionalize`)."""

    def __iadd__(self, other):
        return self.tracer.create_proxy("call_function", operator.iadd, (self, other), {})

    def __isub__(self, other):
        return self.tracer.create_proxy("call_function", operator.isub, (self, other), {})

    def __imul__(self, other):
        return self.tracer.create_proxy("call_function", operator.imul, (self, other), {})

    def __itruediv__(self, other):
        return self.tracer.create_proxy("call_function", operator.itruediv, (self, other), {})


def _len(x):
    """``len`` as the tracer sees it: a recorded call on a traced value (``len(x)`` in a reshape)."""
    if isinstance(x, torch.fx.Proxy):
        return x.tracer.create_proxy("call_function", len, (x,), {})
    return len(x)


def _trace(model: torch.nn.Module, leaf=None) -> torch.fx.Graph:
    # ``len(proxy)`` raises in torch.fx unless ``len`` is wrapped where forward() looks it up: wrap it in
    # the globals of each forward() for the time of the trace (a module that defines its own len keeps it)
    patched: List[Any] = []
    for m in model.modules():
        g = getattr(type(m).forward, "__globals__", None)
        if g is not None and "len" not in g and all(g is not p for p in patched):
            g["len"] = _len
            patched.append(g)
    drawn: List[Tuple[str, str]] = []  # (function, stack) of each random call on constant arguments
    watched = _watch_random(drawn)
    concrete = _defaults(model)
    try:
        graph = _Tracer(leaf).trace(model, concrete_args=concrete or None)
    except Exception as e:  # noqa: BLE001 -- any failure of the trace is the same answer to the user
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
        raise UnsupportedLayerError(
            f"{type(model).__name__} could not be traced with torch.fx ({reason}); its forward() must be a "
            "fixed chain of operations (no data-dependent control flow such as `if x.sum() > 0:`), "
            "or write the model as a torch.nn.Sequential") from None
    finally:
        for g in patched:
            if g.get("len") is _len:
                del g["len"]
        for name, fn in watched.items():
            setattr(torch, name, fn)
    if drawn:
        name, stack = drawn[0]
        where = _where_in(stack)
        raise UnsupportedLayerError(
            f"{type(model).__name__}.forward calls torch.{name} on arguments that do not depend on the input{where}: "
            "a random tensor, drawn anew at each call, is not a fixed map (torch.fx would keep the one draw of its "
            "trace)")
    if concrete:
        _drop_specialized(graph)
    _functionalize(graph, model)
    return graph


def _defaults(model: torch.nn.Module) -> Dict[str, Any]:
    """The arguments of ``forward`` after the input that have defaults, at their defaults: the model
    is read as ``model(x)`` calls it (``forward(self, x, return_features=False)``)."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params[1:] if p.default is not inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _drop_specialized(graph: torch.fx.Graph) -> None:
    """Remove what torch.fx adds for the arguments it traced at fixed values (``concrete_args``):
    their placeholders (the ones with a default) and the checks of their values."""
    fixed = [n for n in graph.nodes if n.op == "placeholder" and n.args]
    checks = (torch._assert, torch.fx._symbolic_trace._assert_is_none)
    for ph in fixed:
        for u in list(ph.users):
            for c in list(u.users):
                if c.op == "call_function" and c.target in checks and not c.users:
                    graph.erase_node(c)
            if u.op == "call_function" and u.target in checks + (operator.eq,) and not u.users:
                graph.erase_node(u)
        if not ph.users:
            graph.erase_node(ph)


_RANDOM_CALLS = ("rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal",
                 "bernoulli", "multinomial", "poisson")
"""torch's random functions. Called in forward() on constant arguments (``torch.randn(3)``),
torch.fx runs them while tracing and keeps the one result as a constant; :func:`_watch_random`
notices them."""


def _watch_random(drawn: List[Tuple[str, str]]) -> Dict[str, Any]:
    """Wrap :data:`_RANDOM_CALLS` in ``torch`` for the time of a trace (returns the originals, to be
    put back): a call from this thread with no traced argument is noted in ``drawn`` with its stack."""
    tid = threading.get_ident()
    originals = {name: getattr(torch, name) for name in _RANDOM_CALLS if hasattr(torch, name)}

    def watch(name, fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            traced = any(isinstance(a, torch.fx.Proxy) for a in (*args, *kwargs.values()))
            if not traced and threading.get_ident() == tid:
                drawn.append((name, "".join(traceback.format_list(traceback.extract_stack()[:-1]))))
            return fn(*args, **kwargs)
        return call

    for name, fn in originals.items():
        setattr(torch, name, watch(name, fn))
    return originals


_VIEWS = frozenset({"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "transpose", "permute", "t",
                    "expand", "expand_as", "view_as", "reshape_as", "narrow", "select", "getitem", "chunk", "split",
                    "unbind", "tensor_split", "split_with_sizes", "movedim", "moveaxis", "swapaxes", "swapdims",
                    "diagonal", "unfold", "contiguous", "detach", "alias", "as_strided", "getattr", "float", "double",
                    "to", "type", "type_as", "cpu", "cuda"})
"""Calls whose result may share its memory with their first argument (a view, or the tensor itself)."""
_VIEW_MODULES = frozenset({"Identity", "Flatten", "Unflatten"}) | DROPOUT_MODULES
_SHAPE_CALLS = frozenset({"size", "len", "dim", "numel", "getattr", "getitem"})
_ARITH_NAMES = frozenset({"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
                          "lshift", "rshift"})
"""The operators whose in-place forms (``operator.iadd``, ...) change a tensor."""


def _mutated(node: torch.fx.Node, model: torch.nn.Module) -> Optional[torch.fx.Node]:
    """The value that an in-place call changes (its first argument: ``h.relu_()``, ``F.relu(h,
    inplace=True)``, ``nn.ReLU(inplace=True)(h)``, ``h += y``), or None."""
    first = node.args[0] if node.args else None
    if not isinstance(first, torch.fx.Node):
        return None
    if node.op == "call_module":
        return first if getattr(model.get_submodule(str(node.target)), "inplace", False) is True else None
    if node.op not in ("call_method", "call_function"):
        return None
    t = node.target
    if isinstance(t, torch._ops.OpOverload):  # ATen (a torch.export program): its schema marks what it writes
        alias = _first_alias(t)
        return first if alias is not None and alias.is_write else None
    name = str(t) if node.op == "call_method" else getattr(t, "__name__", "")
    if node.op == "call_function" and getattr(t, "__module__", "") in ("_operator", "operator"):
        number = first.op in ("call_function", "call_method") and _op(first)[1] in _SHAPE_CALLS  # x.size(1): an int
        return first if name.startswith("i") and name[1:] in _ARITH_NAMES and not number else None
    if name.endswith("_") and not name.endswith("__") and name != "requires_grad_":
        return first
    if node.kwargs.get("inplace") is True:
        return first
    if node.op == "call_function" and len(node.args) > 1 and callable(t):
        try:
            bound = inspect.signature(t).bind(*node.args, **node.kwargs)
        except (TypeError, ValueError):
            return None
        return first if bound.arguments.get("inplace") is True else None
    return None


def _first_alias(op: "torch._ops.OpOverload"):
    """The alias mark of an ATen operation's first argument in its schema (``Tensor(a!) self``: written;
    ``Tensor(a) self``: a view of it), or None."""
    args = op._schema.arguments
    return args[0].alias_info if args else None


def _functionalize(graph: torch.fx.Graph, model: torch.nn.Module) -> None:
    """Make every read of a value after an in-place call on it read the call's result (which is
    the changed value), as torch.export does: ``h.relu_(); return fc(h)`` is ``fc(relu(h))``. A value
    changed in place while a view of it (or the tensor it is a view of) is read afterwards is
    refused: that view changes too."""
    nodes = list(graph.nodes)
    order = {n: i for i, n in enumerate(nodes)}

    def view_of(n):  # the value n may share memory with (its first argument), or None
        if n.op == "call_module":
            kind = type(model.get_submodule(str(n.target))).__name__
            return n.args[0] if kind in _VIEW_MODULES and n.args else None
        if n.op in ("call_function", "call_method") and n.args and isinstance(n.args[0], torch.fx.Node):
            if isinstance(n.target, torch._ops.OpOverload):  # ATen: its schema marks an alias of its first argument
                return n.args[0] if _first_alias(n.target) is not None else None
            if _op(n)[1] in _VIEWS:
                return n.args[0]
        return None

    links: Dict[torch.fx.Node, List[torch.fx.Node]] = {}  # the views made so far, both ways
    for node in nodes:
        a = _mutated(node, model)
        if a is not None:
            _read_changed(model, node, a, links, order)
        base = view_of(node)
        if base is not None:
            links.setdefault(node, []).append(base)
            links.setdefault(base, []).append(node)


def _read_changed(model, node, a, links, order) -> None:
    """:func:`_functionalize` of one in-place call ``node`` that changes ``a``, given the views made
    before it (``links``)."""
    seen, todo = {a}, [a]
    while todo:
        for m in links.get(todo.pop(), []):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    state = next((n for n in seen if n.op == "get_attr"), None)
    if state is not None:
        raise UnsupportedLayerError(
            f"{type(model).__name__}.forward: node {node.name!r}{_where(node)} changes {state.target!r}, a "
            "parameter or buffer of the model, in place: a model that changes its own state in forward() is "
            "not a fixed map")
    for alias in seen - {a}:
        late = [u for u in alias.users if order[u] > order[node]]
        if late:
            raise UnsupportedLayerError(
                f"{type(model).__name__}.forward: node {node.name!r}{_where(node)} changes {a.name!r} in place "
                f"while {alias.name!r}, which shares its memory, is read afterwards ({late[0].name!r}); write it "
                "without the in-place call (h = F.relu(h); an assignment h[...] = v as torch.cat or torch.where)")
    for u in list(a.users):
        if u is not node and order[u] > order[node]:
            u.replace_input_with(a, node)


def _where(node: torch.fx.Node) -> str:
    """``line 14 of mlp.py: `x = F.gelu(x)``` from the node's stack trace (the innermost frame
    outside torch), or '' when there is none."""
    return _where_in(node.stack_trace or "")


def _where_in(stack: str) -> str:
    """:func:`_where` of a formatted stack."""
    lines = stack.splitlines()
    torch_dir = os.path.dirname(torch.__file__)
    here = os.path.dirname(os.path.abspath(__file__))
    found = ""
    for i, text in enumerate(lines):
        text = text.strip()
        if not text.startswith('File "'):
            continue
        path, _, rest = text[6:].partition('", line ')
        if path.startswith(torch_dir) or os.path.dirname(os.path.abspath(path)) == here:
            continue
        num = rest.split(",")[0]
        code = lines[i + 1].strip() if i + 1 < len(lines) and not lines[i + 1].strip().startswith('File "') \
            else linecache.getline(path, int(num) if num.isdigit() else 0).strip()
        found = f", line {num} of {path}" + (f": `{code}`" if code else "")
    return found


def _op(node: torch.fx.Node):
    """(family, name, shown) of a call: family 'method', 'torch', 'F', 'operator', 'builtins'."""
    if node.op == "call_method":
        name = str(node.target)
        return "method", name.rstrip("_"), f"x.{name}()"
    t = node.target
    if isinstance(t, torch._ops.OpOverload):  # an ATen operation (torch.export, .pt2)
        return _aten(t)
    name = getattr(t, "__name__", str(t))
    mod = getattr(t, "__module__", None) or ""
    if mod in ("_operator", "operator"):
        base = name[1:] if name.startswith("i") and name[1:] in _ARITH else name
        return "operator", base, _ARITH.get(base, f"operator.{name}")
    if mod == "builtins":
        return "builtins", name, name
    family = "F" if mod.startswith(("torch.nn.functional", "torch._C._nn")) else "torch"
    return family, name.rstrip("_"), f"{family}.{name}"


_ATEN_OPERATOR = {"add": "add", "sub": "sub", "mul": "mul", "div": "truediv", "neg": "neg", "rsub": "rsub"}
_ATEN_F = frozenset({"conv1d", "conv2d", "conv3d", "linear", "relu", "leaky_relu", "hardtanh", "relu6", "max_pool1d",
                     "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
                     "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
                     "adaptive_max_pool3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                     "prelu", "dropout", "gelu", "silu", "softplus", "elu", "sigmoid", "tanh"})


def _aten(t) -> Tuple[str, str, str]:
    """(family, name, shown) of an ATen operation, in the names of the torch calls it stands for
    (``aten.conv2d.default`` is ``F.conv2d``, ``aten.add.Tensor`` is ``x + y``)."""
    name = t._schema.name.split("::")[-1].rstrip("_")
    shown = f"aten.{t._schema.name.split('::')[-1]}.{t._overloadname}"
    if name in _ATEN_OPERATOR:
        return "operator", _ATEN_OPERATOR[name], shown
    return ("F" if name in _ATEN_F else "torch"), name, shown


def _arg(node: torch.fx.Node, i: int, key: str, default: Any = None) -> Any:
    """Argument ``i`` of the call (after the tensor, index 0), given by position or by ``key``."""
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(key, default)


def _shape_query(node: torch.fx.Node, name: str, first: Optional[str]) -> Optional[str]:
    """"batch" for the batch size (``x.size(0)``, ``len(x)``, ``x.shape[0]``), "shape" for another
    part of the shape (``x.shape``, ``x.size(1)``), None for a call that is not a shape query."""
    if first == "data" and name == "len":
        return "batch"
    if first == "data" and name == "size":
        return "batch" if _arg(node, 1, "dim") == 0 else "shape"
    if first == "data" and name == "getattr" and node.args[1:] == ("shape",):
        return "shape"
    if first == "shape" and name == "getitem":
        return "batch" if node.args[1] == 0 else "shape"
    return None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Refusal(Exception):
    """A node that cannot be read; ``rank`` orders what is said first (not piecewise linear: 0)."""

    def __init__(self, rank: int, message: str):
        super().__init__(message)
        self.rank = rank


def chain(model: torch.nn.Module) -> List[Step]:
    """The operations of ``model.forward`` as a list of :class:`Step`, checked to be a chain.

    Raises :class:`UnsupportedLayerError` naming the node, its operation and its line for an
    operation that is not piecewise linear, a graph that branches (residual, concatenation) or an
    operation not supported yet, and naming the module's class when it cannot be traced.

    Examples
    --------
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1, self.fc2 = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    ...     def forward(self, x):
    ...         return self.fc2(torch.relu(self.fc1(x)))
    >>> [s.label for s in chain(Net())]
    ['fc1 (Linear)', 'relu (torch.relu)', 'fc2 (Linear)']
    """
    graph = _trace(model)
    cls = type(model).__name__
    kind: Dict[torch.fx.Node, str] = {}  # "data" (depends on the input), "batch", "shape", "const"
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UnsupportedLayerError(f"{cls}.forward takes {len(inputs)} inputs "
                                    f"({', '.join(n.name for n in inputs)}); only one input is supported")
    refusals: List[_Refusal] = []
    steps: List[Step] = []
    for node in graph.nodes:
        args: List[torch.fx.Node] = []  # every argument, repeats too (x * x), lists too (torch.cat)
        torch.fx.node.map_arg((node.args, node.kwargs), args.append)
        data_in = [a for a in args if kind.get(a) == "data"]
        if node.op == "placeholder":
            kind[node] = "data"
            continue
        if node.op == "get_attr":
            kind[node] = "const"
            continue
        if node.op == "output":
            out = node.args[0]
            if not (isinstance(out, torch.fx.Node) and kind.get(out) == "data"):
                refusals.append(_Refusal(2, output_refusal(cls, out)))
            continue
        if node.op == "call_module":
            m = model.get_submodule(node.target)
            shown = _name(m)
        else:
            family, name, shown = _op(node)
            first = kind.get(node.args[0]) if node.args and isinstance(node.args[0], torch.fx.Node) else None
            shape = _shape_query(node, name, first)
            if shape is not None:
                kind[node] = shape  # x.size(0), len(x), x.shape[0]: only a reshape may read them
                continue
        kind[node] = "data" if data_in else "const"
        where = f"{cls}.forward: node {node.name!r} ({shown}){_where(node)}"
        if not data_in:
            refusals.append(_Refusal(2, f"{where} computes a value that does not depend on the input "
                                        "(a weight computed in forward() is not supported yet); "
                                        f"supported: {SUPPORTED}"))
            continue
        try:
            step = _read(node, model, shown, where, kind, data_in)
        except _Refusal as r:
            refusals.append(r)
            continue
        steps.extend(step if isinstance(step, tuple) else () if step is None else (step,))
    for node in graph.nodes:  # a chain: each value feeds one operation (shape queries aside)
        if kind.get(node) != "data":
            continue
        users = [u for u in node.users if kind.get(u) == "data" or u.op == "output"]
        if len(users) > 1:
            refusals.append(_Refusal(1, f"{cls}.forward: node {node.name!r}{_where(node)} feeds {len(users)} "
                                        f"operations ({', '.join(u.name for u in users)}): residual/branching "
                                        "graphs are not supported yet (the forward must be a chain)"))
    if refusals:
        raise UnsupportedLayerError(str(min(refusals, key=lambda r: r.rank)))
    return steps


def _read(node, model, shown, where, kind, data_in) -> Union[None, Step, Tuple[Step, Step]]:
    """The step of one call on the input's value (None: a step that changes nothing)."""
    label = f"{node.target if node.op == 'call_module' else node.name} ({shown})"
    later = f"{where} is piecewise linear but not a one-slope (leaky) ReLU: not supported yet; supported: {SUPPORTED}"
    unknown = f"{where} is not supported (not a known piecewise-linear operation); supported: {SUPPORTED}"
    if node.op == "call_module":
        m = model.get_submodule(node.target)
        if shown in MODULE_KINDS:
            return Step("module", label, module=m)
        if nonlinear_module(shown):
            raise _Refusal(0, not_pl(where, shown, SUPPORTED))
        raise _Refusal(2, later if shown in _PL_LATER_MODULES else unknown)
    family, name, _ = _op(node)
    if len(data_in) > 1:
        if name == "mul" and any(_condition(a) for a in node.args):
            raise _Refusal(2, f"{where}: a product with a condition (h * (h > 0)) is read by the graph reader, "
                              "not as a chain")
        if name in ("mul", "truediv", "div", "matmul", "pow"):
            raise _Refusal(0, f"{where} is not piecewise linear (a product or quotient of two values that depend "
                              f"on the input); supported: {SUPPORTED}")
        raise _Refusal(1, f"{where} combines {len(data_in)} values ({', '.join(a.name for a in data_in)}): "
                          "residual/branching graphs are not supported yet (the forward must be a chain)")
    if name in ("matmul", "mm") and node.args[:1] == (data_in[0],):
        raise _Refusal(2, f"{where}: x @ W (a constant W) is read by the graph reader, not as a chain")
    if name == "einsum":
        raise _Refusal(2, f"{where}: einsum is read by the graph reader, not as a chain")
    if name in _NOT_PL:
        raise _Refusal(0, not_pl(where, name, SUPPORTED))
    if family == "operator" and name == "truediv" and node.args[1] is data_in[0]:
        raise _Refusal(0, f"{where} divides by a value that depends on the input: it is not piecewise linear; "
                          f"supported: {SUPPORTED}")
    x = data_in[0]
    if node.args[:1] != (x,) and not (family == "operator" and name in ("mul", "add", "sub") and node.args[1:2] == (x,)):
        raise _Refusal(2, unknown)
    if name in _RELU:
        return Step("activation", label, value=0.0)
    if name == "leaky_relu" and family in ("F", "torch"):
        slope = _arg(node, 1, "negative_slope", 0.01)
        return Step("activation", label, value=float(slope))
    if name in _CLAMP:
        lo = _arg(node, 1, "min", None)
        hi = None if name == "clamp_min" else _arg(node, 2, "max", None)
        if _number(lo) and lo == 0 and hi is None:
            return Step("activation", label, value=0.0)
        raise _Refusal(2, f"{where} is piecewise linear but only clamp(min=0) (a ReLU) is supported yet; "
                          f"supported: {SUPPORTED}")
    if name == "linear" and family == "F":
        w, b = _arg(node, 1, "weight"), _arg(node, 2, "bias")
        if not all(isinstance(t, torch.fx.Node) and t.op == "get_attr" for t in [w] + ([b] if b is not None else [])):
            raise _Refusal(2, f"{where}: the weight and bias of F.linear must be attributes of the module "
                              "(parameters or buffers); supported: " + SUPPORTED)
        get = functools.partial(functools.reduce, getattr)
        return Step("linear", label, weight=get(w.target.split("."), model),
                    bias=None if b is None else get(b.target.split("."), model))
    if name == "flatten":
        start, end = _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)
        if start == 1 and end == -1:
            return None
        raise _Refusal(2, f"{where}: only flatten(x, 1) (keeping the batch dimension) is supported; "
                          f"supported: {SUPPORTED}")
    if name in _RESHAPE:
        shape = tuple(node.args[1:]) if len(node.args) > 2 else tuple(node.args[1]) if len(node.args) == 2 \
            else tuple(node.kwargs.get("shape", ()))
        if len(shape) == 2 and shape[1] == -1 and isinstance(shape[0], torch.fx.Node) \
                and kind.get(shape[0]) == "batch":
            return None
        if len(shape) == 2 and shape[0] == -1 and isinstance(shape[1], int) and shape[1] > 0:
            return Step("width", label, value=shape[1])
        raise _Refusal(2, f"{where}: only a reshape to (batch, -1) or (-1, n) is supported; supported: "
                          + SUPPORTED)
    if name in _IDENTITY:
        if name == "dropout" and _arg(node, 2, "training", True):
            raise _Refusal(2, f"{where} is in training mode (a random mask is not a fixed map); pass "
                              "training=self.training and call model.eval() first")
        return None
    if name in _ARITH:
        if name in ("neg", "pos"):
            return Step("scale", label, value=-1.0 if name == "neg" else 1.0)
        c = node.args[0] if node.args[1:2] == (x,) else _arg(node, 1, "other")
        if len(node.args) > 2 or set(node.kwargs) - {"other"} or not _number(c):
            raise _Refusal(2, f"{where}: only a constant number may scale or shift the value "
                              f"(x * 2, x + 1.0, x / 4); supported: {SUPPORTED}")
        c = float(c)
        if name == "sub":
            if node.args[0] is x:
                return Step("shift", label, value=-c)
            return Step("scale", label, value=-1.0), Step("shift", label, value=c)  # c - x
        if name in ("truediv", "div"):
            return Step("divide", label, value=c)
        return Step("scale" if name == "mul" else "shift", label, value=c)
    if name in _PL_LATER:
        raise _Refusal(2, later)
    raise _Refusal(2, unknown)
