"""Vitreous ice: the particle's phase relative to the ice it displaces, and the ice's own random phase.

A particle in ice shifts the phase of the beam by its projected potential *minus* that of the ice it excludes:

    phi_particle = sigma_e * (V_z - V_ice * t_excluded),   V_ice = 4.5 V (mean inner potential)

(Shang & Sigworth 2012 JSB 180:10 on solvent contrast; Vulovic et al. 2013 JSB 183:19, section 2.3). The ice
itself is not uniform: its projected potential fluctuates because water molecules sit at random positions with
the short-range order of low-density amorphous ice, and because the film's thickness varies slowly. The random
phase of the ice has the power spectrum (per unit area, rad^2 A^2)

    P(k) = sigma_e^2 [ n t v0^2 g(k)^2 S(k)  +  (V_ice t s_t)^2 G_l(k)  +  (V_ice r)^2 G_lr(k) ],
    G_l(k) = 2 pi l^2 exp(-2 pi^2 l^2 k^2)

* ``n`` the number density of water (0.94 g/cm^3 -> 0.0314 /A^3), ``t`` the ice thickness, ``v0 = V_ice / n``
  the integrated potential of one molecule (so that the mean is the mean inner potential), ``g(k)`` the
  molecule's normalised form factor ``exp(-b k^2)``; this is the random-position (shot-noise) term of
  Vulovic et al. 2013 (their "ice as a random arrangement of water molecules", section 2.3.2).
* ``S(k)`` the structure factor of low-density amorphous ice: small at low frequency (S(0) ~ 0.06, the
  compressibility limit), a first peak at k0 = 1/3.7 A^-1 (Q = 1.7 A^-1; Mariedahl et al. 2018 J Phys Chem B
  122:7616; the ice ring used by CTF programs), 1 at high frequency.
* a slow thickness variation with relative standard deviation ``s_t`` and correlation length ``l``, and a
  surface roughness of the film (absolute standard deviation, short correlation length): the air-water
  interfaces of a blotted film are not flat (Noble et al. 2018 eLife 7:e34257), which adds the same
  ``V_ice * delta_t`` phase at intermediate frequencies.

The mean ice phase is a global phase factor with no effect on the image and is left out. Inelastic scattering
in the ice removes electrons from the coherent image: a fraction ``exp(-t / lambda_in)`` stays coherent
(lambda_in ~ 3,200 A at 300 kV; Rice et al. 2018 JSB 204:38); the rest arrives as a smooth background when no
energy filter is used, or is removed by the filter's slit.
"""

from __future__ import annotations

import math

import torch

from cryophase.conventions import (
    ICE_DENSITY_G_PER_CM3,
    ICE_MEAN_INNER_POTENTIAL_VOLT,
    interaction_constant_rad_per_volt_angstrom,
)
from cryophase.specimens.base import Projection

AVOGADRO_PER_MOL = 6.02214076e23
WATER_MOLAR_MASS_G_PER_MOL = 18.015
#: Number density of water molecules in vitreous ice, 1/A^3 (0.0314).
WATER_NUMBER_DENSITY_PER_A3 = ICE_DENSITY_G_PER_CM3 / WATER_MOLAR_MASS_G_PER_MOL * AVOGADRO_PER_MOL * 1e-24
#: Form-factor fall-off of one water molecule, exp(-b k^2) with k in 1/A (the O scattering factor halves near
#: k = 0.5 A^-1; Peng et al. 1996 Acta Cryst A52:257).
WATER_FORM_FACTOR_B_A2 = 2.8
#: Low-density amorphous ice structure factor: first peak position (1/A), height, width (1/A) and S(0).
ICE_STRUCTURE_PEAK_INVERSE_A = 1 / 3.7
ICE_STRUCTURE_PEAK_HEIGHT = 2.2
ICE_STRUCTURE_PEAK_WIDTH_INVERSE_A = 0.025
ICE_STRUCTURE_ZERO = 0.06
#: Inelastic mean free path of vitreous ice at 300 kV, A (Rice et al. 2018 JSB 204:38); scaled by beta^2.
ICE_INELASTIC_MEAN_FREE_PATH_300KV_ANGSTROM = 3200.0


def particle_phase(projection: Projection, voltage_kv: torch.Tensor, *, in_ice: bool) -> torch.Tensor:
    """Phase of a particle, relative to the ice it displaces when ``in_ice``, else in vacuum.

    Parameters
    ----------
    projection : Projection with (B, H, W) tensors
    voltage_kv : torch.Tensor, (B,)
    in_ice : subtract the ice's mean inner potential over the excluded thickness

    Returns
    -------
    torch.Tensor, (B, H, W), radians
    """
    potential = projection.potential_volt_angstrom
    if in_ice:
        potential = potential - ICE_MEAN_INNER_POTENTIAL_VOLT * projection.excluded_thickness_angstrom
    sigma = interaction_constant_rad_per_volt_angstrom(voltage_kv.to(torch.float64)).to(potential)
    return sigma[:, None, None] * potential


