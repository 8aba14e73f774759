"""Relaxed averaged alternating reflections (RAAR; Luke 2005, Inverse Problems 21:37) with a support.

    x <- beta/2 (R_S R_M + I) x + (1 - beta) P_M x = beta (x + P_S(2 P_M x - x) - P_M x) + (1 - beta) P_M x,

with ``R = 2 P - I`` and the projections of :mod:`cryophase.retrieval.hio`. The estimate is ``P_S P_M x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, register
from cryophase.retrieval.hio import modulus_step, require_support
from cryophase.retrieval.iterative import ProjectionSettings, in_chunks, prepare
from cryophase.retrieval.projections import object_phase


@register("raar")
@dataclass
class RelaxedAveragedAlternatingReflections(ProjectionSettings):
    """RAAR with a support. The fields are its configuration."""

    name: ClassVar[str] = "raar"

    #: Relaxation beta (1 is the Douglas-Rachford / difference map, 0 is error reduction); 0.8 measured better
    #: than 0.6 (-0.009 in mean NCC) and 0.9 (-0.012).
    beta: float = 0.8

    def __post_init__(self):
        self._check_settings(self.name)
        if not 0 < self.beta <= 1:
            raise ValueError(f"raar: beta must be in (0, 1], got {self.beta}")

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        return in_chunks(self._reconstruct, measurement, physics, self.chunk_size)

    def _reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics) -> RetrievalResult:
        problem = prepare(measurement, physics, self)
        require_support(problem, self.name)
        lens = problem.lens
        x = lens.exit_wave(problem.start)
        for _ in range(self.n_iterations):
            projected, phase = modulus_step(problem, x)
            reflected = lens.exit_wave(object_phase(2 * projected - x, problem.support))
            x = self.beta * (x + reflected - projected) + (1 - self.beta) * projected
        return RetrievalResult(phase, problem.history.stacked())
