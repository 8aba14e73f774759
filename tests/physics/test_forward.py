"""The exit-wave forward model: sign convention, weak-phase limit, flux, batching, noise."""

import pytest
import torch

from cryophase.physics import (
    ImagingPhysics,
    Optics,
    expected_counts,
    intensity,
    sample_counts,
    weak_phase_intensity,
)
from cryophase.physics.detector import poisson_log_likelihood, poisson_nll_per_pixel


def _blobs(b, n, amplitude, generator, dtype=torch.float64):
    yy, xx = torch.meshgrid(torch.arange(n, dtype=dtype), torch.arange(n, dtype=dtype), indexing="ij")
    centres = n / 2 + 6 * torch.randn(b, 4, 2, generator=generator, dtype=dtype)
    phase = torch.zeros(b, n, n, dtype=dtype)
    for i in range(4):
        r2 = (yy - centres[:, i, 0, None, None]) ** 2 + (xx - centres[:, i, 1, None, None]) ** 2
        phase += amplitude * torch.exp(-r2 / (2 * 3.0**2))
    return phase


def _optics(b=3, dtype=torch.float64):
    return Optics.create(
        defocus_u_angstrom=torch.linspace(8000, 25000, b), defocus_v_angstrom=torch.linspace(8300, 24600, b),
        defocus_angle_degrees=torch.linspace(-40, 70, b), voltage_kv=[300.0, 200.0, 300.0][:b],
        cs_mm=[2.7, 0.01, 2.0][:b], amplitude_contrast=[0.1, 0.07, 0.1][:b], pixel_size_angstrom=[3.5, 2.0, 1.3][:b],
        dtype=dtype,
    )


def test_weak_phase_limit_matches_ctf_formula(generator):
    # I = 1 - 2 F^-1[CTF F[phi]] / sqrt(1 - A^2) to first order in phi (relative error < 1% at phi ~ 1e-3 rad).
    optics = _optics()
    phase = 1e-3 * torch.randn(3, 64, 64, generator=generator, dtype=torch.float64)
    exact = intensity(phase, optics) - 1
    linear = weak_phase_intensity(phase, optics) - 1
    rel = (exact - linear).norm(dim=(-2, -1)) / linear.norm(dim=(-2, -1))
    assert float(rel.max()) < 0.01


def test_protein_is_dark_in_underfocused_raw_image(generator):
    # A positive phase bump imaged at moderate underfocus lowers the low-pass intensity at its centre.
    optics = Optics.create(defocus_u_angstrom=20000.0, pixel_size_angstrom=3.5, dtype=torch.float64)
    n = 64
    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    phase = 0.3 * torch.exp(-(yy**2 + xx**2) / (2 * 4.0**2)).to(torch.float64)[None]
    image = intensity(phase, optics)[0]
    centre = image[n // 2 - 3 : n // 2 + 4, n // 2 - 3 : n // 2 + 4].mean()
    assert float(centre) < float(image[:5, :5].mean())


def test_pure_phase_object_keeps_flux(generator):
    optics = _optics().replace(amplitude_contrast=torch.zeros(3, dtype=torch.float64))
    phase = _blobs(3, 64, 0.8, generator)
    mean = intensity(phase, optics).mean(dim=(-2, -1))
    torch.testing.assert_close(mean, torch.ones(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_amplitude_contrast_absorbs(generator):
    optics = _optics()
    phase = _blobs(3, 64, 0.8, generator)
    assert bool((intensity(phase, optics).mean(dim=(-2, -1)) < 1).all())


def test_expected_counts_scale_with_dose_and_pixel_area(generator):
    optics = _optics()
    phase = torch.zeros(3, 32, 32, dtype=torch.float64)
    counts = expected_counts(phase, optics, torch.tensor([10.0, 20.0, 40.0], dtype=torch.float64))
    want = torch.tensor([10 * 3.5**2, 20 * 2.0**2, 40 * 1.3**2], dtype=torch.float64)
    torch.testing.assert_close(counts.mean(dim=(-2, -1)), want)


def test_batched_equals_looped(generator):
    optics = _optics()
    phase = _blobs(3, 48, 0.5, generator)
    dose = torch.tensor([15.0, 30.0, 60.0], dtype=torch.float64)
    batched = expected_counts(phase, optics, dose)
    looped = torch.cat([expected_counts(phase[i : i + 1], optics[i], dose[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, looped, atol=1e-12, rtol=1e-12)


def test_float32_close_to_float64(generator):
    phase = _blobs(3, 48, 0.5, generator)
    i64 = intensity(phase, _optics())
    i32 = intensity(phase.float(), _optics(dtype=torch.float32))
    assert i32.dtype == torch.float32
    torch.testing.assert_close(i32.double(), i64, atol=1e-4, rtol=0)


def test_forward_model_is_differentiable(generator):
    phase = _blobs(2, 32, 0.5, generator).requires_grad_(True)
    physics = ImagingPhysics(_optics(2), torch.tensor([20.0, 40.0], dtype=torch.float64))
    loss = physics.expected_counts(phase).sum()
    loss.backward()
    assert phase.grad is not None and torch.isfinite(phase.grad).all()
    # gradient check on a tiny problem
    small = (0.1 * torch.randn(1, 8, 8, generator=generator, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: intensity(p, _optics(1)), (small,))


def test_poisson_sampling_mean_and_variance(generator):
    expected = torch.full((64, 128, 128), 12.25, dtype=torch.float64)
    counts = sample_counts(expected, generator)
    assert float(counts.mean()) == pytest.approx(12.25, rel=0.01)
    assert float(counts.var()) == pytest.approx(12.25, rel=0.02)
    assert torch.equal(counts, counts.round())


def test_sampling_is_reproducible_and_requires_a_generator():
    expected = torch.full((2, 16, 16), 5.0)
    a = sample_counts(expected, torch.Generator().manual_seed(7))
    b = sample_counts(expected, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="Generator"):
        sample_counts(expected, None)


def test_poisson_likelihood_is_maximal_at_the_truth(generator):
    expected = torch.full((1, 32, 32), 20.0, dtype=torch.float64)
    counts = sample_counts(expected, generator)
    ll_true = poisson_log_likelihood(counts, expected)
    ll_off = poisson_log_likelihood(counts, expected * 1.2)
    assert float(ll_true) > float(ll_off)
    # the saturated NLL per pixel is about 1/2 under shot noise (chi^2 / 2 with one degree of freedom per pixel)
    assert float(poisson_nll_per_pixel(counts, expected)) == pytest.approx(0.5, abs=0.08)


def test_imaging_physics_validates_dose():
    with pytest.raises(ValueError, match="dose"):
        ImagingPhysics(_optics(), torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