def ice_structure_factor(k_inverse_angstrom: torch.Tensor) -> torch.Tensor:
    """Structure factor S(k) of low-density amorphous ice (parametric, see the module docstring)."""
    k0 = ICE_STRUCTURE_PEAK_INVERSE_A
    rise = ICE_STRUCTURE_ZERO + (1 - ICE_STRUCTURE_ZERO) * (1 - torch.exp(-((k_inverse_angstrom / (0.8 * k0)) ** 4)))
    peak = (ICE_STRUCTURE_PEAK_HEIGHT - 1) * torch.exp(
        -((k_inverse_angstrom - k0) ** 2) / (2 * ICE_STRUCTURE_PEAK_WIDTH_INVERSE_A**2))
    return rise + peak


def ice_phase_power_spectrum(
    image_shape: tuple[int, int],
    pixel_size_angstrom: float,
    thickness_angstrom: torch.Tensor,
    voltage_kv: torch.Tensor,
    *,
    thickness_variation: float,
    thickness_correlation_angstrom: float,
    roughness_angstrom: float = 0.0,
    roughness_correlation_angstrom: float = 30.0,
) -> torch.Tensor:
    """Power spectrum of the ice's random phase on the rfft half grid, rad^2 A^2 (continuous normalisation).

    Parameters
    ----------
    image_shape : (H, W)
    pixel_size_angstrom : float
    thickness_angstrom, voltage_kv : torch.Tensor, (B,)
    thickness_variation : relative standard deviation of the ice thickness
    thickness_correlation_angstrom : correlation length of the thickness variation
    roughness_angstrom : standard deviation of the film's thickness from surface roughness, A
    roughness_correlation_angstrom : correlation length of the roughness, A

    Returns
    -------
    torch.Tensor, (B, H, W // 2 + 1)
    """
    h, w = image_shape
    device, dtype = thickness_angstrom.device, thickness_angstrom.dtype
    fy = torch.fft.fftfreq(h, d=pixel_size_angstrom, device=device, dtype=dtype)[:, None]
    fx = torch.fft.rfftfreq(w, d=pixel_size_angstrom, device=device, dtype=dtype)[None, :]
    k2 = fy**2 + fx**2
    k = torch.sqrt(k2)
    n = WATER_NUMBER_DENSITY_PER_A3
    v0 = ICE_MEAN_INNER_POTENTIAL_VOLT / n
    molecular = n * v0**2 * torch.exp(-2 * WATER_FORM_FACTOR_B_A2 * k2) * ice_structure_factor(k)  # per A of ice
    slow = _gaussian_field_spectrum(ICE_MEAN_INNER_POTENTIAL_VOLT * thickness_variation,
                                    thickness_correlation_angstrom, k2)  # per A^2 of ice thickness
    rough = _gaussian_field_spectrum(ICE_MEAN_INNER_POTENTIAL_VOLT * roughness_angstrom,
                                     roughness_correlation_angstrom, k2)
    t = thickness_angstrom[:, None, None]
    sigma = interaction_constant_rad_per_volt_angstrom(voltage_kv.to(torch.float64)).to(dtype)[:, None, None]
    return sigma**2 * (t * molecular + t**2 * slow + rough)


def _gaussian_field_spectrum(sd: float, correlation_angstrom: float, k2: torch.Tensor) -> torch.Tensor:
    """Power spectrum of a field with standard deviation ``sd`` and correlation ``exp(-r^2 / (2 l^2))``."""
    ell = correlation_angstrom
    return sd**2 * 2 * math.pi * ell**2 * torch.exp(-2 * math.pi**2 * ell**2 * k2)


def ice_phase_from_white_noise(white: torch.Tensor, power_spectrum: torch.Tensor,
                               pixel_size_angstrom: float) -> torch.Tensor:
    """A zero-mean Gaussian random phase with the given power spectrum, from unit white noise.

    Parameters
    ----------
    white : torch.Tensor, (B, H, W), independent standard normal values
    power_spectrum : torch.Tensor, (B, H, W // 2 + 1), rad^2 A^2 (from :func:`ice_phase_power_spectrum`)
    pixel_size_angstrom : float

    Returns
    -------
    torch.Tensor, (B, H, W), radians; the per-pixel variance is sum(P) / (H W pixel_size^2)
    """
    amplitude = torch.sqrt(power_spectrum / pixel_size_angstrom**2)
    spectrum = torch.fft.rfft2(white) * amplitude
    spectrum[:, 0, 0] = 0  # the mean ice phase is a global phase factor
    return torch.fft.irfft2(spectrum, s=white.shape[-2:])


def coherent_fraction(thickness_angstrom: torch.Tensor, voltage_kv: torch.Tensor) -> torch.Tensor:
    """Fraction of electrons that cross ice of the given thickness without inelastic scattering, (B,).

    ``exp(-t / lambda_in)`` with lambda_in scaled from 300 kV by beta^2 (Egerton 2011, eq. 3.49: the inelastic
    cross-section goes as 1/v^2).
    """
    beta2 = _beta_squared(voltage_kv) / _beta_squared(torch.tensor(300.0, dtype=voltage_kv.dtype,
                                                                   device=voltage_kv.device))
    mean_free_path = ICE_INELASTIC_MEAN_FREE_PATH_300KV_ANGSTROM * beta2
    return torch.exp(-thickness_angstrom / mean_free_path)


def _beta_squared(voltage_kv: torch.Tensor) -> torch.Tensor:
    rest_energy_kev = 510.99895
    gamma = 1 + voltage_kv / rest_energy_kev
    return 1 - 1 / gamma**2
