"""spatial.checkpoints: every supported file format, the step order, aliases, trust, and the errors."""
import json
import logging
import os
import shutil
import sys
import warnings
import weakref
from pathlib import Path

import pytest
import torch

from splinescope import spatial
from splinescope.spatial.checkpoints import (CheckpointSequence, _step_from_name, list_checkpoints,
                                             load_checkpoints, load_model, resolve_arch)

from common import mlp

ARCH = "common:mlp(widths=[2, 6, 5, 1], seed=0)"
WIDTHS = [2, 6, 5, 1]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _write_marker(path):
    """The payload of the crafted checkpoint: harmless, but proof that code ran."""
    Path(path).write_text("ran")


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_write_marker, (self.marker,))


@pytest.fixture
def notes(caplog):
    caplog.set_level(logging.INFO, logger="splinescope")
    return caplog


def test_formats(tmp_path):
    net = mlp(WIDTHS, seed=3)
    torch.save(net, tmp_path / "whole.pt")
    torch.jit.script(net).save(str(tmp_path / "script.pt"))
    torch.save(net.state_dict(), tmp_path / "sd.pth")
    torch.save(net.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"state_dict": {"model." + k: v for k, v in net.state_dict().items()}, "epoch": 3},
               tmp_path / "lightning.ckpt")
    torch.save({"epoch": 3, "model_state_dict": net.state_dict(),
                "optimizer_state_dict": torch.optim.Adam(net.parameters()).state_dict()}, tmp_path / "tutorial.pt")
    from safetensors.torch import save_file
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    assert same(load_model(tmp_path / "whole.pt", trust=True), net)
    assert len(spatial.partition(load_model(tmp_path / "script.pt"), bounds=(-1, 1, -1, 1))) == \
        len(spatial.partition(net, bounds=(-1, 1, -1, 1)))  # TorchScript needs no trust
    for f in ("sd.pth", "legacy.pt", "lightning.ckpt", "tutorial.pt", "w.safetensors"):
        m = load_model(tmp_path / f, ARCH)
        assert same(m, net) and not m.training


def test_a_whole_module_needs_trust(tmp_path):
    torch.save(mlp(WIDTHS), tmp_path / "whole.pt")
    with pytest.raises(spatial.CheckpointError,
                       match=r"whole\.pt: holds pickled Python objects \(torch\.nn\.modules\.container\.Sequential\), "
                             r"which can run code when loaded .*; pass trust=True \(--trust on the command line\) "
                             r"only if you trust this file"):
        load_model(tmp_path / "whole.pt")
    with pytest.raises(spatial.CheckpointError, match="holds pickled Python objects"):
        list_checkpoints(tmp_path)  # a folder too, before anything else is read
    with pytest.raises(spatial.CheckpointError, match="holds a whole module; prefix= applies to state_dict"):
        load_model(tmp_path / "whole.pt", prefix="ema", trust=True)


def test_a_crafted_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "MARKER"
    net = mlp(WIDTHS, seed=1)
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": _Payload(marker)}, tmp_path / "evil.ckpt")
    with pytest.raises(spatial.CheckpointError,
                       match=r"evil\.ckpt: holds pickled Python objects \(.*_write_marker\), which can run code"):
        load_model(tmp_path / "evil.ckpt", ARCH)
    for call in (lambda: list_checkpoints(tmp_path, arch=ARCH), lambda: load_checkpoints([tmp_path / "evil.ckpt"])):
        with pytest.raises(spatial.CheckpointError, match="only if you trust this file"):
            call()
    assert not marker.exists()
    # the only way to run it: the user's explicit trust (the payload here is harmless)
    m = load_model(tmp_path / "evil.ckpt", ARCH, trust=True)
    assert marker.read_text() == "ran" and same(m, net)


