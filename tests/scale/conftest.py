"""A small simulated counts stack (STAR + MRC) for the resume, torchrun and RELION-wrapper tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cryophase.io.mrc import write_stack
from cryophase.io.star import optics_table, write_star
from cryophase.physics import ImagingPhysics, Optics, sample_counts

N_PARTICLES, BOX, PIXEL_A, DOSE = 40, 32, 2.0, 100.0


def blob_phases(n: int, box: int, generator: torch.Generator) -> torch.Tensor:
    """A few Gaussian blobs near the centre of each box, peak ~0.3 rad, (n, box, box) float64."""
    yy, xx = torch.meshgrid(torch.arange(box, dtype=torch.float64), torch.arange(box, dtype=torch.float64),
                            indexing="ij")
    centres = box / 2 + 3 * torch.randn(n, 3, 2, generator=generator, dtype=torch.float64)
    phase = torch.zeros(n, box, box, dtype=torch.float64)
    for i in range(3):
        r2 = (yy - centres[:, i, 0, None, None]) ** 2 + (xx - centres[:, i, 1, None, None]) ** 2
        phase += 0.1 * torch.exp(-r2 / (2 * 2.0**2))
    return phase


def write_counts_star(folder: Path, n: int = N_PARTICLES, seed: int = 3) -> Path:
    """Simulated electron counts of blobs as ``folder/particles.mrcs`` and a RELION 3.1 ``particles.star``."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    optics = Optics.create(defocus_u_angstrom=torch.linspace(10000, 20000, n),
                           defocus_v_angstrom=torch.linspace(9500, 19000, n),
                           defocus_angle_degrees=20.0, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.1,
                           pixel_size_angstrom=PIXEL_A, dtype=torch.float64)
    counts = sample_counts(ImagingPhysics(optics, DOSE).expected_counts(blob_phases(n, BOX, generator)), generator)
    write_stack(folder / "particles.mrcs", counts.to(torch.float32), PIXEL_A)
    particles = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@particles.mrcs" for i in range(n)],
        "rlnDefocusU": optics.defocus_u_angstrom.numpy(),
        "rlnDefocusV": optics.defocus_v_angstrom.numpy(),
        "rlnDefocusAngle": optics.defocus_angle_degrees.numpy(),
        "rlnOpticsGroup": np.ones(n, dtype=int),
    })
    star = folder / "particles.star"
    write_star(star, {"optics": optics_table(optics, BOX), "particles": particles})
    return star


@pytest.fixture(scope="module")
def counts_star(tmp_path_factory) -> Path:
    return write_counts_star(tmp_path_factory.mktemp("counts"))
