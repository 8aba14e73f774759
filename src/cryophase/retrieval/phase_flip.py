"""Phase flipping: undo the CTF's sign, not its amplitude.

    phi = -F^-1[ sqrt(1 - A^2) sign(CTF) F[(y / N - 1) / 2] ]

With the weak-phase model this returns ``F^-1[|CTF| F[phi]]`` (plus noise): the right sign at every frequency
and the CTF's amplitude left in, as in the phase-flipped particles of early RELION/EMAN pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, register
from cryophase.retrieval.projections import check_measurement
from cryophase.retrieval.wiener import weak_phase_contrast


@register("phase-flip")
@dataclass
class PhaseFlip:
    """sign(CTF) correction of the weak-phase contrast (one shot; empty history; no configuration)."""

    name: ClassVar[str] = "phase-flip"

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        check_measurement(measurement, physics)
        physics = physics.to(measurement.device, measurement.dtype)
        shape = measurement.shape[-2:]
        contrast = torch.fft.rfft2(weak_phase_contrast(measurement, physics))
        transfer = physics.ctf(shape, rfft=True).to(measurement)
        a = physics.optics.amplitude_contrast.to(measurement)[:, None, None]
        phase = torch.fft.irfft2(-torch.sqrt(1 - a**2) * torch.sign(transfer) * contrast, s=shape)
        return RetrievalResult(phase, {})
