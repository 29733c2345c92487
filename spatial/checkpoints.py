"""Loading models and training checkpoints from files: safely, and in their true training order.

Formats
-------
A model file is one of:

- a state_dict: ``.pt`` / ``.pth`` (``torch.save(model.state_dict(), f)``), ``.safetensors``, a
  Lightning ``.ckpt`` (``{"global_step": ..., "state_dict": {"model.0.weight": ...}}``) or a
  tutorial-style dict (``{"epoch": 3, "model_state_dict": {...}, "optimizer_state_dict": ...}``).
  The weights are the entries whose names fit the architecture below one key prefix, nested dicts
  joined with dots (``""``, ``"model_state_dict."``, ``"state_dict.model."``); when several
  prefixes fit (EMA and live weights), ``prefix=`` chooses one (``"ema"`` matches
  ``"state_dict.ema."``);
- a TorchScript file (``torch.jit.save``);
- a whole module saved with ``torch.save(model, f)``. That is a pickle of Python objects, which
  can run any code when it is loaded: it is read only with ``trust=True``.

Every other file is read with ``torch.load(weights_only=True)`` (tensors and plain containers,
no foreign code). A torch.export ``.pt2`` archive is read with ``trust=True`` only (torch
unpickles parts of it), as the module of its program. A model whose
weights hold NaN or inf is refused, naming the file and the layer.

Architecture
------------
A state_dict needs an architecture: ``arch="pkg.module:factory"`` (called with no arguments),
``"pkg.module:factory(width=64, depth=3)"`` (literal keyword arguments),
``"path/to/file.py:factory"`` (the file is imported by its path), a callable that returns the
module, or an ``arch.json`` beside the checkpoints (``{"factory": "pkg.module:factory",
"kwargs": {...}}``; a ``file.py`` there is found relative to the folder). A module that is not
installed is looked up in the current directory too.

Folders
-------
:func:`list_checkpoints` reads a folder (or a list of files) into :class:`Checkpoint` records,
sorted by step. The step comes from the checkpoint itself (the keys ``global_step``, ``step``,
``epoch``, in that order, taken only when every file has the key; safetensors metadata too),
else from the file name (``step_000120.pt``, ``epoch=3-step=300.ckpt``; else the last integer of
the name, so ``epoch=03-val_loss=0.12.ckpt`` is 3), else it is unknown (``None``, file-name
order). Aliases are skipped: ``last*`` / ``best*`` / ``latest*`` files whose step another file
has or that have no step of their own, symlinks to another file of the set, and files with the
same bytes and step as another. Steps that are not distinct, and files without a step beside
files with one, give a warning. Notes (where the steps came from, what was skipped, the key
prefix of the weights) go to the ``splinescope`` logger at level INFO; the command line prints
them. :func:`load_checkpoints` turns the records into a lazy sequence of ``(step, model)``: a
model is loaded when it is asked for, so iterating holds one model at a time.

Listing reads each torch file once with ``mmap=True`` (only the pickled structure is parsed,
the tensor bytes stay on disk) to find its step and check that it fits the architecture; the
model is loaded when it is iterated.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import logging
import os
import pickle
import re
import sys
import warnings
import zipfile
from collections.abc import Sequence as _SequenceABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ._errors import CheckpointError, MissingDependencyError
from ._net import check_finite
from .runs import _ARCH_FORM, ARCH_FILE, read_arch

__all__ = ["CHECKPOINT_SUFFIXES", "Checkpoint", "CheckpointSequence", "list_checkpoints",
           "load_checkpoints", "load_model", "resolve_arch"]

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".pt2")
"""The files a folder is read for (without ``glob=``)."""
STEP_KEYS = ("global_step", "step", "epoch")
"""Keys of a checkpoint dict (or of safetensors metadata) that hold its step, by preference."""

Arch = Union[None, str, Callable[[], torch.nn.Module]]
PathLike = Union[str, os.PathLike]
log = logging.getLogger("splinescope.checkpoints")

_ARCH = re.compile(r"^\s*(?P<mod>.+?\.py|[A-Za-z_][\w.]*)\s*:\s*(?P<fn>[A-Za-z_]\w*)\s*"
                   r"(?:\((?P<args>.*)\))?\s*$", re.S)
_ALIAS = re.compile(r"^(?:.*[-_.])?(?:last|best|latest)(?:[-_.](?:model|ckpt|checkpoint|weights))?"
                    r"(?:[-_.]?v?\d+)?$", re.I)  # last, last-v1, best_model, model_best, latest.2
_TRUST = "pass trust=True (--trust on the command line) only if you trust this file"
_GLOB = "if it is not a model checkpoint, pick the model files with glob= (--glob on the command line)"


# -- architectures ------------------------------------------------------------------------------

class _Factory:
    """``fn(**kwargs)`` with no arguments, shown as the arch text it came from."""

    def __init__(self, fn: Callable, kwargs: dict, label: str):
        self.fn, self.kwargs, self.label = fn, kwargs, label

    def __call__(self) -> torch.nn.Module:
        return self.fn(**self.kwargs)

    def __repr__(self) -> str:
        return repr(self.label)


def resolve_arch(arch: Union[str, Callable[[], torch.nn.Module]]) -> Callable[[], torch.nn.Module]:
    """A zero-argument callable that builds the architecture.

    Parameters
    ----------
    arch : str or callable
        ``"pkg.module:factory"``, ``"pkg.module:factory(key=value, ...)"`` (literal keyword
        arguments), ``"path/to/file.py:factory"``, or a zero-argument callable (returned as is).

    Examples
    --------
    >>> f = resolve_arch("torch.nn:Linear(in_features=2, out_features=3)")
    >>> f().weight.shape
    torch.Size([3, 2])
    """
    if callable(arch):
        return arch
    if not isinstance(arch, str):
        raise TypeError(f"arch must be 'pkg.module:factory' or a callable, got {type(arch).__name__}")
    m = _ARCH.match(arch)
    if not m:
        raise ValueError(f"arch {arch!r} is not of the form 'pkg.module:factory', "
                         "'pkg.module:factory(key=value, ...)' or 'path/to/file.py:factory'")
    argtext = m.group("args")
    kwargs = {}
    if argtext and argtext.strip():
        try:
            call = ast.parse(f"f({argtext})", mode="eval").body
            if not isinstance(call, ast.Call) or call.args:
                raise ValueError
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except (SyntaxError, ValueError):
            raise ValueError(f"arch {arch!r}: arguments must be literal keyword arguments, e.g. "
                             "'pkg.module:factory(width=64)'") from None
    return _Factory(_import_factory(m.group("mod"), m.group("fn"), arch), kwargs, arch)


_LEGACY_TOP = ("spatial", "render")  # run folders written before the one import name
_FILE_MODULES: Dict[Tuple[str, float], object] = {}  # (resolved path, mtime) -> module


def _import_file(name: str, arch: str, base: Optional[Path]):
    path = Path(name).expanduser()
    if not path.is_absolute() and base is not None and (base / path).is_file():
        path = base / path  # an arch.json's file.py, beside it
    if not path.is_file():
        raise FileNotFoundError(f"arch {arch!r}: no such file {str(path)!r}")
    path = path.resolve()
    key = (str(path), path.stat().st_mtime)
    if key not in _FILE_MODULES:
        modname = f"_splinescope_arch_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_" \
                  f"{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(modname, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"arch {arch!r}: {str(path)!r} is not an importable Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module  # classes defined there are importable by their module name
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[modname]
            raise ImportError(f"arch {arch!r}: importing {str(path)!r} failed: {type(e).__name__}: {e}") from None
        _FILE_MODULES[key] = module
    return _FILE_MODULES[key]


def _import_module(modname: str, arch: str):
    try:
        return importlib.import_module(modname)
    except ImportError as first:
        cwd = os.getcwd()
        if cwd in sys.path or "" in sys.path:
            raise ImportError(f"arch {arch!r}: cannot import module {modname!r} ({first})") from None
    sys.path.insert(0, cwd)  # a module in the current directory, for this lookup only
    try:
        importlib.invalidate_caches()
        return importlib.import_module(modname)
    except ImportError as e:
        raise ImportError(f"arch {arch!r}: cannot import module {modname!r} ({e}; the current "
                          "directory was searched too)") from None
    finally:
        sys.path.remove(cwd)


def _import_factory(modname: str, fname: str, arch: str, base: Optional[Path] = None):
    if modname.endswith(".py"):
        module = _import_file(modname, arch, base)
    else:
        if modname.split(".")[0] in _LEGACY_TOP:  # e.g. an old arch.json's "spatial.train:toy_mlp"
            modname = "splinescope." + modname
        module = _import_module(modname, arch)
    factory = getattr(module, fname, None)
    if factory is None or not callable(factory):
        raise ValueError(f"arch {arch!r}: module {modname!r} has no callable {fname!r}")
    return factory


def _arch_from_sidecar(folder: Path) -> Optional[Callable[[], torch.nn.Module]]:
    spec = read_arch(folder)
    if spec is None:
        return None
    m = _ARCH.match(spec["factory"])
    if not m or m.group("args") is not None:
        raise ValueError(f"{folder / ARCH_FILE}: {_ARCH_FORM}")
    factory = _import_factory(m.group("mod"), m.group("fn"), spec["factory"], base=folder)
    return _Factory(factory, spec["kwargs"], spec["factory"])


def _build(factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    try:
        model = factory()
    except Exception as e:
        raise ValueError(f"arch {factory!r}: building the model failed: {type(e).__name__}: {e}") from None
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"arch {factory!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


# -- reading one file ---------------------------------------------------------------------------

def _reason(e: BaseException) -> str:
    """The first sentence of an exception's message (torch's run over several lines)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return re.split(r"(?<=[.!?])\s", text)[0].rstrip(".")


