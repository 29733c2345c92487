"""Loading models and training checkpoints from files.

A model file is one of: a whole module saved with ``torch.save``, a TorchScript file, or a
state_dict (``.pt``/``.pth``, ``.safetensors``, a Lightning ``.ckpt`` with a ``state_dict`` key)
together with an architecture: ``arch="pkg.module:factory"`` (called with no arguments),
``arch="pkg.module:factory(width=64, depth=3)"`` (literal keyword arguments), a callable that
returns the module, or an ``arch.json`` file beside the checkpoints
(``{"factory": "pkg.module:factory", "kwargs": {...}}``).
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

__all__ = ["load_model", "load_checkpoints", "resolve_arch", "CHECKPOINT_SUFFIXES"]

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")
Arch = Union[None, str, Callable[[], torch.nn.Module]]
_ARCH = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*:\s*([A-Za-z_]\w*)\s*(\((.*)\))?\s*$", re.S)


def resolve_arch(arch: Union[str, Callable[[], torch.nn.Module]]) -> Callable[[], torch.nn.Module]:
    """A zero-argument callable that builds the architecture.

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
        raise ValueError(f"arch {arch!r} is not of the form 'pkg.module:factory' or "
                         "'pkg.module:factory(key=value, ...)'")
    modname, fname, _, argtext = m.groups()
    kwargs = {}
    if argtext and argtext.strip():
        try:
            call = ast.parse(f"f({argtext})", mode="eval").body
            if call.args:
                raise ValueError
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except (SyntaxError, ValueError):
            raise ValueError(f"arch {arch!r}: arguments must be literal keyword arguments, e.g. "
                             "'pkg.module:factory(width=64)'") from None
    factory = _import_factory(modname, fname, arch)
    return lambda: factory(**kwargs)


_LEGACY_TOP = ("spatial", "render")  # run folders written before the one import name


def _import_factory(modname: str, fname: str, arch: str):
    if modname.split(".")[0] in _LEGACY_TOP:  # e.g. an old arch.json's "spatial.train:toy_mlp"
        modname = "splinescope." + modname
    try:
        module = importlib.import_module(modname)
    except ImportError as e:
        raise ImportError(f"arch {arch!r}: cannot import module {modname!r} ({e})") from None
    factory = getattr(module, fname, None)
    if factory is None or not callable(factory):
        raise ValueError(f"arch {arch!r}: module {modname!r} has no callable {fname!r}")
    return factory


def _arch_from_sidecar(folder: Path) -> Optional[Callable[[], torch.nn.Module]]:
    f = folder / "arch.json"
    if not f.is_file():
        return None
    spec = json.loads(f.read_text())
    m = _ARCH.match(str(spec.get("factory", "")))
    if not m or m.group(3):
        raise ValueError(f"{f} must hold {{\"factory\": \"pkg.module:factory\", \"kwargs\": {{...}}}}")
    factory = _import_factory(m.group(1), m.group(2), spec["factory"])
    kwargs = dict(spec.get("kwargs", {}))
    return lambda: factory(**kwargs)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n or n.endswith("constants.pkl") for n in z.namelist())


def _read(path: Path):
    """A module, or a state_dict, from one file."""
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:  # pragma: no cover
            raise ImportError("reading .safetensors needs the safetensors package (pip install safetensors)") from None
        return load_file(str(path))
    if _is_torchscript(path):
        return torch.jit.load(str(path), map_location="cpu")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # a whole pickled module (only load files you trust)
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
    return obj


def _fit_state_dict(model: torch.nn.Module, sd: dict, path: Path) -> None:
    want = set(model.state_dict())
    keys = list(sd)
    if not want <= set(keys):
        # Lightning and wrappers prefix the names ("model.", "net."): strip a common prefix
        for k in keys:
            for w in want:
                if k.endswith("." + w):
                    prefix = k[: -len(w)]
                    stripped = {kk[len(prefix):]: v for kk, v in sd.items() if kk.startswith(prefix)}
                    if want <= set(stripped):
                        sd = stripped
                        break
            else:
                continue
            break
    missing = sorted(want - set(sd))
    if missing:
        raise ValueError(f"{path}: the state_dict does not fit the architecture: missing {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}")
    model.load_state_dict({k: sd[k] for k in want})


def load_model(path: Union[str, os.PathLike], arch: Arch = None) -> torch.nn.Module:
    """Load one model (in eval mode) from a file; see the module docstring for the formats."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such model file: {p}")
    if p.is_dir():
        raise ValueError(f"{p} is a folder; use load_checkpoints for a folder of checkpoints")
    obj = _read(p)
    if isinstance(obj, torch.nn.Module):
        return obj.eval()
    if not isinstance(obj, dict):
        raise ValueError(f"{p} holds a {type(obj).__name__}, not a module or a state_dict")
    factory = resolve_arch(arch) if arch is not None else _arch_from_sidecar(p.parent)
    if factory is None:
        raise ValueError(f"{p} is a state_dict: pass arch='pkg.module:factory' (or --arch), or put an "
                         "arch.json beside it")
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"arch {arch!r} returned a {type(model).__name__}, not a torch.nn.Module")
    _fit_state_dict(model, obj, p)
    return model.eval()


def _step_of(path: Path) -> Optional[int]:
    m = re.search(r"step[=_-]?(\d+)", path.stem)
    if m:
        return int(m.group(1))
    nums = re.findall(r"\d+", path.stem)
    return int(nums[-1]) if nums else None


def load_checkpoints(path: Union[str, os.PathLike, Sequence], arch: Arch = None
                     ) -> List[Tuple[Optional[int], torch.nn.Module]]:
    """(step, model) for a folder of checkpoints (sorted by step), a list of files, or of modules.

    The step is read from each file name (``step_000120.pt``, ``epoch=3-step=300.ckpt``, ``120.pt``).
    """
    if isinstance(path, (str, os.PathLike)):
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"no such checkpoint file or folder: {p}")
        if p.is_dir():
            files = [f for f in p.iterdir() if f.suffix in CHECKPOINT_SUFFIXES and f.is_file()]
            if not files:
                raise ValueError(f"{p} holds no checkpoint files (looked for {', '.join(CHECKPOINT_SUFFIXES)})")
            if arch is None:
                arch = _arch_from_sidecar(p)
            files.sort(key=lambda f: (_step_of(f) is None, _step_of(f) or 0, f.name))
            return [(_step_of(f), load_model(f, arch)) for f in files]
        return [(_step_of(p), load_model(p, arch))]
    out = []
    for i, item in enumerate(path):
        if isinstance(item, torch.nn.Module):
            out.append((i, item))
        else:
            out.append((_step_of(Path(item)), load_model(item, arch)))
    if not out:
        raise ValueError("no checkpoints given")
    return out
