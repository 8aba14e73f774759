"""Phase images brought by the user: an MRC stack of phi (radians), resampled to the simulation's pixel grid."""

from __future__ import annotations

from pathlib import Path

import torch

from cryophase.errors import CryophaseError
from cryophase.io.mrc import MrcStack
from cryophase.specimens.maps import fourier_resample_2d


def read_phase_stack(
    path: str | Path,
    image_shape: tuple[int, int],
    pixel_size_angstrom: float,
    *,
    source_pixel_size_angstrom: float | None = None,
) -> torch.Tensor:
    """Read a stack of phase images (radians) and resample it to ``pixel_size_angstrom`` and ``image_shape``.

    The images are Fourier-resampled (exact for any pixel-size ratio, band-limited at the coarser Nyquist
    frequency, see :func:`~cryophase.specimens.maps.fourier_resample_2d`) and centre-cropped or zero-padded.

    Parameters
    ----------
    path : str or Path
        MRC stack (N, h, w) of phase in radians, centre at pixel (h // 2, w // 2).
    image_shape : (H, W)
    pixel_size_angstrom : float
        Output pixel size.
    source_pixel_size_angstrom : float, optional
        Overrides the header; required when the header says 0.

    Returns
    -------
    torch.Tensor, (N, H, W) float32
    """
    with MrcStack(path, allow_volume=True) as stack:
        phase = stack.read(slice(None)).to(torch.float64)
        header_pixel = stack.pixel_size_angstrom
    source = source_pixel_size_angstrom if source_pixel_size_angstrom is not None else header_pixel
    if source is None or not source > 0:
        raise CryophaseError(f"{path}: the header's pixel size is 0; give source_pixel_size_angstrom")
    if not pixel_size_angstrom > 0:
        raise CryophaseError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    resampled = fourier_resample_2d(phase, source, pixel_size_angstrom, image_shape)
    return resampled.to(torch.float32)


#: Voltage at which user phase images are taken to be defined: phi = sigma_e(300 kV) * V_z.
PHASE_STACK_REFERENCE_VOLTAGE_KV = 300.0
PHASE_STACK_SUFFIXES = (".mrcs",)


class PhaseImageSpecimen:
    """One phase image brought by the user, usable wherever a :class:`~cryophase.specimens.base.Specimen` is.

    The image is phi = sigma_e(300 kV) * V_z in radians, relative to the solvent (so the excluded thickness is
    zero); simulating at another voltage scales it by sigma_e(V) / sigma_e(300 kV), as the physics does. A 2D image
    has no 3D orientation: ``rotations`` are ignored, in-plane ``shifts_angstrom`` and the B-factor are applied
    by exact Fourier resampling onto the output grid.
    """

    def __init__(self, image_rad: torch.Tensor, pixel_size_angstrom: float, name: str):
        if image_rad.ndim != 2:
            raise CryophaseError(f"{name}: a phase image must be 2D, got shape {tuple(image_rad.shape)}")
        if not torch.isfinite(image_rad).all():
            raise CryophaseError(f"{name}: the phase image holds NaN or Inf")
        self.image_rad = image_rad.to(torch.float64)
        self.pixel_size_angstrom = float(pixel_size_angstrom)
        self.name = name

    def project(self, rotations: torch.Tensor, shifts_angstrom: torch.Tensor, image_shape: tuple[int, int],
                pixel_size_angstrom: float, *, b_factor_a2: float | torch.Tensor = 0.0):
        """The image at each shift, as potential (V*A) so that sigma_e(300 kV) * potential is the given phase."""
        from cryophase.conventions import interaction_constant_rad_per_volt_angstrom
        from cryophase.specimens.base import Projection

        n = rotations.shape[0]
        dtype, device = rotations.dtype, rotations.device
        images = self.image_rad.to(device).expand(n, *self.image_rad.shape)
        phase = fourier_resample_2d(images, self.pixel_size_angstrom, float(pixel_size_angstrom), image_shape,
                                    shifts_angstrom.to(torch.float64), b_factor_a2=b_factor_a2)
        sigma = float(interaction_constant_rad_per_volt_angstrom(PHASE_STACK_REFERENCE_VOLTAGE_KV))
        potential = (phase / sigma).to(dtype)
        return Projection(potential_volt_angstrom=potential, excluded_thickness_angstrom=torch.zeros_like(potential))


def phase_stack_specimens(path: str | Path, *, source_pixel_size_angstrom: float | None = None
                          ) -> list[PhaseImageSpecimen]:
    """Every image of an MRC phase stack (radians at 300 kV, pixel size from the header) as a specimen."""
    with MrcStack(path, allow_volume=True) as stack:
        images = stack.read(slice(None))
        header_pixel = stack.pixel_size_angstrom
    pixel = source_pixel_size_angstrom if source_pixel_size_angstrom is not None else header_pixel
    if pixel is None or not pixel > 0:
        raise CryophaseError(f"{path}: the header's pixel size is 0; a phase stack needs its pixel size")
    return [PhaseImageSpecimen(img, pixel, f"{Path(path).name}#{i + 1}") for i, img in enumerate(images)]
