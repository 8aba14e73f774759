"""A batch's measurement moved onto a learned model's grid (its box and pixel size).

The learned reconstructors (``ldm``, ``pixel-diffusion``, ``regression``) were trained on counts at one box and
pixel size. :func:`counts_on_model_grid` Fourier-rescales the relative intensity (counts over the counts per
pixel) to the model's pixel size, centre-crops or pads it to the model's box (padding is empty ice: relative
intensity 1), and scales it back to counts at the model's pixel size, so the conditioning method, the networks
and the guidance all see the measurement as it was seen in training.
"""

from __future__ import annotations

import torch

from cryophase.models.bundle import ModelGrid
from cryophase.models.grid import to_model_grid
from cryophase.physics.forward import ImagingPhysics, dose_from_counts


def uniform_pixel_groups(physics: ImagingPhysics) -> dict[float, torch.Tensor]:
    """Image indices grouped by pixel size (models work on one grid at a time)."""
    sizes = physics.optics.pixel_size_angstrom
    return {float(p): torch.nonzero(sizes == p).reshape(-1) for p in torch.unique(sizes)}


def model_grid_physics(physics: ImagingPhysics, pixel_size_angstrom: float) -> ImagingPhysics:
    """The same optics and dose on the model's pixel size."""
    optics = physics.optics.replace(pixel_size_angstrom=torch.full_like(physics.optics.pixel_size_angstrom,
                                                                        pixel_size_angstrom))
    return ImagingPhysics(optics, physics.dose_e_per_a2)


def counts_on_model_grid(counts: torch.Tensor, physics: ImagingPhysics,
                         grid: ModelGrid) -> tuple[torch.Tensor, ImagingPhysics]:
    """Counts ``(B, H, W)`` of images that share one pixel size -> counts ``(B, n, n)`` float32 and the physics on
    the model's grid (``n = grid.image_size`` at ``grid.pixel_size_angstrom``).

    Mean counts per pixel scale with the pixel area, so the dose per A^2 is unchanged.
    """
    pixel = physics.optics.pixel_size_angstrom
    if not bool((pixel == pixel[0]).all()):
        raise ValueError("counts_on_model_grid needs images of one pixel size; group them with uniform_pixel_groups")
    model_physics = model_grid_physics(physics, grid.pixel_size_angstrom)
    relative = counts.float() / physics.counts_per_pixel.to(counts.device).float()[:, None, None]
    relative = to_model_grid(relative, float(pixel[0]), grid.pixel_size_angstrom, grid.image_size, fill=1.0)
    return relative * model_physics.counts_per_pixel.to(relative)[:, None, None], model_physics


def model_grid_notes(image_shape: tuple[int, int], pixel_size_angstrom: float, grid: ModelGrid) -> list[str]:
    """What a user should know when their particles do not fit a model's grid: a box wider than the model's field
    of view is cut to its centre, and a pixel finer than the model's loses everything beyond the model's Nyquist."""
    notes = []
    box_angstrom = max(image_shape) * pixel_size_angstrom
    view_angstrom = grid.image_size * grid.pixel_size_angstrom
    where = f"the model's grid is {grid.image_size} px at {grid.pixel_size_angstrom:g} A/px"
    if box_angstrom > 1.05 * view_angstrom:
        notes.append(f"the particle box is {box_angstrom:.0f} A wide but the model sees only its central "
                     f"{view_angstrom:.0f} A ({where}); the phase outside that square is zero, and a particle "
                     f"wider than {view_angstrom:.0f} A is cut")
    if pixel_size_angstrom < 0.95 * grid.pixel_size_angstrom:
        notes.append(f"the particles' pixel is {pixel_size_angstrom:g} A but {where}: nothing finer than "
                     f"{2 * grid.pixel_size_angstrom:g} A (its Nyquist) is retrieved")
    return notes


def with_measured_dose(counts: torch.Tensor, physics: ImagingPhysics) -> ImagingPhysics:
    """The same physics with each image's dose measured from its counts ``(B, H, W)``
    (:func:`~cryophase.physics.forward.dose_from_counts`); images without counts keep the stated dose.

    The learned reconstructors use it, so a wrong dose in the metadata does not reach them: stating twice the true
    dose made ``ml`` explain the missing electrons with a 3 rad absorbing offset, which the networks never saw.
    """
    stated = physics.dose_e_per_a2
    measured = dose_from_counts(counts.double(), physics.optics.pixel_size_angstrom.to(counts.device))
    measured = measured.to(device=stated.device, dtype=stated.dtype)
    return ImagingPhysics(physics.optics, torch.where(measured > 0, measured, stated))
