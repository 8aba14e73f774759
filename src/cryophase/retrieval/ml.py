"""Poisson maximum likelihood with a total-variation prior, by gradient descent through the forward model.

Minimises, per image,

    L(phi) = sum_pixels [ mu(phi) - y log mu(phi) ] / N + tv_weight * sum_pixels sqrt(|grad phi|^2 + eps^2),

with ``mu = N |A exp((i - alpha) phi)|^2`` -- :meth:`ImagingPhysics.expected_counts` evaluated with the lens
precomputed once (:class:`~cryophase.retrieval.projections.Lens`, equal to it to rounding, see the tests) --
differentiated by torch.autograd, from the Wiener estimate.
The NLL is divided by the incident electrons per pixel ``N``, so ``tv_weight`` is in nats per incident electron
per radian of total variation and the prior keeps its weight relative to the data as the dose changes. A MAP
estimate with an exact model would let the prior fade with dose (no division), but on simulated particles in
ice the misfit that the model cannot explain (the ice's phase, the inelastic background, the detector MTF)
grows with the dose like the signal: the best fixed nats-per-radian weight rose from ~20 at 15 e/A^2 to ~50 at
60 e/A^2 (N = 184 and 735 at 3.5 A/px), i.e. stayed near 0.1 per electron. Images are independent: the batch loss is
the sum over images and Adam's update is elementwise, so batched equals looped (L-BFGS shares one line search
across the batch and does not have that property).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, register
from cryophase.retrieval.projections import History, Lens, check_measurement
from cryophase.retrieval.wiener import Wiener


def total_variation(phase: torch.Tensor, eps: float) -> torch.Tensor:
    """Smoothed isotropic total variation with periodic boundaries, per image, (B,)."""
    dy = torch.roll(phase, -1, dims=-2) - phase
    dx = torch.roll(phase, -1, dims=-1) - phase
    return torch.sqrt(dx**2 + dy**2 + eps**2).sum(dim=(-2, -1))


def poisson_objective(counts: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """``sum(mu - y log mu)`` per image, (B,)."""
    return (expected - counts * torch.log(expected.clamp_min(torch.finfo(expected.dtype).tiny))).sum(dim=(-2, -1))


@register("ml")
@dataclass
class PoissonMaximumLikelihood:
    """Poisson ML / MAP with a TV prior. The fields are its configuration."""

    name: ClassVar[str] = "ml"

    #: Number of optimiser steps.
    n_iterations: int = 100
    #: Optimiser: "adam" (per-image independent) or "lbfgs" (one line search for the batch).
    optimizer: Literal["adam", "lbfgs"] = "adam"
    #: Adam learning rate (radians per step) or L-BFGS initial step.
    learning_rate: float = 0.01
    #: Weight of the total-variation prior, nats per incident electron per radian.
    tv_weight: float = 0.1
    #: Smoothing of the TV norm, radians.
    tv_eps: float = 1e-3
    #: Clamp the phase at zero from below after every step (protein has phi >= 0 relative to vacuum).
    positivity: bool = False

    def __post_init__(self):
        if self.n_iterations < 1:
            raise ValueError(f"ml: n_iterations must be at least 1, got {self.n_iterations}")
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"ml: optimizer must be 'adam' or 'lbfgs', got {self.optimizer!r}")
        if self.learning_rate <= 0 or self.tv_weight < 0 or self.tv_eps <= 0:
            raise ValueError("ml: learning_rate and tv_eps must be positive and tv_weight non-negative")

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        check_measurement(measurement, physics)
        physics = physics.to(measurement.device, measurement.dtype)
        n = physics.counts_per_pixel[:, None, None]
        lens = Lens.from_physics(physics, measurement.shape[-2:], dtype=measurement.dtype, device=measurement.device)
        history = History(measurement, physics)
        start = Wiener().phase(measurement, physics)
        if self.positivity:
            start = start.clamp_min(0)
        phase = start.clone().requires_grad_(True)

        def objective() -> torch.Tensor:
            wave = lens.to_detector_spectrum(lens.exit_wave(phase))[1]
            expected = n * (wave.real**2 + wave.imag**2)
            likelihood = poisson_objective(measurement, expected) / n[:, 0, 0]
            loss = likelihood + self.tv_weight * total_variation(phase, self.tv_eps)
            return loss, expected

        with torch.enable_grad():
            if self.optimizer == "adam":
                optimiser = torch.optim.Adam([phase], lr=self.learning_rate)
            else:
                optimiser = torch.optim.LBFGS([phase], lr=self.learning_rate, max_iter=1,
                                              line_search_fn="strong_wolfe")
            for _ in range(self.n_iterations):
                def closure():
                    optimiser.zero_grad(set_to_none=True)
                    loss, expected = objective()
                    loss.sum().backward()
                    closure.expected = expected.detach()
                    return loss.sum()

                optimiser.step(closure)
                history.record(torch.sqrt(closure.expected / n))
                if self.positivity:
                    with torch.no_grad():
                        phase.clamp_(min=0)
        return RetrievalResult(phase.detach(), history.stacked())
