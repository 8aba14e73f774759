"""Density maps (MRC volumes) as specimens, and exact Fourier resampling of 2D images.

A map is projected by rotating it (trilinear interpolation, ``torch.nn.functional.grid_sample``) and summing
along z: exact for the un-rotated map, integral-preserving for any rotation. The projection on the map's voxel
grid is then resampled to the output pixel grid by evaluating its band-limited Fourier interpolant at the output
pixel centres (:func:`fourier_resample_2d`): this rescales to any pixel size exactly (torch-fourier-rescale's
DFT cropping rounds the pixel size to the nearest ratio of box sizes), applies sub-pixel shifts, crops or pads,
and band-limits at the coarser of the two Nyquist frequencies in one step.

Units. A map is in arbitrary units and already relative to the solvent. With ``potential_scale=None`` (the
default) it is scaled so that the voxels inside the particle (above ``threshold``; Otsu's threshold of the
positive voxels when not given) have a mean of ``PROTEIN_MEAN_INNER_POTENTIAL_VOLT - ICE_MEAN_INNER_POTENTIAL_VOLT``
volts, i.e. the particle has the potential contrast of a protein against vitreous ice.
``PROTEIN_MEAN_INNER_POTENTIAL_VOLT`` is computed from the same isolated-atom scattering factors that
:class:`~cryophase.specimens.atoms.AtomicModel` uses, for the average amino-acid composition at 0.81 Da/A^3
(about 8 V; isolated-atom models neglect bonding, which lowers measured values by roughly 10 %), so maps and atomic
models give the same contrast. Give ``potential_scale`` (volts per map unit) to override.
``excluded_thickness_angstrom`` is zero: the map is already relative to solvent.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
import torch
import torch.nn.functional as F

from cryophase.conventions import (
    ICE_MEAN_INNER_POTENTIAL_VOLT,
    POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2,
    PROTEIN_DENSITY_DA_PER_A3,
)
from cryophase.errors import CryophaseError
from cryophase.specimens.atoms import HYDROGEN_MASS_DA
from cryophase.specimens.base import Projection
from cryophase.specimens.synthetic import AMINO_ACID_FREQUENCY, RESIDUE_FORMULA

MAP_SUFFIXES = (".mrc", ".map", ".mrc.gz", ".map.gz", ".ccp4")
#: Voxel samples per projection batch (bounds the memory of the rotated sampling grids).
SAMPLE_BUDGET = 8_000_000


def _protein_mean_inner_potential_volt() -> float:
    """Mean potential of protein from isolated-atom scattering factors (Peng 1996) at 0.81 Da/A^3."""
    total = sum(AMINO_ACID_FREQUENCY.values())
    scattering, mass = 0.0, 0.0
    for residue, frequency in AMINO_ACID_FREQUENCY.items():
        for symbol, count in RESIDUE_FORMULA[residue].items():
            element = gemmi.Element(symbol)
            scattering += frequency / total * count * sum(element.c4322.a)
            mass += frequency / total * count * (HYDROGEN_MASS_DA if symbol == "H" else element.weight)
    return POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2 * scattering / (mass / PROTEIN_DENSITY_DA_PER_A3)


#: Mean inner potential of protein with the isolated-atom model, volts (about 8 V).
PROTEIN_MEAN_INNER_POTENTIAL_VOLT = _protein_mean_inner_potential_volt()


@dataclass
class DensityMap:
    """A cubic density map in volts (relative to solvent) on a voxel grid.

    Attributes
    ----------
    name : str
    volume_volt : torch.Tensor, (D, D, D) as (z, y, x)
        Potential relative to the solvent, volts; the map's centre is voxel (D // 2, D // 2, D // 2).
    voxel_size_angstrom : float
    """

    name: str
    volume_volt: torch.Tensor
    voxel_size_angstrom: float

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        potential_scale: float | None = None,
        threshold: float | None = None,
        voxel_size_angstrom: float | None = None,
    ) -> DensityMap:
        """Read an MRC map with mrcfile.

        Parameters
        ----------
        path : str or Path
        potential_scale : float, optional
            Volts per map unit. By default the map is scaled so that the voxels above ``threshold`` average
            ``PROTEIN_MEAN_INNER_POTENTIAL_VOLT - ICE_MEAN_INNER_POTENTIAL_VOLT``.
        threshold : float, optional
            Map value that separates particle from solvent (Otsu's threshold of the positive voxels if not given).
        voxel_size_angstrom : float, optional
            Overrides the header; required when the header says 0.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such map file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with mrcfile.open(path, mode="r", permissive=True) as mrc:
                    if mrc.data is None:
                        raise ValueError("no data")
                    data = np.asarray(mrc.data, dtype=np.float64)
                    header_voxel = float(mrc.voxel_size.x)
        except Exception as exc:  # mrcfile raises ValueError / OSError with variable messages
            raise CryophaseError(f"{path}: not a readable MRC map ({exc})") from None
        if data.ndim != 3 or min(data.shape) < 2:
            raise CryophaseError(f"{path}: expected a 3D map, got an array of shape {data.shape}")
        voxel = voxel_size_angstrom if voxel_size_angstrom is not None else header_voxel
        if not voxel > 0:
            raise CryophaseError(f"{path}: the header's voxel size is 0; give voxel_size_angstrom")
        volume = _pad_to_cube(torch.from_numpy(data))
        if potential_scale is None:
            potential_scale = _auto_scale(volume, threshold, path)
        return cls(name=path.name.split(".")[0], volume_volt=volume * potential_scale, voxel_size_angstrom=voxel)

    def project(
        self,
        rotations: torch.Tensor,
        shifts_angstrom: torch.Tensor,
        image_shape: tuple[int, int],
        pixel_size_angstrom: float,
        *,
        b_factor_a2: float | torch.Tensor = 0.0,
    ) -> Projection:
        """Projected potential (V*A) at ``rotations`` (B, 3, 3) and ``shifts_angstrom`` (B, 2) as (y, x).

        Returns :class:`Projection` with (B, H, W) tensors; the excluded thickness is zero.
        """
        dtype, device = rotations.dtype, rotations.device
        n = rotations.shape[0]
        d = self.volume_volt.shape[0]
        chunk = max(1, SAMPLE_BUDGET // d**3)
        projection = torch.cat([self._project_on_voxel_grid(rotations[i:i + chunk])
                                for i in range(0, n, chunk)]) if n else torch.zeros(0, d, d, dtype=dtype)
        b_particle = torch.as_tensor(b_factor_a2, dtype=dtype, device=device).expand(n)
        images = fourier_resample_2d(projection, self.voxel_size_angstrom, pixel_size_angstrom, image_shape,
                                     shifts_angstrom.to(dtype), b_factor_a2=b_particle)
        return Projection(potential_volt_angstrom=images, excluded_thickness_angstrom=torch.zeros_like(images))


    def _project_on_voxel_grid(self, rotations: torch.Tensor) -> torch.Tensor:
        """Rotate (trilinear) and sum along z: (B, 3, 3) -> (B, D, D) in V*A on the voxel grid."""
        dtype, device = rotations.dtype, rotations.device
        volume = self.volume_volt.to(dtype=dtype, device=device)
        d = volume.shape[0]
        n = rotations.shape[0]
        index = torch.arange(d, dtype=dtype, device=device) - d // 2
        z, y, x = torch.meshgrid(index, index, index, indexing="ij")
        microscope = torch.stack([x, y, z], dim=-1).reshape(-1, 3)  # (D^3, 3) voxel units, (x, y, z)
        specimen = torch.einsum("bji,pj->bpi", rotations, microscope)  # R^T m for each particle
        normalised = (specimen + d // 2) * (2 / (d - 1)) - 1  # grid_sample with align_corners=True
        samples = F.grid_sample(volume.expand(n, 1, d, d, d), normalised.reshape(n, d, d, d, 3),
                                mode="bilinear", padding_mode="zeros", align_corners=True)
        return samples[:, 0].sum(dim=1) * self.voxel_size_angstrom


def fourier_resample_2d(
    images: torch.Tensor,
    source_pixel_size_angstrom: float,
    target_pixel_size_angstrom: float,
    target_shape: tuple[int, int],
    shifts_angstrom: torch.Tensor | None = None,
    *,
    b_factor_a2: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Evaluate the band-limited interpolant of centred images on another pixel grid.

    The images are zero-padded (so nothing wraps around), Fourier transformed, restricted to frequencies below
    the output Nyquist frequency, optionally multiplied by ``exp(-B q^2 / 4)``, and summed at the output pixel
    centres (separable matrix products, exact for any pixel-size ratio). Values are densities (they are not
    rescaled with the pixel area).

    Parameters
    ----------
    images : torch.Tensor, (B, h, w)
        Centre at pixel (h // 2, w // 2).
    source_pixel_size_angstrom, target_pixel_size_angstrom : float
    target_shape : (H, W)
    shifts_angstrom : torch.Tensor, (B, 2), optional
        (y, x) shift of the content: the source centre lands at output pixel (H // 2 + y/p, W // 2 + x/p).
    b_factor_a2 : float or torch.Tensor (B,)

    Returns
    -------
    torch.Tensor, (B, H, W)
    """
    b, h, w = images.shape
    dtype, device = images.dtype, images.device
    if shifts_angstrom is None:
        shifts_angstrom = torch.zeros(b, 2, dtype=dtype, device=device)
    out_h, out_w = target_shape
    source, target = float(source_pixel_size_angstrom), float(target_pixel_size_angstrom)
    reach = max(out_h, out_w) * target + 2 * float(shifts_angstrom.abs().max()) if b else 0.0
    n = max(2 * max(h, w), math.ceil(reach / source) + max(h, w))
    padded = torch.zeros(b, n, n, dtype=dtype, device=device)
    top, left = n // 2 - h // 2, n // 2 - w // 2
    padded[:, top:top + h, left:left + w] = images
    spectrum = torch.fft.fft2(torch.fft.ifftshift(padded, dim=(-2, -1)))  # positions relative to the centre
    freq = torch.fft.fftfreq(n, d=source, dtype=dtype, device=device)  # cycles / A
    keep = (freq.abs() < 1 / (2 * target)) & (freq.abs() < 1 / (2 * source))
    b_particle = torch.as_tensor(b_factor_a2, dtype=dtype, device=device).expand(b)
    q2 = freq[:, None] ** 2 + freq[None, :] ** 2
    spectrum = spectrum * torch.exp(-b_particle[:, None, None] * q2 / 4)
    y = (torch.arange(out_h, dtype=dtype, device=device) - out_h // 2) * target
    x = (torch.arange(out_w, dtype=dtype, device=device) - out_w // 2) * target
    y = y[None, :] - shifts_angstrom[:, 0:1]  # (B, H) position in the source frame
    x = x[None, :] - shifts_angstrom[:, 1:2]
    basis_y = torch.exp(2j * math.pi * y[:, :, None] * freq[None, None, :]) * keep / n  # (B, H, n)
    basis_x = torch.exp(2j * math.pi * x[:, :, None] * freq[None, None, :]) * keep / n  # (B, W, n)
    return (basis_y @ spectrum @ basis_x.transpose(1, 2)).real


def _pad_to_cube(volume: torch.Tensor) -> torch.Tensor:
    """Zero-pad a (z, y, x) array to a cube, keeping the centre voxel at index size // 2."""
    d = max(volume.shape)
    cube = torch.zeros(d, d, d, dtype=volume.dtype)
    starts = [d // 2 - s // 2 for s in volume.shape]
    cube[starts[0]:starts[0] + volume.shape[0], starts[1]:starts[1] + volume.shape[1],
         starts[2]:starts[2] + volume.shape[2]] = volume
    return cube


def _auto_scale(volume: torch.Tensor, threshold: float | None, path: Path) -> float:
    """Volts per map unit so that the voxels above ``threshold`` average protein minus ice potential."""
    if threshold is None:
        positive = volume[volume > 0]
        # a map with a single positive value (a mask) has nothing to split: everything positive is inside
        threshold = otsu_threshold(positive) if positive.numel() and positive.max() > positive.min() else 0.0
    inside = volume[volume > threshold]
    if inside.numel() == 0 or float(inside.mean()) <= 0:
        raise CryophaseError(f"{path}: no voxel above the threshold {threshold:g}; give threshold or "
                             "potential_scale")
    return (PROTEIN_MEAN_INNER_POTENTIAL_VOLT - ICE_MEAN_INNER_POTENTIAL_VOLT) / float(inside.mean())


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """Otsu's threshold (maximal between-class variance) of a set of values."""
    values = values.reshape(-1).to(torch.float64)
    if values.numel() == 0:
        return 0.0
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    counts = torch.histc(values, bins=bins, min=lo, max=hi)
    centres = lo + (torch.arange(bins, dtype=torch.float64) + 0.5) * (hi - lo) / bins
    weight = torch.cumsum(counts, 0)
    mean = torch.cumsum(counts * centres, 0)
    total, total_mean = weight[-1], mean[-1]
    between = (total_mean * weight / total - mean) ** 2 / (weight * (total - weight)).clamp_min(1e-12)
    return float(centres[int(torch.argmax(between[:-1]))])
