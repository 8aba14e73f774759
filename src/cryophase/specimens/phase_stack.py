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
