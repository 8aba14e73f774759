"""``torchrun -m cryophase retrieve``: two CPU processes (gloo) share the chunks and write one output, in the
input order, bit-identical to a one-process run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from typer.testing import CliRunner

from cryophase.cli.main import app
from cryophase.io.star import read_particles_star
from cryophase.resumable import journal_paths

runner = CliRunner()
OPTIONS = ["--method", "wiener", "--device", "cpu", "--batch-size", "4", "--chunk-size", "8"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_write_the_one_process_result(counts_star, tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert runner.invoke(app, ["retrieve", str(counts_star), "--out", str(single), *OPTIONS]).exit_code == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
               "-m", "cryophase", "retrieve", str(counts_star), "--out", str(sharded), *OPTIONS]
    child = subprocess.run(command, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert child.returncode == 0, child.stderr[-3000:]
    # Only rank 0 reports; 5 chunks of 8 shared 3 / 2, so rank 0 retrieved 24 of the 40 particles.
    assert child.stdout.count("retrieved 40 particles (24 by this process)") == 1, child.stdout
    a, b = (single / "phases.mrcs").read_bytes(), (sharded / "phases.mrcs").read_bytes()
    assert a[:220] == b[:220] and a[1024:] == b[1024:]  # labels (224-1023) carry the creation time
    names = read_particles_star(sharded / "phases.star").particles["rlnImageName"]
    assert list(names.str.split("@").str[0].astype(int)) == list(range(1, 41))
    assert not journal_paths(sharded)
