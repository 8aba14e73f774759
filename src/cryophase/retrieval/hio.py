"""Fienup's hybrid input-output (HIO) with a pure-phase object and a support.

In the projection form of Bauschke, Combettes & Luke (2002, JOSA A 19:1334),

    x <- x + P_S((1 + beta) P_M x - x) - beta P_M x,

applied to the scattered wave ``x - 1`` (so outside the support HIO's ``x - beta P_M x`` drives the scattered
wave, not the whole wave, to zero):

    x <- x + P_S((1 + beta) P_M x - x + 1 - beta) - beta P_M x - (1 - beta),

with ``P_M`` the detector-modulus projection (through the lens) and ``P_S`` the object projection: unit-modulus
``exp((i - alpha) phi)`` with ``phi = angle`` inside the support and ``psi = 1`` (phi = 0) outside. The estimate
of each iteration (reported and returned) is ``P_S P_M x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, register
from cryophase.retrieval.iterative import Problem, ProjectionSettings, prepare
from cryophase.retrieval.projections import modulus_projection, object_phase


def modulus_step(problem: Problem, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(P_M x, phi)``: the modulus projection of the iterate and the object phase of that projection,
    recording the estimate's detector residual."""
    lens = problem.lens
    spectrum, wave = lens.to_detector_spectrum(x)
    projected = lens.correct(spectrum, modulus_projection(wave, problem.modulus) - wave)
    phase = object_phase(projected, problem.support)
    problem.record(lens.to_detector_spectrum(lens.exit_wave(phase))[1])
    return projected, phase


def require_support(problem: Problem, method: str) -> None:
    if problem.support is None:
        raise ValueError(f"{method} needs a support: set support_diameter_angstrom or support_threshold")


@register("hio")
@dataclass
class HybridInputOutput(ProjectionSettings):
    """HIO (Fienup 1982) with a support. The fields are its configuration."""

    name: ClassVar[str] = "hio"

    #: Feedback parameter beta.
    beta: float = 0.9
    #: Threshold support on the low-passed Wiener estimate (fraction of its maximum).
    support_threshold: float | None = 0.2

    def __post_init__(self):
        self._check_settings(self.name)
        if not 0 < self.beta <= 1:
            raise ValueError(f"hio: beta must be in (0, 1], got {self.beta}")

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        problem = prepare(measurement, physics, self)
        require_support(problem, self.name)
        lens = problem.lens
        x = lens.exit_wave(problem.start)
        for _ in range(self.n_iterations):
            projected, phase = modulus_step(problem, x)
            shift = 1 - self.beta
            feedback = lens.exit_wave(object_phase((1 + self.beta) * projected - x + shift, problem.support))
            x = x + feedback - self.beta * projected - shift
        return RetrievalResult(phase, problem.history.stacked())