def _not_readable(path: Path, e: BaseException) -> CheckpointError:
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return CheckpointError(f"{path}: is empty")
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return CheckpointError(f"{path}: is a text file, not a model checkpoint")
        except UnicodeDecodeError:
            pass
    return CheckpointError(f"{path}: is not a readable torch checkpoint (truncated, corrupt, or another "
                           f"kind of file): {_reason(e)}")


def _zip_names(path: Path) -> Optional[List[str]]:
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _kind(path: Path) -> str:
    """'safetensors', 'export' (torch.export .pt2), 'script' (TorchScript), 'torch' (zip) or 'legacy'."""
    if path.suffix == ".safetensors":
        return "safetensors"
    names = _zip_names(path)
    if path.suffix == ".pt2" or (names and any(n.endswith("/archive_format") for n in names)):
        return "export"
    if names is None:
        return "legacy"
    if any("/code/" in n or n.endswith("constants.pkl") for n in names):
        return "script"
    return "torch"


def _torch_load(path: Path, trust: bool, kind: str, *, mmap: bool = False):
    """What a torch file of this :func:`_kind` holds, unpickling Python objects only with ``trust``."""
    if kind == "export":
        if not trust:
            raise CheckpointError(f"{path}: is a torch.export program (.pt2), which torch.export.load reads "
                                  f"with pickle (it can run code when loaded); {_TRUST}; or save the model's "
                                  "state_dict (torch.save(model.state_dict(), path)) and pass arch=")
        try:
            return torch.export.load(str(path)).module(check_guards=False)
        except Exception as e:
            raise CheckpointError(f"{path}: is not a readable torch.export program: {_reason(e)}") from None
    if kind == "script":  # TorchScript's own restricted unpickler: no Python code runs
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            raise CheckpointError(f"{path}: is a corrupt TorchScript file: {_reason(e)}") from None
    mmap = mmap and kind == "torch"  # the tensor bytes stay on disk until they are read
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found is None:
            raise _not_readable(path, e) from None
        if not trust:
            raise CheckpointError(
                f"{path}: holds pickled Python objects ({found.group(1)}), which can run code when loaded "
                f"(a whole module saved with torch.save(model) is such a file); {_TRUST}") from None
    except Exception as e:  # a truncated zip, a text file, an empty file
        raise _not_readable(path, e) from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be loaded: {type(e).__name__}: {_reason(e)}") from None


