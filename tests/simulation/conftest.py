"""A small stand-in specimen for the simulation tests: Gaussian atoms, projected analytically."""

from __future__ import annotations

import math

import pytest
import torch

from cryophase.conventions import POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2
from cryophase.specimens.base import Projection

#: Electron scattering factor f_e(0) of carbon, A (Peng et al. 1996 Acta Cryst A52:257, about 2.5 A).
CARBON_SCATTERING_FACTOR_A = 2.5
#: Solvent-excluded volume per non-hydrogen protein atom, A^3 (about 1/0.81 Da/A^3 * 14 Da).
VOLUME_PER_ATOM_A3 = 17.0


class GaussianAtoms:
    """Atoms as 3D Gaussians of width ``sigma_angstrom``; projections are sums of 2D Gaussians."""

    def __init__(self, positions_angstrom: torch.Tensor, sigma_angstrom: float = 1.5, name: str = "gaussian-atoms"):
        self.positions = positions_angstrom - positions_angstrom.mean(dim=0)
        self.sigma = sigma_angstrom
        self.name = name

    def project(self, rotations, shifts_angstrom, image_shape, pixel_size_angstrom, *, b_factor_a2=0.0):
        dtype, device = rotations.dtype, rotations.device
        pos = torch.einsum("bij,nj->bni", rotations, self.positions.to(device=device, dtype=dtype))
        h, w = image_shape
        y = (torch.arange(h, device=device, dtype=dtype) - h // 2) * pixel_size_angstrom
        x = (torch.arange(w, device=device, dtype=dtype) - w // 2) * pixel_size_angstrom
        s2 = self.sigma**2 + b_factor_a2 / (8 * math.pi**2) + pixel_size_angstrom**2 / 12
        ay = pos[..., 1] + shifts_angstrom[:, None, 0]
        ax = pos[..., 0] + shifts_angstrom[:, None, 1]
        gy = torch.exp(-((y[None, :, None] - ay[:, None, :]) ** 2) / (2 * s2))  # (B, H, N)
        gx = torch.exp(-((x[None, :, None] - ax[:, None, :]) ** 2) / (2 * s2))  # (B, W, N)
        density = torch.einsum("bhn,bwn->bhw", gy, gx) / (2 * math.pi * s2)
        potential = POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2 * CARBON_SCATTERING_FACTOR_A * density
        return Projection(potential, VOLUME_PER_ATOM_A3 * density)


def random_blob_protein(n_atoms: int, radius_angstrom: float, seed: int) -> GaussianAtoms:
    """Atoms uniformly inside a sphere (protein density ~ one atom per 17 A^3 fixes the radius for n_atoms)."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n_atoms, 3, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    radius = radius_angstrom * torch.rand(n_atoms, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    stretch = torch.tensor([1.0, 0.7, 0.5], dtype=torch.float64)  # elongated, so orientations differ
    return GaussianAtoms(direction * radius * stretch, name=f"blob{seed}")


@pytest.fixture(scope="session")
def small_specimens():
    return [random_blob_protein(300, 45.0, seed=1), random_blob_protein(200, 35.0, seed=2)]
