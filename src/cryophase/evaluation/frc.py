"""Fourier ring correlation, its threshold crossings in Angstrom, and a soft low-pass filter, batched.

The ring sums are written here rather than taken from torch-fourier-shell-correlation because the half-bit
criterion needs the exact number of Fourier pixels in each ring, and that library spreads every pixel over two
neighbouring rings (linear interpolation), which changes the per-ring statistics. Rings are hard bins: pixel
``(ky, kx)`` of the full FFT grid belongs to ring ``round(|k| * min(H, W))`` with ``|k|`` in cycles per pixel,
rings ``0 .. min(H, W) // 2`` (the corners beyond Nyquist are left out).

References
----------
van Heel, M. & Schatz, M. (2005). Fourier shell correlation threshold criteria. J. Struct. Biol. 151, 250-262.
Rosenthal, P. B. & Henderson, R. (2003). Optimal determination of particle orientation, absolute hand, and
contrast loss in single-particle electron cryomicroscopy. J. Mol. Biol. 333, 721-745 (the 0.143 threshold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Fixed FRC thresholds, by the name used in reports.
FRC_THRESHOLD_HALF = 0.5
FRC_THRESHOLD_GOLD_STANDARD = 0.143  # Rosenthal & Henderson (2003)


def radial_frequency_cycles_per_pixel(image_shape: tuple[int, int], *, device=None,
                                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``|k|`` of the full (unshifted) FFT grid in cycles per pixel, ``(H, W)``; 0.5 is Nyquist."""
    h, w = image_shape
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype)
    fx = torch.fft.fftfreq(w, device=device, dtype=dtype)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def ring_index(image_shape: tuple[int, int], *, device=None) -> tuple[torch.Tensor, int]:
    """Ring of every pixel of the full FFT grid, ``(H, W)`` int64, and the number of rings ``min(H, W)//2 + 1``.

    Pixels beyond the last ring get the index ``n_rings`` (a discard bin).
    """
    n = min(image_shape)
    n_rings = n // 2 + 1
    radius = radial_frequency_cycles_per_pixel(image_shape, device=device, dtype=torch.float64) * n
    index = torch.round(radius).to(torch.int64)
    return index.clamp_max(n_rings), n_rings


def ring_sums(values: torch.Tensor) -> torch.Tensor:
    """Sum of real ``values`` ``(B, H, W)`` on the full FFT grid over each Fourier ring (:func:`ring_index`),
    ``(B, R)`` with ``R = min(H, W) // 2 + 1`` (the corner pixels beyond the last ring are left out)."""
    index, n_rings = ring_index(values.shape[-2:], device=values.device)
    out = torch.zeros(values.shape[0], n_rings + 1, dtype=values.dtype, device=values.device)
    return out.index_add_(1, index.reshape(-1), values.reshape(values.shape[0], -1))[:, :n_rings]


def half_bit_threshold(n_pixels: torch.Tensor) -> torch.Tensor:
    """The 1/2-bit information threshold of van Heel & Schatz (2005), eq. 17, per ring.

    T = (0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n)), with ``n`` the number of Fourier pixels in
    the ring; T = 1 for n = 1 and tends to 0.1716 for large n.

    Parameters
    ----------
    n_pixels : torch.Tensor, (R,)

    Returns
    -------
    torch.Tensor, (R,)
    """
    inv_sqrt = 1.0 / torch.sqrt(n_pixels.to(torch.float64).clamp_min(1.0))
    return (0.2071 + 1.9102 * inv_sqrt) / (1.2071 + 0.9102 * inv_sqrt)


@dataclass
class FrcCurves:
    """Fourier ring correlation curves of a batch of image pairs.

    Attributes
    ----------
    correlation : torch.Tensor, (B, R)
        FRC per image and ring; ring 0 (the mean, unobservable for phase) is 1 by convention.
    n_pixels : torch.Tensor, (R,)
        Fourier pixels in each ring of the full FFT grid.
    frequency_cycles_per_pixel : torch.Tensor, (R,)
        Ring centre ``r / min(H, W)``.
    """

    correlation: torch.Tensor
    n_pixels: torch.Tensor
    frequency_cycles_per_pixel: torch.Tensor

    def mean(self) -> "FrcCurves":
        """The curve averaged over images, as a batch of one, ``(1, R)``."""
        return FrcCurves(self.correlation.mean(dim=0, keepdim=True), self.n_pixels, self.frequency_cycles_per_pixel)

    def frequency_per_angstrom(self, pixel_size_angstrom: float) -> torch.Tensor:
        """Ring centres in 1/Angstrom, ``(R,)``."""
        return self.frequency_cycles_per_pixel / float(pixel_size_angstrom)


def fourier_ring_correlation(a: torch.Tensor, b: torch.Tensor) -> FrcCurves:
    """FRC between image pairs ``a[i]``, ``b[i]``.

    FRC(r) = Re sum_{k in r} A(k) B*(k) / sqrt(sum |A|^2 sum |B|^2) over the full FFT grid.

    Parameters
    ----------
    a, b : torch.Tensor, (B, H, W), real

    Returns
    -------
    FrcCurves
        ``correlation`` (B, R) with R = min(H, W) // 2 + 1; a ring with (numerically) no power in either image
        is 0.
    """
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"FRC needs two (B, H, W) tensors of the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    _, h, w = a.shape
    index, n_rings = ring_index((h, w), device=a.device)
    fa = torch.fft.fft2(a)
    fb = torch.fft.fft2(b)
    flat = index.reshape(-1)
    real_dtype = a.real.dtype if a.is_complex() else a.dtype
    cross = ring_sums((fa * fb.conj()).real)
    power_a = ring_sums(fa.abs() ** 2)
    power_b = ring_sums(fb.abs() ** 2)
    # A ring holding less than eps of an image's power is empty up to round-off (e.g. beyond a low-pass
    # filter's cut-off); its correlation would be noise in the last bits, so it is set to 0.
    eps = torch.finfo(real_dtype).eps
    empty = (power_a <= eps * power_a.sum(dim=1, keepdim=True)) | (power_b <= eps * power_b.sum(dim=1, keepdim=True))
    denominator = torch.sqrt(power_a * power_b).clamp_min(torch.finfo(real_dtype).tiny)
    correlation = torch.where(empty, torch.zeros_like(cross), cross / denominator)
    correlation[:, 0] = 1.0
    n_pixels = torch.bincount(flat, minlength=n_rings + 1)[:n_rings]
    frequency = torch.arange(n_rings, device=a.device, dtype=real_dtype) / min(h, w)
    return FrcCurves(correlation, n_pixels, frequency)


