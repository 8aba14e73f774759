"""The phase VAE: shapes, the two scalings applied once in encode/decode, and that training lowers the loss."""

import math

import pytest
import torch

from cryophase.models.vae import PhaseVAE, VAEConfig, fit_latent_scale, ring_power_log_ratio, vae_loss
from models.tiny import blob_phases, tiny_vae_config


def _train(vae: PhaseVAE, x: torch.Tensor, steps: int) -> list[float]:
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        loss = vae_loss(vae, x, 1e-4, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


def test_encode_decode_shapes_default_config():
    vae = PhaseVAE(VAEConfig(base_channels=8))
    phase = torch.zeros(2, 64, 64)
    z = vae.encode(phase)
    assert z.shape == (2, 4, 16, 16)
    assert vae.decode(z).shape == (2, 64, 64)


def test_training_lowers_loss_on_fixed_batch():
    torch.manual_seed(0)
    vae = PhaseVAE(tiny_vae_config())
    x = blob_phases(8, 16, torch.Generator().manual_seed(0)) / 0.5
    losses = _train(vae, x, 10)
    assert losses[-1] < 0.5 * losses[0]


def test_latent_scale_applied_once_and_round_trip_finite():
    torch.manual_seed(0)
    vae = PhaseVAE(tiny_vae_config())
    phases = blob_phases(16, 16, torch.Generator().manual_seed(2))
    _train(vae, phases / vae.config.phase_scale_rad, 5)
    vae.eval()
    scale = fit_latent_scale(vae, phases)
    vae.config.latent_scale = scale
    z = vae.encode(phases)
    # The scaled latents have unit standard deviation over the fitting set: the scale is applied exactly once.
    assert abs(float(z.std()) - 1.0) < 1e-4
    raw_mean, _ = vae.moments(phases / vae.config.phase_scale_rad)
    torch.testing.assert_close(z, raw_mean * scale)
    # decode undoes the latent scale and restores radians: equal to the raw decoder times phase_scale_rad.
    torch.testing.assert_close(vae.decode(z), vae.decoder(raw_mean)[:, 0] * vae.config.phase_scale_rad)
    assert torch.isfinite(vae.decode(z)).all()
    assert vae.config.latent_scale == scale


def test_ring_relative_error_weighs_every_ring_alike():
    from cryophase.evaluation.frc import ring_index
    from cryophase.models.vae import ring_relative_error

    x = torch.randn(4, 32, 32, generator=torch.Generator().manual_seed(0))
    assert float(ring_relative_error(x, x)) == 0.0
    torch.testing.assert_close(ring_relative_error(torch.zeros_like(x), x), torch.tensor(1.0))
    # Keep rings 0-7 of the 16 non-zero rings (1..16): the error is 0 in rings 1-7 and 1 in rings 8-16 -> 9/16,
    # however little power those high rings hold.
    index, _ = ring_index((32, 32))
    lowpass = torch.fft.ifft2(torch.fft.fft2(x) * (index < 8)).real
    torch.testing.assert_close(ring_relative_error(lowpass, x), torch.tensor(9 / 16), rtol=1e-5, atol=1e-6)
    # A reconstruction off by the same fraction in every ring scores that fraction squared, whatever the spectrum
    smooth = torch.fft.ifft2(torch.fft.fft2(x) / (1 + index.double())).real.float()
    torch.testing.assert_close(ring_relative_error(0.9 * smooth, smooth), torch.tensor(0.01), rtol=1e-4, atol=1e-6)


def test_ring_power_log_ratio_is_zero_for_equal_power_and_log4_squared_for_double_amplitude():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(3, 16, 16, generator=g, dtype=torch.float64)
    assert float(ring_power_log_ratio(target, target)) == pytest.approx(0.0, abs=1e-12)
    # Power is blind to Fourier phases: a shifted copy keeps every ring's power.
    assert float(ring_power_log_ratio(torch.roll(target, (3, 5), dims=(-2, -1)), target)) == pytest.approx(0.0,
                                                                                                         abs=1e-12)
    # (to within the 1e-6 power floor that keeps empty rings finite)
    assert float(ring_power_log_ratio(2 * target, target)) == pytest.approx(math.log(4) ** 2, rel=1e-5)
