"""simulate_dataset: files, STAR contents, same seed -> same bytes for any chunk size."""

from __future__ import annotations

import json
from dataclasses import replace

import mrcfile
import numpy as np
import pytest
import torch

from cryophase.io.star import read_particles_star
from cryophase.simulation import SimulationConfig, simulate_dataset
from cryophase.simulation.dataset import BLOCK_SIZE, DOSE_COLUMN, ICE_THICKNESS_COLUMN

CONFIG = SimulationConfig(box_size=24, pixel_size_angstrom=4.0)


def test_same_seed_same_bytes_for_two_chunk_sizes(tmp_path, small_specimens):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    n = 2 * BLOCK_SIZE + 5
    simulate_dataset(a, n, small_specimens, CONFIG, seed=5, chunk_size=3, progress=False)
    simulate_dataset(b, n, small_specimens, CONFIG, seed=5, chunk_size=1000, progress=False)
    simulate_dataset(c, n, small_specimens, CONFIG, seed=6, chunk_size=1000, progress=False)
    for name in ("particles.mrcs", "phases.mrcs"):
        # Header words (bytes 0-223) and data; the text labels after them carry mrcfile's time stamp.
        first, second = (a / name).read_bytes(), (b / name).read_bytes()
        assert first[:224] == second[:224] and first[1024:] == second[1024:], name
    # The STAR writer stamps the time in a comment line; the tables must be identical.
    def tables(path):
        return [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert tables(a / "particles.star") == tables(b / "particles.star")
    assert (a / "particles.mrcs").read_bytes() != (c / "particles.mrcs").read_bytes()
    assert not list(a.glob(".*.tmp")), "temporary files left behind"


def test_dataset_files_and_star_columns(tmp_path, small_specimens):
    config = replace(CONFIG, voltage_choices_kv=(300.0,), cs_choices_mm=(2.7, 0.01),
                     amplitude_contrast_choices=(0.1,))
    simulate_dataset(tmp_path, 12, small_specimens, config, seed=1, chunk_size=5, progress=False,
                     provenance={"command_line": "test"})
    with mrcfile.open(tmp_path / "particles.mrcs", permissive=True) as mrc:
        counts = np.asarray(mrc.data)
        assert float(mrc.voxel_size.x) == pytest.approx(4.0)
    with mrcfile.open(tmp_path / "phases.mrcs", permissive=True) as mrc:
        phases = np.asarray(mrc.data)
    assert counts.shape == phases.shape == (12, 24, 24)
    assert np.isfinite(counts).all() and np.isfinite(phases).all()
    table = read_particles_star(tmp_path / "particles.star")
    assert len(table) == 12
    assert set(table.optics["rlnSphericalAberration"]) <= {2.7, 0.01}
    assert len(table.optics) == table.particles["rlnOpticsGroup"].nunique()
    for column in ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnPhaseShift", DOSE_COLUMN,
                   ICE_THICKNESS_COLUMN, "rlnAngleRot", "rlnOriginXAngst"):
        assert column in table.particles
    assert table.particles["rlnImageName"].iloc[3] == "000004@particles.mrcs"
    # The dose recorded per particle is the one simulated: without an energy filter the beam's electrons all
    # reach the detector, so the mean count per pixel is dose * pixel_size^2.
    dose = table.particles[DOSE_COLUMN].to_numpy()
    np.testing.assert_allclose(counts.mean(axis=(1, 2)) / 16.0, dose, rtol=0.05)
    optics = table.optics_for()
    assert torch.all(optics.pixel_size_angstrom == 4.0)
    record = json.loads((tmp_path / "simulation.json").read_text())
    assert record["seed"] == 1 and record["simulation_config"]["box_size"] == 24
    assert record["command_line"] == "test"