def _safetensors(path: Path, *, peek: bool):
    """(metadata, {name: shape}) of a safetensors file, or its tensors (``peek=False``)."""
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover
        raise MissingDependencyError("reading .safetensors needs the safetensors package "
                                     "(pip install safetensors)") from None
    try:
        if not peek:
            return load_file(str(path))
        with safe_open(str(path), "pt", device="cpu") as f:
            return f.metadata() or {}, {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{path}: is not a valid safetensors file: {_reason(e)}") from None


def _flat(obj: dict, pre: str = "", out: Optional[dict] = None) -> Dict[str, torch.Tensor]:
    """The tensors of nested dicts, their names joined with dots."""
    out = {} if out is None else out
    for k, v in obj.items():
        if isinstance(k, str):
            if isinstance(v, torch.Tensor):
                out[pre + k] = v
            elif isinstance(v, dict):
                _flat(v, f"{pre}{k}.", out)
    return out


def _steps_in(d: dict) -> Dict[str, int]:
    """The step keys of a checkpoint dict or of safetensors metadata, as integers."""
    out = {}
    for k in STEP_KEYS:
        v = d.get(k)
        if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_floating_point():
            v = int(v)
        elif isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, int) and not isinstance(v, bool):
            out[k] = v
    return out


def _show(prefix: str) -> str:
    return repr(prefix) if prefix else "'' (no prefix)"


