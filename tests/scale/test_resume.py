"""``retrieve --resume``: a run killed (SIGKILL) mid-stack continues without redoing finished chunks, and the
result is bit-identical to an uninterrupted run; other settings are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import mrcfile
import numpy as np
from typer.testing import CliRunner

from cryophase.cli.main import app
from cryophase.resumable import journal_paths, partial_path

runner = CliRunner()
BATCH, CHUNK = 4, 8  # 40 particles: 5 chunks of 2 batches

# Retrieve in a child process that kills itself (SIGKILL, no clean-up) once the first batch of the third
# chunk is written but not yet journalled: chunks 0 and 1 are recorded, chunk 2 half-written.
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from cryophase.retrieve_stack import RetrieveConfig, retrieve_stack

    def progress(done, total):
        if done == 2 * {chunk} + {batch}:
            os.kill(os.getpid(), signal.SIGKILL)

    retrieve_stack(sys.argv[1], sys.argv[2], "wiener", progress=progress,
                   config=RetrieveConfig(batch_size={batch}, chunk_size={chunk}, device="cpu"))
""").format(batch=BATCH, chunk=CHUNK)


def same_stack_bytes(a, b) -> bool:
    """Bit-identical data and header, but for the header's labels (mrcfile stamps the creation time there)."""
    x, y = a.read_bytes(), b.read_bytes()
    return x[:220] == y[:220] and x[1024:] == y[1024:]


def retrieve(star, out, *extra):
    return runner.invoke(app, ["retrieve", str(star), "--method", "wiener", "--out", str(out), "--device", "cpu",
                               "--batch-size", str(BATCH), "--chunk-size", str(CHUNK), *map(str, extra)])


def test_killed_run_resumes_to_the_uninterrupted_result(counts_star, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert retrieve(counts_star, whole).exit_code == 0
    child = subprocess.run([sys.executable, "-c", KILLED_RUN, str(counts_star), str(resumed)],
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert child.returncode == -9, child.stderr
    assert not (resumed / "phases.mrcs").exists() and partial_path(resumed / "phases.mrcs").exists()
    (journal,) = journal_paths(resumed)
    assert sorted(json.loads(journal.read_text())["chunks"]) == ["0", "1"]

    # Without --resume the interrupted run is not silently overwritten.
    result = retrieve(counts_star, resumed)
    assert result.exit_code == 2 and "--resume" in result.output
    result = retrieve(counts_star, resumed, "--resume")
    assert result.exit_code == 0, result.output
    assert "(24 by this process)" in result.output  # chunks 2-4 only: finished chunks were not redone
    assert same_stack_bytes(whole / "phases.mrcs", resumed / "phases.mrcs")
    assert not journal_paths(resumed) and not partial_path(resumed / "phases.mrcs").exists()
    notes = json.loads((resumed / "retrieve.json").read_text())["notes"]
    assert "resumed: 16 of 40 particles were already done" in notes
    # The header statistics gathered chunk by chunk equal those of the whole stack.
    with mrcfile.open(resumed / "phases.mrcs", permissive=True) as mrc:
        data = mrc.data.astype(np.float64)
        np.testing.assert_allclose([mrc.header.dmin, mrc.header.dmax, mrc.header.dmean, mrc.header.rms],
                                   [data.min(), data.max(), data.mean(), data.std()], rtol=1e-5, atol=1e-7)


def test_resuming_with_other_settings_is_refused_and_overwrite_starts_again(counts_star, tmp_path):
    out = tmp_path / "out"
    child = subprocess.run([sys.executable, "-c", KILLED_RUN, str(counts_star), str(out)], capture_output=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert child.returncode == -9
    result = retrieve(counts_star, out, "--resume", "--seed", "5", "--option", "ssnr=3")
    assert result.exit_code == 2
    assert "other settings" in result.output and "seed" in result.output and "method_options" in result.output
    assert retrieve(counts_star, out, "--resume", "--overwrite").exit_code == 2  # contradictory
    result = retrieve(counts_star, out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert "by this process" not in result.output  # all 40 redone
    assert not journal_paths(out)


def test_finished_results_are_not_resumed_over(counts_star, tmp_path):
    out = tmp_path / "out"
    assert retrieve(counts_star, out).exit_code == 0
    result = retrieve(counts_star, out, "--resume")
    assert result.exit_code == 2 and "already holds results" in result.output
