"""Physical constants, units and the RELION conventions, defined once.

Every other module takes its constants and sign conventions from here.

Conventions (RELION's, see Scheres 2012 and the RELION 3.1 STAR documentation):

* Defocus is in Angstrom; **positive means underfocus**.
* ``defocus_u_angstrom`` and ``defocus_v_angstrom`` are the defocus along the two principal axes of
  astigmatism; ``defocus_angle_degrees`` is the angle of the U axis, in degrees, measured
  counter-clockwise from the image x axis (columns).
* Spherical aberration ``cs_mm`` in millimetre, acceleration ``voltage_kv`` in kilovolt.
* Phase is in radians; phase-plate shift in degrees (``rlnPhaseShift``).
* Images are tensors of shape ``(batch, height, width)`` = ``(B, y, x)``.
* Raw micrographs show protein **dark** (fewer electrons where the projected potential is high).
* RELION-extracted particles are normalised to zero mean and unit standard deviation of the background and
  are usually contrast-inverted (protein white).
"""

from __future__ import annotations

import math

import torch

# CODATA 2018 values, SI units.
PLANCK_J_S = 6.62607015e-34
ELECTRON_MASS_KG = 9.1093837015e-31
ELEMENTARY_CHARGE_C = 1.602176634e-19
SPEED_OF_LIGHT_M_S = 299792458.0

#: h^2 / (2 pi m0 e) in V*Angstrom^2: converts an electron scattering factor f_e (Angstrom) into the
#: integral over the plane of the projected Coulomb potential (V*Angstrom^2). Kirkland (2020), eq. 5.15.
POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2 = (
    PLANCK_J_S**2 / (2 * math.pi * ELECTRON_MASS_KG * ELEMENTARY_CHARGE_C) * 1e20
)

#: Mean inner potential of vitreous ice, in volts (about 4.5 V; Yesibolati et al. 2020 measure 3.5-4.5 V).
ICE_MEAN_INNER_POTENTIAL_VOLT = 4.5
#: Density of vitreous (low-density amorphous) ice, g/cm^3.
ICE_DENSITY_G_PER_CM3 = 0.94
#: Packing density of protein, Dalton per cubic Angstrom (Fischer et al. 2004, ~1.35 g/cm^3).
PROTEIN_DENSITY_DA_PER_A3 = 0.81


def electron_wavelength_angstrom(voltage_kv: float | torch.Tensor) -> torch.Tensor:
    """Relativistic electron wavelength.

    lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2)))  (Kirkland 2020, eq. 2.5).

    Parameters
    ----------
    voltage_kv : float or torch.Tensor, any shape
        Acceleration voltage in kV.

    Returns
    -------
    torch.Tensor, same shape as ``voltage_kv``
        Wavelength in Angstrom (0.02508 A at 200 kV, 0.01969 A at 300 kV).
    """
    volts = torch.as_tensor(voltage_kv, dtype=torch.float64) * 1e3
    e_v = ELEMENTARY_CHARGE_C * volts
    momentum = torch.sqrt(2 * ELECTRON_MASS_KG * e_v * (1 + e_v / (2 * ELECTRON_MASS_KG * SPEED_OF_LIGHT_M_S**2)))
    out = PLANCK_J_S / momentum * 1e10
    if isinstance(voltage_kv, torch.Tensor):
        return out.to(dtype=voltage_kv.dtype if voltage_kv.is_floating_point() else torch.float64,
                      device=voltage_kv.device)
    return out


def interaction_constant_rad_per_volt_angstrom(voltage_kv: float | torch.Tensor) -> torch.Tensor:
    """Relativistic interaction constant sigma_e.

    sigma_e = 2 pi m e lambda / h^2 with the relativistic mass m = gamma m0 (Kirkland 2020, eq. 5.6).
    The phase of the exit wave is ``phi = sigma_e * V_z`` with ``V_z`` the projected potential in V*Angstrom.

    Parameters
    ----------
    voltage_kv : float or torch.Tensor, any shape
        Acceleration voltage in kV.

    Returns
    -------
    torch.Tensor, same shape as ``voltage_kv``
        sigma_e in rad / (V * Angstrom) (7.288e-4 at 200 kV, 6.526e-4 at 300 kV).
    """
    volts = torch.as_tensor(voltage_kv, dtype=torch.float64) * 1e3
    wavelength_m = electron_wavelength_angstrom(volts / 1e3).to(torch.float64) * 1e-10
    gamma = 1 + ELEMENTARY_CHARGE_C * volts / (ELECTRON_MASS_KG * SPEED_OF_LIGHT_M_S**2)
    sigma_si = 2 * math.pi * gamma * ELECTRON_MASS_KG * ELEMENTARY_CHARGE_C * wavelength_m / PLANCK_J_S**2
    out = sigma_si * 1e-10  # rad/(V*m) -> rad/(V*Angstrom)
    if isinstance(voltage_kv, torch.Tensor):
        return out.to(dtype=voltage_kv.dtype if voltage_kv.is_floating_point() else torch.float64,
                      device=voltage_kv.device)
    return out