class _NoFit(CheckpointError):
    """A file whose tensors do not fit the architecture (maybe not a model checkpoint at all)."""


def _choose_prefix(path: Path, have: Dict[str, tuple], want: Dict[str, tuple], prefix: Optional[str],
                   top: List[str]) -> str:
    """The key prefix under which ``have`` (name -> shape) holds ``want``'s names and shapes."""
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    if not want:
        return ""
    anchor = next(iter(want))
    cands = sorted({k[: len(k) - len(anchor)] for k in have if k == anchor or k.endswith("." + anchor)})

    def problems(c):
        missing = [w for w in want if c + w not in have]
        wrong = [w for w in want if c + w in have and have[c + w] != want[w]]
        return missing, wrong

    def misfit(c):
        missing, wrong = problems(c)
        under = f" under the prefix {c!r}" if c else ""
        if missing:
            return _NoFit(f"{path}: the state_dict{under} does not fit the architecture: missing "
                          f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
        w = wrong[0]
        return _NoFit(f"{path}: the state_dict{under} does not fit the architecture: {w!r} is "
                      f"{tuple(have[c + w])} in the file but {tuple(want[w])} in the architecture")

    if prefix is not None:
        p = prefix.rstrip(".")
        pick = [c for c in cands if c == prefix] or \
               [c for c in cands if p and (c == p + "." or c.endswith("." + p + "."))]
        if not pick:
            where = ("; the architecture's weights are under " + ", ".join(map(_show, cands))) if cands else ""
            raise _NoFit(f"{path}: holds no weights of the architecture under the prefix {prefix!r}{where}")
        if len(pick) > 1:
            raise CheckpointError(f"{path}: the prefix {prefix!r} is ambiguous, it matches "
                                  f"{', '.join(map(_show, pick))}; pass one of them")
        if any(problems(pick[0])):
            raise misfit(pick[0])
        return pick[0]
    fits = [c for c in cands if not any(problems(c))]
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:
        raise CheckpointError(f"{path}: several sets of weights fit the architecture, under the key prefixes "
                              f"{', '.join(map(_show, fits))}; choose one with prefix= (--prefix on the "
                              f"command line), e.g. prefix={fits[-1]!r}")
    if not cands:
        keys = ", ".join(map(str, top[:6])) + (" ..." if len(top) > 6 else "")
        raise _NoFit(f"{path}: holds no weights of the architecture (no tensor named {anchor!r}; its keys: "
                     f"{keys or 'none'})")
    raise misfit(min(cands, key=lambda c: sum(map(len, problems(c)))))


def _read(path: Path, trust: bool):
    """A module, or (dict of tensors by flat name, top-level keys), from one file."""
    kind = _kind(path)
    if kind == "safetensors":
        return _safetensors(path, peek=False), []
    obj = _torch_load(path, trust, kind, mmap=True)
    if isinstance(obj, torch.nn.Module):
        return obj
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a module or a state_dict")
    return _flat(obj), list(obj)


def _no_arch(path: Path) -> CheckpointError:
    return CheckpointError(f"{path}: holds a state_dict and no architecture: pass arch='pkg.module:factory' "
                           "(--arch on the command line), or put an arch.json beside it")


def _load(path: Path, arch: Arch, prefix: Optional[str], trust: bool) -> Tuple[torch.nn.Module, Optional[str]]:
    """The model of one file, and the key prefix its weights were found under (None: a module)."""
    got = _read(path, trust)
    if isinstance(got, torch.nn.Module):
        if prefix is not None:
            raise CheckpointError(f"{path}: holds a whole module; prefix= applies to state_dict files")
        model, chosen = got, None
    else:
        flat, top = got
        factory = resolve_arch(arch) if arch is not None else _arch_from_sidecar(path.parent)
        if factory is None:
            raise _no_arch(path)
        model = _build(factory)
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        chosen = _choose_prefix(path, {k: tuple(v.shape) for k, v in flat.items()}, want, prefix, top)
        model.load_state_dict({k: flat[chosen + k] for k in want})
        del flat
    check_finite(model.named_modules(), where=f"{path}: ")
    try:
        model.eval()
    except NotImplementedError:  # a torch.export program's module: its mode was fixed when it was exported
        pass
    return model, chosen


def load_model(path: PathLike, arch: Arch = None, *, prefix: Optional[str] = None,
               trust: bool = False) -> torch.nn.Module:
    """Load one model (in eval mode) from a file; see the module docstring for the formats.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    arch : str or callable, optional
        The architecture of a state_dict (default: an ``arch.json`` beside the file).
    prefix : str, optional
        The key prefix of the weights in the file, when several sets fit (``"ema"``, ``"model."``).
    trust : bool
        Unpickle Python objects (a whole module saved with ``torch.save(model)``). Such a file can
        run any code when it is loaded: pass True only for files you trust.

    Returns
    -------
    torch.nn.Module
        In eval mode, with finite weights.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such model file")
    if p.is_dir():
        raise ValueError(f"{p}: is a folder; use load_checkpoints for a folder of checkpoints")
    model, chosen = _load(p, arch, prefix, trust)
    if chosen:
        log.info(f"{p}: weights under the key prefix {chosen!r}")
    return model


def _step_from_name(path: Path) -> Optional[int]:
    stem = path.stem
    m = re.search(r"step[=_-]?(\d+)", stem, re.I)
    if m:
        return int(m.group(1))
    ints = [t for t in re.findall(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", stem, re.I) if t.isdigit()]
    return int(ints[-1]) if ints else None  # epoch=03-val_loss=0.12 -> 3, not 12


# -- folders ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint: its file, its step and where the step came from; ``load()`` reads the model.

    Made by :func:`list_checkpoints`; the architecture, prefix and trust it was listed with are
    kept, so ``load()`` needs no argument.
    """

    path: Optional[Path]  # the file (None: a module given in memory)
    step: Optional[int]  # the training step; None: unknown
    step_source: str  # "checkpoint key 'global_step'", "safetensors metadata 'step'", "file name", ...
    prefix: Optional[str] = None  # key prefix of the weights in the file ("": none; None: a whole module)
    arch: Optional[Callable[[], torch.nn.Module]] = field(default=None, repr=False, compare=False)
    trust: bool = field(default=False, repr=False)
    module: Optional[torch.nn.Module] = field(default=None, repr=False, compare=False)

    def load(self) -> torch.nn.Module:
        """The model, read from the file now (or the module given in memory)."""
        if self.module is not None:
            return self.module
        if self.path is None:
            raise ValueError("this checkpoint has neither a file nor a module")
        return _load(self.path, self.arch, self.prefix, self.trust)[0]


def _files(path, glob: Optional[str]) -> Tuple[List[Path], Optional[Path]]:
    """The files to read and the folder they came from (None: files given one by one)."""
    if glob is not None and not isinstance(glob, str):
        raise TypeError(f"glob must be a str, got {type(glob).__name__}")
    if isinstance(path, (str, os.PathLike)):
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such checkpoint file or folder")
        if not p.is_dir():
            if glob is not None:
                raise ValueError(f"glob= picks files in a folder; {p} is a file")
            return [p], None
        if glob is not None:
            files = [f for f in p.glob(glob) if f.is_file()]
            if not files:
                raise ValueError(f"{p}: no file matches glob {glob!r}")
        else:
            files = [f for f in p.iterdir() if f.suffix in CHECKPOINT_SUFFIXES and f.is_file()]
            if not files:
                raise ValueError(f"{p}: holds no checkpoint files (looked for {', '.join(CHECKPOINT_SUFFIXES)})")
        return files, p
    if glob is not None:
        raise ValueError("glob= picks files in a folder, not in a list of files")
    files = [Path(f) for f in path]
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f}: no such checkpoint file")
        if f.is_dir():
            raise ValueError(f"{f}: is a folder; pass a folder alone, or a list of files")
    return files, None


