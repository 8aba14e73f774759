"""The forward (noising) process used in training and the conversions between model outputs.

``z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps``; the model predicts ``eps``, ``v = sqrt(abar) eps -
sqrt(1 - abar) z_0`` or ``z_0`` (``prediction_type``). The betas come from diffusers' ``DDPMScheduler`` so training
and the diffusers samplers share one schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


@dataclass
class DiffusionConfig:
    """Noise schedule and what the denoiser predicts.

    Attributes
    ----------
    num_train_timesteps : discretisation of the forward process.
    beta_schedule : diffusers beta schedule ("squaredcos_cap_v2" is the cosine schedule).
    prediction_type : "epsilon", "v_prediction" or "sample" (x0).
    """

    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"

    def __post_init__(self):
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type {self.prediction_type!r}: choose from {PREDICTION_TYPES}")

    def scheduler_kwargs(self) -> dict:
        return dict(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule,
                    prediction_type=self.prediction_type)


class NoiseSchedule:
    """Forward process and prediction-type conversions for one :class:`DiffusionConfig`."""

    def __init__(self, config: DiffusionConfig):
        self.config = config
        from diffusers import DDPMScheduler  # imported here: diffusers takes seconds to import

        self.alphas_cumprod = DDPMScheduler(**config.scheduler_kwargs()).alphas_cumprod.to(torch.float32)

    def coefficients(self, timesteps: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sqrt(abar_t)`` and ``sqrt(1 - abar_t)`` at ``timesteps``, shaped to broadcast against ``like``."""
        abar = self.alphas_cumprod.to(like.device)[timesteps.to(like.device).long()].to(like.dtype)
        shape = (-1,) + (1,) * (like.ndim - 1)
        return abar.sqrt().reshape(shape), (1 - abar).sqrt().reshape(shape)

    def sample_timesteps(self, n: int, generator: torch.Generator, device) -> torch.Tensor:
        """Uniform training timesteps, ``(n,)`` int64."""
        return torch.randint(0, self.config.num_train_timesteps, (n,), generator=generator, device=device)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        a, s = self.coefficients(timesteps, z0)
        return a * z0 + s * noise

    def target(self, z0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the denoiser is trained to output for ``prediction_type``."""
        if self.config.prediction_type == "epsilon":
            return noise
        if self.config.prediction_type == "sample":
            return z0
        a, s = self.coefficients(timesteps, z0)
        return a * noise - s * z0

    def predict_z0(self, zt: torch.Tensor, model_output: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The clean-latent estimate implied by a model output at ``timesteps``."""
        if self.config.prediction_type == "sample":
            return model_output
        a, s = self.coefficients(timesteps, zt)
        if self.config.prediction_type == "epsilon":
            return (zt - s * model_output) / a
        return a * zt - s * model_output
