"""What is trained: the VAE, the latent denoiser, its pixel-space peer, the regression peer. Each task turns a batch
into a loss.

A task owns its model and knows how to ``prepare`` a batch (non-differentiable steps: conditioning method,
frozen encoder), compute the ``loss`` with the (possibly DDP-wrapped) network, ``validate`` the EMA model and
``export`` it as a weights folder entry.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from cryophase.diffusion.schedule import DiffusionConfig, NoiseSchedule
from cryophase.evaluation.metrics import normalised_cross_correlation
from cryophase.models.bundle import ModelGrid, save_denoiser, save_pixel_denoiser, save_regressor, save_vae
from cryophase.models.conditioning import ConditioningConfig, condition_channels
from cryophase.models.pixel import PixelCodec
from cryophase.models.regression import PhaseRegressor
from cryophase.models.unet import UNet, physics_features
from cryophase.models.vae import PhaseVAE, fit_latent_scale, ring_power_log_ratio, ring_relative_error, vae_loss
from cryophase.pipeline import LatentPhasePipeline, PhaseCodec
from cryophase.training.data import Conditioner, TensorData, TrainingBatch


class VAETask:
    """Reconstruct clean phases through the KL-regularised bottleneck."""

    kind = "vae"

    def __init__(self, vae: PhaseVAE, kl_weight: float, grid: ModelGrid, spectral_weight: float = 0.0,
                 power_weight: float = 0.0):
        self.model, self.kl_weight, self.grid = vae, kl_weight, grid
        self.spectral_weight, self.power_weight = spectral_weight, power_weight

    def prepare(self, batch: TrainingBatch, generator: torch.Generator) -> dict:
        return {"x": batch.phase / self.model.config.phase_scale_rad, "phase": batch.phase}

    def loss(self, net: nn.Module, prepared: dict, generator: torch.Generator) -> torch.Tensor:
        return vae_loss(net, prepared["x"], self.kl_weight, generator, self.spectral_weight, self.power_weight)

    @torch.no_grad()
    def validate(self, model: PhaseVAE, prepared: dict, generator: torch.Generator) -> dict[str, float]:
        mean, _ = model.moments(prepared["x"])
        recon = model.decoder(mean)[:, 0] * model.config.phase_scale_rad
        return {"rmse_rad": float((recon - prepared["phase"]).pow(2).mean().sqrt()),
                "ncc": float(normalised_cross_correlation(recon, prepared["phase"]).mean()),
                "ring_relative_error": float(ring_relative_error(recon, prepared["phase"])),
                "ring_power_log_ratio": float(ring_power_log_ratio(recon, prepared["phase"]))}

    def export(self, model: PhaseVAE, folder: Path, prepared: dict) -> None:
        model.config.latent_scale = fit_latent_scale(model, prepared["phase"])
        save_vae(folder, model, self.grid)


class LDMTask:
    """Denoise noisy clean-phase latents given the encoded iterative estimate (the frozen codec does both).

    The codec is the trained VAE (latent diffusion) or a :class:`PixelCodec` (:class:`PixelDiffusionTask`).
    """

    kind = "ldm"

    def __init__(self, denoiser: UNet, codec: PhaseCodec, diffusion: DiffusionConfig, conditioner: Conditioner,
                 grid: ModelGrid, validation_steps: int = 10, conditioning: ConditioningConfig | None = None):
        self.model, self.codec, self.diffusion = denoiser, codec.eval().requires_grad_(False), diffusion
        self.schedule = NoiseSchedule(diffusion)
        self.conditioner, self.grid, self.validation_steps = conditioner, grid, validation_steps
        self.conditioning = conditioning if conditioning is not None else ConditioningConfig()

    @torch.no_grad()
    def cache_codes(self, data: TensorData, chunk_size: int = 256, progress: bool = True) -> TensorData:
        """Encode every particle's truth and condition once (the frozen codec is deterministic), so a training step
        costs the denoiser alone: with the default VAE on one CPU thread, 0.23 s instead of 1.3 s per batch of 64.

        ``data`` must carry its conditions (:func:`~cryophase.training.data.precompute_condition`).
        """
        if data.condition is None or data.condition_method != self.conditioner.method_name:
            raise ValueError(f"cache_codes needs the {self.conditioner.method_name!r} conditions computed first")
        device = next(self.codec.parameters(), torch.empty(0)).device
        z0, zc = [], []
        for start in tqdm(range(0, len(data), chunk_size), disable=not progress, desc="encoding"):
            rows = slice(start, start + chunk_size)
            z0.append(self.codec.encode(data.phase[rows].to(device)).cpu())
            zc.append(self.codec.encode(data.condition[rows].to(device)).cpu())
        return data.with_extras(z0=torch.cat(z0), condition_code=torch.cat(zc))

    @torch.no_grad()
    def prepare(self, batch: TrainingBatch, generator: torch.Generator) -> dict:
        condition_phase = self.conditioner(batch, generator)
        features = physics_features(batch.physics) if self.model.config.use_physics else None
        cached = ("z0" in batch.extras and "condition_code" in batch.extras
                  and batch.condition_method == self.conditioner.method_name)
        code = batch.extras["condition_code"] if cached else self.codec.encode(condition_phase)
        return {"z0": batch.extras["z0"] if cached else self.codec.encode(batch.phase),
                "condition": condition_channels(self.conditioning, code, condition_phase, batch.counts),
                "condition_phase": condition_phase, "counts": batch.counts, "features": features,
                "phase": batch.phase, "physics": batch.physics}

    def loss(self, net: nn.Module, prepared: dict, generator: torch.Generator) -> torch.Tensor:
        z0 = prepared["z0"]
        t = self.schedule.sample_timesteps(z0.shape[0], generator, z0.device)
        noise = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
        out = net(torch.cat([self.schedule.add_noise(z0, noise, t), prepared["condition"]], dim=1), t,
                  prepared["features"])
        return nn.functional.mse_loss(out, self.schedule.target(z0, noise, t))

    @torch.no_grad()
    def validate(self, model: UNet, prepared: dict, generator: torch.Generator) -> dict[str, float]:
        pipe = LatentPhasePipeline(self.codec, model, self.diffusion, self.conditioning)
        out = pipe(prepared["condition_phase"], prepared["physics"], generator=generator, counts=prepared["counts"],
                   n_steps=self.validation_steps)
        return {"loss": float(self.loss(model, prepared, generator)),
                "ncc": float(normalised_cross_correlation(out.mean, prepared["phase"]).mean()),
                "ncc_condition": float(normalised_cross_correlation(prepared["condition_phase"],
                                                                    prepared["phase"]).mean())}

    def export(self, model: UNet, folder: Path, prepared: dict) -> None:
        save_denoiser(folder, model, self.diffusion, self.conditioner.method_name, self.grid, self.conditioning)


class PixelDiffusionTask(LDMTask):
    """The pixel-space peer: the same denoising task with the identity :class:`PixelCodec` instead of the VAE."""

    kind = "pixel"
    codec: PixelCodec

    def export(self, model: UNet, folder: Path, prepared: dict) -> None:
        save_pixel_denoiser(folder, model, self.codec, self.diffusion, self.conditioner.method_name, self.grid)


class RegressionTask:
    """Map (contrast, iterative estimate) straight to the phase with a mean-squared loss."""

    kind = "regression"

    def __init__(self, regressor: PhaseRegressor, conditioner: Conditioner, grid: ModelGrid):
        self.model, self.conditioner, self.grid = regressor, conditioner, grid

    @torch.no_grad()
    def prepare(self, batch: TrainingBatch, generator: torch.Generator) -> dict:
        condition_phase = self.conditioner(batch, generator)
        features = physics_features(batch.physics) if self.model.config.backbone.use_physics else None
        return {"inputs": self.model.inputs(batch.counts, condition_phase), "features": features,
                "x": batch.phase / self.model.config.phase_scale_rad, "phase": batch.phase}

    def loss(self, net: nn.Module, prepared: dict, generator: torch.Generator) -> torch.Tensor:
        return nn.functional.mse_loss(net(prepared["inputs"], prepared["features"]), prepared["x"])

    @torch.no_grad()
    def validate(self, model: PhaseRegressor, prepared: dict, generator: torch.Generator) -> dict[str, float]:
        phase = model(prepared["inputs"], prepared["features"]) * model.config.phase_scale_rad
        return {"loss": float(self.loss(model, prepared, generator)),
                "ncc": float(normalised_cross_correlation(phase, prepared["phase"]).mean())}

    def export(self, model: PhaseRegressor, folder: Path, prepared: dict) -> None:
        save_regressor(folder, model, self.conditioner.method_name, self.grid)
