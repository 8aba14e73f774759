"""Encode -> sample -> decode, written out once.

:class:`LatentPhasePipeline` takes the iterative phase estimate of a batch (on the model's grid), encodes it with
the codec (the VAE encoder, or the identity :class:`~cryophase.models.pixel.PixelCodec` of the pixel-space peer)
as the condition (with the measurement itself when the denoiser was trained so:
:mod:`cryophase.models.conditioning`), runs a diffusers sampler in that space from seeded Gaussian noise, and
decodes ``K`` samples per image to their mean and per-pixel standard deviation. Optional measurement-consistency
guidance (DPS, Chung et al. 2023) follows the gradient of the Poisson likelihood of the counts through the decoder and
:meth:`ImagingPhysics.expected_counts`.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Protocol

import torch

from cryophase.diffusion.sampler import make_sampler
from cryophase.diffusion.schedule import DiffusionConfig, NoiseSchedule
from cryophase.models.conditioning import ConditioningConfig, condition_channels
from cryophase.models.unet import UNet, physics_features
from cryophase.physics.detector import poisson_nll_per_pixel
from cryophase.physics.forward import ImagingPhysics


class PhaseCodec(Protocol):
    """What the pipeline samples in: :class:`~cryophase.models.vae.PhaseVAE` (latent) or
    :class:`~cryophase.models.pixel.PixelCodec` (pixel space). Both are ``nn.Module``s."""

    def encode(self, phase: torch.Tensor) -> torch.Tensor:
        """Phases ``(B, H, W)`` radians -> the denoiser's space ``(B, C, h, w)``."""

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` -> phases ``(B, H, W)`` radians."""


@dataclass
class PipelineOutput:
    """Samples decoded to phase.

    Attributes
    ----------
    mean : (B, H, W) radians, the mean over samples.
    std : (B, H, W) radians, the predictive standard deviation of the truth about ``mean`` (see
        :func:`predictive_sd`; None for one sample).
    samples : (K, B, H, W) radians.
    """

    mean: torch.Tensor
    std: torch.Tensor | None
    samples: torch.Tensor


def predictive_sd(samples: torch.Tensor) -> torch.Tensor:
    """Per-pixel standard deviation of the truth about the mean of ``K`` posterior samples.

    If the samples are independent draws from the posterior, ``truth - mean`` has variance
    ``sigma^2 (1 + 1/K)``: the posterior's own spread plus the Monte Carlo error of a K-sample mean. The
    unbiased sample variance estimates ``sigma^2``, so this returns ``s * sqrt(1 + 1/K)``. For a Gaussian
    posterior ``(truth - mean) / predictive_sd`` follows Student's t with ``K - 1`` degrees of freedom, so
    ``mean +- 1.645 sd`` covers 85.6% at K = 8, 88.0% at K = 16 and 90% as K grows; the plain (1/K) sample
    sd would cover 81% at K = 8 even for a perfect sampler.

    Parameters
    ----------
    samples : torch.Tensor, (K, ...)
        K >= 2 samples along the first dimension.

    Returns
    -------
    torch.Tensor, (...)
    """
    k = samples.shape[0]
    if k < 2:
        raise ValueError(f"a spread needs at least 2 samples, got {k}")
    return samples.std(dim=0, correction=1) * math.sqrt(1 + 1 / k)


@dataclass
class Guidance:
    """Measurement-consistency guidance: the counts and physics on the model's grid, and a step size.

    Each step moves ``z_t`` against the gradient of the per-pixel Poisson NLL of ``counts`` given the decoded
    clean-latent estimate, normalised to unit RMS per image and scaled by ``scale * sqrt(1 - abar_t)``.
    """

    counts: torch.Tensor
    physics: ImagingPhysics
    scale: float

    def repeat(self, n_samples: int) -> "Guidance":
        """The guidance for ``n_samples`` samples of every image, stacked sample-major (K x B) like the samples."""
        rows = torch.arange(self.counts.shape[0]).repeat(n_samples)
        return Guidance(self.counts[rows.to(self.counts.device)], self.physics[rows], self.scale)


class LatentPhasePipeline:
    """The conditional diffusion model at inference: codec (VAE, or identity in pixel space) + denoiser + sampler."""

    def __init__(self, codec: PhaseCodec, denoiser: UNet, diffusion: DiffusionConfig,
                 conditioning: ConditioningConfig | None = None):
        self.codec = codec.eval()
        self.denoiser = denoiser.eval()
        self.diffusion = diffusion
        self.conditioning = conditioning if conditioning is not None else ConditioningConfig()
        self.schedule = NoiseSchedule(diffusion)

    def _denoise(self, zt: torch.Tensor, condition: torch.Tensor, t: torch.Tensor,
                 features: torch.Tensor | None) -> torch.Tensor:
        return self.denoiser(torch.cat([zt, condition], dim=1), t.reshape(1).expand(zt.shape[0]), features)

    def _guidance_step(self, zt: torch.Tensor, condition: torch.Tensor, t: torch.Tensor,
                       features: torch.Tensor | None, guidance: Guidance):
        """Model output at ``zt`` and the guidance displacement (same shape as ``zt``); ``guidance`` holds one
        entry per row of ``zt`` (:meth:`Guidance.repeat`)."""
        with torch.enable_grad():
            zt_ = zt.detach().requires_grad_(True)
            out = self._denoise(zt_, condition, t, features)
            z0 = self.schedule.predict_z0(zt_, out, t.reshape(1).expand(zt.shape[0]))
            phase = self.codec.decode(z0)
            physics = guidance.physics
            expected = physics.expected_counts(phase.to(physics.dose_e_per_a2.dtype))
            nll = poisson_nll_per_pixel(guidance.counts, expected).sum()
            (grad,) = torch.autograd.grad(nll, zt_)
        rms = grad.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        _, sigma = self.schedule.coefficients(t.reshape(1), zt)
        return out.detach(), -guidance.scale * sigma * grad / rms

    @torch.no_grad()
    def __call__(self, condition_phase: torch.Tensor, physics: ImagingPhysics, *, generator: torch.Generator,
                 counts: torch.Tensor | None = None, n_samples: int = 1, n_steps: int = 20, sampler: str = "ddim",
                 guidance: Guidance | None = None) -> PipelineOutput:
        """Sample phases given the iterative estimate.

        Parameters
        ----------
        condition_phase : (B, H, W) radians, on the model grid.
        physics : the batch's imaging physics on the model grid (for physics conditioning and guidance).
        generator : drives the initial noise; the same generator state gives bit-identical output.
        counts : (B, H, W) the measured counts on the model grid; needed when the denoiser is conditioned on the
            measurement (``conditioning.pixel_inputs``).
        n_samples : K samples per image (batched together).
        n_steps : sampler steps.
        sampler : "ddim" or "dpm-solver".
        guidance : optional measurement-consistency guidance.
        """
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        b = condition_phase.shape[0]
        code = self.codec.encode(condition_phase)
        condition = condition_channels(self.conditioning, code, condition_phase, counts)
        expected = self.denoiser.config.in_channels - code.shape[1]
        if condition.shape[1] != expected:
            raise ValueError(f"the denoiser takes {expected} condition channels but the conditioning "
                             f"{self.conditioning} gives {condition.shape[1]}: weights and config disagree")
        condition = condition.repeat(n_samples, 1, 1, 1)
        features = (physics_features(physics).to(condition.device).repeat(n_samples, 1)
                    if self.denoiser.config.use_physics else None)
        scheduler = make_sampler(sampler, self.diffusion, n_steps)
        zt = torch.randn((n_samples * b, *code.shape[1:]), generator=generator, device=code.device, dtype=code.dtype)
        zt = zt * scheduler.init_noise_sigma
        if guidance is not None:
            guidance = guidance.repeat(n_samples)  # once, not at every step
        for t in scheduler.timesteps:
            t = t.to(condition.device)
            if guidance is not None and guidance.scale > 0:
                out, push = self._guidance_step(zt, condition, t, features, guidance)
                zt = scheduler.step(out, t, zt).prev_sample + push
            else:
                zt = scheduler.step(self._denoise(zt, condition, t, features), t, zt).prev_sample
        samples = self.codec.decode(zt).reshape(n_samples, b, *condition_phase.shape[-2:])
        std = predictive_sd(samples) if n_samples > 1 else None
        return PipelineOutput(mean=samples.mean(dim=0), std=std, samples=samples)
