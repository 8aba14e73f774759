"""Tiny models and data shared by the model and training tests (seconds on two CPU cores)."""

from __future__ import annotations

import torch

from cryophase.diffusion.schedule import DiffusionConfig
from cryophase.models.regression import RegressionConfig
from cryophase.models.unet import UNetConfig
from cryophase.models.vae import VAEConfig
from cryophase.physics.detector import sample_counts
from cryophase.physics.forward import ImagingPhysics
from cryophase.physics.optics import Optics
from cryophase.training.data import TensorData
from cryophase.training.loop import LoopConfig
from cryophase.training.presets import Preset

SIZE = 16
PIXEL_A = 3.5


def tiny_vae_config() -> VAEConfig:
    return VAEConfig(latent_channels=2, base_channels=8, n_downsamplings=2, phase_scale_rad=0.5)


def tiny_unet_config() -> UNetConfig:
    return UNetConfig(in_channels=4, out_channels=2, base_channels=8, channel_multipliers=(1, 2),
                      embedding_dim=16)


def tiny_pixel_unet_config() -> UNetConfig:
    return UNetConfig(in_channels=2, out_channels=1, base_channels=8, channel_multipliers=(1, 2), embedding_dim=16)


def tiny_regression_config() -> RegressionConfig:
    return RegressionConfig(UNetConfig(in_channels=2, out_channels=1, base_channels=8, channel_multipliers=(1, 2),
                                       use_timestep=False, embedding_dim=16), phase_scale_rad=0.5)


def blob_phases(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random sums of 3 Gaussian blobs, (n, size, size) radians, peak about 0.5 rad."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    centres = size / 2 + (torch.rand(n, 3, 2, generator=generator) - 0.5) * size / 2
    widths = size / 10 + torch.rand(n, 3, generator=generator) * size / 10
    d2 = (yy[None, None] - centres[..., 0, None, None]) ** 2 + (xx[None, None] - centres[..., 1, None, None]) ** 2
    return 0.5 * torch.exp(-d2 / (2 * widths[..., None, None] ** 2)).sum(dim=1)


def tiny_data(n: int = 32, size: int = SIZE, seed: int = 0) -> TensorData:
    """Blob phases imaged at 300 kV, 1.5 um defocus, 30 e/A^2, with Poisson noise."""
    g = torch.Generator().manual_seed(seed)
    phase = blob_phases(n, size, g)
    defocus = 10000.0 + 10000.0 * torch.rand(n, generator=g)
    physics = ImagingPhysics(Optics.create(defocus_u_angstrom=defocus, pixel_size_angstrom=PIXEL_A),
                             torch.full((n,), 30.0))
    counts = sample_counts(physics.expected_counts(phase), g)
    return TensorData(phase, counts, physics)


def tiny_preset(max_steps: int = 4) -> Preset:
    loop = LoopConfig(batch_size=4, learning_rate=1e-3, warmup_steps=1, max_steps=max_steps, validate_every=2,
                      checkpoint_every=2, n_validation=4, ema_decay=0.9)
    return Preset(name="tiny", image_size=SIZE, pixel_size_angstrom=PIXEL_A, vae=tiny_vae_config(),
                  denoiser=tiny_unet_config(), regression=tiny_regression_config(),
                  pixel_denoiser=tiny_pixel_unet_config(),
                  diffusion=DiffusionConfig(num_train_timesteps=100), condition_method="wiener",
                  vae_loop=loop, ldm_loop=loop, regression_loop=loop, pixel_loop=loop)
