"""``cryophase train`` killed with SIGKILL resumes with ``--resume`` from its last checkpoint and ends where an
uninterrupted run ends.

The run is the CLI in a subprocess, on the tiny 16 px test preset (checkpoint every 2 steps), slowed to about
0.15 s per step so that the kill lands mid-run.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robust_inputs import invoke, simulate_small
from cryophase.models.weights import load_tensors
from cryophase.training import presets
from models.tiny import tiny_preset

TESTS = Path(__file__).resolve().parents[1]
MAX_STEPS = 16
CHECKPOINT_EVERY = tiny_preset().vae_loop.checkpoint_every

SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from cryophase.training import presets
from cryophase.training.data import TensorData
from models.tiny import tiny_preset
presets.PRESETS["tiny"] = tiny_preset
if {slow}:
    sample = TensorData.sample
    def slow_sample(self, n, generator):
        time.sleep(0.15)
        return sample(self, n, generator)
    TensorData.sample = slow_sample
from cryophase.cli.main import app
app(sys.argv[1:], prog_name="cryophase")
"""


def train_process(args, slow):
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen([sys.executable, "-c", SCRIPT.format(tests=str(TESTS), slow=slow), *map(str, args)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def checkpoint_step(run):
    state = run / "vae" / "checkpoint" / "state.json"
    try:
        return json.loads(state.read_text())["step"]
    except (OSError, ValueError):
        return None


def metrics(run):
    with open(run / "vae" / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, monkeypatch):
    data = simulate_small(tmp_path / "sim", n=12, box=16)
    common = ["--preset", "tiny", "--data", data, "--max-steps", MAX_STEPS, "--seed", "1", "--no-progress",
              "--device", "cpu"]
    killed = tmp_path / "killed"
    proc = train_process(["train", "vae", "--out", killed, *common], slow=True)
    try:
        deadline = time.monotonic() + 60
        while (checkpoint_step(killed) or 0) < CHECKPOINT_EVERY and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.05)
        time.sleep(0.2)  # let it run on past the checkpoint, into the next interval
        assert proc.poll() is None, f"training ended before it could be killed: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = checkpoint_step(killed)
    assert saved is not None and CHECKPOINT_EVERY <= saved < MAX_STEPS
    logged = max(int(r["step"]) for r in metrics(killed))  # validation runs every 2 steps too
    assert logged - saved <= CHECKPOINT_EVERY  # at most one checkpoint interval is lost

    resumed = train_process(["train", "vae", "--out", killed, *common, "--resume"], slow=False)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert f"vae: {MAX_STEPS} steps" in out

    monkeypatch.setitem(presets.PRESETS, "tiny", tiny_preset)
    straight = tmp_path / "straight"
    result = invoke(["train", "vae", "--out", straight, *common])
    assert result.exit_code == 0, result.output

    a = load_tensors(straight / "vae" / "checkpoint" / "model.safetensors")
    b = load_tensors(killed / "vae" / "checkpoint" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    rows_a, rows_b = metrics(straight), metrics(killed)
    assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a]  # no rows duplicated by the resume
    for key in rows_a[-1]:
        if key not in ("step", "elapsed_s"):
            assert float(rows_b[-1][key]) == pytest.approx(float(rows_a[-1][key]), rel=1e-4), key
