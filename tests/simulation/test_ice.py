"""Vitreous ice: excluded-volume contrast, the ice's random phase and inelastic loss."""

from __future__ import annotations

import math

import pytest
import torch

from cryophase.conventions import ICE_MEAN_INNER_POTENTIAL_VOLT, interaction_constant_rad_per_volt_angstrom
from cryophase.specimens.base import Projection
from cryophase.specimens.ice import (
    ICE_INELASTIC_MEAN_FREE_PATH_300KV_ANGSTROM,
    WATER_NUMBER_DENSITY_PER_A3,
    coherent_fraction,
    ice_phase_from_white_noise,
    ice_phase_power_spectrum,
    ice_structure_factor,
    particle_phase,
)


def test_particle_phase_is_relative_to_displaced_ice():
    potential = torch.rand(2, 8, 8, dtype=torch.float64) * 100
    excluded = torch.rand(2, 8, 8, dtype=torch.float64) * 20
    voltage = torch.tensor([300.0, 200.0], dtype=torch.float64)
    vac = particle_phase(Projection(potential, excluded), voltage, in_ice=False)
    ice = particle_phase(Projection(potential, excluded), voltage, in_ice=True)
    sigma = interaction_constant_rad_per_volt_angstrom(voltage)[:, None, None]
    torch.testing.assert_close(vac - ice, sigma * ICE_MEAN_INNER_POTENTIAL_VOLT * excluded)
    # sigma_e = 6.526e-4 rad/(V A) at 300 kV (Kirkland 2020).
    assert float(sigma[0]) == pytest.approx(6.526e-4, rel=1e-3)


def test_water_number_density():
    # 0.94 g/cm^3 of H2O (18.015 g/mol) is 0.0314 molecules per A^3.
    assert WATER_NUMBER_DENSITY_PER_A3 == pytest.approx(0.0314, rel=2e-3)


def test_structure_factor_peak_at_3_7_angstrom():
    k = torch.linspace(0.01, 0.6, 2000, dtype=torch.float64)
    s = ice_structure_factor(k)
    assert float(k[torch.argmax(s)]) == pytest.approx(1 / 3.7, abs=0.005)
    assert float(s[0]) < 0.1  # nearly incompressible: little density fluctuation at long wavelength
    assert float(s[-1]) == pytest.approx(1.0, abs=0.01)


def test_ice_phase_variance_matches_its_power_spectrum_and_thickness():
    shape, pixel = (64, 64), 2.0
    thickness = torch.tensor([200.0, 400.0], dtype=torch.float64)
    voltage = torch.tensor([300.0, 300.0], dtype=torch.float64)
    spectrum = ice_phase_power_spectrum(shape, pixel, thickness, voltage, thickness_variation=0.0,
                                        thickness_correlation_angstrom=500.0)
    g = torch.Generator().manual_seed(0)
    white = torch.randn(2, 400, *shape, generator=g, dtype=torch.float64)
    fields = torch.stack([ice_phase_from_white_noise(white[i], spectrum[i:i + 1].expand(400, -1, -1), pixel)
                          for i in range(2)])
    var = fields.var(dim=(1, 2, 3))
    # Parseval on the rfft half grid: per-pixel variance = sum over the full grid of P / (N pixel^2).
    full = torch.cat([spectrum, spectrum[..., 1:-1].flip(-1)], dim=-1)
    full[:, 0, 0] = 0
    predicted = full.sum(dim=(1, 2)) / (shape[0] * shape[1] * pixel**2)
    torch.testing.assert_close(var, predicted, rtol=0.03, atol=0)
    # Molecular noise adds up over independent molecules: variance proportional to thickness.
    assert float(var[1] / var[0]) == pytest.approx(2.0, rel=0.05)
    assert float(fields.mean()) == pytest.approx(0.0, abs=1e-6)


def test_coherent_fraction_is_beer_lambert():
    t = torch.tensor([0.0, ICE_INELASTIC_MEAN_FREE_PATH_300KV_ANGSTROM], dtype=torch.float64)
    v = torch.tensor([300.0, 300.0], dtype=torch.float64)
    torch.testing.assert_close(coherent_fraction(t, v), torch.tensor([1.0, math.exp(-1)], dtype=torch.float64))
    # Slower electrons scatter more: less coherent at 200 kV.
    assert float(coherent_fraction(t[1:], torch.tensor([200.0], dtype=torch.float64))) < math.exp(-1)


def test_neighbour_views_are_projections_of_the_same_specimen(small_specimens):
    from cryophase.specimens.neighbours import dihedral_variant, shift_with_zero_fill

    spec = small_specimens[0]
    g = torch.Generator().manual_seed(1)
    from cryophase.simulation.batch import random_rotations

    r = random_rotations(torch.randn(1, 4, generator=g, dtype=torch.float64))
    zero = torch.zeros(1, 2, dtype=torch.float64)
    base = spec.project(r, zero, (64, 64), 3.0).potential_volt_angstrom
    about_x = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    mirrored = spec.project(about_x @ r, zero, (64, 64), 3.0).potential_volt_angstrom
    torch.testing.assert_close(dihedral_variant(base, 4), mirrored)
    quarter = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    turned = [spec.project(q @ r, zero, (64, 64), 3.0).potential_volt_angstrom for q in (quarter, quarter.T)]
    assert any(torch.allclose(dihedral_variant(base, 1), t) for t in turned)
    shifted = shift_with_zero_fill(base[0], 3, -5)
    torch.testing.assert_close(shifted[3:, :-5], base[0, :-3, 5:])
    assert float(shifted[:3].abs().sum()) == 0.0


def test_surface_roughness_adds_its_variance():
    # A Gaussian field of standard deviation r (A) in the thickness gives a phase of sd sigma_e V_ice r.
    shape, pixel = (256, 256), 2.0
    voltage = torch.tensor([300.0], dtype=torch.float64)
    nearly_no_ice = torch.tensor([1e-9], dtype=torch.float64)
    spectrum = ice_phase_power_spectrum(shape, pixel, nearly_no_ice, voltage, thickness_variation=0.0,
                                        thickness_correlation_angstrom=500.0, roughness_angstrom=10.0,
                                        roughness_correlation_angstrom=30.0)
    full = torch.cat([spectrum, spectrum[..., 1:-1].flip(-1)], dim=-1)
    variance = float(full.sum()) / (shape[0] * shape[1] * pixel**2)
    sigma = float(interaction_constant_rad_per_volt_angstrom(voltage))
    assert variance == pytest.approx((sigma * ICE_MEAN_INNER_POTENTIAL_VOLT * 10.0) ** 2, rel=0.01)
