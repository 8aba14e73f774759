"""The CTF agrees with torch-ctf (teamtomo) and follows RELION's conventions."""

import math

import pytest
import torch
import torch_ctf

from cryophase.physics import Optics, ctf
from cryophase.physics.ctf import aberration_phase


def _torch_ctf(du, dv, angle, voltage, cs, a, phase_shift, pixel, shape):
    # torch-ctf takes the mean defocus and half the difference, both in micrometres. torch-ctf 0.6 takes the
    # square root of the astigmatism (NaN when DefocusV > DefocusU), so pass the equivalent (U, V) ordering:
    # swapping U and V and turning the angle by 90 degrees describes the same lens.
    if dv > du:
        du, dv, angle = dv, du, angle + 90.0
    return torch_ctf.calculate_ctf_2d(
        defocus=(du + dv) / 2e4, astigmatism=(du - dv) / 2e4, astigmatism_angle=angle, voltage=voltage,
        spherical_aberration=cs, amplitude_contrast=a, phase_shift=phase_shift, pixel_size=pixel,
        image_shape=shape, rfft=False, fftshift=False,
    )


@pytest.mark.parametrize(
    "du, dv, angle, voltage, cs, a, phase_shift, pixel",
    [
        (15000.0, 15000.0, 0.0, 300.0, 2.7, 0.1, 0.0, 3.5),
        (20000.0, 15000.0, 30.0, 300.0, 2.7, 0.07, 0.0, 2.0),
        (9000.0, 9600.0, -70.0, 200.0, 0.01, 0.1, 90.0, 1.3),
        (25000.0, 24500.0, 123.0, 300.0, 2.0, 0.1, 0.0, 4.88),
    ],
)
def test_ctf_matches_torch_ctf(du, dv, angle, voltage, cs, a, phase_shift, pixel):
    shape = (64, 64)
    optics = Optics.create(defocus_u_angstrom=du, defocus_v_angstrom=dv, defocus_angle_degrees=angle,
                           voltage_kv=voltage, cs_mm=cs, amplitude_contrast=a, phase_shift_degrees=phase_shift,
                           pixel_size_angstrom=pixel)
    ours = ctf(optics, shape)[0]
    theirs = _torch_ctf(du, dv, angle, voltage, cs, a, phase_shift, pixel, shape)
    # The Nyquist row and column are symmetrised in ours (so that a real image stays real under astigmatism);
    # everywhere else the two must agree.
    inner = torch.ones(shape, dtype=torch.bool)
    inner[shape[0] // 2, :] = False
    inner[:, shape[1] // 2] = False
    torch.testing.assert_close(ours[inner], theirs[inner], atol=2e-4, rtol=0)


def test_defocus_u_lies_along_the_angle_from_x():
    # RELION: defocus(theta) = DefocusU where the frequency direction is at DefocusAngle from the x axis.
    du, dv = 20000.0, 10000.0
    for angle in (0.0, 40.0, 90.0):
        optics = Optics.create(defocus_u_angstrom=du, defocus_v_angstrom=dv, defocus_angle_degrees=angle,
                               cs_mm=0.0, dtype=torch.float64)
        chi = aberration_phase(optics, (128, 128), include_phase_shift=False)[0]
        # sample chi on a ring and find the direction of maximum (largest defocus -> largest chi at fixed k)
        k_index = 10
        thetas = torch.linspace(0, torch.pi, 721, dtype=torch.float64)[:-1]
        ys = torch.round(k_index * torch.sin(thetas)).long() % 128
        xs = torch.round(k_index * torch.cos(thetas)).long() % 128
        values = chi[ys, xs] / (ys.double().where(ys < 64, ys - 128.0) ** 2
                                + xs.double().where(xs < 64, xs - 128.0) ** 2)
        best = float(torch.rad2deg(thetas[values.argmax()]))
        assert min(abs(best - angle), 180 - abs(best - angle)) < 6.0


def test_underfocus_gives_positive_chi_at_low_frequency():
    optics = Optics.create(defocus_u_angstrom=15000.0)
    chi = aberration_phase(optics, (64, 64))
    assert float(chi[0, 0, 1]) > 0
    # CTF at k = 0 equals the amplitude contrast
    assert float(ctf(optics, (64, 64))[0, 0, 0]) == pytest.approx(0.1, abs=1e-6)


def test_first_zero_matches_closed_form():
    # With Cs = 0 and A = 0 the first zero of sin(chi) is at k^2 = 1 / (lambda * df).
    from cryophase.conventions import electron_wavelength_angstrom

    df = 20000.0
    optics = Optics.create(defocus_u_angstrom=df, cs_mm=0.0, amplitude_contrast=0.0, pixel_size_angstrom=1.0,
                           dtype=torch.float64)
    n = 512
    values = ctf(optics, (n, n))[0, 0, : n // 2]
    k = torch.arange(n // 2, dtype=torch.float64) / n
    crossing = int(torch.nonzero(values[1:] < 0)[0]) + 1  # first sign change after the positive lobe
    k_zero = float(1 / torch.sqrt(electron_wavelength_angstrom(300.0) * df))
    assert k[crossing - 1] <= k_zero <= k[crossing]


def test_bfactor_envelope_is_exp_minus_b_k2_over_4():
    optics = Optics.create(defocus_u_angstrom=15000.0, b_factor_a2=100.0, dtype=torch.float64)
    plain = ctf(optics.replace(b_factor_a2=torch.zeros(1, dtype=torch.float64)), (64, 64))
    damped = ctf(optics, (64, 64))
    k2 = (5 / (64 * 3.5)) ** 2
    assert float(damped[0, 0, 5] / plain[0, 0, 5]) == pytest.approx(math.exp(-100 * k2 / 4),
                                                                   rel=1e-9)
