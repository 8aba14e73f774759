"""Fienup's hybrid input-output (HIO) with a pure-phase object and a support.

Fienup (1982, Appl. Opt. 21:2758) on the scattered wave ``x - 1`` (the unscattered beam is 1 everywhere, so
"zero outside the support" means ``psi = 1`` there), with the pure-phase constraint applied inside:

    inside the support:   x <- exp((i - alpha) angle(P_M x))
    outside the support:  x <- x - beta (P_M x - 1)

with ``P_M`` the detector-modulus projection through the lens. The estimate of each iteration (reported and
returned) is the object projection of ``P_M x``. (The projection form of Bauschke, Combettes & Luke 2002,
``x + P_S((1 + beta) P_M x - x) - beta P_M x``, is only HIO for linear or cone constraints; with the
unit-modulus constraint it takes the phase of a difference of waves and diverges.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, register
from cryophase.retrieval.iterative import Problem, ProjectionSettings, in_chunks, prepare
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


@dataclass
class SupportFeedback(ProjectionSettings, ABC):
    """The loop shared by the support-based feedback methods (HIO, RAAR): ``x <- update(x, P_M x)``, with the
    object phase of ``P_M x`` as each iteration's estimate. Subclasses set ``beta``'s default and ``update``."""

    name: ClassVar[str] = "support-feedback"

    #: Feedback / relaxation parameter, in (0, 1].
    beta: float = 0.5

    def __post_init__(self):
        self._check_settings(self.name)
        if not 0 < self.beta <= 1:
            raise ValueError(f"{self.name}: beta must be in (0, 1], got {self.beta}")

    @abstractmethod
    def update(self, problem: Problem, x: torch.Tensor, projected: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """The next iterate from ``x``, its modulus projection and that projection's object phase."""

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        return in_chunks(self._reconstruct, measurement, physics, self.chunk_size)

    def _reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics) -> RetrievalResult:
        problem = prepare(measurement, physics, self)
        require_support(problem, self.name)
        x = problem.lens.exit_wave(problem.start)
        for _ in range(self.n_iterations):
            projected, phase = modulus_step(problem, x)
            x = self.update(problem, x, projected, phase)
        return RetrievalResult(phase, problem.history.stacked())


@register("hio")
@dataclass
class HybridInputOutput(SupportFeedback):
    """HIO (Fienup 1982) with a support. The fields are its configuration."""

    name: ClassVar[str] = "hio"

    #: Feedback parameter beta. Fienup's usual 0.9 recovers noiseless objects but amplifies shot noise outside
    #: the support: mean NCC on the simulated set of :mod:`cryophase.retrieval.iterative` at beta 0.9 / 0.5 /
    #: 0.2 / 0.1 / 0.05 = 0.03 / 0.13 / 0.24 / 0.26 / 0.27 (the ER limit, ``gs``, 0.30); 0.1 keeps most of that
    #: while still feeding back.
    beta: float = 0.1

    def update(self, problem: Problem, x: torch.Tensor, projected: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        return torch.where(problem.support, problem.lens.exit_wave(phase), x - self.beta * (projected - 1))
