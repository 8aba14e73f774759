"""Shared pieces of the iterative (projection) phase-retrieval methods: lens, modulus and object constraints.

All methods work on the *normalised* detector wave ``g = A psi`` (unit incident flux), whose measured modulus
is ``sqrt(counts / N)`` with ``N`` the incident electrons per pixel. The exit wave of a pure phase object with
amplitude contrast is ``psi = exp((i - alpha) phi)`` (:func:`cryophase.physics.forward.exit_wave`), so the
object constraint maps any wave back onto that manifold by taking its angle as ``phi``.

The lens ``A psi = F^-1[T F[psi]]`` with ``T = E exp(i chi)`` (:func:`cryophase.physics.forward.lens_transfer`)
is unitary when the envelope ``E`` is 1. The data-consistency update uses the regularised pseudo-inverse
``T^+ = conj(T) / (|T|^2 + eps)`` applied to the *change* of the detector wave, so where the envelope kills a
frequency the current estimate keeps it instead of amplifying noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cryophase.conventions import amplitude_contrast_to_absorption_ratio
from cryophase.physics.forward import ImagingPhysics, lens_transfer

#: Tikhonov term of the lens pseudo-inverse; 1e-3 leaves |T| = 1 frequencies exact to 0.1 %.
PSEUDO_INVERSE_EPS = 1e-3


@dataclass(frozen=True)
class Lens:
    """The lens of a batch, precomputed once per reconstruction.

    Attributes
    ----------
    transfer : torch.Tensor, complex, (B, H, W): ``E exp(i chi)``, 1 at k = 0.
    pseudo_inverse : torch.Tensor, complex, (B, H, W): ``conj(T) / (|T|^2 + eps)``.
    absorption_ratio : torch.Tensor, (B, 1, 1): ``alpha = A / sqrt(1 - A^2)``.
    """

    transfer: torch.Tensor
    pseudo_inverse: torch.Tensor
    absorption_ratio: torch.Tensor

    @classmethod
    def from_physics(cls, physics: ImagingPhysics, image_shape: tuple[int, int], *, dtype: torch.dtype,
                     device: torch.device) -> "Lens":
        optics = physics.optics.to(device=device, dtype=dtype)
        transfer = lens_transfer(optics, image_shape)
        power = transfer.real**2 + transfer.imag**2
        pseudo_inverse = transfer.conj() / (power + PSEUDO_INVERSE_EPS) * (1 + PSEUDO_INVERSE_EPS)
        alpha = amplitude_contrast_to_absorption_ratio(optics.amplitude_contrast).to(dtype)[:, None, None]
        return cls(transfer, pseudo_inverse, alpha)

    def exit_wave(self, phase: torch.Tensor) -> torch.Tensor:
        """``exp((i - alpha) phi)``, complex (B, H, W) (via cos/sin: complex ``exp`` is 20x slower on CPU)."""
        amplitude = torch.exp(-self.absorption_ratio * phase)
        return torch.complex(amplitude * torch.cos(phase), amplitude * torch.sin(phase))

    def to_detector_spectrum(self, psi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(F[psi], A psi)``: the exit-wave spectrum (reused by :meth:`correct`) and the detector wave."""
        spectrum = torch.fft.fft2(psi)
        return spectrum, torch.fft.ifft2(spectrum * self.transfer)

    def correct(self, spectrum: torch.Tensor, detector_change: torch.Tensor) -> torch.Tensor:
        """Exit wave ``F^-1[F[psi] + T^+ F[delta g]]``: the least-squares exit wave whose detector wave moved by
        ``detector_change`` (exact ``A^-1`` when the envelope is 1)."""
        return torch.fft.ifft2(torch.addcmul(spectrum, torch.fft.fft2(detector_change), self.pseudo_inverse))


def magnitude(wave: torch.Tensor) -> torch.Tensor:
    """``|z|`` of a complex tensor as ``sqrt(re^2 + im^2)`` (3x faster than ``abs`` on CPU; no overflow risk for
    unit-scale waves)."""
    return torch.sqrt(wave.real**2 + wave.imag**2)


def detector_modulus(measurement: torch.Tensor, physics: ImagingPhysics) -> torch.Tensor:
    """Measured modulus of the normalised detector wave, ``sqrt(counts / N)``, (B, H, W)."""
    n = physics.counts_per_pixel.to(measurement)[:, None, None]
    return torch.sqrt(measurement.clamp_min(0) / n)


def modulus_projection(wave: torch.Tensor, modulus: torch.Tensor) -> torch.Tensor:
    """Replace the modulus of ``wave`` by ``modulus`` keeping its phase (phase 0 where ``wave`` is 0)."""
    size = magnitude(wave)
    unit = torch.where(size > 0, wave / size.clamp_min(torch.finfo(size.dtype).tiny), torch.ones_like(wave))
    return modulus * unit


