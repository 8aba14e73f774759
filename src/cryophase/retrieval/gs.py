"""Gerchberg-Saxton / error reduction between the detector modulus and a pure-phase exit wave.

Each iteration: ``g = A exp((i - alpha) phi)``; replace ``|g|`` by ``sqrt(y / N)``; map back with the lens
pseudo-inverse; ``phi = angle(psi)`` (0 outside the support). Started from the Wiener estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, register
from cryophase.retrieval.iterative import ProjectionSettings, in_chunks, prepare
from cryophase.retrieval.projections import magnitude, object_phase


@register("gs")
@dataclass
class GerchbergSaxton(ProjectionSettings):
    """Error reduction (Gerchberg & Saxton 1972; Fienup 1982). The fields are its configuration."""

    name: ClassVar[str] = "gs"

    def __post_init__(self):
        self._check_settings(self.name)

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        return in_chunks(self._reconstruct, measurement, physics, self.chunk_size)

    def _reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics) -> RetrievalResult:
        problem = prepare(measurement, physics, self)
        lens, phase, modulus = problem.lens, problem.start, problem.modulus
        tiny = torch.finfo(modulus.dtype).tiny
        for _ in range(self.n_iterations):
            spectrum, wave = lens.to_detector_spectrum(lens.exit_wave(phase))
            amplitude = magnitude(wave)
            problem.history.record(amplitude)
            # P_M g - g = (m / |g| - 1) g
            change = wave * ((modulus - amplitude) / amplitude.clamp_min(tiny))
            phase = object_phase(lens.correct(spectrum, change), problem.support)
        return RetrievalResult(phase, problem.history.stacked())
