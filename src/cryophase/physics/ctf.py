"""Aberration phase chi(k) and the contrast transfer function, batched over images.

Conventions (RELION's, checked against torch-ctf in ``tests/physics/test_ctf.py``):

    chi(k) = pi * lambda * df(theta) * k^2 - (pi / 2) * Cs * lambda^3 * k^4 + phase_shift
    df(theta) = (dU + dV) / 2 + (dU - dV) / 2 * cos(2 * (theta - theta_ast))
    CTF(k) = sqrt(1 - A^2) * sin(chi) + A * cos(chi)

with ``theta`` the angle of the spatial frequency k from the image x axis and defocus positive for underfocus,
so chi > 0 at low frequency for an underfocused image, and CTF(0) = A.
"""

from __future__ import annotations

import math

import torch

from cryophase.conventions import electron_wavelength_angstrom
from cryophase.physics.optics import Optics


def frequency_grid(
    image_shape: tuple[int, int],
    pixel_size_angstrom: torch.Tensor,
    *,
    rfft: bool = False,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial frequencies of an FFT grid in 1/Angstrom, unshifted (DC at [0, 0]).

    Parameters
    ----------
    image_shape : (H, W)
    pixel_size_angstrom : torch.Tensor, (B,)
    rfft : bool
        Half grid of ``torch.fft.rfft2`` (width ``W // 2 + 1``) instead of the full grid.

    Returns
    -------
    ky, kx : torch.Tensor, (B, H, W) or (B, H, W // 2 + 1)
        Frequencies along rows (y) and columns (x), in 1/Angstrom.
    """
    h, w = image_shape
    pixel_size_angstrom = torch.as_tensor(pixel_size_angstrom, device=device, dtype=dtype).reshape(-1)
    fy = torch.fft.fftfreq(h, device=pixel_size_angstrom.device, dtype=dtype)
    fx = (torch.fft.rfftfreq if rfft else torch.fft.fftfreq)(w, device=pixel_size_angstrom.device, dtype=dtype)
    ky = fy[None, :, None] / pixel_size_angstrom[:, None, None]
    kx = fx[None, None, :] / pixel_size_angstrom[:, None, None]
    ky, kx = torch.broadcast_tensors(ky, kx)
    return ky, kx


def aberration_phase(
    optics: Optics,
    image_shape: tuple[int, int],
    *,
    rfft: bool = False,
    include_phase_shift: bool = True,
) -> torch.Tensor:
    """Aberration phase chi(k) in radians.

    Parameters
    ----------
    optics : Optics with B images
    image_shape : (H, W)
    rfft : bool
        Half grid for ``rfft2``.
    include_phase_shift : bool
        Add the phase-plate shift (``optics.phase_shift_degrees``).

    Returns
    -------
    torch.Tensor, (B, H, W) or (B, H, W // 2 + 1)
    """
    dtype = optics.defocus_u_angstrom.dtype
    ky, kx = frequency_grid(image_shape, optics.pixel_size_angstrom, rfft=False, dtype=dtype)
    k2 = kx**2 + ky**2
    theta = torch.atan2(ky, kx)
    du = optics.defocus_u_angstrom[:, None, None]
    dv = optics.defocus_v_angstrom[:, None, None]
    ang = torch.deg2rad(optics.defocus_angle_degrees)[:, None, None]
    defocus = 0.5 * (du + dv) + 0.5 * (du - dv) * torch.cos(2 * (theta - ang))
    lam = electron_wavelength_angstrom(optics.voltage_kv)[:, None, None]
    cs_angstrom = optics.cs_mm[:, None, None] * 1e7
    chi = math.pi * lam * defocus * k2 - 0.5 * math.pi * cs_angstrom * lam**3 * k2**2
    if include_phase_shift:
        chi = chi + torch.deg2rad(optics.phase_shift_degrees)[:, None, None]
    return _hermitian_half(chi, rfft)


def _hermitian_half(values: torch.Tensor, rfft: bool) -> torch.Tensor:
    """Make a full-grid function even, f(k) = f(-k), and optionally keep the rfft half.

    On even-sized grids the Nyquist row and column are their own negatives only up to aliasing, and an
    astigmatic chi is not even there; averaging with the index-negated grid keeps a real image real.
    """
    negated = torch.roll(torch.flip(values, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    values = 0.5 * (values + negated)
    if rfft:
        values = values[..., : values.shape[-1] // 2 + 1]
    return values


def envelope(
    optics: Optics,
    image_shape: tuple[int, int],
    *,
    rfft: bool = False,
    source_size_mrad: float = 0.0,
    focal_spread_angstrom: float = 0.0,
) -> torch.Tensor:
    """Product of the CTF envelopes: B-factor, spatial and temporal coherence.

    * B-factor: ``exp(-B k^2 / 4)`` (RELION's rlnCtfBfactor convention).
    * Spatial coherence (illumination semi-angle ``alpha``, Frank 1973):
      ``exp(-(pi * alpha / lambda)^2 * (lambda*df*k + Cs*lambda^3*k^3)^2 ... )`` evaluated with the mean defocus.
    * Temporal coherence (focal spread ``delta``): ``exp(-0.5 * pi^2 * lambda^2 * delta^2 * k^4)``.

    Returns
    -------
    torch.Tensor, (B, H, W) or (B, H, W // 2 + 1); 1 everywhere when all are disabled.
    """
    dtype = optics.defocus_u_angstrom.dtype
    ky, kx = frequency_grid(image_shape, optics.pixel_size_angstrom, rfft=rfft, dtype=dtype)
    k2 = kx**2 + ky**2  # isotropic, so even on the full grid
    k = torch.sqrt(k2)
    env = torch.exp(-optics.b_factor_a2[:, None, None] * k2 / 4)
    lam = electron_wavelength_angstrom(optics.voltage_kv)[:, None, None]
    if source_size_mrad > 0:
        alpha = source_size_mrad * 1e-3
        df = optics.defocus_mean_angstrom[:, None, None]
        cs = optics.cs_mm[:, None, None] * 1e7
        grad_chi = 2 * math.pi * (cs * lam**3 * k**3 - df * lam * k)  # d chi / dk (sign irrelevant)
        env = env * torch.exp(-((alpha / lam) ** 2) * grad_chi**2 / 4)
    if focal_spread_angstrom > 0:
        env = env * torch.exp(-0.5 * math.pi**2 * lam**2 * focal_spread_angstrom**2 * k2**2)
    return env


def ctf(optics: Optics, image_shape: tuple[int, int], *, rfft: bool = False, with_envelope: bool = True) -> torch.Tensor:
    """The weak-phase contrast transfer function ``sqrt(1 - A^2) sin(chi) + A cos(chi)`` (RELION, torch-ctf).

    Returns
    -------
    torch.Tensor, (B, H, W) or (B, H, W // 2 + 1)
    """
    chi = aberration_phase(optics, image_shape, rfft=rfft)
    a = optics.amplitude_contrast[:, None, None]
    out = torch.sqrt(1 - a**2) * torch.sin(chi) + a * torch.cos(chi)
    if with_envelope:
        out = out * envelope(optics, image_shape, rfft=rfft)
    return out
