"""Linear (weak-phase) retrieval, the registry and the shared contract checks."""

from __future__ import annotations

import pytest
import torch

from _phantoms import gaussian_blobs, make_physics, ncc
from cryophase.physics import weak_phase_intensity
from cryophase.retrieval import available_methods, get_method
from cryophase.retrieval.wiener import estimate_ssnr, weak_phase_contrast

ALL_METHODS = {"wiener", "phase-flip", "gs", "raf", "hio", "raar", "ml"}


def weak_phase_counts(phase, physics):
    """Noiseless counts of the linear (first-order) model: N * (1 - 2 F^-1[CTF F[phi]] / sqrt(1 - A^2))."""
    return physics.counts_per_pixel[:, None, None] * weak_phase_intensity(phase, physics.optics)


def band(physics, shape, threshold):
    """rfft2 mask of the frequencies where |CTF| exceeds ``threshold``, (B, H, W // 2 + 1)."""
    return physics.ctf(shape, rfft=True).abs() > threshold


def bandpass(image, mask):
    return torch.fft.irfft2(torch.fft.rfft2(image) * mask, s=image.shape[-2:])


def test_registry_lists_every_method():
    assert ALL_METHODS <= set(available_methods())


def test_defocus_puts_ctf_zeros_inside_the_band():
    # The recovery tests are only meaningful if the weak-phase CTF changes sign below Nyquist.
    physics = make_physics(1)
    transfer = physics.ctf((64, 64), rfft=True)[0, 0, :]  # along kx
    assert (transfer[1:] > 0).any() and (transfer[1:] < 0).any()


def test_wiener_inverts_weak_phase_data_inside_the_ctf_band():
    phase = 0.01 * gaussian_blobs(3)  # deep in the weak-phase regime
    physics = make_physics(3, defocus_angstrom=[15000.0, 20000.0, 25000.0])
    counts = weak_phase_counts(phase, physics)
    result = get_method("wiener", ssnr=1e8).reconstruct(counts, physics)
    mask = band(physics, (64, 64), 0.2)
    error = bandpass(result.phase - phase, mask)
    assert error.abs().max() < 1e-4 * phase.abs().max()
    assert result.history == {}


def test_wiener_sign_makes_protein_positive():
    # Protein (phi > 0) is dark in counts; the Wiener estimate must be positively correlated with the truth.
    phase = gaussian_blobs(2)
    physics = make_physics(2)
    result = get_method("wiener").reconstruct(physics.expected_counts(phase), physics)
    assert (ncc(result.phase, phase) > 0.8).all()


def test_phase_flip_returns_the_truth_filtered_by_abs_ctf():
    phase = 0.01 * gaussian_blobs(2)
    physics = make_physics(2, defocus_angstrom=[12000.0, 24000.0])
    counts = weak_phase_counts(phase, physics)
    result = get_method("phase-flip").reconstruct(counts, physics)
    transfer = physics.ctf((64, 64), rfft=True)
    expected = torch.fft.irfft2(torch.fft.rfft2(phase) * transfer.abs(), s=(64, 64))
    torch.testing.assert_close(result.phase, expected, rtol=0, atol=1e-9)


def test_estimated_ssnr_is_zero_for_pure_noise_and_large_for_noiseless_signal(generator):
    physics = make_physics(2, dose_e_per_a2=50.0)
    vacuum = torch.zeros(2, 64, 64, dtype=torch.float64)
    flat = torch.poisson(physics.expected_counts(vacuum), generator=generator)
    transfer = physics.ctf((64, 64), rfft=True)
    noise_ssnr = estimate_ssnr(torch.fft.rfft2(weak_phase_contrast(flat, physics)), transfer, flat, physics,
                               ctf2_floor=1e-3, significance=2.0)
    signal = physics.expected_counts(gaussian_blobs(2))
    signal_ssnr = estimate_ssnr(torch.fft.rfft2(weak_phase_contrast(signal, physics)), transfer, signal, physics,
                                ctf2_floor=1e-3, significance=2.0)
    # Pure shot noise: a 2-sigma margin rejects all but a few per cent of the rings.
    assert (noise_ssnr == 0).double().mean() > 0.9
    assert signal_ssnr[:, 1:4, 1:4].min() > 10.0  # rings 1-4 (< 1/45 A^-1) of 0.1-0.5 rad blobs


@pytest.mark.parametrize("name", sorted(ALL_METHODS))
def test_every_method_keeps_shape_dtype_and_refuses_bad_input(name):
    physics = make_physics(2, dtype=torch.float32)
    counts = physics.expected_counts(gaussian_blobs(2, dtype=torch.float32))
    options = {"n_iterations": 2} if name not in ("wiener", "phase-flip") else {}
    method = get_method(name, **options)
    result = method.reconstruct(counts, physics)
    assert result.phase.shape == counts.shape and result.phase.dtype == torch.float32
    assert torch.isfinite(result.phase).all()
    with pytest.raises(ValueError, match="counts"):
        method.reconstruct(counts - counts.mean(), physics)  # a zero-mean (normalised) image
    with pytest.raises(ValueError, match="images"):
        method.reconstruct(counts[:1], physics)


def test_unknown_option_and_bad_values_are_refused():
    with pytest.raises(TypeError):
        get_method("gs", n_iteration=3)
    with pytest.raises(ValueError, match="n_iterations"):
        get_method("raf", n_iterations=0)
    with pytest.raises(ValueError, match="ssnr"):
        get_method("wiener", ssnr=-1.0)


def test_hio_without_a_support_is_refused():
    physics = make_physics(1)
    counts = physics.expected_counts(gaussian_blobs(1))
    with pytest.raises(ValueError, match="support"):
        get_method("hio", support_threshold=None).reconstruct(counts, physics)
