"""A tiny ``cryophase simulate`` run whose files are opened and checked."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
from typer.testing import CliRunner

from cryophase.cli.main import app
from cryophase.io.star import read_particles_star
from cryophase.simulation.dataset import DOSE_COLUMN, ICE_THICKNESS_COLUMN


def test_simulate_cli_writes_readable_outputs(tmp_path, shared_data):
    out = tmp_path / "sim"
    structure = shared_data / "structures" / "1aki.pdb"
    args = ["simulate", str(out), "--n", "6", "--specimen", str(structure), "--seed", "3", "--dose", "20,60",
            "--box", "32", "--pixel-size", "2.5", "--detector", "k2", "--chunk-size", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with mrcfile.open(out / "particles.mrcs", permissive=True) as mrc:
        counts = np.asarray(mrc.data)
        assert float(mrc.voxel_size.x) == pytest.approx(2.5)
    with mrcfile.open(out / "phases.mrcs", permissive=True) as mrc:
        phases = np.asarray(mrc.data)
        assert float(mrc.voxel_size.x) == pytest.approx(2.5)
    assert counts.shape == phases.shape == (6, 32, 32)
    assert np.isfinite(counts).all() and np.isfinite(phases).all()
    assert phases.max() > 0.01  # lysozyme's phase relative to ice is of order 0.1 rad
    table = read_particles_star(out / "particles.star")
    for column in ("rlnImageName", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnPhaseShift",
                   "rlnOpticsGroup", DOSE_COLUMN, ICE_THICKNESS_COLUMN):
        assert column in table.particles
    for column in ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnImagePixelSize",
                   "rlnImageSize"):
        assert column in table.optics
    assert (table.optics["rlnImageSize"] == 32).all()
    dose = table.particles[DOSE_COLUMN].to_numpy()
    assert ((dose >= 20) & (dose <= 60)).all()
    # Dose is recoverable from the counts too: mean counts per pixel / pixel size^2 (no energy filter).
    np.testing.assert_allclose(counts.mean(axis=(1, 2)) / 2.5**2, dose, rtol=0.05)
    record = json.loads((out / "simulation.json").read_text())
    assert record["seed"] == 3 and record["simulation_config"]["detector"] == "k2"
    assert record["simulation_config"]["dose_range_e_per_a2"] == [20.0, 60.0]

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert CliRunner().invoke(app, args + ["--overwrite"]).exit_code == 0


def test_simulate_cli_rejects_bad_dose(tmp_path):
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "x"), "--n", "2", "--dose", "80,10"])
    assert result.exit_code == 2 and "--dose" in result.output
