"""Weak-phase CTF Wiener filter: the one-shot linear estimate every iterative method starts from.

In the weak-phase limit (:func:`cryophase.physics.forward.weak_phase_intensity`)

    y / N = 1 - 2 F^-1[CTF F[phi]] / sqrt(1 - A^2),

so with the contrast ``d = (y / N - 1) / 2`` the Wiener estimate is

    phi = -F^-1[ sqrt(1 - A^2) CTF F[d] / (CTF^2 + 1 / SSNR) ].

The spectral SNR ``SSNR(k) = |F[phi]|^2 / (1 - A^2) / noise`` is either a constant or estimated per image from
the radially averaged power of ``F[d]`` against the shot-noise floor ``H W var(y / N) / 4`` with
``var(y / N) = mean(y) / N^2`` (Poisson), divided by the ring-averaged CTF^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cryophase.physics.forward import ImagingPhysics
from cryophase.retrieval.base import RetrievalResult, register
from cryophase.retrieval.projections import check_measurement


def weak_phase_contrast(measurement: torch.Tensor, physics: ImagingPhysics) -> torch.Tensor:
    """Contrast ``d = (y / N - 1) / 2`` of electron counts, (B, H, W); protein (phi > 0) is negative."""
    n = physics.counts_per_pixel.to(measurement)[:, None, None]
    return 0.5 * (measurement / n - 1)


def ring_index(image_shape: tuple[int, int], *, device: torch.device) -> torch.Tensor:
    """Integer radius (in Fourier pixels of the shorter side) of every rfft2 coefficient, long (H, W // 2 + 1)."""
    h, w = image_shape
    fy = torch.fft.fftfreq(h, device=device, dtype=torch.float64)
    fx = torch.fft.rfftfreq(w, device=device, dtype=torch.float64)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) * min(h, w)
    return torch.round(radius).long()


