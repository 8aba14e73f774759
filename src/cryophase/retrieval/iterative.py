"""What the projection methods (``gs``, ``raf``, ``hio``, ``raar``) share: the start, the support, the loop.

Every iterative method starts from the weak-phase Wiener estimate (:mod:`cryophase.retrieval.wiener`) and may
constrain the phase to a support (0 outside, i.e. ``psi = 1``), either a centred disc of a given diameter or a
thresholded low-pass copy of the Wiener estimate.

Measured defaults (48 particles per dose simulated from the 26 structures in ``shared/data/structures`` with
``simulate_batch`` defaults -- in ice, k3, 64 px at 3.5 A/px -- at 15, 30 and 60 e/A^2; mean NCC to the truth
over the three doses, Wiener start 0.230): without a support every projection method fits the shot noise and
falls to NCC 0.09-0.10 after 5-50 iterations. The thresholded support is what makes them useful: threshold
0.1 / 0.2 / 0.3 / 0.4 / 0.5 of the low-passed (20 A) Wiener maximum gives RAAR 0.134 / 0.192 / 0.244 / 0.276 /
0.292 with 2 px dilation, and 0.303 at 0.4 without dilation (GS 0.296, RAF 0.291, HIO(beta 0.1) 0.309);
dilating by 1 / 4 px costs 0.008 / 0.07, a 30 A low-pass is 0.013 better with dilation only. Re-checked after
the simulator's ice background grew (even noiseless images then give a Wiener NCC of only 0.11 to the
particle): GS 0.040 at threshold 0.4, 0.043 / 0.033 at 0.2 / 0.6, 0.042 after 10 iterations; RAAR 0.038,
HIO 0.029, Wiener 0.098, ML 0.152.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from cryophase.physics.ctf import frequency_grid
from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult
from cryophase.retrieval.projections import (
    History,
    Lens,
    check_measurement,
    circular_support,
    magnitude,
)
from cryophase.retrieval.wiener import Wiener


def lowpass(image: torch.Tensor, resolution_angstrom: float, pixel_size_angstrom: torch.Tensor) -> torch.Tensor:
    """Gaussian low-pass whose amplitude is 1/2 at ``1 / resolution_angstrom``, (B, H, W) -> (B, H, W)."""
    ky, kx = frequency_grid(image.shape[-2:], pixel_size_angstrom.to(image), rfft=True, dtype=image.dtype)
    k2 = kx**2 + ky**2
    gain = torch.exp(-math.log(2) * k2 * resolution_angstrom**2)
    return torch.fft.irfft2(torch.fft.rfft2(image) * gain, s=image.shape[-2:])


def threshold_support(phase: torch.Tensor, physics: ImagingPhysics, *, threshold: float,
                      lowpass_angstrom: float, dilation_px: int) -> torch.Tensor:
    """Support where the low-passed phase exceeds ``threshold`` times its per-image maximum (above the median),
    dilated by ``dilation_px`` pixels; bool (B, H, W)."""
    smooth = lowpass(phase, lowpass_angstrom, physics.optics.pixel_size_angstrom)
    floor = smooth.flatten(1).median(dim=1).values[:, None, None]
    peak = smooth.flatten(1).amax(dim=1)[:, None, None]
    mask = (smooth - floor) > threshold * (peak - floor)
    if dilation_px > 0:
        size = 2 * dilation_px + 1
        mask = torch.nn.functional.max_pool2d(mask[:, None].to(phase.dtype), size, stride=1,
                                              padding=dilation_px)[:, 0] > 0
    return mask


#: Images iterated together on a CPU when ``chunk_size`` is None: a 32 x 64 x 64 complex wave (1 MiB) stays in
#: cache, which ran GS 1.4x faster than one 256-image batch (199 vs 140 images/s on one core).
CPU_CHUNK_IMAGES = 32


def in_chunks(reconstruct: Callable[..., RetrievalResult], measurement: torch.Tensor,
              physics: ImagingPhysics, chunk_size: int | None,
              initial_phase: torch.Tensor | None = None) -> RetrievalResult:
    """Run ``reconstruct`` on consecutive chunks of the batch and join the results (images are independent, so
    the result does not depend on the chunking). ``chunk_size`` None: :data:`CPU_CHUNK_IMAGES` on a CPU, the
    whole batch on an accelerator. ``initial_phase`` (B, H, W), when given, is chunked alongside and passed as
    ``reconstruct``'s third argument."""
    check_measurement(measurement, physics)
    if chunk_size is None:
        chunk_size = CPU_CHUNK_IMAGES if measurement.device.type == "cpu" else max(len(measurement), 1)

    def run(rows: slice) -> RetrievalResult:
        if initial_phase is None:
            return reconstruct(measurement[rows], physics[rows])
        return reconstruct(measurement[rows], physics[rows], initial_phase[rows])

    if len(measurement) <= chunk_size:
        return run(slice(None))
    parts = [run(slice(i, i + chunk_size)) for i in range(0, len(measurement), chunk_size)]
    history = {key: torch.cat([p.history[key] for p in parts], dim=1) for key in parts[0].history}
    return RetrievalResult(torch.cat([p.phase for p in parts]), history)


