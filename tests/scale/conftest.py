"""A small simulated counts stack (STAR + MRC) for the resume, torchrun and RELION-wrapper tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cryophase.physics import ImagingPhysics, Optics, sample_counts
from stacks import gaussian_blob_phases, write_particles

N_PARTICLES, BOX, PIXEL_A, DOSE = 40, 32, 2.0, 100.0


def write_counts_star(folder: Path, n: int = N_PARTICLES, seed: int = 3) -> Path:
    """Simulated electron counts of blobs as ``folder/particles.mrcs`` and a RELION 3.1 ``particles.star``."""
    generator = torch.Generator().manual_seed(seed)
    optics = Optics.create(defocus_u_angstrom=torch.linspace(10000, 20000, n),
                           defocus_v_angstrom=torch.linspace(9500, 19000, n),
                           defocus_angle_degrees=20.0, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.1,
                           pixel_size_angstrom=PIXEL_A, dtype=torch.float64)
    phase = gaussian_blob_phases(n, BOX, generator, n_blobs=3, spread_px=3, peak_rad=0.1, width_px=2.0)
    counts = sample_counts(ImagingPhysics(optics, DOSE).expected_counts(phase), generator)
    return write_particles(folder, counts, optics, "particles")


@pytest.fixture(scope="module")
def counts_star(tmp_path_factory) -> Path:
    return write_counts_star(tmp_path_factory.mktemp("counts"))
