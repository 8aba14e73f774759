"""Small particle stacks for the CLI and scale tests: Gaussian-blob phases and RELION 3.1 STAR + MRC writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryophase.io.mrc import write_stack
from cryophase.io.star import optics_table, write_star
from cryophase.physics import Optics


def gaussian_blob_phases(n: int, box: int, generator: torch.Generator, *, n_blobs: int, spread_px: float,
                         peak_rad: float, width_px: float) -> torch.Tensor:
    """Sums of ``n_blobs`` Gaussian blobs (sd ``width_px``, peak ``peak_rad`` each) placed around the box centre
    with sd ``spread_px``, ``(n, box, box)`` float64 radians."""
    yy, xx = torch.meshgrid(torch.arange(box, dtype=torch.float64), torch.arange(box, dtype=torch.float64),
                            indexing="ij")
    centres = box / 2 + spread_px * torch.randn(n, n_blobs, 2, generator=generator, dtype=torch.float64)
    phase = torch.zeros(n, box, box, dtype=torch.float64)
    for i in range(n_blobs):
        r2 = (yy - centres[:, i, 0, None, None]) ** 2 + (xx - centres[:, i, 1, None, None]) ** 2
        phase += peak_rad * torch.exp(-r2 / (2 * width_px**2))
    return phase


def write_particles(folder: Path, images: torch.Tensor, optics: Optics, name: str, *, dtype=np.float32,
                    extra_columns: dict | None = None) -> Path:
    """Write ``images`` as ``folder/name.mrcs`` and a RELION 3.1 ``folder/name.star`` naming them (one optics
    group, per-particle defocus from ``optics``, plus ``extra_columns``); return the STAR path."""
    folder.mkdir(parents=True, exist_ok=True)
    pixel = float(optics.pixel_size_angstrom[0])
    write_stack(folder / f"{name}.mrcs", images.to(torch.float32), pixel, dtype=dtype)
    n = images.shape[0]
    particles = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@{name}.mrcs" for i in range(n)],
        "rlnDefocusU": optics.defocus_u_angstrom.numpy(),
        "rlnDefocusV": optics.defocus_v_angstrom.numpy(),
        "rlnDefocusAngle": optics.defocus_angle_degrees.numpy(),
        "rlnOpticsGroup": np.ones(n, dtype=int),
        **(extra_columns or {}),
    })
    star = folder / f"{name}.star"
    write_star(star, {"optics": optics_table(optics, images.shape[-1]), "particles": particles})
    return star