def _lightning(path, net, global_step, epoch, **extra):
    torch.save({"epoch": epoch, "global_step": global_step, "pytorch-lightning_version": "2.4.0",
                "state_dict": {"model." + k: v for k, v in net.state_dict().items()},
                "optimizer_states": [{}], "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {}}, **extra},
               path)


def test_a_lightning_folder_comes_out_in_training_order(tmp_path, notes):
    # ModelCheckpoint(filename="{epoch:02d}-{val_loss:.2f}", save_last=True): the names order by val_loss
    losses = [0.90, 0.35, 0.52, 0.21, 0.47]
    nets = [mlp(WIDTHS, seed=e) for e in range(5)]
    for e, (net, loss) in enumerate(zip(nets, losses)):
        _lightning(tmp_path / f"epoch={e:02d}-val_loss={loss:.2f}.ckpt", net, global_step=(e + 1) * 50, epoch=e)
    shutil.copy(tmp_path / "epoch=04-val_loss=0.47.ckpt", tmp_path / "last.ckpt")
    _lightning(tmp_path / "best.ckpt", nets[3], global_step=200, epoch=3)  # another save of a kept step
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        ck = list_checkpoints(tmp_path, arch=ARCH)
    assert [c.step for c in ck] == [50, 100, 150, 200, 250]
    assert {c.step_source for c in ck} == {"checkpoint key 'global_step'"}
    assert {c.prefix for c in ck} == {"state_dict.model."}
    assert [c.path.name for c in ck][:2] == ["epoch=00-val_loss=0.90.ckpt", "epoch=01-val_loss=0.35.ckpt"]
    text = notes.text
    assert "skipped last.ckpt: an alias of epoch=04-val_loss=0.47.ckpt (the same step 250)" in text
    assert "skipped best.ckpt: an alias of epoch=03-val_loss=0.21.ckpt (the same step 200)" in text
    assert "5 checkpoints, steps from the checkpoint key 'global_step'" in text
    assert "weights under the key prefix 'state_dict.model.'" in text
    pairs = load_checkpoints(tmp_path, ARCH)
    assert isinstance(pairs, CheckpointSequence) and len(pairs) == 5
    assert all(same(m, net) for (_, m), net in zip(pairs, nets))


def test_steps_from_the_file_name():
    for name, step in [("step_000120.pt", 120), ("epoch=3-step=300.ckpt", 300), ("120.pt", 120),
                       ("epoch=03-val_loss=0.12.ckpt", 3), ("resnet18_epoch5.pth", 5), ("model.pt", None),
                       ("lr=1e-3_loss=0.5.pt", None)]:
        assert _step_from_name(Path(name)) == step, name


def test_tutorial_dicts_and_safetensors_carry_their_step(tmp_path):
    from safetensors.torch import save_file
    for e in (2, 10, 1):
        torch.save({"epoch": e, "model_state_dict": mlp(WIDTHS, seed=e).state_dict()}, tmp_path / f"ckpt_{e * 7}.pt")
    ck = list_checkpoints(tmp_path, arch=ARCH)
    assert [(c.step, c.step_source, c.prefix) for c in ck] == [(e, "checkpoint key 'epoch'", "model_state_dict.")
                                                              for e in (1, 2, 10)]
    st = tmp_path / "st"
    st.mkdir()
    for s in (30, 4):
        save_file(mlp(WIDTHS, seed=s).state_dict(), str(st / f"w_{1000 - s}.safetensors"), metadata={"step": str(s)})
    ck = list_checkpoints(st, arch=ARCH)
    assert [(c.step, c.step_source) for c in ck] == [(4, "safetensors metadata 'step'"), (30, "safetensors metadata 'step'")]
    assert same(ck[0].load(), mlp(WIDTHS, seed=4))


def test_folder_sorted_by_step_with_sidecar(tmp_path):
    for step in (100, 3, 20):
        torch.save(mlp(WIDTHS, seed=step).state_dict(), tmp_path / f"step_{step:06d}.pt")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "arch.json").write_text(json.dumps({"factory": "common:mlp", "kwargs": {"widths": WIDTHS}}))
    ck = load_checkpoints(tmp_path)
    assert [s for s, _ in ck] == [3, 20, 100] and ck.steps == [3, 20, 100]
    assert same(ck[0][1], mlp(WIDTHS, seed=3)) and same(ck[-1][1], mlp(WIDTHS, seed=100))
    assert ck[1:].steps == [20, 100] and "3 checkpoints, steps 3..100" in repr(ck)
    assert ck.records[0].step_source == "file name"
    mods = [mlp([2, 4, 1]), mlp([2, 4, 1], seed=1)]
    assert [s for s, _ in load_checkpoints(mods)] == [0, 1]
    # a list of files is put in step order too
    files = [tmp_path / f"step_{s:06d}.pt" for s in (100, 3)]
    assert load_checkpoints(files).steps == [3, 100]


