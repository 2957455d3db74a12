"""The recipes in examples/ run against a real tokenfeedd: the plain loop's checkpoint/resume continues
byte-identically, and the Hugging Face Trainer under torchrun gives each of two ranks its own slice.
Skipped (with the reason) without torch, torchdata, transformers or the binaries."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

pytest.importorskip("torch", reason="torch is not installed (pip install 'clients/python[torch]')")
pytest.importorskip("torchdata.stateful_dataloader", reason="torchdata is not installed (pip install torchdata)")

EXAMPLES = REPO / "examples"


def run_example(args: list[str], socket: str, job: str, timeout: float = 600) -> str:
    env = dict(os.environ, TOKENFEED_SOCKET=socket, TOKENFEED_JOB=job,
               PYTHONPATH=os.pathsep.join([str(REPO / "clients" / "python"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


def test_plain_loop_resumes_byte_identical(daemon, tmp_path):
    script = str(EXAMPLES / "plain_loop.py")
    whole, parts = tmp_path / "whole.log", tmp_path / "parts.log"
    run_example([script, "--steps", "20", "--checkpoint", str(tmp_path / "a.pt"), "--log", str(whole)], daemon.socket, "ex-plain-a")
    run_example([script, "--steps", "8", "--checkpoint", str(tmp_path / "b.pt"), "--log", str(parts)], daemon.socket, "ex-plain-b")
    out = run_example([script, "--steps", "20", "--checkpoint", str(tmp_path / "b.pt"), "--log", str(parts), "--resume"],
                      daemon.socket, "ex-plain-b")
    assert "resumed at step 8" in out
    a, b = whole.read_text().splitlines(), parts.read_text().splitlines()
    assert len(a) == 20
    # Same step, same input bytes, same loss (model, optimizer and data resumed together).
    assert b == a


def test_hf_trainer_under_torchrun_gives_each_rank_its_slice(daemon, tmp_path):
    pytest.importorskip("transformers", reason="transformers is not installed (pip install transformers accelerate)")
    pytest.importorskip("accelerate", reason="accelerate is not installed (pip install accelerate)")
    steps, W, B = 6, 2, 2
    logs = tmp_path / "ranks"
    run_example(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(W),
                 str(EXAMPLES / "hf_trainer.py"), "--steps", str(steps), "--batch-size", str(B), "--log-dir", str(logs),
                 "--output-dir", str(tmp_path / "out")], daemon.socket, "ex-hf")
    seen = {}
    for r in range(W):
        path = logs / f"rank-{r}-of-{W}.txt"
        assert path.exists(), f"rank {r} never connected"
        rows = [list(map(int, line.split())) for line in path.read_text().splitlines()]
        assert len(rows) >= steps
        # Rank r's batch of step s holds sequences s·W·B + r·B + i.
        assert rows[:steps] == [[s * W * B + r * B + i for i in range(B)] for s in range(steps)]
        seen[r] = {x for row in rows[:steps] for x in row}
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == set(range(steps * W * B)), "the two ranks together train on the stream, nothing skipped"


def test_tensor_parallel_groups_read_their_data_parallel_rank_as_replicas(daemon, tmp_path):
    """4 processes, tensor-parallel groups of 2: each group's processes read the same batches (their
    data-parallel rank's, as replicas), and the two groups together read the stream once."""
    steps, W, TP, B = 5, 4, 2, 2
    dp = W // TP
    logs = tmp_path / "ranks"
    run_example(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(W),
                 str(EXAMPLES / "tensor_parallel.py"), "--tp", str(TP), "--steps", str(steps), "--batch-size", str(B),
                 "--log-dir", str(logs)], daemon.socket, "ex-tp")
    rows = {}
    for g in range(W):
        path = logs / f"rank-{g}-of-{W}.txt"
        assert path.exists(), f"process {g} never read a batch"
        rows[g] = [list(map(int, line.split())) for line in path.read_text().splitlines()]
        assert len(rows[g]) == steps
    for g in range(W):
        r = g // TP  # the data-parallel rank: sequences s·dp·B + r·B + i
        assert rows[g] == [[s * dp * B + r * B + i for i in range(B)] for s in range(steps)]
        assert rows[g] == rows[r * TP], "the processes of one tensor-parallel group read the same batches"
