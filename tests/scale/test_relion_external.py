"""``cryophase_relion_external``: the RELION 4/5 External-job wrapper, run as RELION runs it (from the project
folder, with --in_parts / --o / --j and the Params tab as --label value)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from cryophase.io.particles import read_particle_table
from cryophase.io.star import ParticleImages
from cryophase.relion_external import main as relion_external


def run_external(project: Path, *args: str) -> subprocess.CompletedProcess:
    """The executable as RELION's pipeliner starts it: its own process, in the project folder."""
    return subprocess.run([sys.executable, "-m", "cryophase.relion_external", *map(str, args)], cwd=project,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def check_job_outputs(project: Path, job: str, source_star: Path, stack: Path | None = None) -> None:
    """particles.star points into the job's phases.mrcs, in order, with the input's metadata; nodes listed."""
    job_dir = project / job
    assert (job_dir / "RELION_JOB_EXIT_SUCCESS").exists() and not (job_dir / "RELION_JOB_EXIT_FAILURE").exists()
    nodes = starfile.read(job_dir / "RELION_OUTPUT_NODES.star", always_dict=True)["output_nodes"]
    assert list(nodes["rlnPipeLineNodeName"]) == [f"{job}/particles.star"]
    assert list(nodes["rlnPipeLineNodeTypeLabel"]) == ["ParticleGroupMetadata.star.relion"]
    source = read_particle_table(source_star, stack=stack)
    out = read_particle_table(job_dir / "particles.star", project_root=project)
    assert list(out.particles["rlnImageName"])[:2] == [f"000001@{job}/phases.mrcs", f"000002@{job}/phases.mrcs"]
    np.testing.assert_allclose(out.particles["rlnDefocusU"], source.particles["rlnDefocusU"], rtol=1e-6)
    with ParticleImages(out) as phases, ParticleImages(source) as images:
        assert len(phases) == len(images) and phases.image_shape == images.image_shape
        data = phases.read(slice(None))
    assert bool(data.isfinite().all()) and float(data.std()) > 0


def test_simulated_stack_as_a_relion_job(counts_star, monkeypatch):
    project = counts_star.parent
    result = run_external(project, "--in_parts", counts_star.name, "--o", "External/job005/", "--j", "1",
                          "--method", "wiener", "--batch_size", "16", "--method_options", "ssnr=2")
    assert result.returncode == 0, result.stderr
    assert "retrieved 40 particles" in result.stdout and "detected electron counts" in result.stdout
    check_job_outputs(project, "External/job005", counts_star)
    # Running the job again (RELION's re-run) replaces the finished results.
    monkeypatch.chdir(project)
    assert relion_external(["--in_parts", counts_star.name, "--o", "External/job005/", "--method", "wiener"]) == 0
    check_job_outputs(project, "External/job005", counts_star)


def test_real_normalised_stack_as_a_relion_job(shared_data, tmp_path):
    source = shared_data / "real_particles" / "relion31" / "relion31.star"
    code = relion_external(["--in_parts", str(source), "--o", str(tmp_path / "External" / "job001"),
                            "--method", "wiener", "--dose", "30"])
    assert code == 0
    job_dir = tmp_path / "External" / "job001"
    assert (job_dir / "RELION_JOB_EXIT_SUCCESS").exists()
    with mrcfile.open(job_dir / "phases.mrcs", permissive=True) as mrc:
        assert mrc.data.shape == (5, 256, 256) and float(mrc.voxel_size.x) == pytest.approx(2.806, rel=1e-4)
    out = read_particle_table(job_dir / "particles.star")
    assert out.optics is not None and len(out) == 5


def test_missing_input_fails_with_the_failure_marker(tmp_path, capsys):
    code = relion_external(["--in_parts", str(tmp_path / "nope.star"), "--o", str(tmp_path / "job"),
                            "--method", "wiener"])
    assert code == 1
    assert (tmp_path / "job" / "RELION_JOB_EXIT_FAILURE").exists()
    assert not (tmp_path / "job" / "RELION_JOB_EXIT_SUCCESS").exists()
    assert "nope.star: no such file" in capsys.readouterr().err


def test_normalised_stack_without_dose_and_bad_arguments_fail_clearly(shared_data, tmp_path, capsys):
    source = shared_data / "real_particles" / "relion31" / "relion31.star"
    assert relion_external(["--in_parts", str(source), "--o", str(tmp_path / "a"), "--method", "wiener"]) == 1
    assert (tmp_path / "a" / "RELION_JOB_EXIT_FAILURE").exists() and "--dose" in capsys.readouterr().err
    # A missing --method: argparse's message, and still a FAILURE marker for RELION.
    assert relion_external(["--in_parts", str(source), "--o", str(tmp_path / "b")]) == 2
    assert (tmp_path / "b" / "RELION_JOB_EXIT_FAILURE").exists() and "--method" in capsys.readouterr().err


def test_abort_from_the_gui_leaves_a_resumable_job(counts_star, tmp_path, monkeypatch):
    import cryophase.relion_external as external

    job = tmp_path / "job"
    args = ["--in_parts", str(counts_star), "--o", str(job), "--method", "wiener", "--batch_size", "8",
            "--chunk_size", "8", "--device", "cpu"]
    original = external.retrieve_stack

    def abort_after_first_chunk(*a, progress, **k):
        def press_abort(done, total):  # RELION's Abort button creates RELION_JOB_ABORT_NOW in the job folder
            if done > 8:
                (job / "RELION_JOB_ABORT_NOW").touch()
            progress(done, total)
        return original(*a, progress=press_abort, **k)

    monkeypatch.setattr(external, "retrieve_stack", abort_after_first_chunk)
    assert relion_external(args) == 1
    assert (job / "RELION_JOB_EXIT_ABORTED").exists() and not (job / "RELION_JOB_ABORT_NOW").exists()
    monkeypatch.setattr(external, "retrieve_stack", original)
    assert relion_external(args) == 0  # running the job again continues where it stopped
    assert (job / "RELION_JOB_EXIT_SUCCESS").exists() and not (job / "RELION_JOB_EXIT_ABORTED").exists()
    notes = json.loads((job / "retrieve.json").read_text())["notes"]
    assert "resumed: 8 of 40 particles were already done" in notes