def test_aliases_duplicates_and_missing_steps(tmp_path, notes):
    for step in (10, 20):
        torch.save(mlp(WIDTHS, seed=step).state_dict(), tmp_path / f"step_{step:06d}.pt")
    shutil.copy(tmp_path / "step_000020.pt", tmp_path / "step_000020_copy.pt")  # the same bytes: one checkpoint
    os.symlink(tmp_path / "step_000010.pt", tmp_path / "current.pt")
    torch.save(mlp(WIDTHS, seed=5).state_dict(), tmp_path / "latest.pt")  # an alias without a step
    ck = list_checkpoints(tmp_path, arch=ARCH)
    assert [c.path.name for c in ck] == ["step_000010.pt", "step_000020.pt"]
    assert "skipped step_000020_copy.pt: the same bytes as step_000020.pt" in notes.text
    assert "skipped current.pt: a symlink to step_000010.pt" in notes.text
    assert "skipped latest.pt: an alias name (last/best/latest) without a step of its own" in notes.text
    # two different files of one step, and a file with no step: warnings, not silence
    torch.save(mlp(WIDTHS, seed=99).state_dict(), tmp_path / "other_step_10.pt")
    torch.save(mlp(WIDTHS, seed=98).state_dict(), tmp_path / "final.pt")
    with pytest.warns(UserWarning) as caught:
        ck = list_checkpoints(tmp_path, arch=ARCH)
    said = " | ".join(str(w.message) for w in caught)
    assert "1 of 4 files have no step (final.pt); they are put last" in said
    assert "steps are not distinct: 1 step in several files (step 10: other_step_10.pt, step_000010.pt)" in said
    assert [c.step for c in ck] == [10, 10, 20, None] and ck[-1].step_source == "none (file-name order)"


def test_glob_and_a_stray_optimizer_file(tmp_path):
    nets = [mlp(WIDTHS, seed=s) for s in range(3)]
    for s, net in enumerate(nets):
        torch.save(net.state_dict(), tmp_path / f"model_{s:03d}.pt")
    torch.save(torch.optim.AdamW(nets[-1].parameters()).state_dict(), tmp_path / "optimizer.pt")
    with pytest.raises(spatial.CheckpointError,
                       match=r"optimizer\.pt: holds no weights of the architecture \(no tensor named '0.weight'; "
                             r"its keys: state, param_groups\); if it is not a model checkpoint, pick the model "
                             r"files with glob= \(--glob on the command line\)"):
        load_checkpoints(tmp_path, ARCH)
    ck = load_checkpoints(tmp_path, ARCH, glob="model_*.pt")
    assert ck.steps == [0, 1, 2] and same(ck[2][1], nets[2])
    with pytest.raises(ValueError, match=r"no file matches glob 'nothing_\*.pt'"):
        load_checkpoints(tmp_path, ARCH, glob="nothing_*.pt")
    with pytest.raises(ValueError, match="glob= picks files in a folder; .*model_000.pt is a file"):
        load_checkpoints(tmp_path / "model_000.pt", ARCH, glob="*.pt")
    with pytest.raises(TypeError, match="glob must be a str, got int"):
        load_checkpoints(tmp_path, ARCH, glob=3)