def crossing_frequency(curves: FrcCurves, threshold: float | torch.Tensor) -> torch.Tensor:
    """Frequency where each FRC curve first falls below ``threshold``, linearly interpolated between rings.

    The search starts at ring 1. A curve that never falls below the threshold is given Nyquist (0.5 cycles per
    pixel, the best that can be measured).

    Parameters
    ----------
    curves : FrcCurves, correlation (B, R)
    threshold : float or torch.Tensor (R,)
        A fixed value (0.5, 0.143) or a per-ring curve (:func:`half_bit_threshold`).

    Returns
    -------
    torch.Tensor, (B,)
        Crossing frequency in cycles per pixel.
    """
    c = curves.correlation
    thr = torch.as_tensor(threshold, dtype=c.dtype, device=c.device).expand(c.shape[-1])
    excess = c - thr  # >= 0 above the threshold
    below = excess[:, 1:] < 0
    has = below.any(dim=1)
    first = torch.argmax(below.to(torch.int8), dim=1) + 1  # ring index of the first point below
    before = (first - 1).clamp_min(0)
    e0 = excess.gather(1, before[:, None])[:, 0]
    e1 = excess.gather(1, first[:, None])[:, 0]
    t = e0 / (e0 - e1).clamp_min(torch.finfo(c.dtype).tiny)
    f = curves.frequency_cycles_per_pixel.to(c.dtype)
    step = f[1] - f[0]
    crossing = f[before] + t.clamp(0, 1) * step
    nyquist = torch.full_like(crossing, 0.5)
    return torch.where(has, crossing, nyquist)


def crossing_resolution_angstrom(curves: FrcCurves, threshold: float | torch.Tensor,
                                 pixel_size_angstrom: float) -> torch.Tensor:
    """Resolution (Angstrom) at which each FRC curve crosses ``threshold``: ``pixel_size / crossing_frequency``.

    Returns
    -------
    torch.Tensor, (B,)
    """
    return float(pixel_size_angstrom) / crossing_frequency(curves, threshold)


def frc_resolutions_angstrom(curves: FrcCurves, pixel_size_angstrom: float) -> dict[str, torch.Tensor]:
    """The 0.5, 0.143 and 1/2-bit crossings in Angstrom, each ``(B,)``."""
    return {
        "frc_0.5_angstrom": crossing_resolution_angstrom(curves, FRC_THRESHOLD_HALF, pixel_size_angstrom),
        "frc_0.143_angstrom": crossing_resolution_angstrom(curves, FRC_THRESHOLD_GOLD_STANDARD, pixel_size_angstrom),
        "frc_half_bit_angstrom": crossing_resolution_angstrom(curves, half_bit_threshold(curves.n_pixels),
                                                              pixel_size_angstrom),
    }


def lowpass(images: torch.Tensor, resolution_angstrom: float | torch.Tensor,
            pixel_size_angstrom: float | torch.Tensor, *, edge_width_rings: float = 2.0) -> torch.Tensor:
    """Low-pass filter with a raised-cosine edge centred on ``1 / resolution_angstrom``.

    The filter is 1 below ``f_c - w/2``, 0 above ``f_c + w/2`` and ``0.5 (1 + cos(pi (f - f_c + w/2) / w))``
    between, with ``f_c = pixel_size / resolution`` (cycles per pixel) and ``w = edge_width_rings / min(H, W)``;
    it is 0.5 at the cut-off. The mean (k = 0) is kept.

    Parameters
    ----------
    images : torch.Tensor, (B, H, W)
    resolution_angstrom : float or torch.Tensor (B,)
    pixel_size_angstrom : float or torch.Tensor (B,)
    edge_width_rings : float
        Width of the cosine edge in Fourier rings (units of ``1 / (box * pixel size)``).

    Returns
    -------
    torch.Tensor, (B, H, W), same dtype as ``images``
    """
    batch, h, w = images.shape
    real_dtype = images.dtype
    resolution = torch.as_tensor(resolution_angstrom, dtype=real_dtype, device=images.device).reshape(-1)
    pixel = torch.as_tensor(pixel_size_angstrom, dtype=real_dtype, device=images.device).reshape(-1)
    if (resolution <= 0).any() or (pixel <= 0).any():
        raise ValueError("lowpass: resolution_angstrom and pixel_size_angstrom must be positive")
    cutoff = (pixel / resolution).expand(batch)[:, None, None]
    width = max(float(edge_width_rings), 1e-6) / min(h, w)
    fy = torch.fft.fftfreq(h, device=images.device, dtype=real_dtype)
    fx = torch.fft.rfftfreq(w, device=images.device, dtype=real_dtype)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)[None]
    position = ((f - cutoff + width / 2) / width).clamp(0, 1)
    transfer = 0.5 * (1 + torch.cos(math.pi * position))
    return torch.fft.irfft2(torch.fft.rfft2(images) * transfer, s=(h, w))
