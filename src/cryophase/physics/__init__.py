"""The image-formation model: pure, batched, differentiable torch functions. Imports nothing learned."""

from cryophase.physics.optics import Optics
from cryophase.physics.ctf import aberration_phase, ctf, frequency_grid
from cryophase.physics.forward import (
    ImagingPhysics,
    exit_wave,
    expected_counts,
    intensity,
    propagate,
    weak_phase_intensity,
)
from cryophase.physics.detector import poisson_log_likelihood, sample_counts

__all__ = [
    "Optics",
    "ImagingPhysics",
    "aberration_phase",
    "ctf",
    "frequency_grid",
    "exit_wave",
    "propagate",
    "intensity",
    "expected_counts",
    "weak_phase_intensity",
    "sample_counts",
    "poisson_log_likelihood",
]