def test_prefix_chooses_ema_or_live_weights(tmp_path, notes):
    live, ema = mlp(WIDTHS, seed=1), mlp(WIDTHS, seed=2)
    sd = {**{"model." + k: v for k, v in live.state_dict().items()}, **{"ema." + k: v for k, v in ema.state_dict().items()}}
    torch.save({"global_step": 7, "state_dict": sd}, tmp_path / "both.ckpt")
    with pytest.raises(spatial.CheckpointError,
                       match=r"both\.ckpt: several sets of weights fit the architecture, under the key prefixes "
                             r"'state_dict.ema.', 'state_dict.model.'; choose one with prefix= \(--prefix on the "
                             r"command line\)"):
        load_model(tmp_path / "both.ckpt", ARCH)
    assert same(load_model(tmp_path / "both.ckpt", ARCH, prefix="ema"), ema)
    assert same(load_model(tmp_path / "both.ckpt", ARCH, prefix="state_dict.model."), live)
    assert "both.ckpt: weights under the key prefix 'state_dict.model.'" in notes.text
    ck = list_checkpoints(tmp_path, arch=ARCH, prefix="ema.")
    assert ck[0].prefix == "state_dict.ema." and ck[0].step == 7 and same(ck[0].load(), ema)
    with pytest.raises(spatial.CheckpointError,
                       match=r"no weights of the architecture under the prefix 'nope'; the architecture's weights "
                             r"are under 'state_dict.ema.', 'state_dict.model.'"):
        load_model(tmp_path / "both.ckpt", ARCH, prefix="nope")
    with pytest.raises(TypeError, match="prefix must be a str, got int"):
        load_model(tmp_path / "both.ckpt", ARCH, prefix=1)


def test_reading_a_folder_holds_one_model_at_a_time(tmp_path):
    for step in range(8):
        torch.save(mlp(WIDTHS, seed=step).state_dict(), tmp_path / f"step_{step:06d}.pt")
    built = []

    def factory():
        built.append(1)
        return mlp(WIDTHS)

    ck = load_checkpoints(tmp_path, factory)
    assert len(built) == 1  # listing built the architecture once (to check the files fit), loaded no model
    refs = []
    for step, model in ck:
        refs.append(weakref.ref(model))
        assert sum(r() is not None for r in refs) == 1, f"more than one model alive at step {step}"
    assert len(built) == 1 + 8


def test_arch_from_a_file_path_and_the_current_directory(tmp_path, monkeypatch):
    code = "import torch\n\ndef make(width=6):\n    return torch.nn.Sequential(torch.nn.Linear(2, width), " \
           "torch.nn.ReLU(), torch.nn.Linear(width, 1))\n"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "netdef_by_path.py").write_text(code)
    (tmp_path / "netdef_in_cwd.py").write_text(code)
    assert resolve_arch(f"{tmp_path}/sub/netdef_by_path.py:make(width=3)")()[0].out_features == 3
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert resolve_arch("sub/netdef_by_path.py:make")()[0].out_features == 6
    assert resolve_arch("netdef_in_cwd:make(width=4)")()[0].out_features == 4  # not installed, in the cwd
    assert str(tmp_path) not in sys.path  # only for that lookup
    # an arch.json naming a file beside it
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tmp_path / "netdef_in_cwd.py", run / "model_def.py")
    (run / "arch.json").write_text(json.dumps({"factory": "model_def.py:make", "kwargs": {"width": 5}}))
    torch.save(resolve_arch("netdef_in_cwd:make(width=5)")().state_dict(), run / "step_1.pt")
    monkeypatch.chdir(tmp_path / "sub")
    assert load_checkpoints(run)[0][1][0].out_features == 5
    with pytest.raises(FileNotFoundError, match="arch 'missing/f.py:make': no such file 'missing/f.py'"):
        resolve_arch("missing/f.py:make")
    (tmp_path / "broken.py").write_text("1 / 0\n")
    with pytest.raises(ImportError, match=r"arch '.*broken.py:make': importing .*broken.py' failed: ZeroDivisionError"):
        resolve_arch(f"{tmp_path}/broken.py:make")
    with pytest.raises(ImportError, match="cannot import module 'netdef_nowhere' .*the current directory was searched"):
        resolve_arch("netdef_nowhere:make")


def test_nonfinite_weights_are_refused_naming_file_and_layer(tmp_path):
    net = mlp(WIDTHS)
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")
    torch.save(net.state_dict(), tmp_path / "nan.pt")
    with pytest.raises(spatial.NonFiniteWeightsError, match=r"nan\.pt: layer 2 \(Linear\) has non-finite weights"):
        load_model(tmp_path / "nan.pt", ARCH)
    with pytest.raises(spatial.NonFiniteWeightsError, match=r"^layer 2 \(Linear\) has non-finite weights \(NaN or inf\)"):
        spatial.partition(net, (-1, 1, -1, 1))


