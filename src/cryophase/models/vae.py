"""KL-regularised autoencoder for phase images (the latent space the diffusion model works in).

Two fixed scalings live in :class:`VAEConfig` and are applied only in :meth:`PhaseVAE.encode` /
:meth:`PhaseVAE.decode`:

- ``phase_scale_rad``: phases are divided by it before the encoder (fitted from training phases, so the network
  sees unit-variance inputs);
- ``latent_scale``: 1/std of the encoder's latent means over training phases, fitted after VAE training (as
  Stable Diffusion's ``scaling_factor``), so the diffusion model sees unit-variance latents.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cryophase.evaluation.frc import ring_sums
from cryophase.models.blocks import Downsample, ResBlock, Upsample, group_norm


@dataclass
class VAEConfig:
    """Architecture and fixed scalings of a :class:`PhaseVAE`.

    Attributes
    ----------
    latent_channels : channels of the latent image.
    base_channels : channels at full resolution; doubled at each downsampling.
    n_downsamplings : the latent grid is ``2 ** n_downsamplings`` times smaller per side (2: 64 -> 16).
    phase_scale_rad : phases are divided by this before encoding and multiplied after decoding.
    latent_scale : latents returned by ``encode`` are the encoder means times this (1/std of the means).
    """

    latent_channels: int = 4
    base_channels: int = 32
    n_downsamplings: int = 2
    phase_scale_rad: float = 1.0
    latent_scale: float = 1.0

    @property
    def downsampling_factor(self) -> int:
        return 2**self.n_downsamplings


class _Encoder(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        c = config.base_channels
        layers: list[nn.Module] = [nn.Conv2d(1, c, 3, padding=1)]
        for _ in range(config.n_downsamplings):
            layers += [ResBlock(c, 2 * c), Downsample(2 * c)]
            c *= 2
        layers += [ResBlock(c, c), group_norm(c), nn.SiLU(), nn.Conv2d(c, 2 * config.latent_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Decoder(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        c = config.base_channels * config.downsampling_factor
        layers: list[nn.Module] = [nn.Conv2d(config.latent_channels, c, 3, padding=1), ResBlock(c, c)]
        for _ in range(config.n_downsamplings):
            layers += [Upsample(c), ResBlock(c, c // 2)]
            c //= 2
        layers += [group_norm(c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class PhaseVAE(nn.Module):
    """Phase image ``(B, H, W)`` radians <-> latent ``(B, C, H/f, W/f)`` with ``f = 2 ** n_downsamplings``.

    Use :meth:`encode` and :meth:`decode` for inference (they apply both scalings); :meth:`forward` is the
    training pass in normalised units.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = _Encoder(config)
        self.decoder = _Decoder(config)

    def _check_shape(self, phase: torch.Tensor) -> None:
        f = self.config.downsampling_factor
        if phase.ndim != 3 or phase.shape[-1] % f or phase.shape[-2] % f:
            raise ValueError(f"PhaseVAE expects (B, H, W) phases with H, W divisible by {f}, got {tuple(phase.shape)}")

    def moments(self, normalised_phase: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder mean and log-variance of normalised phases ``(B, H, W)``, each ``(B, C, h, w)``, unscaled."""
        self._check_shape(normalised_phase)
        mean, logvar = self.encoder(normalised_phase[:, None]).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def forward(self, normalised_phase: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Training pass: ``(reconstruction (B, H, W), mean, logvar)``, all in normalised, unscaled units."""
        mean, logvar = self.moments(normalised_phase)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * noise
        return self.decoder(z)[:, 0], mean, logvar

    def encode(self, phase: torch.Tensor) -> torch.Tensor:
        """Scaled latent (the encoder mean times ``latent_scale``) of phases ``(B, H, W)`` in radians."""
        mean, _ = self.moments(phase / self.config.phase_scale_rad)
        return mean * self.config.latent_scale

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Phases ``(B, H, W)`` in radians from scaled latents ``(B, C, h, w)``."""
        return self.decoder(latent / self.config.latent_scale)[:, 0] * self.config.phase_scale_rad


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, 1)) per latent element, averaged over the batch: a scalar."""
    return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).mean()


def ring_relative_error(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error over the target's power in each Fourier ring (images pooled), averaged over the rings from the
    first to Nyquist (the zero-frequency ring, an unmeasured phase offset, is left out): a scalar.

    Plain mean squared error is dominated by the few low-frequency rings that hold most of a particle's power, so a
    briefly trained autoencoder reconstructs nothing finer than about 15 A; this term weighs every ring alike.
    """
    error = ring_sums(torch.fft.fft2(recon - target).abs().pow(2).sum(dim=0, keepdim=True))[0, 1:]
    power = ring_sums(torch.fft.fft2(target).abs().pow(2).sum(dim=0, keepdim=True))[0, 1:]
    floor = (1e-6 * power.mean()).clamp_min(torch.finfo(power.dtype).tiny)  # empty rings stay finite
    return (error / power.clamp_min(floor)).mean()


def ring_power_log_ratio(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared natural log of the reconstruction's power over the target's in each Fourier ring (images pooled),
    averaged over the rings from the first to Nyquist: a scalar, 0 when every ring keeps the target's power.

    The error terms pull an uncertain reconstruction towards the mean, which has less power than any real image
    (blur); this one asks for the target's power whatever the detail, so the decoder keeps texture where the
    latent does not pin it down. ``recon = 2 * target`` gives ``log(4)^2`` = 1.92.
    """
    power_recon = ring_sums(torch.fft.fft2(recon).abs().pow(2).sum(dim=0, keepdim=True))[0, 1:]
    power_target = ring_sums(torch.fft.fft2(target).abs().pow(2).sum(dim=0, keepdim=True))[0, 1:]
    floor = (1e-6 * power_target.mean()).clamp_min(torch.finfo(power_target.dtype).tiny)
    return (torch.log(power_recon + floor) - torch.log(power_target + floor)).pow(2).mean()


def vae_loss(model: nn.Module, normalised_phase: torch.Tensor, kl_weight: float,
             generator: torch.Generator, spectral_weight: float = 0.0, power_weight: float = 0.0) -> torch.Tensor:
    """Mean squared reconstruction error in normalised units, plus ``spectral_weight`` times
    :func:`ring_relative_error`, plus ``power_weight`` times :func:`ring_power_log_ratio`, plus ``kl_weight``
    times the KL term."""
    recon, mean, logvar = model(normalised_phase, generator)
    loss = nn.functional.mse_loss(recon, normalised_phase) + kl_weight * kl_divergence(mean, logvar)
    if spectral_weight > 0:
        loss = loss + spectral_weight * ring_relative_error(recon, normalised_phase)
    if power_weight > 0:
        loss = loss + power_weight * ring_power_log_ratio(recon, normalised_phase)
    return loss


@torch.no_grad()
def fit_latent_scale(vae: PhaseVAE, phases: torch.Tensor) -> float:
    """1 / std of the unscaled encoder means over ``phases`` (B, H, W) radians; store it in ``vae.config``."""
    mean, _ = vae.moments(phases / vae.config.phase_scale_rad)
    return float(1.0 / mean.std().clamp_min(1e-6))
