"""Reweighted amplitude flow (RAF), as in Ghostbuster (Yeo et al. 2024, Ultramicroscopy 262:113962).

Gradient step on the weighted amplitude loss ``sum w (|u| - sqrt(y))^2`` with ``u = sqrt(N) A psi`` the
detector amplitude model in counts; the weights ``w = r / (r + beta)``, ``r = |u| / sqrt(y)`` (Wang, Giannakis
& Chen 2018) damp pixels whose model amplitude is far below the measurement, and pixels with zero counts get
``w = 0``. In normalised units the step is ``psi <- psi + mu A^+[w (P_M g - g)]``, followed by the pure-phase
projection ``phi = angle(psi)``; ``mu = 1, w = 1`` is Gerchberg-Saxton.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, register
from cryophase.retrieval.iterative import ProjectionSettings, in_chunks, prepare
from cryophase.retrieval.projections import magnitude, object_phase


def raf_factor(amplitude: torch.Tensor, modulus: torch.Tensor, beta: float, step: float) -> torch.Tensor:
    """Real factor ``f`` with ``mu w (P_M g - g) = f g``, (B, H, W).

    With ``r = |g| / m`` (= |u| / sqrt(y)) and ``w = r / (r + beta)``: ``w (m / |g| - 1) = (m - |g|) / (|g| +
    beta m)``; 0 where the measurement is 0.
    """
    tiny = torch.finfo(modulus.dtype).tiny
    factor = (step * (modulus - amplitude)) / (amplitude + beta * modulus).clamp_min(tiny)
    return torch.where(modulus > 0, factor, torch.zeros_like(factor))


@register("raf")
@dataclass
class ReweightedAmplitudeFlow(ProjectionSettings):
    """Reweighted amplitude flow with a pure-phase object constraint. The fields are its configuration."""

    name: ClassVar[str] = "raf"

    #: Gradient step in units of the exact (unitary-lens) amplitude-flow step; Ghostbuster uses 1 (0.5 / 2 gave
    #: mean NCC 0.281 / 0.296 vs 0.291 at 1 on the set of :mod:`cryophase.retrieval.iterative`).
    step: float = 1.0
    #: Reweighting constant beta of ``w = r / (r + beta)``; Ghostbuster uses 0.8 (0.3 / 3 gave 0.294 / 0.278).
    weight_beta: float = 0.8

    def __post_init__(self):
        self._check_settings(self.name)
        if self.step <= 0:
            raise ValueError(f"raf: step must be positive, got {self.step}")
        if self.weight_beta < 0:
            raise ValueError(f"raf: weight_beta must be non-negative, got {self.weight_beta}")

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        return in_chunks(self._reconstruct, measurement, physics, self.chunk_size)

    def _reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics) -> RetrievalResult:
        problem = prepare(measurement, physics, self)
        lens, phase, modulus = problem.lens, problem.start, problem.modulus
        for _ in range(self.n_iterations):
            spectrum, wave = lens.to_detector_spectrum(lens.exit_wave(phase))
            amplitude = magnitude(wave)
            problem.history.record(amplitude)
            change = wave * raf_factor(amplitude, modulus, self.weight_beta, self.step)
            phase = object_phase(lens.correct(spectrum, change), problem.support)
        return RetrievalResult(phase, problem.history.stacked())