def test_bad_files(tmp_path):
    net = mlp(WIDTHS)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    data = (tmp_path / "sd.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    from safetensors.torch import save_file
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "w.safetensors").read_bytes()[:-20])
    torch.save([1, 2], tmp_path / "list.pt")
    cases = {
        "trunc.pt": r"trunc\.pt: is not a readable torch checkpoint \(truncated, corrupt, or another kind of file\): "
                    r"PytorchStreamReader failed reading zip archive",
        "text.pt": r"text\.pt: is a text file, not a model checkpoint",
        "empty.pt": r"empty\.pt: is empty",
        "noise.pt": r"noise\.pt: is not a readable torch checkpoint",
        "bad.safetensors": r"bad\.safetensors: is not a valid safetensors file: Error while deserializing header",
        "cut.safetensors": r"cut\.safetensors: is not a valid safetensors file: .*not fully covered",
        "list.pt": r"list\.pt: holds a list, not a module or a state_dict",
    }
    for name, pattern in cases.items():
        with pytest.raises(spatial.CheckpointError, match=pattern):
            load_model(tmp_path / name, ARCH)
        with pytest.raises(spatial.CheckpointError, match=pattern):
            list_checkpoints([tmp_path / name], arch=ARCH)


def test_a_torch_export_archive_is_read_only_with_trust(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)).double()
    torch.export.save(torch.export.export(net, (torch.zeros(1, 2, dtype=torch.float64),)), str(tmp_path / "m.pt2"))
    shutil.copy(tmp_path / "m.pt2", tmp_path / "renamed.pt")
    for f in ("m.pt2", "renamed.pt"):
        with pytest.raises(spatial.CheckpointError,
                           match=rf"{f}: is a torch.export program \(.pt2\), which torch.export.load reads with "
                                 r"pickle \(it can run code when loaded\); pass trust=True"):
            load_model(tmp_path / f)
        got = load_model(tmp_path / f, trust=True)
        a, b = spatial.partition(got, (-2, 2, -2, 2)), spatial.partition(net, (-2, 2, -2, 2))
        assert len(a) == len(b) > 1 and (a.patterns == b.patterns).all()
    (tmp_path / "bad.pt2").write_bytes(b"not a zip")
    with pytest.raises(spatial.CheckpointError, match=r"bad.pt2: is not a readable torch.export program"):
        load_model(tmp_path / "bad.pt2", trust=True)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt: no such model file"):
        load_model(tmp_path / "missing.pt")
    torch.save(mlp([2, 4, 1]).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(spatial.CheckpointError, match=r"sd\.pt: holds a state_dict and no architecture: pass arch="):
        load_model(tmp_path / "sd.pt")
    with pytest.raises(spatial.CheckpointError, match="does not fit the architecture: missing"):
        load_model(tmp_path / "sd.pt", "common:mlp(widths=[2, 8, 8, 1])")
    with pytest.raises(spatial.CheckpointError,
                       match=r"does not fit the architecture: '0.weight' is \(4, 2\) in the file but \(8, 2\)"):
        load_model(tmp_path / "sd.pt", "common:mlp(widths=[2, 8, 1])")
    with pytest.raises(ValueError, match=r"arch 'common:mlp\(wdths=\[2\]\)': building the model failed: TypeError"):
        load_model(tmp_path / "sd.pt", "common:mlp(wdths=[2])")
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
    with pytest.raises(ValueError, match="empty: holds no checkpoint files"):
        load_checkpoints(empty)
    with pytest.raises(ValueError, match="is a folder; use load_checkpoints"):
        load_model(empty)
    with pytest.raises(FileNotFoundError, match="nothing: no such checkpoint file or folder"):
        load_checkpoints(tmp_path / "nothing")
    with pytest.raises(TypeError, match="all paths or all modules, got a list of Sequential, str"):
        load_checkpoints([mlp([2, 4, 1]), "sd.pt"])
    with pytest.raises(ValueError, match="no checkpoints given"):
        load_checkpoints([])
    (empty / "arch.json").write_text("{nope")
    torch.save(mlp([2, 4, 1]).state_dict(), empty / "step_1.pt")
    with pytest.raises(ValueError, match=r"arch\.json: is not valid JSON"):
        load_checkpoints(empty)
