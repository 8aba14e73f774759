"""What surrounds an extracted particle: neighbouring particles and ice contamination near the box edge.

Particles are picked from crowded micrographs, so the box often holds parts of other particles and, less often,
the edge of a contaminating ice crystal (Bepler et al. 2019 Nat Methods 16:1153 on crowded and contaminated
micrographs). Both are nuisances: they enter the measurement but never the truth. The random choices (which
particles have them, where, which orientation) are made by the caller with its generator; these functions
only draw the resulting phase.

A neighbour is the particle's own projection in another view, one of the 8 in-plane rotations by multiples of
90 degrees with or without a mirror: each is the projection of the same specimen rotated about the beam axis
or by 180 degrees about an in-plane axis (a mirror y -> -y of a projection is the projection after a 180 degree
rotation about x), so neighbours cost no extra projection.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cryophase.conventions import ICE_MEAN_INNER_POTENTIAL_VOLT, interaction_constant_rad_per_volt_angstrom
from cryophase.specimens.base import Specimen
from cryophase.specimens.ice import particle_phase


def project_phase(
    specimens: Sequence[Specimen],
    specimen_index: torch.Tensor,
    rotations: torch.Tensor,
    shifts_angstrom: torch.Tensor,
    voltage_kv: torch.Tensor,
    image_shape: tuple[int, int],
    pixel_size_angstrom: float,
    *,
    in_ice: bool,
    b_factor_a2: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase of particles drawn from several specimens, one projection call per specimen.

    Parameters
    ----------
    specimens : the specimens
    specimen_index : torch.Tensor, (B,), int, which specimen each particle is
    rotations : torch.Tensor, (B, 3, 3)
    shifts_angstrom : torch.Tensor, (B, 2), (y, x)
    voltage_kv : torch.Tensor, (B,)
    image_shape : (H, W)
    in_ice : phase relative to the displaced ice (:func:`cryophase.specimens.ice.particle_phase`)

    Returns
    -------
    phase : torch.Tensor, (B, H, W), radians
    excluded_thickness_angstrom : torch.Tensor, (B, H, W)
    """
    b = rotations.shape[0]
    phase = rotations.new_zeros((b, *image_shape))
    excluded = rotations.new_zeros((b, *image_shape))
    for s in torch.unique(specimen_index).tolist():
        rows = torch.nonzero(specimen_index == s).flatten()
        projection = specimens[s].project(rotations[rows], shifts_angstrom[rows], image_shape,
                                          float(pixel_size_angstrom), b_factor_a2=b_factor_a2)
        projection = type(projection)(projection.potential_volt_angstrom.to(phase),
                                      projection.excluded_thickness_angstrom.to(phase))
        phase[rows] = particle_phase(projection, voltage_kv[rows], in_ice=in_ice)
        excluded[rows] = projection.excluded_thickness_angstrom
    return phase, excluded


def centred_flip(images: torch.Tensor, dim: int) -> torch.Tensor:
    """Mirror about the FFT centre (index N // 2 stays put): ``out[i] = in[(2 (N // 2) - i) mod N]``."""
    out = torch.flip(images, dims=(dim,))
    return torch.roll(out, 1, dims=dim) if images.shape[dim] % 2 == 0 else out


def dihedral_variant(images: torch.Tensor, variant: int) -> torch.Tensor:
    """One of the 8 symmetries of the square about its FFT centre: ``variant % 4`` quarter turns, then a
    y-mirror if ``variant >= 4``.

    Parameters
    ----------
    images : torch.Tensor, (..., N, N), square
    variant : int in 0..7
    """
    out = images
    for _ in range(variant % 4):
        out = centred_flip(out.transpose(-2, -1), -2)
    return centred_flip(out, -2) if variant >= 4 else out