def _natural(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class _Info:  # what listing learned about one file
    path: Path
    steps: Dict[str, int]  # step keys found in the file
    prefix: Optional[str]
    step: Optional[int] = None
    source: str = "none"
    alias: bool = False


def _peek(f: Path, trust: bool, prefix: Optional[str], want_of: Callable[[Path], dict]) -> _Info:
    """Steps and weights' prefix of one file, without loading its tensors (``want_of(f)``: the
    architecture's names and shapes)."""
    kind = _kind(f)
    if kind == "script":
        obj, meta = None, {}
    elif kind == "safetensors":
        meta, shapes = _safetensors(f, peek=True)
        obj = shapes
    else:
        loaded = _torch_load(f, trust, kind, mmap=True)
        if isinstance(loaded, torch.nn.Module):
            obj, meta = None, {}
        elif isinstance(loaded, dict):
            meta, obj = loaded, {k: tuple(v.shape) for k, v in _flat(loaded).items()}
        else:
            raise CheckpointError(f"{f}: holds a {type(loaded).__name__}, not a module or a state_dict")
        del loaded
    if obj is None:  # a whole module
        if prefix is not None:
            raise CheckpointError(f"{f}: holds a whole module; prefix= applies to state_dict files")
        return _Info(f, {}, None)
    want = want_of(f)
    chosen = _choose_prefix(f, obj, want, prefix, list(meta) if kind != "safetensors" else list(obj))
    return _Info(f, _steps_in(meta), chosen)


def _assign_steps(infos: List[_Info]) -> None:
    """The step of each file: the first of STEP_KEYS that every file (but aliases) holds; else
    per file the first step key it holds, else its name, else none."""
    real = [i for i in infos if not i.alias] or infos
    shared = next((k for k in STEP_KEYS if all(k in i.steps for i in real)), None)
    for i in infos:
        key = shared if shared in i.steps else next((k for k in STEP_KEYS if k in i.steps), None)
        if key is not None:
            i.step = i.steps[key]
            i.source = f"checkpoint key {key!r}"
        elif _step_from_name(i.path) is not None:
            i.step, i.source = _step_from_name(i.path), "file name"
        else:
            i.step, i.source = None, "none"
        if i.source.startswith("checkpoint") and i.path.suffix == ".safetensors":
            i.source = i.source.replace("checkpoint key", "safetensors metadata")


def _skip_aliases(infos: List[_Info]) -> Dict[Path, str]:
    """Files that are not checkpoints of their own, with the reason."""
    skip: Dict[Path, str] = {}
    resolved = {i.path.resolve(): i for i in infos if not i.path.is_symlink()}
    for i in infos:
        target = resolved.get(i.path.resolve()) if i.path.is_symlink() else None
        if target is not None:
            skip[i.path] = f"a symlink to {target.path.name}"
    live = [i for i in infos if i.path not in skip]
    steps = {i.step: i for i in live if not i.alias and i.step is not None}
    for i in live:
        if not i.alias or len(live) == 1:
            continue
        if i.step in steps:
            skip[i.path] = f"an alias of {steps[i.step].path.name} (the same step {i.step})"
        elif i.source in ("file name", "none"):
            skip[i.path] = "an alias name (last/best/latest) without a step of its own"
    groups: Dict[int, List[_Info]] = {}
    for i in infos:
        if i.path not in skip and i.step is not None:
            groups.setdefault(i.step, []).append(i)
    for group in groups.values():
        if len(group) > 1:  # the same bytes twice: one checkpoint, the first by name
            seen: Dict[str, _Info] = {}
            for i in sorted(group, key=lambda i: _natural(i.path.name)):
                h = _sha256(i.path)
                if h in seen:
                    skip[i.path] = f"the same bytes as {seen[h].path.name}"
                else:
                    seen[h] = i
    return skip


def list_checkpoints(path: Union[PathLike, Sequence[PathLike]], *, glob: Optional[str] = None,
                     arch: Arch = None, prefix: Optional[str] = None, trust: bool = False,
                     unreadable: Optional[List[Tuple[Path, str]]] = None) -> List[Checkpoint]:
    """The checkpoints of a folder (or a list of files), sorted by step, without loading them.

    Parameters
    ----------
    path : folder, file, or list of files
    glob : str, optional
        Which files of the folder to read (``"model_*.pt"``, ``"**/*.ckpt"``); default: every
        ``.pt``, ``.pth``, ``.ckpt`` and ``.safetensors`` file.
    arch : str or callable, optional
        The architecture of state_dict files (default: the folder's ``arch.json``).
    prefix : str, optional
        The key prefix of the weights, when several sets fit (EMA and live weights).
    trust : bool
        Unpickle Python objects (whole modules saved with ``torch.save(model)``): only for files
        you trust, they can run code when loaded.
    unreadable : list, optional
        Where to put ``(file, error)`` for a file that cannot be read (corrupt, truncated, of the
        wrong architecture), which is then left out; default: such a file raises
        :class:`CheckpointError`.

    Returns
    -------
    list of Checkpoint
        Sorted by step (unknown steps last, in file-name order). See the module docstring for
        where the steps come from and which files are skipped as aliases; the choices are
        logged to the ``splinescope`` logger (INFO) and problems are warned about.
    """
    files, folder = _files(path, glob)
    where = folder if folder is not None else (files[0] if len(files) == 1 else "checkpoints")
    factories: Dict[Path, Optional[Callable]] = {}
    wants: Dict[int, dict] = {}

    def want_of(f: Path) -> dict:
        key = Path() if arch is not None else f.parent
        if key not in factories:
            factories[key] = resolve_arch(arch) if arch is not None else _arch_from_sidecar(f.parent)
        fac = factories[key]
        if fac is None:
            raise _no_arch(f)
        if id(fac) not in wants:
            wants[id(fac)] = {k: tuple(v.shape) for k, v in _build(fac).state_dict().items()}
        return wants[id(fac)]

    infos = []
    for f in files:
        try:
            try:
                info = _peek(f, trust, prefix, want_of)
            except _NoFit as e:
                raise CheckpointError(f"{e}; {_GLOB}" if folder is not None and glob is None else str(e)) from None
        except CheckpointError as e:
            if unreadable is None:
                raise
            unreadable.append((f, str(e)))
            continue
        info.alias = bool(_ALIAS.match(f.stem))
        infos.append(info)
    _assign_steps(infos)
    skip = _skip_aliases(infos) if len(infos) > 1 else {}
    for p, why in skip.items():
        log.info(f"{where}: skipped {p.name}: {why}")
    kept = [i for i in infos if i.path not in skip]
    order = {i.path: n for n, i in enumerate(kept)}
    by_name = folder is not None or all(i.step is not None for i in kept)
    kept.sort(key=lambda i: (i.step is None, i.step or 0, _natural(i.path.name) if by_name else order[i.path]))

    sources = sorted({i.source for i in kept})
    known = [i for i in kept if i.step is not None]
    if len(sources) == 1:
        said = "unknown (file-name order)" if sources == ["none"] else f"from the {sources[0]}"
        log.info(f"{where}: {len(kept)} checkpoint{'s' * (len(kept) != 1)}, steps {said}")
    else:
        counts = ", ".join(f"{s} for {sum(i.source == s for i in kept)}" for s in sources if s != "none")
        log.info(f"{where}: {len(kept)} checkpoints, steps from: {counts}")
        if len([s for s in sources if s != "none"]) > 1:
            warnings.warn(f"{where}: the steps come from different sources ({counts}); their units may differ",
                          stacklevel=2)
    if known and len(known) < len(kept):
        names = [i.path.name for i in kept if i.step is None]
        warnings.warn(f"{where}: {len(names)} of {len(kept)} files have no step ({', '.join(names[:3])}"
                      f"{' ...' if len(names) > 3 else ''}); they are put last", stacklevel=2)
    dup: Dict[int, List[str]] = {}
    for i in known:
        if i.step is not None:
            dup.setdefault(i.step, []).append(i.path.name)
    dup = {s: n for s, n in dup.items() if len(n) > 1}
    if dup:
        s, names = next(iter(dup.items()))
        warnings.warn(f"{where}: steps are not distinct: {len(dup)} step{'s' * (len(dup) > 1)} in several files "
                      f"(step {s}: {', '.join(names)}); the order among them is by file name", stacklevel=2)
    prefixes = sorted({i.prefix for i in kept if i.prefix})
    if prefixes:
        log.info(f"{where}: weights under the key prefix{'es' * (len(prefixes) > 1)} "
                 f"{', '.join(map(repr, prefixes))}")
    unknown = "none (file-name order)" if by_name else "none (given order)"
    return [Checkpoint(i.path, i.step, i.source if i.step is not None else unknown, i.prefix,
                       factories.get(Path() if arch is not None else i.path.parent), trust)
            for i in kept]


class CheckpointSequence(_SequenceABC):
    """(step, model) pairs whose models are loaded when they are asked for.

    Indexing loads one model; iterating loads them one after the other, so only the current one
    (and the one the caller still holds) is in memory. ``records`` are the :class:`Checkpoint`
    records, ``steps`` their steps.
    """

    def __init__(self, records: Sequence[Checkpoint]):
        self.records: List[Checkpoint] = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return CheckpointSequence(self.records[i])
        r = self.records[i]
        return r.step, r.load()

    def __iter__(self):
        for r in self.records:  # no reference kept here to the model handed out before
            yield r.step, r.load()

    @property
    def steps(self) -> List[Optional[int]]:
        return [r.step for r in self.records]

    def __repr__(self) -> str:
        s = self.steps
        span = f", steps {s[0]}..{s[-1]}" if s and s[0] is not None and s[-1] is not None else ""
        return f"CheckpointSequence({len(s)} checkpoint{'s' * (len(s) != 1)}{span})"


def load_checkpoints(path: Union[PathLike, Sequence], arch: Arch = None, *, glob: Optional[str] = None,
                     prefix: Optional[str] = None, trust: bool = False) -> CheckpointSequence:
    """(step, model) pairs of a folder of checkpoints, a file, a list of files, or a list of modules.

    Files are listed by :func:`list_checkpoints` (sorted by step, read from the checkpoint itself
    first, then from the file name; aliases such as ``last.ckpt`` skipped) and each model is
    loaded when it is asked for: iterating a folder of 1,000 checkpoints holds one model at a
    time. Modules given in memory keep their order, numbered from 0.

    Parameters are those of :func:`list_checkpoints`.

    Returns
    -------
    CheckpointSequence
        Indexable, sized, iterable ``(step, model)`` pairs (``step`` None when unknown).
    """
    if isinstance(path, (str, os.PathLike)):
        return CheckpointSequence(list_checkpoints(path, glob=glob, arch=arch, prefix=prefix, trust=trust))
    items = list(path)
    if not items:
        raise ValueError("no checkpoints given")
    if all(isinstance(m, torch.nn.Module) for m in items):
        return CheckpointSequence([Checkpoint(None, i, "position", module=m) for i, m in enumerate(items)])
    if not all(isinstance(f, (str, os.PathLike)) for f in items):
        kinds = sorted({type(c).__name__ for c in items})
        raise TypeError(f"checkpoints must be all paths or all modules, got a list of {', '.join(kinds)}")
    return CheckpointSequence(list_checkpoints(items, glob=glob, arch=arch, prefix=prefix, trust=trust))
