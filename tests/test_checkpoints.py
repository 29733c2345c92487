"""spatial.checkpoints: every supported file format, the step order, and the errors."""
import json

import pytest
import torch

from splinescope import spatial
from splinescope.spatial.checkpoints import load_checkpoints, load_model, resolve_arch

from common import mlp

ARCH = "common:mlp(widths=[2, 6, 5, 1], seed=0)"


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_formats(tmp_path):
    net = mlp([2, 6, 5, 1], seed=3)
    torch.save(net, tmp_path / "whole.pt")
    torch.jit.script(net).save(str(tmp_path / "script.pt"))
    torch.save(net.state_dict(), tmp_path / "sd.pth")
    torch.save({"state_dict": {"model." + k: v for k, v in net.state_dict().items()}, "epoch": 3},
               tmp_path / "lightning.ckpt")
    from safetensors.torch import save_file
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    assert same(load_model(tmp_path / "whole.pt"), net)
    assert len(spatial.partition(load_model(tmp_path / "script.pt"), bounds=(-1, 1, -1, 1))) == \
        len(spatial.partition(net, bounds=(-1, 1, -1, 1)))
    for f in ("sd.pth", "lightning.ckpt", "w.safetensors"):
        m = load_model(tmp_path / f, ARCH)
        assert same(m, net) and not m.training


def test_folder_sorted_by_step_with_sidecar(tmp_path):
    for step in (100, 3, 20):
        torch.save(mlp([2, 6, 5, 1], seed=step).state_dict(), tmp_path / f"step_{step:06d}.pt")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "arch.json").write_text(json.dumps({"factory": "common:mlp", "kwargs": {"widths": [2, 6, 5, 1]}}))
    ck = load_checkpoints(tmp_path)
    assert [s for s, _ in ck] == [3, 20, 100]
    assert same(ck[0][1], mlp([2, 6, 5, 1], seed=3))
    mods = [mlp([2, 4, 1]), mlp([2, 4, 1], seed=1)]
    assert [s for s, _ in load_checkpoints(mods)] == [0, 1]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_model(tmp_path / "missing.pt")
    torch.save(mlp([2, 4, 1]).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="is a state_dict: pass arch="):
        load_model(tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="does not fit the architecture: missing"):
        load_model(tmp_path / "sd.pt", "common:mlp(widths=[2, 8, 8, 1])")
    with pytest.raises(ValueError, match="not of the form 'pkg.module:factory'"):
        resolve_arch("common.mlp")
    with pytest.raises(ValueError, match="literal keyword arguments"):
        resolve_arch("common:mlp(1, 2)")
    with pytest.raises(ImportError, match="cannot import module 'nope_nope'"):
        resolve_arch("nope_nope:f")
    with pytest.raises(ValueError, match="has no callable 'nothing'"):
        resolve_arch("common:nothing")
    with pytest.raises(TypeError, match="arch must be"):
        resolve_arch(3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no checkpoint files"):
        load_checkpoints(empty)
    with pytest.raises(ValueError, match="is a folder; use load_checkpoints"):
        load_model(empty)