def shift_with_zero_fill(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate an (H, W) image by whole pixels, filling with zeros (no wrap-around)."""
    h, w = image.shape[-2:]
    out = torch.zeros_like(image)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0),
                                                                   max(-dx, 0):w - max(dx, 0)]
    return out


def neighbour_phase(particle: torch.Tensor, present: torch.Tensor, variants: torch.Tensor,
                    offsets_pixels: torch.Tensor) -> torch.Tensor:
    """Phase of the neighbours: each present slot adds a view of the particle moved by its offset.

    Parameters
    ----------
    particle : torch.Tensor, (B, N, N), the particle's phase (square, centred)
    present : torch.Tensor, (B, S), bool
    variants : torch.Tensor, (B, S), int in 0..7 (:func:`dihedral_variant`)
    offsets_pixels : torch.Tensor, (B, S, 2), int, (y, x)

    Returns
    -------
    torch.Tensor, (B, N, N), zero-filled beyond the neighbour's shifted support
    """
    out = torch.zeros_like(particle)
    for row, slot in torch.nonzero(present).tolist():
        view = dihedral_variant(particle[row], int(variants[row, slot]))
        dy, dx = (int(v) for v in offsets_pixels[row, slot])
        out[row] += shift_with_zero_fill(view, dy, dx)
    return out


def contamination_phase(
    present: torch.Tensor,
    centres_angstrom: torch.Tensor,
    radii_angstrom: torch.Tensor,
    voltage_kv: torch.Tensor,
    image_shape: tuple[int, int],
    pixel_size_angstrom: float,
) -> torch.Tensor:
    """Phase of a spherical ice-contamination blob (crystalline ice, 4.5 V mean inner potential).

    The blob adds ice on top of the film: phase = sigma_e V_ice 2 sqrt(R^2 - r^2) inside its outline.

    Parameters
    ----------
    present : torch.Tensor, (B,), bool, which images have a blob
    centres_angstrom : torch.Tensor, (B, 2), (y, x) from the image centre
    radii_angstrom : torch.Tensor, (B,)
    voltage_kv : torch.Tensor, (B,)
    image_shape : (H, W)

    Returns
    -------
    torch.Tensor, (B, H, W), radians (zero where ``present`` is False)
    """
    h, w = image_shape
    dtype, device = centres_angstrom.dtype, centres_angstrom.device
    y = (torch.arange(h, device=device, dtype=dtype) - h // 2) * pixel_size_angstrom
    x = (torch.arange(w, device=device, dtype=dtype) - w // 2) * pixel_size_angstrom
    dy = y[None, :, None] - centres_angstrom[:, 0, None, None]
    dx = x[None, None, :] - centres_angstrom[:, 1, None, None]
    r2 = radii_angstrom[:, None, None] ** 2 - dy**2 - dx**2
    thickness = 2 * torch.sqrt(r2.clamp_min(0))
    sigma = interaction_constant_rad_per_volt_angstrom(voltage_kv.to(torch.float64)).to(dtype)
    phase = sigma[:, None, None] * ICE_MEAN_INNER_POTENTIAL_VOLT * thickness
    return phase * present.to(dtype)[:, None, None]


def edge_offsets_angstrom(angle_fraction: torch.Tensor, radius_fraction: torch.Tensor, box_size: int,
                          pixel_size_angstrom: float, radius_range_boxes: tuple[float, float]) -> torch.Tensor:
    """Centres near the box edge from uniform draws: angle ``2 pi u``, distance in ``radius_range_boxes``.

    Parameters
    ----------
    angle_fraction, radius_fraction : torch.Tensor, (B,), uniform in [0, 1)
    box_size : the extracted box, pixels
    radius_range_boxes : (min, max) distance from the centre in units of the box size (0.5 = the edge)

    Returns
    -------
    torch.Tensor, (B, 2), (y, x) in Angstrom
    """
    lo, hi = radius_range_boxes
    distance = (lo + (hi - lo) * radius_fraction) * box_size * pixel_size_angstrom
    angle = 2 * torch.pi * angle_fraction
    return torch.stack([distance * torch.sin(angle), distance * torch.cos(angle)], dim=-1)
