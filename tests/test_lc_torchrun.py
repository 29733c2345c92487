"""Tests of scripts/lc_torchrun.py: LocalComplexity and CKA over a dataset split across two
torchrun processes (gloo) equal one process over all of it (torchmetrics' sync of their states)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lc_torchrun.py"


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_processes_give_the_one_process_numbers(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    one, two = tmp_path / "one.json", tmp_path / "two.json"  # 1001 points: shards of 501 and 500
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(one), "--points", "1001"], env=env, check=True,
                   timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                    f"--master_port={_port()}", str(SCRIPT), "--out", str(two), "--points", "1001"],
                   env=env, check=True, timeout=300, capture_output=True)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a["world"], b["world"]) == (1, 2) and (a["points_here"], b["points_here"]) == (1001, 501)
    assert b["lc"] == pytest.approx(a["lc"], rel=1e-12)
    assert b["cka"] == pytest.approx(a["cka"], rel=1e-9)
