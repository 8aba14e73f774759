"""``ldm``: the latent conditional diffusion model (the paper's method) as a reconstructor.

For each batch: move the counts to the model's grid (Fourier rescale, centre crop/pad), run the conditioning method
the weights were trained with on them, encode, sample in latent space, decode, and map the
mean (and, with ``samples > 1``, the per-pixel standard deviation) back to the input's grid and pixel size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from cryophase.models.bundle import (check_denoiser_fits_vae, check_same_grid, load_denoiser, load_vae,
                                     resolve_weights_folder)
from cryophase.models.grid import from_model_grid
from cryophase.physics.forward import ImagingPhysics
from cryophase.pipeline import Guidance, LatentPhasePipeline
from cryophase.retrieval.base import RetrievalResult, get_method, register
from cryophase.retrieval.ml import PoissonMaximumLikelihood
from cryophase.retrieval.model_grid import counts_on_model_grid, uniform_pixel_groups, with_measured_dose


@register("ldm")
@dataclass
class LatentDiffusionReconstructor:
    """Options of the ``ldm`` reconstructor.

    Attributes
    ----------
    weights : folder with vae/denoiser .safetensors + .json; None uses the weights shipped with the package.
    condition_method : the iterative method whose result conditions the model; None uses the one the weights
        were trained with (a different one is refused).
    n_steps : sampler steps.
    sampler : "ddim" or "dpm-solver".
    samples : K samples per particle; K > 1 also returns the per-pixel standard deviation.
    guidance_scale : measurement-consistency (DPS) step size; 0 disables it.
    refine_iterations : after decoding, this many Poisson maximum-likelihood (``ml``) steps started from the
        posterior mean, against the measured counts on the input grid; 0 disables it. The uncertainty map stays
        the spread of the samples.
    batch_size : particles per network batch.
    """

    weights: Path | None = None
    condition_method: str | None = None
    n_steps: int = 20
    sampler: str = "ddim"
    samples: int = 1
    guidance_scale: float = 0.0
    refine_iterations: int = 0
    batch_size: int = 64
    name: ClassVar[str] = "ldm"

    def __post_init__(self):
        if self.refine_iterations < 0:
            raise ValueError(f"ldm: refine_iterations must be 0 or more, got {self.refine_iterations}")
        folder = resolve_weights_folder(self.weights)
        vae, vae_grid = load_vae(folder)
        denoiser, diffusion, trained_condition, self.grid, conditioning = load_denoiser(folder)
        check_same_grid(vae_grid, self.grid, folder)
        check_denoiser_fits_vae(vae, denoiser, conditioning, folder)
        self._use(folder, LatentPhasePipeline(vae, denoiser, diffusion, conditioning), trained_condition)

    def _use(self, folder: Path, pipeline: LatentPhasePipeline, trained_condition: str) -> None:
        """Adopt the loaded model and the conditioning method it was trained with (another one is refused)."""
        if self.condition_method is not None and self.condition_method != trained_condition:
            raise ValueError(f"{folder}: the model was trained on {trained_condition!r} results; "
                             f"condition_method={self.condition_method!r} would not match")
        self.condition_method = trained_condition
        self.pipeline = pipeline
        self._condition = get_method(trained_condition)

    def _sample(self, counts: torch.Tensor, physics: ImagingPhysics, generator: torch.Generator):
        """Sample on the model grid for images that share one pixel size; returns phase, std on the input grid."""
        pixel = float(physics.optics.pixel_size_angstrom[0])
        device = next(self.pipeline.denoiser.parameters()).device
        # the conditioning method runs on the model's grid, as in training (and 16x cheaper for a 4x finer input),
        # with the dose the counts show rather than the metadata's
        model_counts, model_physics = counts_on_model_grid(counts, with_measured_dose(counts, physics), self.grid)
        condition_m = self._condition.reconstruct(model_counts, model_physics, generator=generator).phase
        condition_m = condition_m.float().to(device)
        guidance = None
        if self.guidance_scale > 0:
            guidance = Guidance(model_counts.to(device), model_physics.to(device), self.guidance_scale)
        out = self.pipeline(condition_m, model_physics.to(device), generator=generator,
                            counts=model_counts.to(device), n_samples=self.samples,
                            n_steps=self.n_steps, sampler=self.sampler, guidance=guidance)
        shape, model_pixel = tuple(counts.shape[-2:]), self.grid.pixel_size_angstrom
        phase = from_model_grid(out.mean, pixel, model_pixel, shape)
        # Fourier resampling can ring below zero where the sd map has sharp edges: an sd is never negative
        std = from_model_grid(out.std, pixel, model_pixel, shape).clamp_min(0) if out.std is not None else None
        return phase, std

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        """Phases ``(B, H, W)`` from counts ``(B, H, W)``; ``uncertainty`` is the per-pixel sd when samples > 1."""
        if generator is None:
            raise ValueError("ldm samples noise and needs a torch.Generator")
        self.pipeline.codec.to(measurement.device)
        self.pipeline.denoiser.to(measurement.device)
        phase = torch.empty(measurement.shape, dtype=measurement.dtype, device=measurement.device)
        std = torch.empty_like(phase) if self.samples > 1 else None
        for _, idx in uniform_pixel_groups(physics).items():
            for chunk in idx.split(self.batch_size):
                p, s = self._sample(measurement[chunk], physics[chunk], generator)
                phase[chunk] = p.to(phase)
                if std is not None:
                    std[chunk] = s.to(std)
        history = {}
        if self.refine_iterations > 0:
            refined = PoissonMaximumLikelihood(n_iterations=self.refine_iterations).refine(measurement, physics, phase)
            phase, history = refined.phase.to(phase), refined.history
        return RetrievalResult(phase=phase, history=history, uncertainty=std)
