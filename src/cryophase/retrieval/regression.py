"""``regression``: the supervised UNet peer of ``ldm`` (same data, same conditioning, no sampling)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from cryophase.models.bundle import load_regressor, resolve_weights_folder
from cryophase.models.grid import from_model_grid
from cryophase.models.unet import physics_features
from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, get_method, register
from cryophase.retrieval.model_grid import counts_on_model_grid, uniform_pixel_groups, with_measured_dose


@register("regression")
@dataclass
class RegressionReconstructor:
    """Options of the ``regression`` reconstructor.

    Attributes
    ----------
    weights : folder with regression.safetensors + .json; None uses the shipped weights.
    batch_size : particles per network batch.
    """

    weights: Path | None = None
    batch_size: int = 64
    name: ClassVar[str] = "regression"

    def __post_init__(self):
        folder = resolve_weights_folder(self.weights)
        self.model, condition_method, self.grid = load_regressor(folder)
        self._condition = get_method(condition_method)

    @torch.no_grad()
    def _predict(self, counts: torch.Tensor, physics: ImagingPhysics, generator: torch.Generator) -> torch.Tensor:
        pixel = float(physics.optics.pixel_size_angstrom[0])
        model_counts, model_physics = counts_on_model_grid(counts, with_measured_dose(counts, physics), self.grid)
        condition = self._condition.reconstruct(model_counts, model_physics, generator=generator).phase
        device = next(self.model.parameters()).device
        inputs = self.model.inputs(model_counts, condition)
        features = physics_features(model_physics) if self.model.config.backbone.use_physics else None
        out = self.model(inputs.to(device), None if features is None else features.to(device))
        return from_model_grid(out * self.model.config.phase_scale_rad, pixel, self.grid.pixel_size_angstrom,
                               tuple(counts.shape[-2:]))

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        self.model.to(measurement.device)
        phase = torch.empty(measurement.shape, dtype=measurement.dtype, device=measurement.device)
        for _, idx in uniform_pixel_groups(physics).items():
            for chunk in idx.split(self.batch_size):
                phase[chunk] = self._predict(measurement[chunk], physics[chunk], generator).to(phase)
        return RetrievalResult(phase=phase, history={})