def angle(wave: torch.Tensor) -> torch.Tensor:
    """``angle(z)`` in (-pi, pi], as ``atan2`` of de-interleaved real and imaginary parts (2.5x faster than
    ``torch.angle`` on CPU, which was 45 % of a GS iteration)."""
    parts = torch.view_as_real(wave).movedim(-1, 0).contiguous()
    return torch.atan2(parts[1], parts[0])


def object_phase(psi: torch.Tensor, support: torch.Tensor | None) -> torch.Tensor:
    """Pure-phase object constraint: ``phi = angle(psi)``, set to 0 outside ``support`` (bool, (B, H, W))."""
    phase = angle(psi)
    if support is not None:
        phase = phase * support
    return phase


def amplitude_residual(amplitude: torch.Tensor, modulus: torch.Tensor) -> torch.Tensor:
    """Relative amplitude misfit ``|| |g| - m || / || m ||`` per image, (B,), for the model amplitude |g|."""
    misfit = torch.linalg.vector_norm(amplitude - modulus, dim=(-2, -1))
    return misfit / torch.linalg.vector_norm(modulus, dim=(-2, -1)).clamp_min(torch.finfo(modulus.dtype).tiny)


class History:
    """Per-iteration diagnostics of a batch, stacked into ``(n_iterations, B)`` tensors at the end.

    ``poisson_nll`` equals :func:`cryophase.physics.detector.poisson_nll_per_pixel` of the counts under the
    expected counts ``N |g|^2``, evaluated as ``mean(N |g|^2) - 2 mean(y log |g|) + const`` with the
    measurement-only terms precomputed (one log per pixel per iteration instead of a division and two logs).

    Parameters
    ----------
    measurement : (B, H, W) electron counts
    physics : ImagingPhysics on the measurement's device and dtype
    """

    def __init__(self, measurement: torch.Tensor, physics: ImagingPhysics) -> None:
        self.measurement = measurement
        self.modulus = detector_modulus(measurement, physics)
        self._counts_per_pixel = physics.counts_per_pixel.to(measurement)[:, None, None]
        log_n = torch.log(self._counts_per_pixel)
        self._constant = (torch.xlogy(measurement, measurement) - measurement - measurement * log_n).mean(
            dim=(-2, -1))
        self._modulus_norm = torch.linalg.vector_norm(self.modulus, dim=(-2, -1)).clamp_min(
            torch.finfo(measurement.dtype).tiny)
        #: |g| at which N |g|^2 reaches poisson_nll_per_pixel's floor of 1e-6 expected electrons.
        self._amplitude_floor = torch.sqrt(1e-6 / self._counts_per_pixel)
        self._rows: dict[str, list[torch.Tensor]] = {"amplitude_residual": [], "poisson_nll": []}

    def record(self, amplitude: torch.Tensor) -> None:
        """Append the diagnostics of the model detector amplitude ``|g|`` (B, H, W)."""
        amplitude = amplitude.detach()
        misfit = torch.linalg.vector_norm(amplitude - self.modulus, dim=(-2, -1))
        self._rows["amplitude_residual"].append(misfit / self._modulus_norm)
        log_amplitude = torch.log(torch.maximum(amplitude, self._amplitude_floor))
        expected_mean = self._counts_per_pixel[:, 0, 0] * (amplitude**2).mean(dim=(-2, -1))
        cross = (self.measurement * log_amplitude).mean(dim=(-2, -1))
        self._rows["poisson_nll"].append(expected_mean - 2 * cross + self._constant)

    def stacked(self) -> dict[str, torch.Tensor]:
        return {name: torch.stack(rows) for name, rows in self._rows.items()}


def check_measurement(measurement: torch.Tensor, physics: ImagingPhysics) -> None:
    """Raise ``ValueError`` for a measurement that does not match the physics."""
    if measurement.ndim != 3:
        raise ValueError(f"measurement must be (B, H, W) electron counts, got shape {tuple(measurement.shape)}")
    if measurement.shape[0] != len(physics):
        raise ValueError(f"measurement has {measurement.shape[0]} images but physics describes {len(physics)}")
    if not measurement.is_floating_point():
        raise ValueError(f"measurement must be a float tensor of counts, got {measurement.dtype}")
    mean_counts = measurement.mean(dim=(-2, -1))
    if (mean_counts <= 0).any():
        raise ValueError("measurement must be electron counts (mean > 0 per image); got an image with a "
                         "non-positive mean -- RELION-normalised particles must be converted back to counts first")


def circular_support(image_shape: tuple[int, int], diameter_angstrom: float, physics: ImagingPhysics, *,
                     device: torch.device) -> torch.Tensor:
    """Centred disc of ``diameter_angstrom`` per image (per-image pixel size), bool (B, H, W)."""
    h, w = image_shape
    y = torch.arange(h, device=device, dtype=torch.float64) - h // 2
    x = torch.arange(w, device=device, dtype=torch.float64) - w // 2
    r2 = y[:, None] ** 2 + x[None, :] ** 2
    radius_px = 0.5 * diameter_angstrom / physics.optics.pixel_size_angstrom.to(device, torch.float64)
    return r2[None] <= radius_px[:, None, None] ** 2
