"""Exit wave -> lens -> detector-plane intensity -> expected electron counts.

The measurement model is ``counts = sample_counts(expected_counts(phase, physics), generator)``: the expected
signal (this module) and the shot noise (:mod:`cryophase.physics.detector`) are separate functions, so
likelihoods, guidance and tests reuse them.

Sign convention (pinned by ``tests/physics/test_forward.py``): with the exit wave ``exp((i - alpha) phi)`` and
the lens transfer ``exp(+i chi(k))``, the weak-phase limit is

    I = 1 - 2 F^-1[ CTF(k) F[phi] ] / sqrt(1 - A^2),   CTF = sqrt(1 - A^2) sin(chi) + A cos(chi),

so protein (phi > 0) is dark in an underfocused raw image, as in real micrographs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cryophase.conventions import amplitude_contrast_to_absorption_ratio
from cryophase.physics.ctf import aberration_phase, ctf, envelope
from cryophase.physics.optics import Optics


def exit_wave(phase: torch.Tensor, amplitude_contrast: torch.Tensor) -> torch.Tensor:
    """Exit wave ``exp((i - alpha) * phi)`` with ``alpha = A / sqrt(1 - A^2)``.

    Parameters
    ----------
    phase : torch.Tensor, (B, H, W), radians
    amplitude_contrast : torch.Tensor, (B,)

    Returns
    -------
    torch.Tensor, complex, (B, H, W)
    """
    alpha = amplitude_contrast_to_absorption_ratio(amplitude_contrast).to(phase)[:, None, None]
    return torch.polar(torch.exp(-alpha * phase), phase)  # faster than a complex exp, same value


def lens_transfer(optics: Optics, image_shape: tuple[int, int]) -> torch.Tensor:
    """Complex transfer function ``E(k) exp(i chi(k))`` of the objective lens, with 1 at k = 0.

    The phase plate shifts the scattered wave relative to the unscattered beam, so the DC term is left as 1.

    Returns
    -------
    torch.Tensor, complex, (B, H, W), unshifted FFT layout
    """
    chi = aberration_phase(optics, image_shape)
    env = envelope(optics, image_shape)
    transfer = torch.polar(env, chi)
    transfer[:, 0, 0] = 1.0
    return transfer


def propagate(psi: torch.Tensor, optics: Optics) -> torch.Tensor:
    """Apply the lens: ``F^-1[ F[psi] * E exp(i chi) ]`` (periodic boundary).

    Parameters
    ----------
    psi : torch.Tensor, complex, (B, H, W)

    Returns
    -------
    torch.Tensor, complex, (B, H, W): the wave in the detector plane.
    """
    transfer = lens_transfer(optics, psi.shape[-2:]).to(psi.dtype)
    return torch.fft.ifft2(torch.fft.fft2(psi) * transfer)


def intensity(phase: torch.Tensor, optics: Optics) -> torch.Tensor:
    """Detector-plane intensity ``|propagate(exit_wave(phase))|^2`` for a unit incident flux.

    Parameters
    ----------
    phase : torch.Tensor, (B, H, W), radians

    Returns
    -------
    torch.Tensor, (B, H, W), dimensionless (1 = the incident beam)
    """
    psi = propagate(exit_wave(phase, optics.amplitude_contrast), optics)
    return psi.real**2 + psi.imag**2


def expected_counts(phase: torch.Tensor, optics: Optics, dose_e_per_a2: torch.Tensor) -> torch.Tensor:
    """Expected electrons per pixel: ``dose * pixel_size^2 * intensity``.

    Parameters
    ----------
    phase : torch.Tensor, (B, H, W), radians
    optics : Optics, B images
    dose_e_per_a2 : torch.Tensor, (B,) or ()

    Returns
    -------
    torch.Tensor, (B, H, W), electrons per pixel
    """
    n = counts_per_pixel(optics, dose_e_per_a2).to(phase)
    return n[:, None, None] * intensity(phase, optics)


def counts_per_pixel(optics: Optics, dose_e_per_a2: torch.Tensor | float) -> torch.Tensor:
    """Mean electrons per pixel of the incident beam, ``(B,)``."""
    dose = torch.as_tensor(dose_e_per_a2, dtype=optics.pixel_size_angstrom.dtype,
                           device=optics.pixel_size_angstrom.device)
    return (dose * optics.pixel_size_angstrom**2).expand(len(optics))


def dose_from_counts(counts: torch.Tensor, pixel_size_angstrom: torch.Tensor) -> torch.Tensor:
    """Per-image dose (e/A^2) measured from electron counts ``(B, H, W)``: ``mean / pixel_size^2``, ``(B,)``.

    The inverse of :func:`counts_per_pixel` for a specimen that scatters but hardly absorbs (a particle in ice:
    within 1.5% of the true dose on simulated particles).
    """
    pixel = pixel_size_angstrom.to(counts)
    return counts.mean(dim=(-2, -1)) / pixel**2


def weak_phase_intensity(phase: torch.Tensor, optics: Optics) -> torch.Tensor:
    """First-order (weak-phase) intensity ``1 - 2 F^-1[CTF F[phi]] / sqrt(1 - A^2)``.

    Returns
    -------
    torch.Tensor, (B, H, W)
    """
    transfer = ctf(optics, phase.shape[-2:], rfft=True).to(phase.dtype)
    a = optics.amplitude_contrast.to(phase)[:, None, None]
    contrast = torch.fft.irfft2(torch.fft.rfft2(phase) * transfer, s=phase.shape[-2:])
    return 1 - 2 * contrast / torch.sqrt(1 - a**2)


@dataclass(frozen=True)
class ImagingPhysics:
    """The measurement operator A and its noise model for a batch: y ~ Poisson(A(phi)).

    Every reconstructor, classical or learned, takes one of these:
    ``reconstruct(measurement, physics, *, generator)``.

    Attributes
    ----------
    optics : Optics, B images
    dose_e_per_a2 : torch.Tensor, (B,): electron dose of each image
    """

    optics: Optics
    dose_e_per_a2: torch.Tensor

    def __post_init__(self):
        dose = torch.as_tensor(self.dose_e_per_a2, dtype=self.optics.pixel_size_angstrom.dtype,
                               device=self.optics.pixel_size_angstrom.device).reshape(-1)
        if dose.numel() == 1:
            dose = dose.expand(len(self.optics)).clone()
        if dose.numel() != len(self.optics):
            raise ValueError(f"dose has {dose.numel()} values for {len(self.optics)} images")
        if (dose <= 0).any() or not torch.isfinite(dose).all():
            raise ValueError("dose_e_per_a2 must be positive and finite")
        object.__setattr__(self, "dose_e_per_a2", dose)

    def __len__(self) -> int:
        return len(self.optics)

    def __getitem__(self, index) -> "ImagingPhysics":
        return ImagingPhysics(self.optics[index], self.dose_e_per_a2[index].reshape(-1))

    def to(self, device=None, dtype=None) -> "ImagingPhysics":
        return ImagingPhysics(self.optics.to(device, dtype), self.dose_e_per_a2.to(device=device, dtype=dtype))

    @property
    def counts_per_pixel(self) -> torch.Tensor:
        """Mean electrons per pixel of the incident beam, (B,)."""
        return counts_per_pixel(self.optics, self.dose_e_per_a2)

    def intensity(self, phase: torch.Tensor) -> torch.Tensor:
        return intensity(phase, self.optics)

    def expected_counts(self, phase: torch.Tensor) -> torch.Tensor:
        return expected_counts(phase, self.optics, self.dose_e_per_a2)

    def ctf(self, image_shape: tuple[int, int], *, rfft: bool = True) -> torch.Tensor:
        return ctf(self.optics, image_shape, rfft=rfft)

    def lens_transfer(self, image_shape: tuple[int, int]) -> torch.Tensor:
        from cryophase.physics.forward import lens_transfer

        return lens_transfer(self.optics, image_shape)
