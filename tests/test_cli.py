"""The command line: ``splinescope count`` (the other subcommands are tested with their modules)."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from splinescope import spatial
from splinescope.render.cli import main

from _exact import exact_regions
from common import mlp, reference_net


def test_count_prints_the_reference_count(tmp_path, capsys):
    torch.save(reference_net(32), tmp_path / "net.pt")
    assert main(["count", str(tmp_path / "net.pt"), "--trust", "--bounds", "-1", "1", "-1", "1"]) == 0
    assert capsys.readouterr().out.strip() == "1235"
    torch.save(reference_net(32).state_dict(), tmp_path / "sd.pt")
    assert main(["count", str(tmp_path / "sd.pt"), "--arch", "common:reference_net(width=32)", "--json",
                 "--verify"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["regions"] == 1235 and rec["verified"] is True
    assert main(["count", str(tmp_path / "net.pt"), "--trust", "--geojson", str(tmp_path / "p.geojson")]) == 0
    gj = json.loads((tmp_path / "p.geojson").read_text())
    assert len(gj["features"]) == 1235 + 1 and gj["features"][-1]["properties"]["kind"] == "decision_boundary"


def test_count_on_a_plane(tmp_path, capsys):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save(net, tmp_path / "net.pt")
    for n in "abc":
        np.save(tmp_path / f"{n}.npy", np.random.default_rng(ord(n)).random(5))
    args = ["count", str(tmp_path / "net.pt"), "--trust", "--through"] + [str(tmp_path / f"{n}.npy") for n in "abc"]
    assert main(args + ["--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    # a plane's default box, (-0.2, 1.2)^2: the three inputs and a margin; the library's count and
    # the rational reference's
    assert rec["bounds"] == [-0.2, 1.2, -0.2, 1.2]
    plane = spatial.Plane.through(*(np.load(tmp_path / f"{n}.npy") for n in "abc"))
    box = (-0.2, 1.2, -0.2, 1.2)
    assert rec["regions"] == len(spatial.partition(net, bounds=box, plane=plane)) > 1
    assert rec["regions"] == len(exact_regions(net, box, plane))
    assert main(args + ["--bounds", "-1", "1", "-1", "1"]) == 0  # a box given: that box
    count = int(capsys.readouterr().out)
    box = (-1.0, 1.0, -1.0, 1.0)
    assert count == len(exact_regions(net, box, plane)) > 1


def test_default_bounds_by_slice():
    import argparse
    from splinescope.render.cli._common import slice_bounds
    assert slice_bounds(argparse.Namespace(bounds=None, through=None)) == (-1.0, 1.0, -1.0, 1.0)
    assert slice_bounds(argparse.Namespace(bounds=None, through=["a", "b", "c"])) == (-0.2, 1.2, -0.2, 1.2)
    assert slice_bounds(argparse.Namespace(bounds=[0.0, 2.0, 0.0, 1.0], through=["a", "b", "c"])) == (0, 2, 0, 1)


def test_count_in_tiles(tmp_path, capsys):
    args = ["count", str(tmp_path / "net.pt"), "--trust", "--json"]
    torch.save(reference_net(32), tmp_path / "net.pt")  # 1,235 regions (the rational reference's count)
    assert main(args) == 0
    whole = json.loads(capsys.readouterr().out)
    assert main(args + ["--max-memory", "1", "--verify"]) == 0  # 1 MB: 4 tiles, stitched
    tiled = json.loads(capsys.readouterr().out)
    assert tiled["regions"] == whole["regions"] == 1235 and tiled["verified"] is True
    assert main(args + ["--max-memory", "0"]) == 0  # the whole slice at once
    assert json.loads(capsys.readouterr().out)["regions"] == 1235
    assert main(args + ["--max-memory", "-1"]) == 2
    assert "--max-memory must be >= 0 MB (0: the whole slice at once), got -1" in capsys.readouterr().err
    assert main(args + ["--max-memory", "0.0001"]) == 2  # 104 bytes: below the smallest tiles
    assert "is too small for this partition: the smallest that works is about" in capsys.readouterr().err


def test_count_errors(tmp_path, capsys):
    assert main(["count", str(tmp_path / "missing.pt")]) == 2
    assert "no such model file" in capsys.readouterr().err
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.GELU(), torch.nn.Linear(3, 1)), tmp_path / "g.pt")
    assert main(["count", str(tmp_path / "g.pt"), "--trust"]) == 2
    assert "layer 1 (GELU) is not piecewise linear" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["count"])
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(72, 1)),
               tmp_path / "cnn.pt")  # images: the shape comes from the plane
    assert main(["count", str(tmp_path / "cnn.pt"), "--trust"]) == 2
    err = capsys.readouterr().err
    assert "the input shape is needed to read this network" in err and "--through A B C on the command line" in err


ARCH = "common:mlp(widths=[2, 6, 5, 1])"


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))


def _bad_files(d):
    """(file, extra arguments, the problem the one-line error must state) for every mistake a user can make."""
    from safetensors.torch import save_file
    net = mlp([2, 6, 5, 1])
    torch.save(net.state_dict(), d / "sd.pt")
    raw = (d / "sd.pt").read_bytes()
    (d / "trunc.pt").write_bytes(raw[: len(raw) // 3])
    (d / "notes.pt").write_text("hello\n")
    save_file(net.state_dict(), str(d / "w.safetensors"))
    (d / "cut.safetensors").write_bytes((d / "w.safetensors").read_bytes()[:40])
    torch.save(net, d / "whole.pt")
    torch.save({"state_dict": net.state_dict(), "x": _Payload(d / "MARKER")}, d / "evil.ckpt")
    torch.export.save(torch.export.export(net.float(), (torch.zeros(1, 2),)), str(d / "m.pt2"))
    bad = mlp([2, 6, 5, 1])
    with torch.no_grad():
        bad[2].bias[1] = float("inf")
    torch.save(bad.state_dict(), d / "inf.pt")
    torch.save(torch.optim.SGD(net.parameters(), lr=0.1).state_dict(), d / "optim.pt")
    return [
        ("missing.pt", [], r"missing\.pt: no such model file"),
        ("trunc.pt", ["--arch", ARCH], r"trunc\.pt: is not a readable torch checkpoint \(truncated, corrupt"),
        ("notes.pt", ["--arch", ARCH], r"notes\.pt: is a text file, not a model checkpoint"),
        ("cut.safetensors", ["--arch", ARCH], r"cut\.safetensors: is not a valid safetensors file: "),
        ("whole.pt", [], r"whole\.pt: holds pickled Python objects .*; pass trust=True \(--trust on the command "
                         r"line\) only if you trust this file"),
        ("evil.ckpt", ["--arch", ARCH], r"evil\.ckpt: holds pickled Python objects \([\w.]+\), which can run code"),
        ("m.pt2", [], r"m\.pt2: is a torch\.export program \(\.pt2\), which torch\.export\.load reads with pickle"),
        ("sd.pt", [], r"sd\.pt: holds a state_dict and no architecture: pass arch='pkg.module:factory' \(--arch"),
        ("sd.pt", ["--arch", "common:mlp(widths=[2, 3, 1])"],
         r"sd\.pt: the state_dict does not fit the architecture: '0.weight' is \(6, 2\) in the file but \(3, 2\)"),
        ("sd.pt", ["--arch", "no_such_pkg_xyz:f"], r"arch 'no_such_pkg_xyz:f': cannot import module 'no_such_pkg_xyz'"),
        ("sd.pt", ["--arch", "nowhere/f.py:make"], r"arch 'nowhere/f.py:make': no such file 'nowhere/f.py'"),
        ("sd.pt", ["--prefix", "ema", "--arch", ARCH], r"sd\.pt: holds no weights of the architecture under the prefix 'ema'"),
        ("inf.pt", ["--arch", ARCH], r"inf\.pt: layer 2 \(Linear\) has non-finite weights \(NaN or inf\)"),
        ("optim.pt", ["--arch", ARCH], r"optim\.pt: holds no weights of the architecture \(no tensor named '0.weight'"),
    ]


def test_every_user_error_is_one_line_naming_the_file(tmp_path, capsys):
    for name, extra, problem in _bad_files(tmp_path):
        assert main(["count", str(tmp_path / name), *extra]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert re.match(r"splinescope count: error: (.*/)?" + problem, err), (name, err)
    assert not (tmp_path / "MARKER").exists()  # the crafted file ran nothing
    assert main(["count", str(tmp_path / "m.pt2"), "--trust"]) == 0  # a torch.export program, trusted
    capsys.readouterr()
    (tmp_path / "a.npy").write_bytes(b"garbage")
    assert main(["count", str(tmp_path / "sd.pt"), "--arch", ARCH, "--through", *[str(tmp_path / "a.npy")] * 3]) == 2
    assert re.match(r"splinescope count: error: .*a\.npy: cannot be read as an array \(ValueError\)\n$",
                    capsys.readouterr().err)


def test_prefix_and_trust_on_the_command_line(tmp_path, capsys):
    live, ema = mlp([2, 6, 5, 1], seed=1), mlp([2, 6, 5, 1], seed=2)
    torch.save({"global_step": 9, "state_dict": {**{"model." + k: v for k, v in live.state_dict().items()},
                                                 **{"ema." + k: v for k, v in ema.state_dict().items()}}},
               tmp_path / "both.ckpt")
    assert main(["count", str(tmp_path / "both.ckpt"), "--arch", ARCH]) == 2
    assert re.search(r"both\.ckpt: several sets of weights fit the architecture, under the key prefixes "
                     r"'state_dict.ema.', 'state_dict.model.'; choose one with prefix= \(--prefix on the command line\)",
                     capsys.readouterr().err)
    from splinescope import spatial
    assert main(["count", str(tmp_path / "both.ckpt"), "--arch", ARCH, "--prefix", "ema"]) == 0
    out, err = capsys.readouterr()
    assert int(out) == len(spatial.partition(ema, (-1, 1, -1, 1)))
    assert re.search(r"splinescope count: note: .*both\.ckpt: weights under the key prefix 'state_dict.ema.'", err)
    torch.save(ema, tmp_path / "whole.pt")
    assert main(["count", str(tmp_path / "whole.pt"), "--trust"]) == 0
    assert int(capsys.readouterr().out) == len(spatial.partition(ema, (-1, 1, -1, 1)))


def test_animate_a_lightning_folder_with_glob(tmp_path, capsys):
    run = tmp_path / "lightning"
    run.mkdir()
    for e, loss in enumerate([0.8, 0.3, 0.5]):
        net = mlp([2, 6, 5, 1], seed=e)
        torch.save({"epoch": e, "global_step": 10 * (e + 1),
                    "state_dict": {"model." + k: v for k, v in net.state_dict().items()}},
                   run / f"epoch={e:02d}-val_loss={loss:.2f}.ckpt")
    shutil.copy(run / "epoch=02-val_loss=0.50.ckpt", run / "last.ckpt")
    torch.save(torch.optim.SGD(net.parameters(), lr=0.1).state_dict(), run / "optimizer.pt")
    gif = tmp_path / "l.gif"
    args = ["animate", str(run), "--arch", ARCH, "--no-stats", "--dpi", "20", "--quiet", "--out", str(gif)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(
        r"optimizer\.pt: holds no weights of the architecture .*pick the model files with glob= \(--glob on the "
        r"command line\)", err)
    assert main(args + ["--glob", "*.ckpt"]) == 0
    out, err = capsys.readouterr()
    assert "3 frames" in out
    assert re.search(r"splinescope animate: note: .*lightning: skipped last\.ckpt: an alias of "
                     r"epoch=02-val_loss=0\.50\.ckpt \(the same step 30\)", err)
    assert "lightning: 3 checkpoints, steps from the checkpoint key 'global_step'" in err
    # two different files of one step: a one-line warning
    net = mlp([2, 6, 5, 1], seed=7)
    torch.save({"global_step": 20, "state_dict": {"model." + k: v for k, v in net.state_dict().items()}},
               run / "rerun.ckpt")
    assert main(args + ["--glob", "*.ckpt"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if ": warning: " in line]
    assert len(warned) == 1 and re.match(r"splinescope animate: warning: .*steps are not distinct: 1 step in "
                                         r"several files \(step 20: epoch=01-val_loss=0\.30\.ckpt, rerun\.ckpt\)",
                                         warned[0])
