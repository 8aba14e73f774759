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

Measured defaults (the simulated set of :mod:`cryophase.retrieval.iterative`, mean NCC over 15/30/60 e/A^2,
Wiener start 0.230): tv_weight 0.03 / 0.06 / 0.08 / 0.1 / 0.13 / 0.2 -> 0.32 / 0.44 / 0.48 / 0.48 / 0.45 / 0.38
(100 Adam steps of 0.01, positivity); positivity adds 0.01; Adam 50 steps of 0.005 -> 0.507, 100 of 0.002 ->
0.509, 200 of 0.005 -> 0.499, 100 of 0.01 -> 0.481, 100 of 0.03 -> 0.39. With a negligible prior (about
0.005 per electron) ML fits the noise: 0.145. Re-checked after the simulator's ice background grew (every
method then scores NCC 0.03-0.15): the default 0.152, tv_weight 0.3 / 1 / 3 -> 0.112 / 0.088 / 0.076, no
positivity at tv 1 -> 0.068.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, register
from cryophase.retrieval.iterative import in_chunks
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
    n_iterations: int = 50
    #: Optimiser: "adam" (per-image independent) or "lbfgs" (one line search for the batch).
    optimizer: Literal["adam", "lbfgs"] = "adam"
    #: Adam learning rate (radians per step) or L-BFGS initial step.
    learning_rate: float = 0.005
    #: Weight of the total-variation prior, nats per incident electron per radian.
    tv_weight: float = 0.1
    #: Smoothing of the TV norm, radians.
    tv_eps: float = 1e-3
    #: Clamp the phase at zero from below after every step (protein has phi >= 0 relative to the ice).
    positivity: bool = True
    #: Images optimised together (speed only with Adam); None: 32 on a CPU, all on a GPU.
    chunk_size: int | None = None

    def __post_init__(self):
        if self.n_iterations < 1:
            raise ValueError(f"ml: n_iterations must be at least 1, got {self.n_iterations}")
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"ml: optimizer must be 'adam' or 'lbfgs', got {self.optimizer!r}")
        if self.learning_rate <= 0 or self.tv_weight < 0 or self.tv_eps <= 0:
            raise ValueError("ml: learning_rate and tv_eps must be positive and tv_weight non-negative")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"ml: chunk_size must be at least 1, got {self.chunk_size}")

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        return in_chunks(self._reconstruct, measurement, physics, self.chunk_size)

    def refine(self, measurement: torch.Tensor, physics: ImagingPhysics,
               initial_phase: torch.Tensor) -> RetrievalResult:
        """Run the optimiser from ``initial_phase`` (B, H, W) radians instead of the Wiener estimate.

        Used to polish a learned estimate (``ldm --refine-iterations``) against the measured counts.
        """
        if initial_phase.shape != measurement.shape:
            raise ValueError(f"ml: initial phase {tuple(initial_phase.shape)} and measurement "
                             f"{tuple(measurement.shape)} differ in shape")
        return in_chunks(self._reconstruct, measurement, physics, self.chunk_size, initial_phase)

    def _reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics,
                     initial_phase: torch.Tensor | None = None) -> RetrievalResult:
        check_measurement(measurement, physics)
        physics = physics.to(measurement.device, measurement.dtype)
        n = physics.counts_per_pixel[:, None, None]
        lens = Lens.from_physics(physics, measurement.shape[-2:], dtype=measurement.dtype, device=measurement.device)
        history = History(measurement, physics)
        start = (Wiener().phase(measurement, physics) if initial_phase is None
                 else initial_phase.to(measurement.device, measurement.dtype))
        if self.positivity:
            start = start.clamp_min(0)
        phase = start.clone().requires_grad_(True)

        def objective() -> tuple[torch.Tensor, torch.Tensor]:
            """Per-image loss (B,) and the expected counts (B, H, W) of the current phase."""
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
            latest: dict[str, torch.Tensor] = {}

            def closure() -> torch.Tensor:
                optimiser.zero_grad(set_to_none=True)
                loss, expected = objective()
                loss.sum().backward()
                latest["expected"] = expected.detach()
                return loss.sum()

            for _ in range(self.n_iterations):
                optimiser.step(closure)
                history.record(torch.sqrt(latest["expected"] / n))  # scores the phase before this step
                if self.positivity:
                    with torch.no_grad():
                        phase.clamp_(min=0)
        return RetrievalResult(phase.detach(), history.stacked())