@dataclass
class ProjectionSettings:
    """Options shared by the projection methods (fields of every method's dataclass)."""

    #: Number of iterations.
    n_iterations: int = 50
    #: Diameter of a centred circular support in Angstrom; None: no disc.
    support_diameter_angstrom: float | None = None
    #: Fraction of the low-passed Wiener phase's maximum (above its median) that defines the support; None: no
    #: thresholded support. 0.4 measured best (module docstring).
    support_threshold: float | None = 0.4
    #: Resolution of the low-pass applied before thresholding, Angstrom.
    support_lowpass_angstrom: float = 20.0
    #: Dilation of the thresholded support, pixels (0 measured best).
    support_dilation_px: int = 0
    #: Images iterated together (speed only, results do not depend on it); None: 32 on a CPU, all on a GPU.
    chunk_size: int | None = None

    def _check_settings(self, method: str) -> None:
        if self.n_iterations < 1:
            raise ValueError(f"{method}: n_iterations must be at least 1, got {self.n_iterations}")
        if self.support_diameter_angstrom is not None and self.support_diameter_angstrom <= 0:
            raise ValueError(f"{method}: support_diameter_angstrom must be positive")
        if self.support_threshold is not None and not 0 <= self.support_threshold < 1:
            raise ValueError(f"{method}: support_threshold must be in [0, 1), got {self.support_threshold}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"{method}: chunk_size must be at least 1, got {self.chunk_size}")


@dataclass
class Problem:
    """A batch ready to iterate on: measurement, physics on its device/dtype, lens, modulus, start, support."""

    measurement: torch.Tensor
    physics: ImagingPhysics
    lens: Lens
    start: torch.Tensor
    support: torch.Tensor | None
    history: History

    @property
    def modulus(self) -> torch.Tensor:
        """Measured detector modulus ``sqrt(y / N)``, (B, H, W)."""
        return self.history.modulus

    def record(self, detector_wave: torch.Tensor) -> None:
        """Append the diagnostics of the complex detector wave ``g`` (B, H, W)."""
        self.history.record(magnitude(detector_wave))


def prepare(measurement: torch.Tensor, physics: ImagingPhysics, settings: ProjectionSettings) -> Problem:
    """Validate the input, precompute the lens and modulus, and build the Wiener start and the support."""
    check_measurement(measurement, physics)
    physics = physics.to(measurement.device, measurement.dtype)
    start = Wiener().phase(measurement, physics)
    support = None
    if settings.support_diameter_angstrom is not None:
        support = circular_support(measurement.shape[-2:], settings.support_diameter_angstrom, physics,
                                   device=measurement.device)
    if settings.support_threshold is not None:
        found = threshold_support(start, physics, threshold=settings.support_threshold,
                                  lowpass_angstrom=settings.support_lowpass_angstrom,
                                  dilation_px=settings.support_dilation_px)
        support = found if support is None else support & found
    if support is not None:
        start = start * support
    lens = Lens.from_physics(physics, measurement.shape[-2:], dtype=measurement.dtype, device=measurement.device)
    return Problem(measurement, physics, lens, start, support, History(measurement, physics))
