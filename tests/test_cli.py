"""The command line: ``splinescope count`` (the other subcommands are tested with their modules)."""
import json

import numpy as np
import pytest
import torch

from splinescope.render.cli import main

from common import reference_net


def test_count_prints_the_reference_count(tmp_path, capsys):
    torch.save(reference_net(32), tmp_path / "net.pt")
    assert main(["count", str(tmp_path / "net.pt"), "--bounds", "-1", "1", "-1", "1"]) == 0
    assert capsys.readouterr().out.strip() == "1235"
    torch.save(reference_net(32).state_dict(), tmp_path / "sd.pt")
    assert main(["count", str(tmp_path / "sd.pt"), "--arch", "common:reference_net(width=32)", "--json",
                 "--verify"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["regions"] == 1235 and rec["verified"] is True
    assert main(["count", str(tmp_path / "net.pt"), "--geojson", str(tmp_path / "p.geojson")]) == 0
    gj = json.loads((tmp_path / "p.geojson").read_text())
    assert len(gj["features"]) == 1235 + 1 and gj["features"][-1]["properties"]["kind"] == "decision_boundary"


def test_count_on_a_plane(tmp_path, capsys):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save(net, tmp_path / "net.pt")
    for n in "abc":
        np.save(tmp_path / f"{n}.npy", np.random.default_rng(ord(n)).random(5))
    args = ["count", str(tmp_path / "net.pt"), "--through"] + [str(tmp_path / f"{n}.npy") for n in "abc"]
    assert main(args) == 0
    assert int(capsys.readouterr().out) >= 1


def test_count_errors(tmp_path, capsys):
    assert main(["count", str(tmp_path / "missing.pt")]) == 2
    assert "no such model file" in capsys.readouterr().err
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.GELU(), torch.nn.Linear(3, 1)), tmp_path / "g.pt")
    assert main(["count", str(tmp_path / "g.pt")]) == 2
    assert "layer 1 (GELU) is not supported" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["count"])
