"""Physical constants and RELION conventions against literature values."""

import pytest
import torch

from cryophase import conventions as cv


# Kirkland, Advanced Computing in Electron Microscopy, 3rd ed. (Springer 2020), Table 2.2 / eq. 2.5 and 5.6:
# lambda(200 kV) = 0.02508 A, lambda(300 kV) = 0.01969 A;
# sigma_e(200 kV) = 0.0007288 rad/(V A), sigma_e(300 kV) = 0.0006526 rad/(V A).
@pytest.mark.parametrize(
    "voltage_kv, wavelength_a, sigma",
    [(100.0, 0.03701, 0.0009244), (200.0, 0.02508, 0.0007288), (300.0, 0.01969, 0.0006526)],
)
def test_wavelength_and_interaction_constant_match_kirkland(voltage_kv, wavelength_a, sigma):
    assert float(cv.electron_wavelength_angstrom(voltage_kv)) == pytest.approx(wavelength_a, rel=2e-4)
    assert float(cv.interaction_constant_rad_per_volt_angstrom(voltage_kv)) == pytest.approx(sigma, rel=2e-4)


def test_potential_conversion_factor_is_kirklands_47_878():
    # h^2 / (2 pi m0 e) = 47.878 V A^2 (Kirkland 2020, eq. 5.15)
    assert cv.POTENTIAL_PER_SCATTERING_FACTOR_VOLT_A2 == pytest.approx(47.878, rel=1e-4)


def test_tensor_inputs_keep_shape_dtype_and_match_scalars():
    v = torch.tensor([200.0, 300.0], dtype=torch.float32)
    lam = cv.electron_wavelength_angstrom(v)
    assert lam.shape == (2,) and lam.dtype == torch.float32
    assert float(lam[1]) == pytest.approx(float(cv.electron_wavelength_angstrom(300.0)), rel=1e-6)


def test_absorption_ratio_gives_relion_amplitude_contrast():
    # exp((i - alpha) phi) with alpha = A / sqrt(1 - A^2): arctan(alpha) is the amplitude-contrast phase.
    a = torch.tensor(0.1, dtype=torch.float64)
    alpha = cv.amplitude_contrast_to_absorption_ratio(a)
    assert float(torch.sin(torch.atan(alpha))) == pytest.approx(0.1, rel=1e-12)


def test_relion_normalisation_round_trip_to_counts(generator):
    n = 30.0 * 3.5**2
    counts = torch.poisson(torch.full((4, 64, 64), n, dtype=torch.float64), generator=generator)
    normalised = cv.relion_normalise(counts, invert=True)
    outside = normalised[:, :4, :4]
    assert abs(float(normalised.mean())) < 0.05 and float(normalised.std()) == pytest.approx(1.0, abs=0.05)
    back = cv.counts_from_relion_normalised(normalised, n, inverted=True)
    # shot noise has sd sqrt(N): the pseudo-counts reproduce the counts to within the estimate of mean and sd
    assert float((back - counts).abs().mean()) < 0.05 * n**0.5
    assert outside.shape == (4, 4, 4)


def test_micrometre_defocus_is_detected():
    assert cv.looks_like_micrometres(torch.tensor([1.5, 2.1]))
    assert not cv.looks_like_micrometres(torch.tensor([15000.0, 21000.0]))