def amplitude_contrast_to_absorption_ratio(amplitude_contrast: float | torch.Tensor) -> torch.Tensor:
    """Ratio alpha of absorption to phase in the exit wave ``exp((i - alpha) * phi)``.

    alpha = A / sqrt(1 - A^2) for the amplitude-contrast fraction A (RELION's rlnAmplitudeContrast), so that
    in the weak-phase limit the contrast is proportional to sqrt(1-A^2) sin(chi) + A cos(chi).
    """
    a = torch.as_tensor(amplitude_contrast)
    return a / torch.sqrt(1 - a**2)


def dose_to_counts_per_pixel(dose_e_per_a2: float | torch.Tensor, pixel_size_angstrom: float | torch.Tensor) -> torch.Tensor:
    """Mean electrons per pixel for a uniform beam: ``dose * pixel_size**2``."""
    return torch.as_tensor(dose_e_per_a2) * torch.as_tensor(pixel_size_angstrom) ** 2


# Plausibility bounds used to catch unit mistakes in user metadata.
MAX_PLAUSIBLE_DEFOCUS_ANGSTROM = 2.0e5  # 20 um
MIN_PLAUSIBLE_DEFOCUS_ANGSTROM_FOR_UNIT_CHECK = 100.0  # |defocus| below this looks like micrometres


def looks_like_micrometres(defocus: torch.Tensor) -> bool:
    """True if a defocus tensor that should be in Angstrom looks as if it were given in micrometres.

    Real underfocus is 2,000 to 50,000 A; values between 0.05 and 100 with none above 100 are almost certainly
    micrometres.
    """
    d = torch.as_tensor(defocus).abs()
    if d.numel() == 0:
        return False
    return bool((d.max() < MIN_PLAUSIBLE_DEFOCUS_ANGSTROM_FOR_UNIT_CHECK) & (d.max() > 0.05))


def counts_from_relion_normalised(
    normalised: torch.Tensor,
    counts_per_pixel: torch.Tensor | float,
    *,
    inverted: bool = True,
) -> torch.Tensor:
    """Map RELION-normalised particles back to pseudo electron counts.

    RELION's extraction subtracts the background mean and divides by the background standard deviation, and
    ``--invert_contrast`` flips the sign so protein is white. For shot-noise-limited data of ``N`` electrons per
    pixel, the raw image has mean ``N`` and background standard deviation ``sqrt(N)``, so the counts are
    ``N + sqrt(N) * (-x if inverted else x)``.

    Parameters
    ----------
    normalised : torch.Tensor, (B, H, W)
        RELION-normalised images.
    counts_per_pixel : float or torch.Tensor, () or (B,)
        Mean electrons per pixel, ``dose_e_per_a2 * pixel_size_angstrom**2``.
    inverted : bool
        Whether the particles were contrast-inverted at extraction (protein white).

    Returns
    -------
    torch.Tensor, (B, H, W)
        Pseudo-counts with the raw-micrograph convention (protein dark).
    """
    n = torch.as_tensor(counts_per_pixel, dtype=normalised.dtype, device=normalised.device)
    if n.ndim == 1:
        n = n[:, None, None]
    sign = -1.0 if inverted else 1.0
    return n + torch.sqrt(n) * sign * normalised


def relion_normalise(
    counts: torch.Tensor, *, invert: bool = True, background_radius_fraction: float = 0.75
) -> torch.Tensor:
    """Normalise raw images as RELION's ``relion_preprocess`` does.

    The mean and standard deviation are taken from the pixels outside a circle of radius
    ``background_radius_fraction * box / 2`` (RELION's ``--bg_radius``), and the image is optionally
    contrast-inverted.

    Parameters
    ----------
    counts : torch.Tensor, (B, H, W)
    invert : bool
        Multiply by -1 after normalising (RELION's ``--invert_contrast``).

    Returns
    -------
    torch.Tensor, (B, H, W)
    """
    b, h, w = counts.shape
    yy = torch.arange(h, device=counts.device, dtype=counts.dtype) - h // 2
    xx = torch.arange(w, device=counts.device, dtype=counts.dtype) - w // 2
    r = torch.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
    background = r >= background_radius_fraction * min(h, w) / 2
    pixels = counts[:, background]
    mean = pixels.mean(dim=1)[:, None, None]
    std = pixels.std(dim=1).clamp_min(torch.finfo(counts.dtype).tiny)[:, None, None]
    out = (counts - mean) / std
    return -out if invert else out
