"""Small deterministic phase objects and optics for the retrieval tests (no simulator needed)."""

from __future__ import annotations

import torch

from cryophase.physics import ImagingPhysics, Optics

IMAGE_SIZE = 64
PIXEL_SIZE_ANGSTROM = 3.0
DEFOCUS_ANGSTROM = 20000.0
#: A disc that contains every blob of :func:`gaussian_blobs` (centres within 0.15 * 64 px, sigma <= 4 px).
SUPPORT_DIAMETER_ANGSTROM = 150.0


def gaussian_blobs(batch: int, *, seed: int = 0, n_blobs: int = 4, dtype=torch.float64) -> torch.Tensor:
    """A few Gaussian blobs of 0.1-0.5 rad and 2-4 px sigma near the centre, (B, 64, 64) radians."""
    gen = torch.Generator().manual_seed(seed)
    n = IMAGE_SIZE
    y, x = torch.meshgrid(torch.arange(n, dtype=dtype) - n // 2, torch.arange(n, dtype=dtype) - n // 2,
                          indexing="ij")
    centres = (torch.rand(batch, n_blobs, 2, generator=gen, dtype=dtype) - 0.5) * 0.3 * n
    heights = 0.1 + 0.4 * torch.rand(batch, n_blobs, generator=gen, dtype=dtype)
    sigmas = 2.0 + 2.0 * torch.rand(batch, n_blobs, generator=gen, dtype=dtype)
    r2 = (y - centres[..., 0, None, None]) ** 2 + (x - centres[..., 1, None, None]) ** 2
    return (heights[..., None, None] * torch.exp(-r2 / (2 * sigmas[..., None, None] ** 2))).sum(dim=1)


def make_physics(batch: int, *, defocus_angstrom=DEFOCUS_ANGSTROM, dose_e_per_a2=1e4,
                 dtype=torch.float64, **optics) -> ImagingPhysics:
    """Physics for ``batch`` images at 300 kV, 3 A/px; defocus and dose may be per image."""
    return ImagingPhysics(
        Optics.create(defocus_u_angstrom=defocus_angstrom, pixel_size_angstrom=PIXEL_SIZE_ANGSTROM,
                      batch_size=batch, dtype=dtype, **optics),
        torch.as_tensor(dose_e_per_a2, dtype=dtype),
    )


def ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Normalised cross-correlation after removing each image's mean, (B,)."""
    a = a - a.mean(dim=(-2, -1), keepdim=True)
    b = b - b.mean(dim=(-2, -1), keepdim=True)
    return (a * b).sum(dim=(-2, -1)) / torch.sqrt((a * a).sum(dim=(-2, -1)) * (b * b).sum(dim=(-2, -1)))