def ring_average(values: torch.Tensor, rings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` (B, H, W') over each ring of ``rings`` (H, W'), broadcast back to (B, H, W'), and the
    number of coefficients in each coefficient's ring, (H, W')."""
    b = values.shape[0]
    n_rings = int(rings.max()) + 1
    flat = rings.reshape(-1).expand(b, -1)
    sums = torch.zeros(b, n_rings, dtype=values.dtype, device=values.device).scatter_add_(
        1, flat, values.reshape(b, -1))
    counts = torch.zeros(n_rings, dtype=values.dtype, device=values.device).scatter_add_(
        0, rings.reshape(-1), torch.ones_like(rings.reshape(-1), dtype=values.dtype))
    means = sums / counts.clamp_min(1)
    return torch.gather(means, 1, flat).reshape(values.shape), counts[rings]


def estimate_ssnr(contrast_spectrum: torch.Tensor, transfer: torch.Tensor, measurement: torch.Tensor,
                  physics: ImagingPhysics, *, ctf2_floor: float, significance: float) -> torch.Tensor:
    """Per-image, per-ring spectral SNR of the weak-phase signal, (B, H, W // 2 + 1).

    The ring-averaged power of pure shot noise scatters around the floor with a relative standard deviation
    ``1 / sqrt(n)`` for ``n`` coefficients in the ring (each coefficient's power is exponentially distributed),
    so only the power above ``noise (1 + significance / sqrt(n))`` counts as signal; without that margin the
    few-coefficient low-frequency rings, where the CTF is small, report spurious SNRs of 10-100.

    Parameters
    ----------
    contrast_spectrum : complex (B, H, W // 2 + 1): ``rfft2(d)``.
    transfer : (B, H, W // 2 + 1): the CTF (with envelope).
    measurement : (B, H, W): electron counts (sets the Poisson noise floor).
    ctf2_floor : lower bound on the ring-averaged CTF^2 (rings where the CTF vanishes carry no signal).
    significance : margin above the noise floor, in standard deviations of the ring-averaged noise power.
    """
    h, w = measurement.shape[-2:]
    n = physics.counts_per_pixel.to(measurement)
    noise = (h * w / 4) * measurement.mean(dim=(-2, -1)) / n**2
    noise = noise.clamp_min(torch.finfo(measurement.dtype).tiny)[:, None, None]
    rings = ring_index((h, w), device=measurement.device)
    power, ring_size = ring_average(contrast_spectrum.real**2 + contrast_spectrum.imag**2, rings)
    ctf2 = ring_average(transfer**2, rings)[0].clamp_min(ctf2_floor)
    floor = noise * (1 + significance / torch.sqrt(ring_size))
    return (power - floor).clamp_min(0) / (noise * ctf2)


def wiener_phase(measurement: torch.Tensor, physics: ImagingPhysics, *, ssnr: float | None, ssnr_scale: float,
                 ctf2_floor: float, significance: float) -> torch.Tensor:
    """Weak-phase Wiener estimate of the phase, (B, H, W) radians (see the module docstring)."""
    shape = measurement.shape[-2:]
    contrast = torch.fft.rfft2(weak_phase_contrast(measurement, physics))
    transfer = physics.ctf(shape, rfft=True).to(measurement)
    if ssnr is None:
        snr = ssnr_scale * estimate_ssnr(contrast, transfer, measurement, physics, ctf2_floor=ctf2_floor,
                                         significance=significance)
        inverse_snr = 1 / snr.clamp_min(torch.finfo(measurement.dtype).tiny)
    else:
        inverse_snr = torch.full_like(transfer, 1 / ssnr)
    a = physics.optics.amplitude_contrast.to(measurement)[:, None, None]
    gain = -torch.sqrt(1 - a**2) * transfer / (transfer**2 + inverse_snr)
    return torch.fft.irfft2(contrast * gain, s=shape)


@register("wiener")
@dataclass
class Wiener:
    """Weak-phase CTF Wiener filter (one shot; empty history). The fields are its configuration."""

    name: ClassVar[str] = "wiener"

    #: Constant spectral SNR of the phase; None estimates it per image and per ring from the data.
    ssnr: float | None = None
    #: Multiplier on the estimated SSNR (>1 sharpens, <1 smooths). 1 is the unbiased estimate of the power above
    #: the shot noise, but on simulated particles in ice that power includes the ice's phase and the inelastic
    #: background; 0.05-0.1 maximise the NCC to the particle (mean NCC 0.230 vs 0.203 at 1, 15-60 e/A^2; with
    #: the simulator's later, stronger ice background 0.098 vs 0.088).
    ssnr_scale: float = 0.1
    #: Floor on the ring-averaged CTF^2 when estimating the SSNR.
    ctf2_floor: float = 1e-3
    #: Margin above the noise floor (standard deviations of the ring-averaged noise power) that counts as signal;
    #: 0 measured best (with ssnr_scale 0.1 the noise-only rings are damped anyway; 2 costs 0.025 in NCC).
    significance: float = 0.0

    def __post_init__(self):
        if self.ssnr is not None and self.ssnr <= 0:
            raise ValueError(f"wiener: ssnr must be positive, got {self.ssnr}")
        if self.ssnr_scale <= 0:
            raise ValueError(f"wiener: ssnr_scale must be positive, got {self.ssnr_scale}")

    def reconstruct(self, measurement: torch.Tensor, physics: ImagingPhysics, *,
                    generator: torch.Generator | None = None) -> RetrievalResult:
        check_measurement(measurement, physics)
        physics = physics.to(measurement.device, measurement.dtype)
        return RetrievalResult(self.phase(measurement, physics), {})

    def phase(self, measurement: torch.Tensor, physics: ImagingPhysics) -> torch.Tensor:
        """The Wiener phase, (B, H, W), for a measurement and physics on the same device and dtype."""
        return wiener_phase(measurement, physics, ssnr=self.ssnr, ssnr_scale=self.ssnr_scale,
                            ctf2_floor=self.ctf2_floor, significance=self.significance)
